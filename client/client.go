package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/client/checks"
	"github.com/droverhq/drover/structs"
)

// maxCheckProbes bounds the service check probes a client has in flight
// at once, over all its allocations.
const maxCheckProbes = 64

// Client is a node agent. Its conversation with the servers is the
// protocol core (protocol.go); what it runs are alloc runners.
type Client struct {
	config *Config
	logger hclog.Logger
	db     StateStore
	jobs   *JobCache
	proto  *protocol

	nodeID, secretID string
	// allocRoot holds the allocation directories; "" when the client
	// keeps nothing on disk.
	allocRoot string

	// nodeLock guards node. The node is replaced, never changed in
	// place: alloc runners read it without the lock.
	nodeLock sync.RWMutex
	node     *structs.Node

	// allocLock guards allocs.
	allocLock sync.RWMutex
	allocs    map[string]*allocRunner

	// checkLimiter bounds the probes of every allocation's checks.
	checkLimiter *checks.Limiter

	shutdownCh   chan struct{}
	shutdownOnce sync.Once
	wg           sync.WaitGroup
	// runners tracks task runners, which detach from their tasks on
	// shutdown.
	runners sync.WaitGroup
}

// New starts a client: it takes its node identity (from Config.Node, or
// the state store, creating one on first start) and fingerprints the
// machine unless given a node, re-attaches to the allocations it ran
// before a restart, then registers with the servers, heartbeats, and
// watches for allocations in the background.
func New(config *Config) (*Client, error) {
	if err := config.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		config:     config,
		logger:     config.Logger.Named("client"),
		jobs:       config.Jobs,
		allocs:     make(map[string]*allocRunner),
		shutdownCh: make(chan struct{}),

		checkLimiter: checks.NewLimiter(maxCheckProbes),
	}
	if c.jobs == nil {
		c.jobs = NewJobCache()
	}
	if config.DataDir != "" {
		c.allocRoot = filepath.Join(config.DataDir, "alloc")
	}
	c.db = config.State
	if c.db == nil {
		stateDir := filepath.Join(config.DataDir, "client")
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("create client dir: %w", err)
		}
		db, err := openStateDB(stateDir)
		if err != nil {
			return nil, err
		}
		c.db = db
	}
	fail := func(err error) (*Client, error) {
		_ = c.db.Close()
		return nil, err
	}
	if config.Node != nil {
		node := config.Node.Copy()
		if node.ID == "" || node.SecretID == "" {
			return fail(fmt.Errorf("client: the node given has no ID or secret ID"))
		}
		c.nodeID, c.secretID = node.ID, node.SecretID
		if node.Drivers == nil {
			node.Drivers = make(map[string]*structs.DriverInfo)
		}
		if node.Attributes == nil {
			node.Attributes = make(map[string]string)
		}
		c.fingerprintDrivers(node)
		c.node = node
	} else {
		if err := c.loadIdentity(); err != nil {
			return fail(err)
		}
		node, err := c.fingerprint()
		if err != nil {
			return fail(err)
		}
		c.node = node
	}
	c.proto = newProtocol(protocolConfig{
		rpc: config.RPC, logger: c.logger, allocs: c, node: c.refreshNode,
		nodeID: c.nodeID, secretID: c.secretID,
		coalesce: config.AllocUpdateCoalesce, shutdownCh: c.shutdownCh,
	})
	if err := c.restoreAllocs(); err != nil {
		return fail(err)
	}
	c.sweepAllocDirs() // gc.go
	node := c.node
	c.proto.run(c.goFunc)
	interval := config.DriverHealthInterval
	if interval == 0 {
		interval = DefaultDriverHealthInterval
	}
	if interval > 0 {
		c.goFunc(func() { c.watchDriverHealth(interval) })
	}
	c.logger.Info("client started", "node_id", c.nodeID, "node_name", node.Name,
		"cpu_mhz", node.NodeResources.Cpu.CpuShares, "memory_mb", node.NodeResources.Memory.MemoryMB)
	return c, nil
}

// goRunner runs a task runner, tracked for Shutdown.
func (c *Client) goRunner(f func()) {
	c.runners.Add(1)
	go func() {
		defer c.runners.Done()
		f()
	}()
}

