package agent

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsimple"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
)

// Default ports.
const (
	DefaultHTTPPort   = 4646
	DefaultRPCPort    = 4647
	DefaultGossipPort = 4648
	// DefaultDNSPort is the client agent's DNS port (UDP and TCP).
	DefaultDNSPort = 8600
)

// DefaultMaxRequestBytes is the largest HTTP request body accepted; a
// bigger one gets 413. A job file is a few kilobytes; 1 MiB leaves room
// for very large jobs while keeping a careless or hostile client from
// making the agent buffer gigabytes.
const DefaultMaxRequestBytes = 1 << 20

// Config is the agent's configuration. Its HCL form is documented in the
// README.
type Config struct {
	// Dev runs a server and a client in one process with a single-server
	// Raft cluster.
	Dev bool `hcl:"dev,optional"`

	// BindAddr is the address every listener binds.
	BindAddr string `hcl:"bind_addr,optional"`
	// AdvertiseAddr is the address other agents reach this one at;
	// defaults to BindAddr, or the first private address when BindAddr
	// is 0.0.0.0.
	AdvertiseAddr string `hcl:"advertise_addr,optional"`
	Ports         *Ports `hcl:"ports,block"`

	DataDir    string `hcl:"data_dir,optional"`
	NodeName   string `hcl:"name,optional"`
	Datacenter string `hcl:"datacenter,optional"`
	// Region names the cluster in server certificates
	// (server.<region>.drover); default "global".
	Region string `hcl:"region,optional"`

	// Encrypt is the gossip encryption key, base64 of 32 bytes. Every
	// member of the pool must know it; see `drover operator gossip
	// keyring`.
	Encrypt string `hcl:"encrypt,optional"`
	// TLS turns on mTLS for HTTP and RPC.
	TLS *TLSConfig `hcl:"tls,block"`
	// Limits bound what clients of the agent may ask for.
	Limits *Limits `hcl:"limits,block"`
	// ACL turns on access control (http_acl.go).
	ACL *ACLConfig `hcl:"acl,block"`
	// Audit appends every write and every denied request to a log
	// (audit.go).
	Audit *AuditConfig `hcl:"audit,block"`
	// DNS is the client agent's DNS server for service names.
	DNS *DNSConfig `hcl:"dns,block"`
	// Proxy is the client agent's load-balancing proxy for service VIPs
	// and published ports.
	Proxy *ProxyConfig `hcl:"proxy,block"`
	// Gateway is the client agent's HTTP ingress gateway for service
	// routes; off unless gateway { enabled = true }.
	Gateway *GatewayConfig `hcl:"gateway,block"`

	// Join lists gossip addresses (host or host:port) of agents to join;
	// the agent retries until it reaches one.
	Join []string `hcl:"join,optional"`
	// LeaveOnTerminate makes SIGTERM leave the cluster gracefully (a
	// server is then removed from Raft) instead of just stopping.
	LeaveOnTerminate bool `hcl:"leave_on_terminate,optional"`

	// EnableDebug serves Go's profiler at /debug/pprof/ on the HTTP API.
	EnableDebug bool `hcl:"enable_debug,optional"`

	LogLevel string `hcl:"log_level,optional"`
	LogJSON  bool   `hcl:"log_json,optional"`

	// MaxRequestBytes limits HTTP request bodies.
	MaxRequestBytes int64 `hcl:"http_max_request_bytes,optional"`

	Server     *ServerConfig     `hcl:"server,block"`
	Client     *ClientConfig     `hcl:"client,block"`
	Containerd *ContainerdConfig `hcl:"containerd,block"`

	// Version is the Drover version (set by the command, not a file);
	// snapshots record it.
	Version string
}

// TLSConfig is the agent's tls block.
type TLSConfig struct {
	// HTTP serves the HTTP API over HTTPS only.
	HTTP bool `hcl:"http,optional"`
	// RPC makes every connection on the RPC port (RPC, Raft, forwarding,
	// client RPC) TLS from its first byte; plaintext is refused.
	RPC bool `hcl:"rpc,optional"`

	CAFile   string `hcl:"ca_file,optional"`
	CertFile string `hcl:"cert_file,optional"`
	KeyFile  string `hcl:"key_file,optional"`

	// VerifyServerHostname makes outgoing RPC check that the other end
	// holds a server certificate (server.<region>.drover). Default true.
	VerifyServerHostname *bool `hcl:"verify_server_hostname,optional"`
	// VerifyHTTPSClient makes the HTTPS API require a client
	// certificate signed by the CA. Default false.
	VerifyHTTPSClient *bool `hcl:"verify_https_client,optional"`
}

