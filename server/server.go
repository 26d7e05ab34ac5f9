package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"golang.org/x/sync/semaphore"

	"github.com/droverhq/drover/connlimit"
	"github.com/droverhq/drover/fsm"
	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/server/deploymentwatcher"
	"github.com/droverhq/drover/server/drainer"
	"github.com/droverhq/drover/server/gc"
	"github.com/droverhq/drover/server/heartbeat"
	"github.com/droverhq/drover/server/keyring"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Server is one Drover server.
type Server struct {
	config *Config
	logger hclog.Logger
	// raftID is this server's stable Raft ID.
	raftID string
	// instance is a nonce of this process's start, sent with remote
	// dequeues so the leader can tell a restarted server
	// (EvalBroker.Restarted).
	instance string

	fsm  *fsm.FSM
	raft *raft.Raft
	// raftTransport carries Raft: Config.RaftTransport, or netTransport.
	raftTransport raft.Transport
	// raftStore, raftLayer and netTransport are what the server opened
	// itself and closes on Shutdown; nil when Config supplied their
	// replacement.
	raftStore    *raftboltdb.BoltStore
	raftLayer    *raftLayer
	netTransport *raft.NetworkTransport
	// raftSnaps is Raft's snapshot store, where a snapshot save finds
	// the newest snapshot when there is nothing new to snapshot.
	raftSnaps raft.SnapshotStore
	// snapshots holds the snapshot transfers in progress and orders
	// saves against restores (snapshot.go).
	snapshots snapshotTransfers

	rpcServer *rpc.Server
	// clientRPCServer serves connections with a client certificate:
	// only the client endpoints are registered on it (rpc.go).
	clientRPCServer *rpc.Server
	// incomingTLS is the RPC port's TLS config, nil without TLS.
	incomingTLS *tls.Config
	// rpcListener is the RPC port; nil for a server reached only in
	// process (Config.RPCAddr nil).
	rpcListener net.Listener
	// peers carries calls to other servers: Config.Peers, or connPool.
	peers Peers
	// connPool is the network pool peers defaults to, nil when
	// Config.Peers is set; the server shuts it down.
	connPool *rpcpool.Pool

	evalBroker   *EvalBroker
	blockedEvals *BlockedEvals
	planQueue    *PlanQueue
	// planAnswered, when set (tests), is called as each plan is
	// answered, before its submitter sees the answer.
	planAnswered func(f *PlanFuture, result *structs.PlanResult)
	workers      []*Worker
	// allocUpdates coalesces client allocation reports into Raft
	// entries (used on the leader).
	allocUpdates *allocUpdateBatcher
	metrics      *serverMetrics

	// The leader's controllers (controllers.go): each sees the state
	// through a read-only view and writes through an adapter of this
	// server, never the server itself.
	heartbeats  *heartbeat.Timers
	drainer     *drainer.Drainer
	deployments *deploymentwatcher.Watcher
	gc          *gc.Collector

	// leaderNotifyCh receives Raft leadership changes.
	leaderNotifyCh chan bool
	// leaderLock guards leaderStopCh, which is non-nil and open while the
	// leader loops run. leaderWG tracks the leader loops, so that a new
	// term's loops never run beside the previous term's.
	leaderLock   sync.Mutex
	leaderStopCh chan struct{}
	leaderWG     sync.WaitGroup
	// consistentReadReady is set once a new leader's barrier applied
	// every earlier entry, and cleared when leadership is lost.
	consistentReadReady atomic.Bool

	// keyring is this server's variables key material (keyring_endpoint.go).
	keyring      *keyring.Keyring
	keyringState keyringState

	shutdownLock sync.Mutex
	shutdown     bool
	shutdownCh   chan struct{}
	// shutdownCtx is done when shutdownCh is closed.
	shutdownCtx    context.Context
	cancelShutdown context.CancelFunc
	// logTypes is the highest message type every server applies, what
	// this server may write while it leads; 0 until first known
	// (log_types.go).
	logTypes atomic.Uint32
	// remotePlans bounds the allocations of this server's plans waiting
	// at the leader while it follows, to remotePlanWindow of them
	// (worker.go; tests narrow it).
	remotePlans      *semaphore.Weighted
	remotePlanWindow int64
	wg               sync.WaitGroup
}

