package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/client"
	clientdns "github.com/droverhq/drover/client/dns"
	clientgateway "github.com/droverhq/drover/client/gateway"
	clientproxy "github.com/droverhq/drover/client/proxy"
	"github.com/droverhq/drover/connlimit"
	"github.com/droverhq/drover/driver"
	ctrdriver "github.com/droverhq/drover/driver/containerd"
	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/tlsutil"
)

// Agent is a running Drover agent.
type Agent struct {
	config *Config
	logger hclog.Logger

	server  *server.Server
	client  *client.Client
	drivers map[string]driver.Driver
	// rpc reaches the servers: the local server, or remote ones.
	rpc client.RPCer
	// pool carries calls to remote servers.
	pool *rpcpool.Pool
	// gossip is this agent's membership in the pool.
	gossip *gossip.Pool
	// leaveCh is closed when the agent was asked to leave the cluster
	// (PUT /v1/agent/leave); the command then shuts it down.
	leaveCh   chan struct{}
	fatalCh   chan error
	leaveOnce sync.Once
	// shutdownCh stops the agent's own loops.
	shutdownCh chan struct{}

	httpServer   *http.Server
	httpListener net.Listener
	// httpLimiter is httpListener: it bounds HTTP connections per client
	// IP and in total, and hands those over a limit to overflowServer,
	// which answers health checks and 429 (see http_limits.go).
	httpLimiter    *connlimit.Listener
	overflowServer *http.Server
	// blocking bounds the blocking queries waiting per client IP; nil
	// when unlimited.
	blocking *blockingLimiter
	// tempDataDir is a data dir created for a dev agent without one; it
	// is removed on a clean shutdown.
	tempDataDir string

	// tls holds the agent's certificates when tls.http or tls.rpc is on
	// (tls.go); nil otherwise.
	tls *tlsutil.Configurator
	// logsTransport dials other agents for the logs proxy; built once.
	logsTransport     *http.Transport
	logsTransportOnce sync.Once
	// execs counts the exec sessions this agent serves or proxies, and
	// execLimits bounds them (http_exec.go).
	execs      execSlots
	execLimits execLimits

	// tokens caches token resolutions on an agent without a server
	// (acl_cache.go); made on first use.
	tokens     *tokenCache
	tokensOnce sync.Once
	// audit appends writes and denied requests to the audit log
	// (audit.go); nil when audit is off.
	audit *auditLog
	// dns answers service names on a client agent; nil when off.
	dns *clientdns.Server
	// proxy balances connections to service VIPs and published ports on
	// a client agent; nil when off.
	proxy *clientproxy.Proxy
	// gateway routes HTTP requests to services' routes on a client
	// agent with gateway { enabled = true }; nil when off.
	gateway *clientgateway.Gateway
	// stopServicesWatch ends the one Service.Proxy watcher feeding the
	// proxy and the gateway; servicesWatchDone is closed when it has.
	stopServicesWatch context.CancelFunc
	servicesWatchDone chan struct{}

	shutdownOnce sync.Once
}

// NewLogger builds the agent's logger from its configuration.
func NewLogger(c *Config, out io.Writer) hclog.InterceptLogger {
	return hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:       "agent",
		Level:      hclog.LevelFromString(c.LogLevel),
		JSONFormat: c.LogJSON,
		Output:     out,
	})
}