// Limits is the agent's limits block. Pointers tell "unset" (the
// default applies) from 0 (no limit, where 0 means that).
type Limits struct {
	// HTTPMaxConnsPerClient and RPCMaxConnsPerClient bound the open
	// connections from one client IP (Nomad's names); 0 disables.
	HTTPMaxConnsPerClient *int `hcl:"http_max_conns_per_client,optional"`
	RPCMaxConnsPerClient  *int `hcl:"rpc_max_conns_per_client,optional"`
	// HTTPSHandshakeTimeout and RPCHandshakeTimeout bound a new
	// connection's TLS handshake (and RPC protocol byte); durations.
	HTTPSHandshakeTimeout string `hcl:"https_handshake_timeout,optional"`
	RPCHandshakeTimeout   string `hcl:"rpc_handshake_timeout,optional"`
	// MaxBlockingQueriesPerClient bounds the blocking queries one client
	// IP may have waiting at once; more are answered without waiting.
	MaxBlockingQueriesPerClient *int `hcl:"max_blocking_queries_per_client,optional"`

	// Admission limits on jobs (server side; job plan is held to them
	// too).
	MaxCountPerGroup int   `hcl:"max_count_per_group,optional"`
	MaxGroupsPerJob  int   `hcl:"max_groups_per_job,optional"`
	MaxTasksPerGroup int   `hcl:"max_tasks_per_group,optional"`
	MaxTaskCPU       int64 `hcl:"max_task_cpu,optional"`
	MaxTaskMemoryMB  int64 `hcl:"max_task_memory_mb,optional"`

	// SnapshotMaxBytes bounds a snapshot archive PUT for a restore (as
	// sent, and after decompression); a bigger one gets 413. Default
	// 1 GiB.
	SnapshotMaxBytes int64 `hcl:"snapshot_max_bytes,optional"`
}

// Ports are the agent's listening ports.
type Ports struct {
	HTTP   int `hcl:"http,optional"`
	RPC    int `hcl:"rpc,optional"`
	Gossip int `hcl:"gossip,optional"`
}

// ServerConfig is the server part of the agent.
type ServerConfig struct {
	Enabled         bool `hcl:"enabled,optional"`
	BootstrapExpect int  `hcl:"bootstrap_expect,optional"`
	NumSchedulers   int  `hcl:"num_schedulers,optional"`
	// FollowerSchedulers is how many of the scheduler workers keep
	// scheduling, over RPC to the leader, while this server follows;
	// 0 leaves scheduling to the leader. Unset: all of them.
	FollowerSchedulers *int `hcl:"follower_schedulers,optional"`

	// Raft timing and heartbeat settings, as duration strings.
	RaftHeartbeatTimeout   string `hcl:"raft_heartbeat_timeout,optional"`
	RaftElectionTimeout    string `hcl:"raft_election_timeout,optional"`
	RaftLeaderLeaseTimeout string `hcl:"raft_leader_lease_timeout,optional"`
	MinHeartbeatTTL        string `hcl:"min_heartbeat_ttl,optional"`
	HeartbeatGrace         string `hcl:"heartbeat_grace,optional"`

	// RaftSnapshotThreshold is how many Raft log entries are written
	// between snapshots (default 8192) and RaftSnapshotInterval how
	// often the threshold is checked (default "2m"); lower them to
	// truncate the log sooner.
	RaftSnapshotThreshold uint64 `hcl:"raft_snapshot_threshold,optional"`
	RaftSnapshotInterval  string `hcl:"raft_snapshot_interval,optional"`
	// RaftTrailingLogs is how many entries a snapshot leaves in the log
	// for lagging followers (default 10240): with the threshold, it
	// bounds the log and so raft.db.
	RaftTrailingLogs uint64 `hcl:"raft_trailing_logs,optional"`
	// RaftCompact compacts raft.db at start-up (also -compact-raft);
	// without it the file is compacted only when it is mostly free
	// pages (server/raft_compact.go).
	RaftCompact bool `hcl:"raft_compact,optional"`

	// GC is the garbage collector's thresholds and caps.
	GC *GCConfig `hcl:"gc,block"`

	// ServiceVIPRange is the IPv4 range inside 127.0.0.0/8 service VIPs
	// are allocated from (default "127.99.0.0/16"); every server should
	// name the same one.
	ServiceVIPRange string `hcl:"service_vip_range,optional"`
	// KeyringFile names a file with a key-encryption key for variables
	// (64 hex digits), used besides <data_dir>/keyring: give every server
	// the same file to share the KEK without replication, or to restore
	// a snapshot taken by another cluster.
	KeyringFile string `hcl:"keyring_file,optional"`
	// EventBufferSize bounds the events a server keeps for
	// /v1/event/stream (default 10,000).
	EventBufferSize int `hcl:"event_buffer_size,optional"`
	// Recover starts a server whose raft.db is missing while snapshots
	// remain (flag -recover; never from a file, it is a one-off).
	Recover bool

	// Snapshot schedules snapshots on the leader (config_snapshot.go).
	Snapshot *SnapshotConfig `hcl:"snapshot,block"`
}

