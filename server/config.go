package server

import (
	"fmt"
	"net"
	"runtime"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/connlimit"
	"github.com/droverhq/drover/server/gc"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/tlsutil"
)

// Config configures a Server.
type Config struct {
	// NodeName names this server (its Raft ID unless NodeID is set).
	NodeName string
	// NodeID is the server's stable Raft ID; generated and persisted in
	// the data dir when empty.
	NodeID string
	// DataDir holds the Raft log, stable store and snapshots, and the
	// server ID when NodeID is empty. It may be empty only when none of
	// them is kept on disk: NodeID and the three Raft stores are given.
	DataDir string
	// EventBufferSize bounds the events kept for /v1/event/stream
	// (default state.DefaultEventBufferSize): a stream may resume from
	// any index whose events are still kept.
	EventBufferSize int
	// Recover lets a server start whose raft.db is missing while Raft
	// snapshots remain (see checkLostRaftLog).
	Recover bool
	// KeyringFile, when set, names a file holding a key-encryption key
	// for variables (64 hex digits) besides those in DataDir/keyring;
	// new root keys are wrapped with it. See server/keyring.
	KeyringFile string

	// RPCAddr is the address the RPC listener binds (Raft shares it
	// unless RaftTransport is set). It may be nil only with a
	// RaftTransport: the server then has no listener and is reached only
	// in process, through the other servers' Peers.
	RPCAddr *net.TCPAddr
	// RPCAdvertise is the address other servers and clients reach this
	// server at; defaults to RPCAddr, and is required without one.
	RPCAdvertise *net.TCPAddr

	// RaftTransport carries Raft traffic instead of the RPC port.
	// Followers forward requests to the RPC address of the leader as
	// Raft knows it, so its LocalAddr must be the RPCAdvertise address.
	// Nil multiplexes Raft on the RPC port. Tests run several servers in
	// one process over raft.InmemTransport, which they can partition
	// and heal. The server does not close a transport it was given
	// (Raft's shutdown closes it).
	RaftTransport raft.Transport
	// RaftLogStore, RaftStableStore and RaftSnapshotStore replace the
	// stores in DataDir (a raft-boltdb file for the log and stable store,
	// snapshot files). Each nil one gets the on-disk store. The server
	// does not close stores it was given, so a test can start a server
	// again on them.
	RaftLogStore      raft.LogStore
	RaftStableStore   raft.StableStore
	RaftSnapshotStore raft.SnapshotStore

	// Peers calls RPC endpoints on other servers: forwarding to the
	// leader, and asking a server that gossip claims exists who it is.
	// Nil is a connection pool over the network (TLS with the server
	// certificate when TLS is set). Tests give an in-process one.
	Peers Peers
	// RPCConnLimit bounds the connections the RPC port keeps open, per
	// client IP and in total; connections over it are closed at once.
	// The zero value sets no limit.
	RPCConnLimit connlimit.Config
	// TLS makes every connection on the RPC port mutual TLS from its
	// first byte, and what a peer may do depends on its certificate's
	// role (see handleConn); calls to other servers (forwarding, Raft,
	// bootstrap) dial TLS with the server certificate. Nil keeps the
	// port plaintext, open to anyone who reaches it.
	TLS *tlsutil.Configurator

	// BootstrapExpect is the number of servers that bootstrap the cluster
	// together. 1 bootstraps a single-server cluster (dev mode).
	BootstrapExpect int

	// Raft timing. Defaults are tuned for fast failover on a LAN; see
	// DefaultConfig.
	RaftHeartbeatTimeout   time.Duration
	RaftElectionTimeout    time.Duration
	RaftLeaderLeaseTimeout time.Duration
	RaftCommitTimeout      time.Duration
	// RaftSnapshotThreshold is how many log entries between snapshots.
	RaftSnapshotThreshold uint64
	RaftSnapshotInterval  time.Duration
	// RaftTrailingLogs is how many entries a snapshot leaves in the log
	// (for followers that lag); the log, and raft.db with it, holds at
	// most about RaftTrailingLogs + RaftSnapshotThreshold entries.
	RaftTrailingLogs uint64
	// RaftCompact compacts raft.db at start-up, before Raft opens it,
	// whatever its share of free pages (raft_compact.go; without it the
	// file is compacted when it is mostly free pages).
	RaftCompact bool

	// GC holds the garbage collector's thresholds and caps; zero fields
	// take the defaults (DefaultGCConfig).
	GC GCConfig

	// NumSchedulers is how many scheduler workers run on the leader.
	// Zero runs none (tests that dequeue evaluations themselves); the
	// agent always configures at least one.
	NumSchedulers int

	// FollowerSchedulers is how many of the NumSchedulers workers keep
	// scheduling while this server follows: they take evaluations from
	// the leader's broker over RPC (Eval.Dequeue), schedule against
	// this server's state and submit plans to the leader (Plan.Submit).
	// The rest idle until the server leads. Zero keeps followers idle
	// (only the leader schedules); the default is every worker.
	FollowerSchedulers int

	// EvalNackTimeout is how long a worker may hold an evaluation
	// without progress before it is redelivered; EvalDeliveryLimit is
	// how many deliveries an evaluation gets before it is failed.
	EvalNackTimeout   time.Duration
	EvalDeliveryLimit int

	// MinHeartbeatTTL is the shortest TTL given to clients;
	// HeartbeatGrace is added to every TTL before a node is marked down,
	// and to the first TTL after a leader election.
	MinHeartbeatTTL time.Duration
	HeartbeatGrace  time.Duration
	// MaxHeartbeatsPerSecond stretches TTLs in big clusters so the
	// leader handles at most this many heartbeats per second.
	MaxHeartbeatsPerSecond float64

	// RPCHandshakeTimeout bounds how long a new RPC connection may take
	// to finish its TLS handshake and send its protocol byte (Nomad's
	// limits.rpc_handshake_timeout).
	RPCHandshakeTimeout time.Duration

	// RPCHoldTimeout is how long a request waits for a leader before
	// failing with ErrNoLeader.
	RPCHoldTimeout time.Duration

	// JobLimits are the admission limits Job.Register, Job.Plan and
	// Job.Revert hold jobs to; zero fields take the defaults (see
	// structs.JobLimits).
	JobLimits structs.JobLimits

	// ServiceVIPRange is the IPv4 range inside 127.0.0.0/8 that service
	// VIPs are allocated from (agent: server { service_vip_range });
	// "" is structs.DefaultServiceVIPRange. The leader stamps it into
	// every job register, so the servers should agree on it; changing
	// it keeps the addresses already allocated.
	ServiceVIPRange string

	// ACLEnabled turns on ACLs: the ACL endpoints answer, and requests
	// are allowed what their token's policies allow (ResolveToken).
	// Every server of a cluster must agree on it.
	ACLEnabled bool

	// Version is the Drover version, written into snapshot archives.
	Version string
	// SnapshotMaxBytes bounds a snapshot archive uploaded for a restore,
	// as sent and after decompression (the agent's
	// limits.snapshot_max_bytes); 0 is DefaultSnapshotMaxBytes.
	SnapshotMaxBytes int64
	// SnapshotSchedule, when set, makes the leader write a snapshot
	// archive every Interval (snapshot_schedule.go).
	SnapshotSchedule *SnapshotSchedule

	// Membership is the gossip pool; it is needed to bootstrap with
	// BootstrapExpect > 1 and to add and remove servers. Nil for a
	// single server without gossip.
	Membership Membership

	Logger hclog.Logger
}