func (c *Client) goFunc(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// loadIdentity reads the node ID and secret from the state store,
// creating them on first start.
func (c *Client) loadIdentity() error {
	id, err := c.db.GetMeta("node_id")
	if err != nil {
		return err
	}
	secret, err := c.db.GetMeta("secret_id")
	if err != nil {
		return err
	}
	if id == "" || secret == "" {
		id, secret = structs.GenerateUUID(), structs.GenerateUUID()
		if err := c.db.PutMeta("node_id", id); err != nil {
			return err
		}
		if err := c.db.PutMeta("secret_id", secret); err != nil {
			return err
		}
	}
	c.nodeID, c.secretID = id, secret
	return nil
}

// NodeID returns the node's ID.
func (c *Client) NodeID() string { return c.nodeID }

// Node returns the fingerprinted node. It is shared: do not change it.
func (c *Client) Node() *structs.Node {
	c.nodeLock.RLock()
	defer c.nodeLock.RUnlock()
	return c.node
}

// refreshNode fingerprints the drivers again into a copy of the node,
// which replaces it, and returns it for registration.
func (c *Client) refreshNode() *structs.Node {
	node := c.Node().Copy()
	c.fingerprintDrivers(node)
	c.nodeLock.Lock()
	c.node = node
	c.nodeLock.Unlock()
	return node
}

// checkAddress is the address service checks dial: the node's
// advertised address, where tasks (on the host's network) listen on
// their allocations' ports.
func (c *Client) checkAddress() string {
	return c.Node().Attributes["unique.network.ip-address"]
}

// runsChecks reports whether this client runs service checks. A
// simulated node (client/sim marks its nodes with the attribute
// simulated = "true") has made-up addresses and tasks that listen on
// nothing: it runs none, and judges deployment health by task states.
// A node that advertises no address has nowhere to dial either.
func (c *Client) runsChecks() bool {
	node := c.Node()
	return node.Attributes["simulated"] != "true" && node.Attributes["unique.network.ip-address"] != ""
}

// Registered is closed once the node registered with the servers.
func (c *Client) Registered() <-chan struct{} { return c.proto.registered }

// Stats counts what a client's protocol did since it started, and the
// allocations it reported.
type Stats struct {
	// Registrations counts successful Node.Register calls, the first one
	// and those after the servers forgot the node (Reregistrations).
	Registrations, Reregistrations int64
	Heartbeats, HeartbeatErrors    int64
	// WatchErrors counts failed allocation watches and pulls.
	WatchErrors int64
	// UpdatesSent counts allocation reports sent, in UpdateBatches
	// Node.UpdateAlloc calls; UpdateErrors the failed calls.
	UpdatesSent, UpdateBatches, UpdateErrors int64
	// HeartbeatTTL is the last TTL the servers gave.
	HeartbeatTTL time.Duration
	// AllocsRunning is how many allocations were last reported running;
	// AllocsComplete how many were reported complete.
	AllocsRunning, AllocsComplete int64
}

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	s := c.proto.stats
	return Stats{
		Registrations: s.registrations.Load(), Reregistrations: s.reregistrations.Load(),
		Heartbeats: s.heartbeats.Load(), HeartbeatErrors: s.heartbeatErrors.Load(),
		WatchErrors: s.watchErrors.Load(),
		UpdatesSent: s.updatesSent.Load(), UpdateBatches: s.updateBatches.Load(), UpdateErrors: s.updateErrors.Load(),
		HeartbeatTTL:  time.Duration(s.heartbeatTTL.Load()),
		AllocsRunning: s.allocsRunning.Load(), AllocsComplete: s.allocsComplete.Load(),
	}
}

// restoreAllocs re-creates alloc runners for the allocations saved
// before a restart; their task runners re-attach to running tasks.
func (c *Client) restoreAllocs() error {
	restored, err := c.db.LoadAllocs()
	if err != nil {
		return fmt.Errorf("load client state: %w", err)
	}
	for _, r := range restored {
		r.Alloc.Job = c.jobs.share(r.Alloc.Job)
		ar, err := newAllocRunner(c, r.Alloc, r.Tasks)
		if err != nil {
			c.logger.Error("cannot restore allocation; forgetting it", "alloc_id", r.Alloc.ID, "error", err)
			_ = c.db.DeleteAlloc(r.Alloc.ID)
			continue
		}
		c.allocs[r.Alloc.ID] = ar
		ar.start()
		c.logger.Info("restored allocation", "alloc_id", r.Alloc.ID, "name", r.Alloc.Name)
	}
	return nil
}