// GCConfig is the server's garbage collection block, server { gc { } }:
// how long finished objects are kept (durations like "1h"; Nomad's
// defaults) and how many of some a job keeps. Unset settings keep the
// defaults.
type GCConfig struct {
	// Interval is the time between the leader's passes (default "5m").
	Interval string `hcl:"interval,optional"`
	// EvalGCThreshold: terminal evaluations, with the allocations they
	// placed (default "1h"); BatchEvalGCThreshold those of batch jobs
	// (default "24h").
	EvalGCThreshold      string `hcl:"eval_gc_threshold,optional"`
	BatchEvalGCThreshold string `hcl:"batch_eval_gc_threshold,optional"`
	// DeploymentGCThreshold: finished deployments (default "1h").
	DeploymentGCThreshold string `hcl:"deployment_gc_threshold,optional"`
	// JobGCThreshold: stopped or dead jobs, with everything they have
	// (default "4h").
	JobGCThreshold string `hcl:"job_gc_threshold,optional"`
	// NodeGCThreshold: down nodes without running allocations (default
	// "24h").
	NodeGCThreshold string `hcl:"node_gc_threshold,optional"`
	// JobVersions is how many versions of a job are kept (1 to 6,
	// default 6); TerminalAllocs how many finished allocations a job
	// keeps whatever their age (default 50).
	JobVersions    int `hcl:"job_versions,optional"`
	TerminalAllocs int `hcl:"terminal_allocs,optional"`
}

func (g *GCConfig) merge(o *GCConfig) *GCConfig {
	if o == nil {
		return g
	}
	if g == nil {
		g = &GCConfig{}
	}
	setString(&g.Interval, o.Interval)
	setString(&g.EvalGCThreshold, o.EvalGCThreshold)
	setString(&g.BatchEvalGCThreshold, o.BatchEvalGCThreshold)
	setString(&g.DeploymentGCThreshold, o.DeploymentGCThreshold)
	setString(&g.JobGCThreshold, o.JobGCThreshold)
	setString(&g.NodeGCThreshold, o.NodeGCThreshold)
	setInt(&g.JobVersions, o.JobVersions)
	setInt(&g.TerminalAllocs, o.TerminalAllocs)
	return g
}

// settings returns the collector's settings: the defaults with what the
// block sets, checked.
func (g *GCConfig) settings() (server.GCConfig, error) {
	out := server.DefaultGCConfig()
	if g == nil {
		return out, nil
	}
	for _, d := range []struct {
		name, val string
		dst       *time.Duration
	}{
		{"interval", g.Interval, &out.Interval},
		{"eval_gc_threshold", g.EvalGCThreshold, &out.EvalThreshold},
		{"batch_eval_gc_threshold", g.BatchEvalGCThreshold, &out.BatchEvalThreshold},
		{"deployment_gc_threshold", g.DeploymentGCThreshold, &out.DeploymentThreshold},
		{"job_gc_threshold", g.JobGCThreshold, &out.JobThreshold},
		{"node_gc_threshold", g.NodeGCThreshold, &out.NodeThreshold},
	} {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v <= 0 {
			return out, fmt.Errorf("server gc %s = %q: want a positive duration like \"1h\" or \"30m\"", d.name, d.val)
		}
		*d.dst = v
	}
	if g.JobVersions != 0 {
		out.JobVersions = g.JobVersions
	}
	if g.TerminalAllocs != 0 {
		out.TerminalAllocs = g.TerminalAllocs
	}
	return out, out.Validate()
}

// ClientConfig is the client part of the agent.
type ClientConfig struct {
	Enabled bool `hcl:"enabled,optional"`
	// Servers are RPC addresses (host:port) of servers to register with.
	Servers   []string          `hcl:"servers,optional"`
	NodeClass string            `hcl:"node_class,optional"`
	Meta      map[string]string `hcl:"meta,optional"`

	// CPUTotalMHz and MemoryTotalMB override the fingerprint.
	CPUTotalMHz   int64 `hcl:"cpu_total_compute,optional"`
	MemoryTotalMB int64 `hcl:"memory_total_mb,optional"`

	Reserved *ReservedConfig `hcl:"reserved,block"`

	MinDynamicPort int `hcl:"min_dynamic_port,optional"`
	MaxDynamicPort int `hcl:"max_dynamic_port,optional"`
}

// ReservedConfig is held back from scheduling.
type ReservedConfig struct {
	CPU      int64 `hcl:"cpu,optional"`
	MemoryMB int64 `hcl:"memory,optional"`
	Ports    []int `hcl:"ports,optional"`
}

// DNSConfig is the agent's dns block: the DNS server every client agent
// runs for service names (client/dns). Pointers tell "unset" (the
// default applies) from false and 0.
type DNSConfig struct {
	// Enabled: default true on client agents; agents without a client
	// never serve DNS.
	Enabled *bool `hcl:"enabled,optional"`
	// Port is listened on over UDP and TCP (default 8600); 0 disables.
	Port *int `hcl:"port,optional"`
	// Addr is the IP address listened on; default the agent's bind
	// address (127.0.0.1 with -dev).
	Addr string `hcl:"addr,optional"`
}