// NewServer starts a server: it opens the Raft stores in the data dir
// (unless Config supplies them), binds the RPC port (unless it runs
// without one), starts Raft (bootstrapping a new single-server cluster
// when BootstrapExpect is 1) and the leadership monitor.
func NewServer(config *Config) (*Server, error) {
	if err := config.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		config:           config,
		logger:           config.Logger.Named("server"),
		rpcServer:        rpc.NewServer(),
		peers:            config.Peers,
		shutdownCh:       make(chan struct{}),
		remotePlans:      semaphore.NewWeighted(remotePlanWindow),
		remotePlanWindow: remotePlanWindow,
		metrics:          newServerMetrics(),
	}
	s.shutdownCtx, s.cancelShutdown = context.WithCancel(context.Background())
	if config.Membership == nil {
		// No gossip to ask (log_types.go): one build.
		s.logTypes.Store(uint32(structs.MaxMessageType))
	}
	s.registerSnapshotMetrics()
	s.cleanSnapshotSpool()
	if s.peers == nil {
		s.connPool = newConnPool(config)
		s.peers = s.connPool
	}
	s.evalBroker = NewEvalBroker(config.EvalNackTimeout, config.EvalDeliveryLimit)
	s.evalBroker.onAck = func(d time.Duration) {
		s.metrics.evalLatency.Observe(d.Seconds())
		s.metrics.evalsAcked.Inc()
	}
	s.blockedEvals = NewBlockedEvals(s.evalBroker)
	s.planQueue = NewPlanQueue()
	s.allocUpdates = newAllocUpdateBatcher(s, allocUpdateWindow)
	s.setupControllers()
	if err := s.setupKeyring(); err != nil {
		return nil, err
	}
	s.fsm = fsm.New(fsm.Config{Logger: config.Logger, EvalBroker: s.evalBroker, BlockedEvals: s.blockedEvals, EventBufferSize: config.EventBufferSize})

	if err := s.registerEndpoints(); err != nil {
		return nil, err
	}
	if err := s.registerClientEndpoints(); err != nil {
		return nil, err
	}
	if config.TLS != nil {
		s.incomingTLS = config.TLS.IncomingRPC()
	}
	if config.RPCAddr != nil {
		if err := s.setupRPC(); err != nil {
			return nil, err
		}
	}
	if err := s.setupRaft(); err != nil {
		if s.rpcListener != nil {
			s.rpcListener.Close()
		}
		return nil, err
	}
	// Accept connections only now: every endpoint needs Raft. Peers that
	// connected meanwhile wait in the listen backlog.
	if s.rpcListener != nil {
		s.goFunc(s.listen)
	}
	for i := 0; i < config.NumSchedulers; i++ {
		w := newWorker(s, i)
		s.workers = append(s.workers, w)
		s.goFunc(w.run)
	}
	s.goFunc(s.monitorLeadership)
	s.goFunc(s.keyringReplication)
	if config.BootstrapExpect > 1 {
		s.goFunc(s.bootstrapLoop)
	}
	s.logger.Info("server started", "rpc", config.RPCAdvertise.String(), "data_dir", config.DataDir)
	return s, nil
}

// goFunc runs f in a goroutine tracked for Shutdown.
func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *Server) setupRPC() error {
	l, err := net.ListenTCP("tcp", s.config.RPCAddr)
	if err != nil {
		return fmt.Errorf("listen on RPC address %s: %w", s.config.RPCAddr, err)
	}
	s.rpcListener = connlimit.NewListener(l, s.config.RPCConnLimit)
	// If port 0 was asked for, advertise the port we got.
	if s.config.RPCAdvertise.Port == 0 {
		adv := *s.config.RPCAdvertise
		adv.Port = l.Addr().(*net.TCPAddr).Port
		s.config.RPCAdvertise = &adv
	}
	if s.config.RaftTransport != nil {
		// Raft has its own transport: Raft connections on this port are
		// refused (handleConn).
		return nil
	}
	var raftTLS *tls.Config
	if s.config.TLS != nil {
		raftTLS = s.config.TLS.OutgoingRPC()
	}
	s.raftLayer = newRaftLayer(s.config.RPCAdvertise, raftTLS)
	return nil
}