// New starts an agent.
func New(c *Config, logger hclog.Logger) (*Agent, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	limits, err := c.overloadLimits()
	if err != nil {
		return nil, err
	}
	a := &Agent{config: c, logger: logger, drivers: make(map[string]driver.Driver),
		leaveCh: make(chan struct{}), fatalCh: make(chan error, 1), shutdownCh: make(chan struct{})}
	if c.DataDir == "" {
		if !c.Dev {
			return nil, errors.New("a data dir is required: -data-dir PATH or data_dir in the config file")
		}
		dir, err := os.MkdirTemp("", "drover-dev-")
		if err != nil {
			return nil, err
		}
		a.tempDataDir = dir
		c.DataDir = dir
		logger.Warn("dev mode without -data-dir: state lives in a temporary dir and is removed on shutdown", "data_dir", dir)
	}
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := a.setupTLS(); err != nil {
		a.Shutdown()
		return nil, err
	}
	if c.Audit != nil && c.Audit.Enabled {
		a.audit = newAuditLog(c.Audit.settings(c.DataDir), logger)
		if err := a.audit.open(); err != nil {
			// Not fatal: the audit log fails open (audit.go), and each
			// line tries the file again.
			logger.Error("cannot open the audit log; requests will be answered without audit lines until it can be written", "error", err)
		}
	}

	// The HTTP listener first: its address goes into the node.
	l, err := net.Listen("tcp", c.HTTPAddr())
	if err != nil {
		return nil, fmt.Errorf("listen on HTTP address %s: %w", c.HTTPAddr(), err)
	}
	a.httpLimiter = connlimit.NewListener(l, limits.httpConnLimit(logger))
	a.httpListener = a.httpLimiter
	a.blocking = newBlockingLimiter(limits.blockingPerClient)

	if err := a.setupGossip(); err != nil {
		a.Shutdown()
		return nil, err
	}

	if c.Server.Enabled {
		sc, err := c.serverConfig()
		if err != nil {
			a.Shutdown()
			return nil, err
		}
		sc.Logger = logger
		sc.Membership = a.gossip
		sc.RPCConnLimit = limits.rpcConnLimit(logger)
		if c.TLS.RPC {
			sc.TLS = a.tls
		}
		srv, err := server.NewServer(sc)
		if err != nil {
			a.Shutdown()
			return nil, err
		}
		a.server = srv
		a.rpc = srv
	} else {
		if c.TLS.RPC {
			a.pool = rpcpool.New(rpcpool.WithTLS(a.tls.OutgoingRPC()))
		} else {
			a.pool = rpcpool.New()
		}
		var discover func() []string
		if a.gossip != nil {
			discover = a.gossip.AliveServerAddrs
		}
		// The client's failover (shared with the node simulator). A
		// fleet of clients with the same server list must not all pick
		// the same server first: Shuffle.
		a.rpc = client.NewServers(client.ServersConfig{
			Transport: a.pool, Configured: c.Client.Servers, Discover: discover,
			Unreachable: isNetworkError, Shuffle: true,
		})
	}

	if c.Client.Enabled {
		if err := a.setupClient(); err != nil {
			a.Shutdown()
			return nil, err
		}
		if err := a.setupDNS(); err != nil {
			a.Shutdown()
			return nil, err
		}
		if err := a.setupProxy(); err != nil {
			a.Shutdown()
			return nil, err
		}
		if err := a.setupGateway(); err != nil {
			a.Shutdown()
			return nil, err
		}
		a.watchServices()
	}

	a.serveHTTP(a.routes())
	logger.Info("agent started", "http", l.Addr().String(), "server", c.Server.Enabled, "client", c.Client.Enabled, "data_dir", c.DataDir)
	if a.dns != nil {
		logger.Info("DNS: " + a.dns.Addr())
	}
	if sec := a.Security(); !sec.LoopbackOnly {
		for _, w := range sec.Warnings {
			logger.Warn("INSECURE: " + w)
		}
	}
	return a, nil
}