// GCConfig is the garbage collector's settings (server/gc): the agent's
// server { gc { ... } } block.
type GCConfig = gc.Settings

// DefaultGCConfig returns the garbage collector's defaults, Nomad's.
func DefaultGCConfig() GCConfig { return gc.DefaultSettings() }

// DefaultConfig returns the defaults.
//
// Raft timing: hashicorp/raft's defaults (1s heartbeat and election
// timeouts) are built for WANs and make a leader change take 2-3s. On a
// LAN, round trips are well under a millisecond, so Drover uses 300ms
// heartbeat and election timeouts and a 300ms leader lease: a follower
// notices a dead leader 300-600ms after its last contact (the timeout is
// randomised between 1x and 2x) and an election takes one more short
// round, so a new leader takes writes about half a second after the old
// one died (`drover bench -scenarios failover`). The leader sends
// heartbeats every 30ms (a tenth of the timeout), so a follower only
// starts an election after ten missed in a row, which keeps elections
// away even on a loaded two-core machine. A leader that cannot reach a
// quorum for 300ms steps down, which bounds how long a partitioned
// ex-leader believes it leads.
//
// Scheduler workers: a worker spends most of an evaluation waiting for
// its plan and its evaluation update to commit through Raft, not on the
// CPU, so the leader runs eight per core (at most 64); their plans are
// batched into shared Raft entries by the plan applier. On 2 cores, 16
// workers placed 2,000-2,200 allocations/s in the placement benchmark
// against 1,700 with 8.
func DefaultConfig() *Config {
	return &Config{
		BootstrapExpect:        1,
		RaftHeartbeatTimeout:   300 * time.Millisecond,
		RaftElectionTimeout:    300 * time.Millisecond,
		RaftLeaderLeaseTimeout: 300 * time.Millisecond,
		RaftCommitTimeout:      10 * time.Millisecond,
		RaftSnapshotThreshold:  8192,
		RaftSnapshotInterval:   2 * time.Minute,
		RaftTrailingLogs:       10240,
		NumSchedulers:          min(8*runtime.NumCPU(), 64),
		FollowerSchedulers:     min(8*runtime.NumCPU(), 64),
		EvalNackTimeout:        60 * time.Second,
		EvalDeliveryLimit:      3,
		MinHeartbeatTTL:        10 * time.Second,
		HeartbeatGrace:         10 * time.Second,
		MaxHeartbeatsPerSecond: 50,
		RPCHoldTimeout:         5 * time.Second,
		RPCHandshakeTimeout:    5 * time.Second,
		GC:                     DefaultGCConfig(),
	}
}