func (s *Server) setupRaft() error {
	id := s.config.NodeID
	if id == "" {
		var err error
		if id, err = LoadOrCreateServerID(s.config.DataDir); err != nil {
			return err
		}
	}
	s.raftID = id
	s.instance = structs.GenerateUUID()

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(id)
	conf.HeartbeatTimeout = s.config.RaftHeartbeatTimeout
	conf.ElectionTimeout = s.config.RaftElectionTimeout
	conf.LeaderLeaseTimeout = s.config.RaftLeaderLeaseTimeout
	conf.CommitTimeout = s.config.RaftCommitTimeout
	conf.SnapshotThreshold = s.config.RaftSnapshotThreshold
	conf.SnapshotInterval = s.config.RaftSnapshotInterval
	conf.TrailingLogs = s.config.RaftTrailingLogs
	conf.Logger = s.config.Logger.Named("raft")
	// BatchApplyCh stays off: Raft batches concurrent writes into one
	// disk write either way, and with a buffered apply channel a write
	// still queued there at shutdown is never answered, which hung
	// Shutdown on a worker waiting for it.
	s.leaderNotifyCh = make(chan bool, 10)
	conf.NotifyCh = s.leaderNotifyCh

	logs, stable, snaps, err := s.openRaftStores()
	if err != nil {
		return err
	}
	// closeStore closes what openRaftStores opened, when Raft does not
	// start after all.
	closeStore := func() {
		if s.raftStore != nil {
			s.raftStore.Close()
		}
	}
	if s.config.RaftTransport != nil {
		// Followers forward to the leader's Raft address: it has to be
		// where this server's RPC endpoints are reached.
		if got, want := string(s.config.RaftTransport.LocalAddr()), s.config.RPCAdvertise.String(); got != want {
			closeStore()
			return fmt.Errorf("server: the Raft transport's address %s is not the RPC advertise address %s; other servers forward requests to the leader's Raft address, so they must be the same", got, want)
		}
		s.raftTransport = s.config.RaftTransport
	} else {
		s.netTransport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  s.raftLayer,
			MaxPool: 3,
			Timeout: 10 * time.Second,
			Logger:  s.config.Logger.Named("raft-net"),
		})
		s.raftTransport = s.netTransport
	}

	if err := s.recoverFromPeersFile(conf, logs, stable, snaps); err != nil {
		closeStore()
		return err
	}

	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		closeStore()
		return fmt.Errorf("check raft state: %w", err)
	}
	if !hasState && s.config.BootstrapExpect == 1 {
		cfg := raft.Configuration{Servers: []raft.Server{{
			ID: conf.LocalID, Address: s.raftTransport.LocalAddr(), Suffrage: raft.Voter,
		}}}
		if err := raft.BootstrapCluster(conf, logs, stable, snaps, s.raftTransport, cfg); err != nil {
			closeStore()
			return fmt.Errorf("bootstrap raft: %w", err)
		}
		s.logger.Info("bootstrapped a new single-server cluster", "id", id)
	}

	s.raftSnaps = snaps
	r, err := raft.NewRaft(conf, s.fsm, logs, stable, snaps, s.raftTransport)
	if err != nil {
		closeStore()
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	return nil
}