func (a *Agent) setupClient() error {
	c := a.config
	drv, err := ctrdriver.New(ctrdriver.Config{Address: c.Containerd.Address, Namespace: c.Containerd.Namespace}, a.logger.Named("containerd"))
	if err != nil {
		return fmt.Errorf("containerd driver: %w", err)
	}
	a.drivers[drv.Name()] = drv
	httpPort := a.httpListener.Addr().(*net.TCPAddr).Port
	reserved := append([]int(nil), c.Client.Reserved.Ports...)
	reserved = append(reserved, httpPort, c.Ports.RPC, c.Ports.Gossip)
	cl, err := client.New(&client.Config{
		DataDir:          c.DataDir,
		NodeName:         c.NodeName,
		Datacenter:       c.Datacenter,
		NodeClass:        c.Client.NodeClass,
		Meta:             c.Client.Meta,
		HTTPAddr:         net.JoinHostPort(c.advertise(), strconv.Itoa(httpPort)),
		NetworkIP:        c.advertise(),
		CPUTotalMHz:      c.Client.CPUTotalMHz,
		MemoryTotalMB:    c.Client.MemoryTotalMB,
		ReservedCPU:      c.Client.Reserved.CPU,
		ReservedMemoryMB: c.Client.Reserved.MemoryMB,
		ReservedPorts:    reserved,
		MinDynamicPort:   c.Client.MinDynamicPort,
		MaxDynamicPort:   c.Client.MaxDynamicPort,
		Drivers:          a.drivers,
		// Tasks get the agent's DNS as their nameserver when it
		// listens on port 53 (a resolv.conf cannot name a port).
		DNSServers: taskDNSServers(c.DNSAddr()),
		RPC:        a.rpc,
		Logger:     a.logger,
	})
	if err != nil {
		return err
	}
	a.client = cl
	return nil
}

// setupDNS starts the client's DNS server (client/dns) when the dns
// block leaves it on. Its lookups are Service.Instances calls as this
// node. A port in use is an error: the agent does not start.
func (a *Agent) setupDNS() error {
	addr := a.config.DNSAddr()
	if addr == "" || a.client == nil {
		return nil
	}
	srv, err := clientdns.New(clientdns.Config{
		Addr:     addr,
		Lookup:   a.client.ServiceInstances,
		ErrorLog: a.logger.Named("dns").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	})
	if err != nil {
		return fmt.Errorf("DNS server: %w (choose another port with dns { port = N } or -dns-port N, or 0 to turn DNS off)", err)
	}
	a.dns = srv
	return nil
}

// setupProxy starts the client's services proxy (client/proxy) unless
// the proxy block turns it off. It follows Service.Proxy, a blocking
// query as this node; listener errors (a published port in use) are
// logged and shown at /v1/client/proxy, not fatal.
func (a *Agent) setupProxy() error {
	if !a.config.ProxyEnabled() || a.client == nil {
		return nil
	}
	balance, noReplay := "", false
	if a.config.Proxy != nil {
		balance, noReplay = a.config.Proxy.Balance, a.config.Proxy.NoReplay
	}
	p, err := clientproxy.New(clientproxy.Config{
		PublishHost: a.config.BindAddr,
		Balance:     balance,
		NoReplay:    noReplay,
		ErrorLog:    a.logger.Named("proxy").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	})
	if err != nil {
		return fmt.Errorf("services proxy: %w", err)
	}
	a.proxy = p
	return nil
}