// Shutdown stops the client's loops. Tasks keep running; a restarted
// client re-attaches to them.
func (c *Client) Shutdown() error {
	c.shutdownOnce.Do(func() { close(c.shutdownCh) })
	c.proto.updates.close()
	done := make(chan struct{})
	go func() {
		_ = c.proto.updates.flush()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	// Service checks end (their last statuses were sent above) and
	// shutdown_delay waits are dropped: the tasks keep running.
	c.allocLock.RLock()
	for _, ar := range c.allocs {
		c.goRunner(ar.detach)
	}
	c.allocLock.RUnlock()
	// Task runners detach from their tasks, which keep running. The
	// loops talking to servers may sit in a blocking query; they are not
	// waited for.
	detached := make(chan struct{})
	go func() {
		c.runners.Wait()
		close(detached)
	}()
	select {
	case <-detached:
	case <-time.After(5 * time.Second):
		c.logger.Warn("some allocation runners did not detach in time")
	}
	return c.db.Close()
}

// allocVersions implements allocSet.
func (c *Client) allocVersions() map[string]uint64 {
	c.allocLock.RLock()
	defer c.allocLock.RUnlock()
	out := make(map[string]uint64, len(c.allocs))
	for id, ar := range c.allocs {
		out[id] = ar.modifyIndex()
	}
	return out
}

// applyAlloc implements allocSet: it starts a runner for a new
// allocation or updates one.
func (c *Client) applyAlloc(alloc *structs.Allocation) {
	alloc.Job = c.jobs.share(alloc.Job)
	c.allocLock.Lock()
	defer c.allocLock.Unlock()
	if ar, ok := c.allocs[alloc.ID]; ok {
		ar.update(alloc)
		return
	}
	if alloc.TerminalStatus() {
		// Finished or stopped before it ever ran here.
		return
	}
	if err := c.db.PutAlloc(alloc); err != nil {
		c.logger.Error("failed to persist allocation", "alloc_id", alloc.ID, "error", err)
	}
	ar, err := newAllocRunner(c, alloc, nil)
	if err != nil {
		c.logger.Error("cannot run allocation", "alloc_id", alloc.ID, "error", err)
		_ = c.db.DeleteAlloc(alloc.ID)
		c.queueAllocUpdate(&structs.Allocation{
			ID: alloc.ID, NodeID: alloc.NodeID, JobID: alloc.JobID, TaskGroup: alloc.TaskGroup,
			ClientStatus: structs.AllocClientStatusFailed, ClientDescription: err.Error(),
		})
		return
	}
	c.logger.Info("starting allocation", "alloc_id", alloc.ID, "name", alloc.Name)
	c.allocs[alloc.ID] = ar
	ar.start()
}

// removeAlloc implements allocSet: it destroys an allocation the servers
// no longer have.
func (c *Client) removeAlloc(id string) {
	c.allocLock.Lock()
	ar, ok := c.allocs[id]
	delete(c.allocs, id)
	c.allocLock.Unlock()
	if !ok {
		return
	}
	c.goFunc(func() {
		ar.destroy()
		_ = c.db.DeleteAlloc(id)
		if ar.dir != "" {
			_ = os.RemoveAll(ar.dir)
		}
	})
}

// queueAllocUpdate queues a report for the servers (an allocation with
// only what a client may report set, see allocRunner.report).
func (c *Client) queueAllocUpdate(report *structs.Allocation) {
	c.proto.updates.queue(report)
}

// noteReported keeps the Stats' allocation counts as a runner's
// reported status moves from old to status.
func (c *Client) noteReported(old, status string) {
	if old == status {
		return
	}
	s := c.proto.stats
	if old == structs.AllocClientStatusRunning {
		s.allocsRunning.Add(-1)
	}
	switch status {
	case structs.AllocClientStatusRunning:
		s.allocsRunning.Add(1)
	case structs.AllocClientStatusComplete:
		s.allocsComplete.Add(1)
	}
}

// ErrUnknownAlloc is returned for log requests about allocations this
// client does not run.
var ErrUnknownAlloc = errors.New("allocation is not on this node")

// ErrNoLogs is returned for log requests to a client that keeps no
// files (the node simulator's).
var ErrNoLogs = errors.New("this client keeps no task logs")

// runner returns the alloc runner of an allocation this client runs.
func (c *Client) runner(allocID string) (*allocRunner, error) {
	c.allocLock.RLock()
	defer c.allocLock.RUnlock()
	ar, ok := c.allocs[allocID]
	if !ok {
		return nil, fmt.Errorf("%s: %w", allocID, ErrUnknownAlloc)
	}
	return ar, nil
}

// taskRunner returns the runner of a task of an allocation this client
// runs.
func (c *Client) taskRunner(allocID, task string) (*allocRunner, *taskRunner, error) {
	ar, err := c.runner(allocID)
	if err != nil {
		return nil, nil, err
	}
	tr := ar.task(task)
	if tr == nil {
		return nil, nil, fmt.Errorf("allocation %s has no task %q", allocID, task)
	}
	return ar, tr, nil
}

// LogPath returns the base path of a task's stdout or stderr stream:
// the task driver keeps the stream in rotated files named after it
// (containerd.LogFiles lists them, oldest first).
func (c *Client) LogPath(allocID, task, stream string) (string, error) {
	if stream != "stdout" && stream != "stderr" {
		return "", fmt.Errorf("unknown log type %q; use stdout or stderr", stream)
	}
	ar, _, err := c.taskRunner(allocID, task)
	if err != nil {
		return "", err
	}
	if ar.dir == "" {
		return "", fmt.Errorf("allocation %s: %w", allocID, ErrNoLogs)
	}
	return ar.LogPath(task, stream), nil
}

// AllocTasks lists the task names of an allocation this client runs.
func (c *Client) AllocTasks(allocID string) ([]string, error) {
	ar, err := c.runner(allocID)
	if err != nil {
		return nil, err
	}
	return append([]string(nil), ar.names...), nil
}

// AllocJobType returns the type of the job of an allocation this client
// runs (the simulator's fake driver decides by it how long a task runs).
func (c *Client) AllocJobType(allocID string) (string, error) {
	ar, err := c.runner(allocID)
	if err != nil {
		return "", err
	}
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return ar.alloc.Job.Type, nil
}

// TaskState returns the current state of a task this client runs.
func (c *Client) TaskState(allocID, task string) (*structs.TaskState, error) {
	_, tr, err := c.taskRunner(allocID, task)
	if err != nil {
		return nil, err
	}
	return tr.TaskState(), nil
}