// openRaftStores returns the Raft log, stable and snapshot stores:
// those Config supplies, and for the others the ones in the data dir,
// opened here.
func (s *Server) openRaftStores() (raft.LogStore, raft.StableStore, raft.SnapshotStore, error) {
	logs, stable, snaps := s.config.RaftLogStore, s.config.RaftStableStore, s.config.RaftSnapshotStore
	if logs != nil && stable != nil && snaps != nil {
		return logs, stable, snaps, nil
	}
	dir := filepath.Join(s.config.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("create raft dir: %w", err)
	}
	if logs == nil || stable == nil {
		if err := s.checkLostRaftLog(dir); err != nil {
			return nil, nil, nil, err
		}
		path := filepath.Join(dir, "raft.db")
		if _, _, _, err := maybeCompactRaftDB(path, s.config.RaftCompact, s.logger); err != nil {
			// The original is intact: start on it.
			s.logger.Error("could not compact raft.db; starting on it as it is", "error", err)
		}
		store, err := raftboltdb.New(raftboltdb.Options{Path: path})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open raft store: %w", err)
		}
		s.raftStore = store
		s.metrics.watchRaftDB(path, store)
		if stable == nil {
			stable = store
		}
		if logs == nil {
			// The cache spares disk reads when the leader replicates
			// recent entries and when a follower applies what it just
			// stored. It holds whole entries, and a plan batch or a batch
			// of client updates can be a megabyte or two, so it is kept
			// small: 512 entries held 170 MiB per server at 100,000
			// allocations, 64 still ~80 MiB. Entries are replicated and
			// applied within a few entries of being written, so 16 keep
			// those reads in memory.
			cache, err := raft.NewLogCache(16, store)
			if err != nil {
				store.Close()
				return nil, nil, nil, err
			}
			logs = cache
		}
	}
	if snaps == nil {
		fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, s.config.Logger.Named("raft-snapshot"))
		if err != nil {
			if s.raftStore != nil {
				s.raftStore.Close()
			}
			return nil, nil, nil, fmt.Errorf("open snapshot store: %w", err)
		}
		snaps = fileSnaps
	}
	return logs, stable, snaps, nil
}

// checkLostRaftLog refuses to start a server whose raft.db is gone while
// its snapshots remain: Raft would silently start from the newest
// snapshot, without the log entries after it and without its term and
// vote, and could roll the cluster back. Config.Recover accepts that.
func (s *Server) checkLostRaftLog(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err == nil || !os.IsNotExist(err) {
		return nil
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "meta.json"))
	if len(snaps) == 0 {
		return nil
	}
	if s.config.Recover {
		s.logger.Warn("raft.db is missing but snapshots remain; starting from the newest snapshot as -recover asks: writes after it are lost on this server unless its peers still hold them",
			"dir", dir, "snapshots", len(snaps))
		return nil
	}
	return fmt.Errorf("server: %s has %d Raft snapshot(s) but no raft.db: the Raft log (with this server's term and vote) was lost; starting would roll this server back to its newest snapshot. Restore raft.db from a backup, or start with -recover to accept the roll-back (with healthy peers, the server then catches up from them)",
		dir, len(snaps))
}

// LoadOrCreateServerID returns the server's Raft ID kept in the data
// dir, generating and saving one on first start so a restart keeps it.
// The agent advertises it in gossip before the server starts.
func LoadOrCreateServerID(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, "server-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read server id: %w", err)
	}
	id, err := uuid.GenerateUUID()
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	return id, nil
}