// setupGateway starts the HTTP ingress gateway (client/gateway) when
// gateway { enabled = true }, on the bind address. A port in use is an
// error: the agent does not start.
func (a *Agent) setupGateway() error {
	if !a.config.GatewayEnabled() {
		return nil
	}
	gc := a.config.Gateway
	httpPort, httpsPort := a.config.GatewayPorts()
	cfg := clientgateway.Config{
		HTTPAddr:  net.JoinHostPort(a.config.BindAddr, strconv.Itoa(httpPort)),
		HTTPSAddr: net.JoinHostPort(a.config.BindAddr, strconv.Itoa(httpsPort)),
		AccessLog: gc.AccessLog,
		ErrorLog:  a.logger.Named("gateway").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	for _, c := range gc.Certificates {
		cfg.Certificates = append(cfg.Certificates, clientgateway.Certificate{Name: c.Name, CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	g, err := clientgateway.New(cfg)
	if err != nil {
		return fmt.Errorf("ingress gateway: %w (gateway { http_port = %d, https_port = %d }, or -gateway-http-port and -gateway-https-port)", err, httpPort, httpsPort)
	}
	a.gateway = g
	a.logger.Info("ingress gateway", "http", g.HTTPAddr(), "https", g.HTTPSAddr())
	return nil
}

// watchServices starts one Service.Proxy watcher (a blocking query as
// this node) whose answers feed both the proxy and the gateway.
func (a *Agent) watchServices() {
	var updates []func([]*structs.ProxiedService)
	if a.proxy != nil {
		updates = append(updates, a.proxy.Update)
	}
	if a.gateway != nil {
		updates = append(updates, a.gateway.Update)
	}
	if len(updates) == 0 || a.client == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stopServicesWatch, a.servicesWatchDone = cancel, make(chan struct{})
	w := &clientproxy.Watcher{
		Fetch: a.client.ServiceProxy,
		Update: func(services []*structs.ProxiedService) {
			for _, u := range updates {
				u(services)
			}
		},
		Logf: a.logger.Named("proxy").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Printf,
	}
	go func() {
		defer close(a.servicesWatchDone)
		w.Run(ctx)
	}()
}

// DNSAddr returns the address the DNS server listens on (UDP and TCP),
// or "" when the agent serves no DNS.
func (a *Agent) DNSAddr() string {
	if a.dns == nil {
		return ""
	}
	return a.dns.Addr()
}

// setupGossip starts this agent's gossip membership and, when join
// addresses are configured, a loop that joins the pool.
func (a *Agent) setupGossip() error {
	c := a.config
	name := c.NodeName
	if name == "" {
		name, _ = os.Hostname()
	}
	meta := gossip.Meta{
		Server:     c.Server.Enabled,
		Client:     c.Client.Enabled,
		Datacenter: c.Datacenter,
		Region:     c.Region,
		HTTPAddr:   net.JoinHostPort(c.advertise(), strconv.Itoa(a.httpListener.Addr().(*net.TCPAddr).Port)),
	}
	if c.Server.Enabled {
		id, err := server.LoadOrCreateServerID(c.DataDir)
		if err != nil {
			return err
		}
		meta.RaftID = id
		meta.RPCAddr = net.JoinHostPort(c.advertise(), strconv.Itoa(c.Ports.RPC))
		meta.BootstrapExpect = c.Server.BootstrapExpect
		meta.LogTypes = int(structs.MaxMessageType)
	}
	pool, err := gossip.New(gossip.Config{
		Name:          name,
		BindAddr:      c.BindAddr,
		BindPort:      c.Ports.Gossip,
		AdvertiseAddr: c.advertise(),
		Meta:          meta,
		Logger:        a.logger,
		// Gossip encryption: the keyring file in the data dir (keys
		// installed or rotated at runtime) wins over -encrypt.
		EncryptKey:  c.Encrypt,
		KeyringFile: filepath.Join(c.DataDir, "gossip", "keyring"),
	})
	if err != nil {
		return err
	}
	a.gossip = pool
	if len(c.Join) > 0 {
		go a.joinLoop(c.Join)
	}
	return nil
}

// Join retry backoff.
const (
	joinRetryMin = 500 * time.Millisecond
	joinRetryMax = 10 * time.Second
)

// joinLoop joins the gossip pool, retrying until a member answers.
func (a *Agent) joinLoop(addrs []string) {
	wait := joinRetryMin
	for {
		n, err := a.gossip.Join(addrs)
		var conflict *gossip.NameConflictError
		if errors.As(err, &conflict) {
			a.fail(conflict)
			return
		}
		if n > 0 {
			a.logger.Info("joined the cluster", "contacted", n, "of", len(addrs))
			return
		}
		a.logger.Warn("cannot join the cluster yet; retrying", "addresses", addrs, "error", err, "retry_in", wait)
		select {
		case <-a.shutdownCh:
			return
		case <-time.After(wait):
		}
		if wait *= 2; wait > joinRetryMax {
			wait = joinRetryMax
		}
	}
}

// Members returns the gossip members this agent knows.
func (a *Agent) Members() []gossip.Member { return a.gossip.Members() }

// fail reports an error that stops the agent (FatalCh); the first one
// wins.
func (a *Agent) fail(err error) {
	a.logger.Error("cannot run: " + err.Error())
	select {
	case a.fatalCh <- err:
	default:
	}
}

// FatalCh delivers an error that means the agent must stop, such as
// another member of the pool using its node name.
func (a *Agent) FatalCh() <-chan error { return a.fatalCh }

// LeaveCh is closed when the agent was asked to leave the cluster.
func (a *Agent) LeaveCh() <-chan struct{} { return a.leaveCh }

// Leave takes the agent out of the cluster gracefully: a leading server
// hands leadership on, and gossip announces the departure so the leader
// removes this server from Raft. The agent should be shut down after.
func (a *Agent) Leave() error {
	var err error
	a.leaveOnce.Do(func() {
		a.logger.Info("leaving the cluster")
		if a.server != nil {
			if lerr := a.server.Leave(5 * time.Second); lerr != nil {
				err = fmt.Errorf("leave Raft: %w", lerr)
			}
		}
		if a.gossip != nil {
			if gerr := a.gossip.Leave(5 * time.Second); gerr != nil && err == nil {
				err = fmt.Errorf("leave gossip: %w", gerr)
			}
		}
		close(a.leaveCh)
	})
	return err
}

// HTTPAddr returns the address the HTTP API listens on.
func (a *Agent) HTTPAddr() string { return a.httpListener.Addr().String() }

// Server returns the agent's server, or nil.
func (a *Agent) Server() *server.Server { return a.server }

// Client returns the agent's client, or nil.
func (a *Agent) Client() *client.Client { return a.client }

// RPC calls an endpoint on the servers.
func (a *Agent) RPC(method string, args, reply interface{}) error {
	if err := a.checkClientRPC(method); err != nil {
		return err
	}
	return a.rpc.RPC(method, args, reply)
}

// Shutdown stops the agent: HTTP, client (tasks keep running), server.
func (a *Agent) Shutdown() {
	a.shutdownOnce.Do(func() {
		a.logger.Info("shutting down agent")
		close(a.shutdownCh)
		if a.httpServer != nil {
			ctx, cancel := contextWithTimeout(5 * time.Second)
			_ = a.httpServer.Shutdown(ctx)
			cancel()
			_ = a.overflowServer.Close()
		} else if a.httpListener != nil {
			a.httpListener.Close()
		}
		// The HTTP server does not wait for hijacked connections:
		// exec sessions kill their processes (shutdownCh) before the
		// client and its drivers go.
		if !a.execs.wait(execShutdownWait) {
			a.logger.Warn("exec sessions still running at shutdown", "waited", execShutdownWait)
		}
		// DNS before the client: its lookups go through the client.
		if a.dns != nil {
			if err := a.dns.Shutdown(); err != nil {
				a.logger.Warn("DNS server shutdown", "error", err)
			}
		}
		// The proxy and gateway too: their watcher calls the client.
		if a.stopServicesWatch != nil {
			a.stopServicesWatch()
			<-a.servicesWatchDone
		}
		if a.proxy != nil {
			a.proxy.Stop()
		}
		if a.gateway != nil {
			a.gateway.Stop()
		}
		if a.client != nil {
			if err := a.client.Shutdown(); err != nil {
				a.logger.Warn("client shutdown", "error", err)
			}
		}
		if a.server != nil {
			if err := a.server.Shutdown(); err != nil {
				a.logger.Warn("server shutdown", "error", err)
			}
		}
		if a.pool != nil {
			a.pool.Shutdown()
		}
		if a.gossip != nil {
			_ = a.gossip.Shutdown()
		}
		for _, d := range a.drivers {
			_ = d.Close()
		}
		if a.audit != nil {
			a.audit.close()
		}
		if a.tempDataDir != "" {
			// The tasks' secrets tmpfs mounts first, or they would
			// stay mounted in a directory that is gone.
			if err := client.ReleaseTaskDirs(a.tempDataDir); err != nil {
				a.logger.Warn("release task directories", "error", err)
			}
			_ = os.RemoveAll(a.tempDataDir)
		}
	})
}

// isNetworkError reports whether err means the server could not be
// reached (rather than that it answered with an error).
func isNetworkError(err error) bool {
	if ce := structs.ParseCodedError(err); ce != nil {
		return ce.Code == structs.CodeNoLeader || ce.Code == structs.CodeTimeout
	}
	return errors.Is(err, rpcpool.ErrUnreachable)
}
