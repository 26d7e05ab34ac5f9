package command

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/agent"
)

// agentFlags are the agent's command-line settings; set ones override
// the config file.
type agentFlags struct {
	dev               bool
	server            bool
	client            bool
	configFiles       []string
	bind              string
	advertise         string
	httpPort          int
	rpcPort           int
	gossipPort        int
	dataDir           string
	nodeName          string
	datacenter        string
	nodeClass         string
	meta              []string
	servers           []string
	join              []string
	bootstrapExpect   int
	containerdAddress string
	containerdNS      string
	logLevel          string
	logJSON           bool
	enableDebug       bool
	recover           bool

	region                  string
	encrypt                 string
	tlsHTTP                 bool
	tlsRPC                  bool
	tlsCAFile               string
	tlsCertFile             string
	tlsKeyFile              string
	tlsVerifyServerHostname bool
	tlsVerifyHTTPSClient    bool
	httpMaxConnsPerClient   int
	rpcMaxConnsPerClient    int
	maxCountPerGroup        int
	aclEnabled              bool
	dnsPort                 int
	gateway                 bool
	gatewayHTTPPort         int
	gatewayHTTPSPort        int
	compactRaft             bool
}

func newAgentCommand(g *globals) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a Drover agent (server, client, or both with -dev)",
		Long: `Run a Drover agent in the foreground.

  drover agent -dev                     server and client in one process,
                                        bound to 127.0.0.1
  drover agent -server -data-dir DIR    a server
  drover agent -client -servers ADDR    a client registering with servers

Listeners: HTTP API on 4646, RPC (and Raft) on 4647, gossip on 4648, all
on -bind. Settings come from defaults, then -config files (HCL), then
flags. SIGINT or SIGTERM shuts the agent down; running containers are
left running and re-attached at the next start. SIGHUP reloads the TLS
certificates from their files (a bad file keeps the ones in use).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			return runAgent(g, cfg)
		},
	}
	cmd.AddCommand(newAgentInfoCommand(g))
	fl := cmd.Flags()
	fl.BoolVar(&f.dev, "dev", false, "run a server and a client in one process (single-server cluster)")
	fl.BoolVar(&f.server, "server", false, "run a server")
	fl.BoolVar(&f.client, "client", false, "run a client")
	fl.StringArrayVar(&f.configFiles, "config", nil, "HCL agent config file (repeatable; later files win)")
	fl.StringVar(&f.bind, "bind", "", "address every listener binds (default 0.0.0.0, 127.0.0.1 with -dev)")
	fl.StringVar(&f.advertise, "advertise", "", "address other agents reach this one at (default: the bind address)")
	fl.IntVar(&f.httpPort, "http-port", 0, fmt.Sprintf("HTTP API port (default %d)", agent.DefaultHTTPPort))
	fl.IntVar(&f.rpcPort, "rpc-port", 0, fmt.Sprintf("RPC and Raft port (default %d)", agent.DefaultRPCPort))
	fl.IntVar(&f.gossipPort, "gossip-port", 0, fmt.Sprintf("gossip port (default %d)", agent.DefaultGossipPort))
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for Raft data and client state (a temporary dir with -dev if unset)")
	fl.StringVar(&f.nodeName, "node-name", "", "name of this node (default: the hostname)")
	fl.StringVar(&f.datacenter, "datacenter", "", "datacenter of this agent (default dc1)")
	fl.StringVar(&f.nodeClass, "node-class", "", "node class of this client")
	fl.StringArrayVar(&f.meta, "meta", nil, "client metadata KEY=VALUE (repeatable)")
	fl.StringArrayVar(&f.servers, "servers", nil, "RPC address of a server, host:port (repeatable; clients without a local server)")
	fl.IntVar(&f.bootstrapExpect, "bootstrap-expect", 0, "number of servers that bootstrap the cluster together (they find each other by gossip)")
	fl.StringArrayVar(&f.join, "join", nil, "gossip address (host or host:port) of an agent to join; repeatable; retried until one answers")
	fl.StringVar(&f.containerdAddress, "containerd-address", "", "containerd socket (default /run/containerd/containerd.sock)")
	fl.StringVar(&f.containerdNS, "containerd-namespace", "", "containerd namespace for tasks (default drover)")
	fl.StringVar(&f.logLevel, "log-level", "", "log level: trace, debug, info, warn, error (default info)")
	fl.BoolVar(&f.logJSON, "log-json", false, "write logs as JSON")
	fl.BoolVar(&f.recover, "recover", false, "start a server whose raft.db is missing although Raft snapshots remain, accepting the roll-back to the newest snapshot (it then catches up from its peers)")
	fl.BoolVar(&f.enableDebug, "enable-debug", false, "serve Go's profiler at /debug/pprof/ on the HTTP API (for profiling; do not expose)")
	fl.StringVar(&f.region, "region", "", "region of the cluster, the <region> of server.<region>.drover in server certificates (default global)")
	fl.StringVar(&f.encrypt, "encrypt", "", "gossip encryption key, base64 of 16, 24 or 32 bytes (drover operator gossip keyring generate makes one)")
	fl.BoolVar(&f.tlsHTTP, "tls-http", false, "serve the HTTP API over HTTPS only")
	fl.BoolVar(&f.tlsRPC, "tls-rpc", false, "make every RPC, Raft and forwarding connection mTLS; plaintext is refused")
	fl.StringVar(&f.tlsCAFile, "tls-ca-file", "", "CA certificate (PEM) that signs every agent's certificate")
	fl.StringVar(&f.tlsCertFile, "tls-cert-file", "", "this agent's certificate (PEM), from drover tls cert create")
	fl.StringVar(&f.tlsKeyFile, "tls-key-file", "", "this agent's private key (PEM)")
	fl.BoolVar(&f.tlsVerifyServerHostname, "tls-verify-server-hostname", true, "outgoing RPC requires the other end's server certificate (server.<region>.drover)")
	fl.BoolVar(&f.tlsVerifyHTTPSClient, "tls-verify-https-client", false, "the HTTPS API requires a client certificate signed by the CA")
	fl.IntVar(&f.httpMaxConnsPerClient, "http-max-conns-per-client", -1, "open HTTP connections allowed from one client IP; 0 disables the limit (default 100)")
	fl.IntVar(&f.rpcMaxConnsPerClient, "rpc-max-conns-per-client", -1, "open RPC connections allowed from one client IP; 0 disables the limit (default 100)")
	fl.IntVar(&f.maxCountPerGroup, "max-count-per-group", 0, "largest count a job's group may ask for (default 10000)")
	fl.BoolVar(&f.aclEnabled, "acl-enabled", false, "turn on ACLs (acl { enabled = true }): requests need a token; start with drover acl bootstrap")
	fl.IntVar(&f.dnsPort, "dns-port", -1, fmt.Sprintf("client DNS port, UDP and TCP, for <service>.service.drover names; 0 turns DNS off (default %d)", agent.DefaultDNSPort))
	fl.BoolVar(&f.gateway, "gateway", false, "run the HTTP ingress gateway on this client (gateway { enabled = true }): a public listener for services' routes")
	fl.IntVar(&f.gatewayHTTPPort, "gateway-http-port", 0, fmt.Sprintf("ingress gateway HTTP port (default %d)", agent.DefaultGatewayHTTPPort))
	fl.BoolVar(&f.compactRaft, "compact-raft", false, "server: compact raft.db before starting (done on its own when the file is mostly free pages); see server raft_compact")
	fl.IntVar(&f.gatewayHTTPSPort, "gateway-https-port", 0, fmt.Sprintf("ingress gateway HTTPS port, listened on when gateway certificates are configured (default %d)", agent.DefaultGatewayHTTPSPort))
	return cmd
}

// config merges defaults, config files and flags.
func (f *agentFlags) config(cmd *cobra.Command) (*agent.Config, error) {
	cfg := agent.DefaultConfig()
	if f.dev {
		cfg = agent.DevConfig()
	}
	for _, path := range f.configFiles {
		fileCfg, err := agent.LoadConfigFile(path)
		if err != nil {
			return nil, err
		}
		cfg.Merge(fileCfg)
	}
	if cfg.Dev && !f.dev {
		// dev = true in a config file.
		dev := agent.DevConfig()
		dev.Merge(cfg)
		cfg = dev
	}
	over := &agent.Config{
		BindAddr:      f.bind,
		AdvertiseAddr: f.advertise,
		DataDir:       f.dataDir,
		Join:          f.join,
		NodeName:      f.nodeName,
		Datacenter:    f.datacenter,
		LogLevel:      f.logLevel,
		LogJSON:       f.logJSON,
		EnableDebug:   f.enableDebug,
		Ports:         &agent.Ports{HTTP: f.httpPort, RPC: f.rpcPort, Gossip: f.gossipPort},
		Server:        &agent.ServerConfig{Enabled: f.server, BootstrapExpect: f.bootstrapExpect, Recover: f.recover, RaftCompact: f.compactRaft},
		Client:        &agent.ClientConfig{Enabled: f.client, Servers: f.servers, NodeClass: f.nodeClass},
		Containerd:    &agent.ContainerdConfig{Address: f.containerdAddress, Namespace: f.containerdNS},
		Region:        f.region,
		Encrypt:       f.encrypt,
		TLS: &agent.TLSConfig{HTTP: f.tlsHTTP, RPC: f.tlsRPC,
			CAFile: f.tlsCAFile, CertFile: f.tlsCertFile, KeyFile: f.tlsKeyFile},
		Limits: &agent.Limits{MaxCountPerGroup: f.maxCountPerGroup},
		ACL:    &agent.ACLConfig{Enabled: f.aclEnabled},
	}
	// Boolean and limit flags override the file only when given.
	if fl := cmd.Flags(); fl.Changed("tls-verify-server-hostname") {
		v := f.tlsVerifyServerHostname
		over.TLS.VerifyServerHostname = &v
	}
	if fl := cmd.Flags(); fl.Changed("tls-verify-https-client") {
		v := f.tlsVerifyHTTPSClient
		over.TLS.VerifyHTTPSClient = &v
	}
	if f.httpMaxConnsPerClient >= 0 {
		v := f.httpMaxConnsPerClient
		over.Limits.HTTPMaxConnsPerClient = &v
	}
	if f.rpcMaxConnsPerClient >= 0 {
		v := f.rpcMaxConnsPerClient
		over.Limits.RPCMaxConnsPerClient = &v
	}
	if f.dnsPort >= 0 {
		v := f.dnsPort
		over.DNS = &agent.DNSConfig{Port: &v}
	}
	if f.gateway || f.gatewayHTTPPort != 0 || f.gatewayHTTPSPort != 0 {
		over.Gateway = &agent.GatewayConfig{HTTPPort: f.gatewayHTTPPort, HTTPSPort: f.gatewayHTTPSPort}
		if f.gateway {
			on := true
			over.Gateway.Enabled = &on
		}
	}
	if len(f.meta) > 0 {
		over.Client.Meta = make(map[string]string)
		for _, kv := range f.meta {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("-meta %q: want KEY=VALUE", kv)
			}
			over.Client.Meta[k] = v
		}
	}
	cfg.Merge(over)
	cfg.Version = Version
	return cfg, cfg.Validate()
}

// runAgent starts the agent and waits for a signal.
func runAgent(g *globals, cfg *agent.Config) error {
	logger := agent.NewLogger(cfg, g.ui.err)
	a, err := agent.New(cfg, logger)
	if err != nil {
		return err
	}
	g.ui.Printf("==> Drover agent started\n")
	g.ui.Printf("    HTTP API: %s://%s\n", a.HTTPScheme(), a.HTTPAddr())
	if s := a.Server(); s != nil {
		g.ui.Printf("    Server:   RPC %s\n", s.RPCAddr())
	}
	if c := a.Client(); c != nil {
		g.ui.Printf("    Client:   node %s\n", c.NodeID())
	}
	if addr := a.DNSAddr(); addr != "" {
		g.ui.Printf("    DNS:      %s\n", addr)
	}
	g.ui.Printf("    Data dir: %s\n", cfg.DataDir)
	if sec := a.Security(); !sec.LoopbackOnly {
		for _, w := range sec.Warnings {
			g.ui.Printf("==> WARNING: %s\n", w)
		}
	}

	sigCh := make(chan os.Signal, 2)
	signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
	// SIGHUP reloads the TLS certificates (new connections use them);
	// the agent keeps running whether or not the new files are good.
	hupCh := make(chan os.Signal, 1)
	signal.Notify(hupCh, syscall.SIGHUP)
	defer signal.Stop(hupCh)
	var sig os.Signal
	var fatal error
wait:
	for {
		select {
		case <-hupCh:
			logger.Info("caught SIGHUP, reloading TLS certificates")
			_ = a.Reload() // it logs what it did, or why it kept the old files
		case sig = <-sigCh:
			logger.Info("caught signal, shutting down", "signal", sig.String())
			if sig == syscall.SIGTERM && cfg.LeaveOnTerminate {
				if err := a.Leave(); err != nil {
					logger.Warn("graceful leave failed", "error", err)
				}
			}
			break wait
		case <-a.LeaveCh():
			logger.Info("left the cluster, shutting down")
			break wait
		case fatal = <-a.FatalCh():
			break wait
		}
	}
	done := make(chan struct{})
	go func() {
		a.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case sig = <-sigCh:
		logger.Warn("second signal, exiting without a clean shutdown", "signal", sig.String())
		return withCode(ExitError, fmt.Errorf("interrupted during shutdown"))
	}
	if fatal != nil {
		return withCode(ExitError, fatal)
	}
	return nil
}