// writeFileAtomic writes data to path through a synced temp file and a
// rename, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Shutdown stops the server: leader loops, workers, Raft and the RPC
// listener, and waits for its goroutines.
func (s *Server) Shutdown() error {
	s.shutdownLock.Lock()
	if s.shutdown {
		s.shutdownLock.Unlock()
		return nil
	}
	s.shutdown = true
	close(s.shutdownCh)
	s.cancelShutdown()
	s.shutdownLock.Unlock()

	s.logger.Info("shutting down server")
	s.revokeLeadership()
	s.snapshots.closeAll()
	var errs []error
	if s.raft != nil {
		if err := s.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
	}
	if s.raftLayer != nil {
		s.raftLayer.Close()
	}
	if s.netTransport != nil {
		s.netTransport.Close()
	}
	if s.rpcListener != nil {
		s.rpcListener.Close()
	}
	if s.connPool != nil {
		s.connPool.Shutdown()
	}
	s.wg.Wait()
	if s.raftStore != nil {
		if err := s.raftStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft store: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) isShutdown() bool {
	select {
	case <-s.shutdownCh:
		return true
	default:
		return false
	}
}

// State returns the current state store.
func (s *Server) State() *state.StateStore { return s.fsm.State() }

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// LeaderAddr returns the leader's RPC address, or "" when there is none.
func (s *Server) LeaderAddr() string {
	addr, _ := s.raft.LeaderWithID()
	return string(addr)
}

// RPCAddr returns the address this server advertises for RPC.
func (s *Server) RPCAddr() *net.TCPAddr { return s.config.RPCAdvertise }

// Stats returns Raft's statistics, for the operator API.
func (s *Server) Stats() map[string]string { return s.raft.Stats() }

// raftApplyTimeout bounds how long a write waits for Raft.
const raftApplyTimeout = 30 * time.Second

// raftApply encodes msg as a log entry of type t, commits it through
// Raft and returns the FSM's response and the entry's index. A response
// that is an error (the state rejected the write) is returned as err.
func (s *Server) raftApply(t structs.MessageType, msg interface{}) (interface{}, uint64, error) {
	future, err := s.raftApplyAsync(t, msg)
	if err != nil {
		return nil, 0, err
	}
	return s.raftResult(t, future)
}

// raftApplyAsync encodes msg and hands it to Raft without waiting for the
// commit; raftResult waits for it.
func (s *Server) raftApplyAsync(t structs.MessageType, msg interface{}) (raftApplied, error) {
	buf, err := structs.Encode(t, msg)
	if err != nil {
		return raftApplied{}, err
	}
	return raftApplied{future: s.raft.Apply(buf, raftApplyTimeout), start: time.Now()}, nil
}

// raftApplied is a write handed to Raft.
type raftApplied struct {
	future raft.ApplyFuture
	start  time.Time
}

// raftResult waits for a write handed to Raft to be committed and
// applied, and returns the FSM's response and the entry's index, mapping
// Raft's errors to coded ones.
func (s *Server) raftResult(t structs.MessageType, a raftApplied) (interface{}, uint64, error) {
	future := a.future
	err := future.Error()
	s.metrics.raftApply.Observe(time.Since(a.start).Seconds())
	if err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
			// Rejected before entering the log: certainly not applied.
			return nil, 0, structs.NewError(structs.CodeNoLeader, fmt.Sprintf("no cluster leader: %v", err))
		case errors.Is(err, raft.ErrLeadershipLost):
			// In the log but not known to be committed: a new leader may
			// still commit it. Neither retry nor report a failure.
			return nil, 0, structs.NewError(structs.CodeOutcomeUnknown, fmt.Sprintf("leadership was lost while the write was being committed; it may or may not have been applied: %v", err))
		}
		return nil, 0, fmt.Errorf("raft apply %s: %w", t, err)
	}
	resp := future.Response()
	if rerr, ok := resp.(error); ok && rerr != nil {
		if errors.Is(rerr, state.ErrNotFound) {
			rerr = structs.NewError(structs.CodeNotFound, rerr.Error())
		}
		return nil, future.Index(), rerr
	}
	return resp, future.Index(), nil
}

// EventBatch is the events of one Raft index (see state.EventBatch).
type EventBatch = state.EventBatch

// ErrEventsGone is EventsSince's error for a resume index older than
// the events kept.
var ErrEventsGone = state.ErrEventsGone

// EventsSince returns the batches of events after index that this
// server's FSM derived from the writes it applied, and a channel closed
// at the next batch (for /v1/event/stream).
func (s *Server) EventsSince(index uint64) ([]EventBatch, <-chan struct{}, error) {
	return s.fsm.Events().Since(index)
}

// EventsLastIndex is the index of the newest batch of events.
func (s *Server) EventsLastIndex() uint64 { return s.fsm.Events().LastIndex() }