func (c *Config) validate() error {
	if c.ServiceVIPRange == "" {
		c.ServiceVIPRange = structs.DefaultServiceVIPRange
	}
	if _, err := structs.ParseServiceVIPRange(c.ServiceVIPRange); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	onDisk := c.NodeID == "" || c.RaftLogStore == nil || c.RaftStableStore == nil || c.RaftSnapshotStore == nil
	if c.DataDir == "" && onDisk {
		return fmt.Errorf("server: data dir is required (only a server given its node ID and all three Raft stores keeps nothing on disk)")
	}
	if c.RPCAddr == nil && c.RaftTransport == nil {
		return fmt.Errorf("server: RPC address is required (only a server given a Raft transport may run without an RPC listener)")
	}
	if c.RPCAddr == nil && c.RPCAdvertise == nil {
		return fmt.Errorf("server: an RPC advertise address is required without an RPC listener: it is the address other servers forward requests to")
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("server: bootstrap_expect must not be negative")
	}
	if c.BootstrapExpect > 1 && c.Membership == nil {
		return fmt.Errorf("server: bootstrap_expect %d needs gossip membership to find the other servers", c.BootstrapExpect)
	}
	if c.NumSchedulers < 0 {
		c.NumSchedulers = 0
	}
	if c.FollowerSchedulers < 0 {
		c.FollowerSchedulers = 0
	}
	if c.TLS != nil && c.TLS.OwnRole() != tlsutil.RoleServer {
		return fmt.Errorf("server: the TLS certificate is %s, not a server certificate (%s): other servers would refuse it; make one with drover tls cert create -server -region %s",
			c.TLS.Describe(), c.TLS.RoleName(tlsutil.RoleServer), c.TLS.Region())
	}
	if c.SnapshotMaxBytes < 0 {
		return fmt.Errorf("server: the snapshot size limit must not be negative")
	}
	if c.SnapshotMaxBytes == 0 {
		c.SnapshotMaxBytes = DefaultSnapshotMaxBytes
	}
	if err := c.SnapshotSchedule.validate(c.DataDir); err != nil {
		return err
	}
	if c.RPCHandshakeTimeout <= 0 {
		c.RPCHandshakeTimeout = 5 * time.Second
	}
	if c.RPCAdvertise == nil {
		c.RPCAdvertise = c.RPCAddr
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}