// merge overlays o onto d (either may be nil) and returns the result.
func (d *DNSConfig) merge(o *DNSConfig) *DNSConfig {
	out := &DNSConfig{}
	if d != nil {
		*out = *d
	}
	if o == nil {
		return out
	}
	if o.Enabled != nil {
		out.Enabled = o.Enabled
	}
	if o.Port != nil {
		out.Port = o.Port
	}
	setString(&out.Addr, o.Addr)
	return out
}

func (d *DNSConfig) validate() error {
	if d == nil {
		return nil
	}
	if d.Port != nil && (*d.Port < 0 || *d.Port > 65535) {
		return fmt.Errorf("dns port = %d: want a port from 1 to 65535, or 0 to turn DNS off (default %d)", *d.Port, DefaultDNSPort)
	}
	if d.Addr != "" && net.ParseIP(d.Addr) == nil {
		return fmt.Errorf("dns addr = %q: want an IP address like \"127.0.0.1\" (default: the bind address)", d.Addr)
	}
	return nil
}

// DNSAddr returns the host:port the client's DNS server listens on, or
// "" when the agent serves no DNS (no client, dns { enabled = false },
// or port 0).
func (c *Config) DNSAddr() string {
	if !c.Client.Enabled {
		return ""
	}
	d := c.DNS
	if d == nil {
		d = &DNSConfig{}
	}
	if d.Enabled != nil && !*d.Enabled {
		return ""
	}
	port := DefaultDNSPort
	if d.Port != nil {
		port = *d.Port
	}
	if port == 0 {
		return ""
	}
	host := d.Addr
	if host == "" {
		// DNS answers without a token, so by default it listens on
		// loopback only (tasks share the host's network and reach
		// it there): on the bind address when that is a loopback one
		// (several agents on one machine), else on 127.0.0.1.
		// dns { addr } opens it wider.
		host = "127.0.0.1"
		if ip := net.ParseIP(c.BindAddr); ip != nil && ip.IsLoopback() {
			host = c.BindAddr
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// ProxyConfig is the agent's proxy block: the TCP load balancer every
// client agent runs for services with a VIP or a published port
// (client/proxy). Published ports are listened on at the bind address.
type ProxyConfig struct {
	// Enabled: default true on client agents; agents without a client
	// never proxy.
	Enabled *bool `hcl:"enabled,optional"`
	// Balance is "least_conn" (default) or "round_robin".
	Balance string `hcl:"balance,optional"`
	// NoReplay turns off replaying a connection whose backend closed
	// it before answering to the next backend (see client/proxy).
	NoReplay bool `hcl:"no_replay,optional"`
}

// merge overlays o onto p (either may be nil) and returns the result.
func (p *ProxyConfig) merge(o *ProxyConfig) *ProxyConfig {
	out := &ProxyConfig{}
	if p != nil {
		*out = *p
	}
	if o == nil {
		return out
	}
	if o.Enabled != nil {
		out.Enabled = o.Enabled
	}
	setString(&out.Balance, o.Balance)
	if o.NoReplay {
		out.NoReplay = true
	}
	return out
}

func (p *ProxyConfig) validate() error {
	if p == nil {
		return nil
	}
	switch p.Balance {
	case "", "least_conn", "round_robin":
		return nil
	}
	return fmt.Errorf("proxy balance = %q: want \"least_conn\" (the default) or \"round_robin\"", p.Balance)
}

// ProxyEnabled reports whether the agent runs the services proxy: on
// client agents unless proxy { enabled = false }.
func (c *Config) ProxyEnabled() bool {
	if !c.Client.Enabled {
		return false
	}
	return c.Proxy == nil || c.Proxy.Enabled == nil || *c.Proxy.Enabled
}

// Default gateway ports.
const (
	DefaultGatewayHTTPPort  = 80
	DefaultGatewayHTTPSPort = 443
)

// GatewayConfig is the agent's gateway block: the HTTP ingress gateway
// (client/gateway) a client agent runs when enabled, on the bind
// address. It is a public listener by design.
type GatewayConfig struct {
	// Enabled: default false (an opt-in role of a client agent).
	Enabled *bool `hcl:"enabled,optional"`
	// HTTPPort and HTTPSPort: default 80 and 443. HTTPS is only
	// listened on when certificates are configured.
	HTTPPort  int `hcl:"http_port,optional"`
	HTTPSPort int `hcl:"https_port,optional"`
	// AccessLog is a file that gets one JSON line per request ("":
	// none).
	AccessLog string `hcl:"access_log,optional"`
	// Certificates are named for routes' tls { cert_name }; the first
	// is served to clients whose SNI no route names.
	Certificates []*GatewayCertificate `hcl:"certificate,block"`
}

// GatewayCertificate is a gateway's `certificate "NAME"` block.
type GatewayCertificate struct {
	Name     string `hcl:"name,label"`
	CertFile string `hcl:"cert_file"`
	KeyFile  string `hcl:"key_file"`
}

// merge overlays o onto g (either may be nil) and returns the result; a
// certificate of o replaces g's of the same name.
func (g *GatewayConfig) merge(o *GatewayConfig) *GatewayConfig {
	out := &GatewayConfig{}
	if g != nil {
		*out = *g
		out.Certificates = append([]*GatewayCertificate(nil), g.Certificates...)
	}
	if o == nil {
		return out
	}
	if o.Enabled != nil {
		out.Enabled = o.Enabled
	}
	if o.HTTPPort != 0 {
		out.HTTPPort = o.HTTPPort
	}
	if o.HTTPSPort != 0 {
		out.HTTPSPort = o.HTTPSPort
	}
	setString(&out.AccessLog, o.AccessLog)
	base := len(out.Certificates)
	for _, oc := range o.Certificates {
		replaced := false
		for i, c := range out.Certificates[:base] {
			if c.Name == oc.Name {
				out.Certificates[i], replaced = oc, true
			}
		}
		if !replaced {
			out.Certificates = append(out.Certificates, oc)
		}
	}
	return out
}

// GatewayEnabled reports whether the agent runs the ingress gateway.
func (c *Config) GatewayEnabled() bool {
	return c.Gateway != nil && c.Gateway.Enabled != nil && *c.Gateway.Enabled
}

// GatewayPorts returns the gateway's HTTP and HTTPS ports, defaults
// applied.
func (c *Config) GatewayPorts() (httpPort, httpsPort int) {
	httpPort, httpsPort = DefaultGatewayHTTPPort, DefaultGatewayHTTPSPort
	if g := c.Gateway; g != nil {
		if g.HTTPPort != 0 {
			httpPort = g.HTTPPort
		}
		if g.HTTPSPort != 0 {
			httpsPort = g.HTTPSPort
		}
	}
	return httpPort, httpsPort
}

func (c *Config) validateGateway() error {
	g := c.Gateway
	if g == nil {
		return nil
	}
	httpPort, httpsPort := c.GatewayPorts()
	for _, p := range []struct {
		name string
		port int
	}{{"http_port", httpPort}, {"https_port", httpsPort}} {
		if p.port < 1 || p.port > 65535 {
			return fmt.Errorf("gateway %s = %d: want a port from 1 to 65535", p.name, p.port)
		}
	}
	if !c.GatewayEnabled() {
		return nil
	}
	if !c.Client.Enabled {
		return fmt.Errorf("gateway { enabled = true } (-gateway) needs a client agent: add -client (or -dev)")
	}
	if httpPort == httpsPort {
		return fmt.Errorf("gateway http_port and https_port are both %d: give them different ports", httpPort)
	}
	if c.Ports != nil {
		for _, p := range []struct {
			name string
			port int
		}{{"http", c.Ports.HTTP}, {"rpc", c.Ports.RPC}, {"gossip", c.Ports.Gossip}} {
			if p.port != 0 && (p.port == httpPort || p.port == httpsPort) {
				return fmt.Errorf("gateway port %d is the agent's %s port: choose another with gateway { http_port https_port }", p.port, p.name)
			}
		}
	}
	seen := map[string]bool{}
	for _, cert := range g.Certificates {
		switch {
		case cert.Name == "":
			return fmt.Errorf("gateway certificate: a certificate block needs a name: certificate \"NAME\" { cert_file key_file }")
		case seen[cert.Name]:
			return fmt.Errorf("gateway certificate %q is declared twice", cert.Name)
		case cert.CertFile == "" || cert.KeyFile == "":
			return fmt.Errorf("gateway certificate %q: cert_file and key_file are both required", cert.Name)
		}
		seen[cert.Name] = true
	}
	return nil
}

// ContainerdConfig configures the containerd task driver.
type ContainerdConfig struct {
	Address   string `hcl:"address,optional"`
	Namespace string `hcl:"namespace,optional"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{
		BindAddr:        "0.0.0.0",
		Ports:           &Ports{HTTP: DefaultHTTPPort, RPC: DefaultRPCPort, Gossip: DefaultGossipPort},
		Datacenter:      "dc1",
		Region:          "global",
		LogLevel:        "info",
		TLS:             &TLSConfig{},
		Limits:          &Limits{},
		ACL:             &ACLConfig{},
		Audit:           &AuditConfig{},
		DNS:             &DNSConfig{},
		MaxRequestBytes: DefaultMaxRequestBytes,
		Server:          &ServerConfig{BootstrapExpect: 1},
		Client:          &ClientConfig{Reserved: &ReservedConfig{}},
		Containerd:      &ContainerdConfig{Address: "/run/containerd/containerd.sock", Namespace: "drover"},
	}
}

// DevConfig returns the defaults for `agent -dev`: server and client in
// one process, bound to loopback.
func DevConfig() *Config {
	c := DefaultConfig()
	c.Dev = true
	c.BindAddr = "127.0.0.1"
	c.Server.Enabled = true
	c.Server.BootstrapExpect = 1
	c.Client.Enabled = true
	return c
}

// LoadConfigFile parses an HCL agent config file. Errors carry
// file:line:col.
func LoadConfigFile(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	var c Config
	if err := hclsimple.Decode(path, src, nil, &c); err != nil {
		if diags, ok := err.(hcl.Diagnostics); ok {
			return nil, fmt.Errorf("agent config: %s", diags.Error())
		}
		return nil, fmt.Errorf("agent config: %w", err)
	}
	return &c, nil
}

// Merge overlays the fields set in o onto c.
func (c *Config) Merge(o *Config) {
	if o == nil {
		return
	}
	if o.Dev {
		c.Dev = true
	}
	setString(&c.BindAddr, o.BindAddr)
	setString(&c.AdvertiseAddr, o.AdvertiseAddr)
	setString(&c.DataDir, o.DataDir)
	setString(&c.NodeName, o.NodeName)
	setString(&c.Datacenter, o.Datacenter)
	setString(&c.Region, o.Region)
	setString(&c.Encrypt, o.Encrypt)
	setString(&c.LogLevel, o.LogLevel)
	c.TLS.merge(o.TLS)
	c.Limits.merge(o.Limits)
	c.ACL = c.ACL.merge(o.ACL)
	c.Audit = c.Audit.merge(o.Audit)
	c.DNS = c.DNS.merge(o.DNS)
	c.Proxy = c.Proxy.merge(o.Proxy)
	c.Gateway = c.Gateway.merge(o.Gateway)
	if o.LogJSON {
		c.LogJSON = true
	}
	if len(o.Join) > 0 {
		c.Join = append(c.Join, o.Join...)
	}
	if o.LeaveOnTerminate {
		c.LeaveOnTerminate = true
	}
	if o.EnableDebug {
		c.EnableDebug = true
	}
	if o.MaxRequestBytes != 0 {
		c.MaxRequestBytes = o.MaxRequestBytes
	}
	if p := o.Ports; p != nil {
		setInt(&c.Ports.HTTP, p.HTTP)
		setInt(&c.Ports.RPC, p.RPC)
		setInt(&c.Ports.Gossip, p.Gossip)
	}
	if s := o.Server; s != nil {
		if s.Enabled {
			c.Server.Enabled = true
		}
		setInt(&c.Server.BootstrapExpect, s.BootstrapExpect)
		setInt(&c.Server.NumSchedulers, s.NumSchedulers)
		if s.FollowerSchedulers != nil {
			n := *s.FollowerSchedulers
			c.Server.FollowerSchedulers = &n
		}
		setString(&c.Server.RaftHeartbeatTimeout, s.RaftHeartbeatTimeout)
		setString(&c.Server.RaftElectionTimeout, s.RaftElectionTimeout)
		setString(&c.Server.RaftLeaderLeaseTimeout, s.RaftLeaderLeaseTimeout)
		setString(&c.Server.MinHeartbeatTTL, s.MinHeartbeatTTL)
		setString(&c.Server.HeartbeatGrace, s.HeartbeatGrace)
		if s.RaftSnapshotThreshold > 0 {
			c.Server.RaftSnapshotThreshold = s.RaftSnapshotThreshold
		}
		setString(&c.Server.RaftSnapshotInterval, s.RaftSnapshotInterval)
		if s.RaftTrailingLogs > 0 {
			c.Server.RaftTrailingLogs = s.RaftTrailingLogs
		}
		if s.RaftCompact {
			c.Server.RaftCompact = true
		}
		c.Server.GC = c.Server.GC.merge(s.GC)
		setString(&c.Server.ServiceVIPRange, s.ServiceVIPRange)
		setString(&c.Server.KeyringFile, s.KeyringFile)
		if s.Recover {
			c.Server.Recover = true
		}
		setInt(&c.Server.EventBufferSize, s.EventBufferSize)
		if s.Snapshot != nil {
			c.Server.Snapshot = s.Snapshot
		}
	}
	if cl := o.Client; cl != nil {
		if cl.Enabled {
			c.Client.Enabled = true
		}
		if len(cl.Servers) > 0 {
			c.Client.Servers = cl.Servers
		}
		setString(&c.Client.NodeClass, cl.NodeClass)
		if len(cl.Meta) > 0 {
			if c.Client.Meta == nil {
				c.Client.Meta = make(map[string]string)
			}
			for k, v := range cl.Meta {
				c.Client.Meta[k] = v
			}
		}
		if cl.CPUTotalMHz != 0 {
			c.Client.CPUTotalMHz = cl.CPUTotalMHz
		}
		if cl.MemoryTotalMB != 0 {
			c.Client.MemoryTotalMB = cl.MemoryTotalMB
		}
		if r := cl.Reserved; r != nil {
			if r.CPU != 0 {
				c.Client.Reserved.CPU = r.CPU
			}
			if r.MemoryMB != 0 {
				c.Client.Reserved.MemoryMB = r.MemoryMB
			}
			if len(r.Ports) > 0 {
				c.Client.Reserved.Ports = r.Ports
			}
		}
		setInt(&c.Client.MinDynamicPort, cl.MinDynamicPort)
		setInt(&c.Client.MaxDynamicPort, cl.MaxDynamicPort)
	}
	if ct := o.Containerd; ct != nil {
		setString(&c.Containerd.Address, ct.Address)
		setString(&c.Containerd.Namespace, ct.Namespace)
	}
}

func (t *TLSConfig) merge(o *TLSConfig) {
	if o == nil {
		return
	}
	if o.HTTP {
		t.HTTP = true
	}
	if o.RPC {
		t.RPC = true
	}
	setString(&t.CAFile, o.CAFile)
	setString(&t.CertFile, o.CertFile)
	setString(&t.KeyFile, o.KeyFile)
	if o.VerifyServerHostname != nil {
		t.VerifyServerHostname = o.VerifyServerHostname
	}
	if o.VerifyHTTPSClient != nil {
		t.VerifyHTTPSClient = o.VerifyHTTPSClient
	}
}

func (l *Limits) merge(o *Limits) {
	if o == nil {
		return
	}
	for _, p := range []struct{ dst, src **int }{
		{&l.HTTPMaxConnsPerClient, &o.HTTPMaxConnsPerClient},
		{&l.RPCMaxConnsPerClient, &o.RPCMaxConnsPerClient},
		{&l.MaxBlockingQueriesPerClient, &o.MaxBlockingQueriesPerClient},
	} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	setString(&l.HTTPSHandshakeTimeout, o.HTTPSHandshakeTimeout)
	setString(&l.RPCHandshakeTimeout, o.RPCHandshakeTimeout)
	setInt(&l.MaxCountPerGroup, o.MaxCountPerGroup)
	setInt(&l.MaxGroupsPerJob, o.MaxGroupsPerJob)
	setInt(&l.MaxTasksPerGroup, o.MaxTasksPerGroup)
	if o.MaxTaskCPU != 0 {
		l.MaxTaskCPU = o.MaxTaskCPU
	}
	if o.MaxTaskMemoryMB != 0 {
		l.MaxTaskMemoryMB = o.MaxTaskMemoryMB
	}
	if o.SnapshotMaxBytes != 0 {
		l.SnapshotMaxBytes = o.SnapshotMaxBytes
	}
}

func setString(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func setInt(dst *int, v int) {
	if v != 0 {
		*dst = v
	}
}

// Validate checks the merged configuration.
func (c *Config) Validate() error {
	if !c.Server.Enabled && !c.Client.Enabled {
		return fmt.Errorf("the agent runs neither a server nor a client: use -dev, -server, -client or the config file's server/client blocks")
	}
	if net.ParseIP(c.BindAddr) == nil {
		return fmt.Errorf("bind address %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return fmt.Errorf("advertise address %q is not an IP address", c.AdvertiseAddr)
	}
	for name, p := range map[string]int{"http": c.Ports.HTTP, "rpc": c.Ports.RPC, "gossip": c.Ports.Gossip} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("%s port %d is out of range", name, p)
		}
	}
	if c.Client.Enabled && !c.Server.Enabled && len(c.Client.Servers) == 0 && len(c.Join) == 0 {
		return fmt.Errorf("a client without a local server must find servers: -join a gossip address, or -servers host:port")
	}
	if c.Server.Enabled && c.Server.BootstrapExpect < 1 {
		return fmt.Errorf("bootstrap_expect must be at least 1")
	}
	if n := c.Server.EventBufferSize; n < 0 || n > 10_000_000 {
		return fmt.Errorf("server event_buffer_size = %d: must be between 1 and 10,000,000 (0 takes the default, 10,000)", n)
	}
	if c.Server.ServiceVIPRange != "" {
		if _, err := structs.ParseServiceVIPRange(c.Server.ServiceVIPRange); err != nil {
			return fmt.Errorf("server %w", err)
		}
	}
	if c.Dev && c.Server.BootstrapExpect > 1 {
		return fmt.Errorf("-dev runs a single-server cluster; bootstrap_expect must be 1")
	}
	if c.Ports.Gossip == 0 || c.Ports.RPC == 0 {
		return fmt.Errorf("the RPC and gossip ports must be set: other agents find this one at them")
	}
	if c.Encrypt != "" {
		if _, err := gossip.ParseKey(c.Encrypt); err != nil {
			return fmt.Errorf("encrypt (-encrypt): %w", err)
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if l := c.Limits; l != nil && l.HTTPSHandshakeTimeout != "" {
		if d, err := time.ParseDuration(l.HTTPSHandshakeTimeout); err != nil || d <= 0 {
			return fmt.Errorf("limits https_handshake_timeout = %q: want a positive duration like \"5s\"", l.HTTPSHandshakeTimeout)
		}
	}
	if err := c.ACL.validate(); err != nil {
		return err
	}
	if err := c.Audit.validate(); err != nil {
		return err
	}
	if err := c.DNS.validate(); err != nil {
		return err
	}
	if err := c.Proxy.validate(); err != nil {
		return err
	}
	if err := c.validateGateway(); err != nil {
		return err
	}
	if _, err := c.serverConfig(); err != nil {
		return err
	}
	return nil
}

// advertise returns the address other agents reach this one at.
func (c *Config) advertise() string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	if ip := net.ParseIP(c.BindAddr); ip != nil && !ip.IsUnspecified() {
		return c.BindAddr
	}
	if ip := firstPrivateIP(); ip != "" {
		return ip
	}
	return "127.0.0.1"
}

// firstPrivateIP returns the first non-loopback IPv4 address.
func firstPrivateIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}

// serverConfig builds the server's configuration.
func (c *Config) serverConfig() (*server.Config, error) {
	sc := server.DefaultConfig()
	sc.NodeName = c.NodeName
	sc.DataDir = c.DataDir
	sc.BootstrapExpect = c.Server.BootstrapExpect
	if c.Server.NumSchedulers > 0 {
		sc.NumSchedulers = c.Server.NumSchedulers
	}
	sc.FollowerSchedulers = sc.NumSchedulers
	if c.Server.FollowerSchedulers != nil {
		if *c.Server.FollowerSchedulers < 0 {
			return nil, fmt.Errorf("server.follower_schedulers must not be negative (got %d)", *c.Server.FollowerSchedulers)
		}
		sc.FollowerSchedulers = *c.Server.FollowerSchedulers
	}
	if c.Server.RaftSnapshotThreshold > 0 {
		sc.RaftSnapshotThreshold = c.Server.RaftSnapshotThreshold
	}
	if c.Server.RaftTrailingLogs > 0 {
		sc.RaftTrailingLogs = c.Server.RaftTrailingLogs
	}
	sc.RaftCompact = c.Server.RaftCompact
	gc, err := c.Server.GC.settings()
	if err != nil {
		return nil, err
	}
	sc.GC = gc
	sc.ServiceVIPRange = c.Server.ServiceVIPRange
	sc.KeyringFile = c.Server.KeyringFile
	sc.Recover = c.Server.Recover
	sc.EventBufferSize = c.Server.EventBufferSize
	durations := []struct {
		name string
		val  string
		dst  *time.Duration
	}{
		{"raft_heartbeat_timeout", c.Server.RaftHeartbeatTimeout, &sc.RaftHeartbeatTimeout},
		{"raft_election_timeout", c.Server.RaftElectionTimeout, &sc.RaftElectionTimeout},
		{"raft_leader_lease_timeout", c.Server.RaftLeaderLeaseTimeout, &sc.RaftLeaderLeaseTimeout},
		{"min_heartbeat_ttl", c.Server.MinHeartbeatTTL, &sc.MinHeartbeatTTL},
		{"heartbeat_grace", c.Server.HeartbeatGrace, &sc.HeartbeatGrace},
		{"raft_snapshot_interval", c.Server.RaftSnapshotInterval, &sc.RaftSnapshotInterval},
	}
	if c.Limits != nil {
		durations = append(durations, struct {
			name string
			val  string
			dst  *time.Duration
		}{"limits rpc_handshake_timeout", c.Limits.RPCHandshakeTimeout, &sc.RPCHandshakeTimeout})
	}
	for _, d := range durations {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("server %s = %q: want a positive duration like \"500ms\" or \"10s\"", d.name, d.val)
		}
		*d.dst = v
	}
	if l := c.Limits; l != nil {
		sc.JobLimits = structs.JobLimits{
			MaxCountPerGroup: l.MaxCountPerGroup,
			MaxGroupsPerJob:  l.MaxGroupsPerJob,
			MaxTasksPerGroup: l.MaxTasksPerGroup,
			MaxTaskCPU:       l.MaxTaskCPU,
			MaxTaskMemoryMB:  l.MaxTaskMemoryMB,
		}
		if err := sc.JobLimits.CheckConfig(); err != nil {
			return nil, err
		}
	}
	if c.ACL != nil {
		sc.ACLEnabled = c.ACL.Enabled
	}
	if c.Limits != nil && c.Limits.SnapshotMaxBytes < 0 {
		return nil, fmt.Errorf("limits snapshot_max_bytes = %d: want a positive number of bytes (default %d)", c.Limits.SnapshotMaxBytes, int64(DefaultSnapshotMaxBytes))
	}
	sc.SnapshotMaxBytes = c.snapshotMaxBytes()
	schedule, err := c.Server.Snapshot.schedule(c.DataDir)
	if err != nil {
		return nil, err
	}
	sc.SnapshotSchedule = schedule
	sc.Version = c.Version
	sc.RPCAddr = &net.TCPAddr{IP: net.ParseIP(c.BindAddr), Port: c.Ports.RPC}
	sc.RPCAdvertise = &net.TCPAddr{IP: net.ParseIP(c.advertise()), Port: c.Ports.RPC}
	return sc, nil
}

// HTTPAddr is the address the HTTP API listens on.
func (c *Config) HTTPAddr() string {
	return net.JoinHostPort(c.BindAddr, strconv.Itoa(c.Ports.HTTP))
}
