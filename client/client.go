package client

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
)

// Client is a node agent.
type Client struct {
	config *Config
	logger hclog.Logger
	db     *stateDB

	nodeID, secretID string
	allocRoot        string

	// nodeLock guards node.
	nodeLock sync.RWMutex
	node     *structs.Node

	// allocLock guards allocs.
	allocLock sync.RWMutex
	allocs    map[string]*allocRunner

	// updateLock guards pendingUpdates; updateCh wakes the syncer.
	updateLock     sync.Mutex
	pendingUpdates map[string]*structs.Allocation
	updateCh       chan struct{}

	// registered is closed once the node is registered.
	registered     chan struct{}
	registeredOnce sync.Once

	shutdownCh   chan struct{}
	shutdownOnce sync.Once
	wg           sync.WaitGroup
	// runners tracks alloc runners, which detach from their tasks on
	// shutdown.
	runners sync.WaitGroup
}

// New starts a client: it loads or creates the node's identity,
// fingerprints the machine, re-attaches to the allocations it ran before
// a restart, then registers with the servers, heartbeats, and watches
// for allocations in the background.
func New(config *Config) (*Client, error) {
	if err := config.validate(); err != nil {
		return nil, err
	}
	stateDir := filepath.Join(config.DataDir, "client")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create client dir: %w", err)
	}
	c := &Client{
		config:         config,
		logger:         config.Logger.Named("client"),
		allocRoot:      filepath.Join(config.DataDir, "alloc"),
		allocs:         make(map[string]*allocRunner),
		pendingUpdates: make(map[string]*structs.Allocation),
		updateCh:       make(chan struct{}, 1),
		registered:     make(chan struct{}),
		shutdownCh:     make(chan struct{}),
	}
	db, err := openStateDB(stateDir)
	if err != nil {
		return nil, err
	}
	c.db = db
	if err := c.loadIdentity(); err != nil {
		db.close()
		return nil, err
	}
	node, err := c.fingerprint()
	if err != nil {
		db.close()
		return nil, err
	}
	c.node = node
	if err := c.restoreAllocs(); err != nil {
		db.close()
		return nil, err
	}
	c.goFunc(c.registerAndHeartbeat)
	c.goFunc(c.watchAllocations)
	c.goFunc(c.syncAllocUpdates)
	c.logger.Info("client started", "node_id", c.nodeID, "node_name", node.Name,
		"cpu_mhz", node.NodeResources.Cpu.CpuShares, "memory_mb", node.NodeResources.Memory.MemoryMB)
	return c, nil
}

// goRunner runs an alloc runner, tracked for Shutdown.
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

// loadIdentity reads the node ID and secret from the state database,
// creating them on first start.
func (c *Client) loadIdentity() error {
	id, err := c.db.getMeta("node_id")
	if err != nil {
		return err
	}
	secret, err := c.db.getMeta("secret_id")
	if err != nil {
		return err
	}
	if id == "" || secret == "" {
		id, secret = structs.GenerateUUID(), structs.GenerateUUID()
		if err := c.db.putMeta("node_id", id); err != nil {
			return err
		}
		if err := c.db.putMeta("secret_id", secret); err != nil {
			return err
		}
	}
	c.nodeID, c.secretID = id, secret
	return nil
}

// NodeID returns the node's ID.
func (c *Client) NodeID() string { return c.nodeID }

// Node returns the fingerprinted node.
func (c *Client) Node() *structs.Node {
	c.nodeLock.RLock()
	defer c.nodeLock.RUnlock()
	return c.node
}

// Registered is closed once the node registered with the servers.
func (c *Client) Registered() <-chan struct{} { return c.registered }

// restoreAllocs re-creates alloc runners for the allocations saved
// before a restart; their task runners re-attach to running tasks.
func (c *Client) restoreAllocs() error {
	restored, err := c.db.loadAllocs()
	if err != nil {
		return fmt.Errorf("load client state: %w", err)
	}
	for _, r := range restored {
		ar, err := newAllocRunner(c, r.Alloc, r.Tasks)
		if err != nil {
			c.logger.Error("cannot restore allocation; forgetting it", "alloc_id", r.Alloc.ID, "error", err)
			_ = c.db.deleteAlloc(r.Alloc.ID)
			continue
		}
		c.allocs[r.Alloc.ID] = ar
		c.goRunner(ar.run)
		c.logger.Info("restored allocation", "alloc_id", r.Alloc.ID, "name", r.Alloc.Name)
	}
	return nil
}

// Shutdown stops the client's loops. Tasks keep running; a restarted
// client re-attaches to them.
func (c *Client) Shutdown() error {
	c.shutdownOnce.Do(func() { close(c.shutdownCh) })
	done := make(chan struct{})
	go func() {
		c.flushAllocUpdates()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	// Alloc runners detach from their tasks, which keep running. The
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
	return c.db.close()
}

func (c *Client) isShutdown() bool {
	select {
	case <-c.shutdownCh:
		return true
	default:
		return false
	}
}

// sleep waits d or until shutdown; it reports whether to go on.
func (c *Client) sleep(d time.Duration) bool {
	select {
	case <-c.shutdownCh:
		return false
	case <-time.After(d):
		return true
	}
}

// Retry backoff for server calls.
const (
	minRetry = 250 * time.Millisecond
	maxRetry = 5 * time.Second
)

func backoff(attempt int) time.Duration {
	d := minRetry << uint(attempt)
	if d > maxRetry || d <= 0 {
		d = maxRetry
	}
	return d/2 + time.Duration(rand.Int63n(int64(d/2)+1))
}

// registerAndHeartbeat registers the node, then heartbeats at half the
// TTL the server gives, re-registering if the server forgot the node.
func (c *Client) registerAndHeartbeat() {
	ttl := c.register()
	if ttl == 0 {
		return
	}
	failures := 0
	for {
		wait := ttl / 2
		if failures > 0 {
			wait = backoff(failures)
		}
		if !c.sleep(wait) {
			return
		}
		var resp structs.NodeUpdateResponse
		err := c.config.RPC.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{
			NodeID: c.nodeID, SecretID: c.secretID, Status: structs.NodeStatusReady,
		}, &resp)
		if err != nil {
			failures++
			if ce := structs.ParseCodedError(err); ce != nil && ce.Code == structs.CodeNotFound {
				c.logger.Warn("the servers do not know this node; registering again")
				if ttl = c.register(); ttl == 0 {
					return
				}
				failures = 0
				continue
			}
			c.logger.Warn("heartbeat failed", "error", err, "attempt", failures)
			continue
		}
		failures = 0
		ttl = resp.HeartbeatTTL
	}
}

// register registers the node until it succeeds; it returns the TTL, or
// 0 on shutdown.
func (c *Client) register() time.Duration {
	for attempt := 0; ; attempt++ {
		c.fingerprintDrivers(c.Node())
		var resp structs.NodeUpdateResponse
		err := c.config.RPC.RPC("Node.Register", &structs.NodeRegisterRequest{Node: c.Node()}, &resp)
		if err == nil {
			c.logger.Info("node registered", "node_id", c.nodeID, "heartbeat_ttl", resp.HeartbeatTTL)
			c.registeredOnce.Do(func() { close(c.registered) })
			return resp.HeartbeatTTL
		}
		c.logger.Warn("failed to register node", "error", err)
		if !c.sleep(backoff(attempt)) {
			return 0
		}
	}
}

// watchMaxQueryTime is how long one blocking watch waits.
const watchMaxQueryTime = 5 * time.Minute

// watchAllocations follows the node's allocations with blocking queries
// and starts, updates or removes alloc runners to match.
func (c *Client) watchAllocations() {
	select {
	case <-c.registered:
	case <-c.shutdownCh:
		return
	}
	var index uint64
	failures := 0
	for !c.isShutdown() {
		var resp structs.NodeClientAllocsResponse
		err := c.config.RPC.RPC("Node.GetClientAllocs", &structs.NodeSpecificRequest{
			NodeID: c.nodeID, SecretID: c.secretID,
			QueryOptions: structs.QueryOptions{MinQueryIndex: index, MaxQueryTime: watchMaxQueryTime, AllowStale: true},
		}, &resp)
		if err != nil {
			failures++
			c.logger.Warn("failed to watch allocations", "error", err)
			if !c.sleep(backoff(failures)) {
				return
			}
			continue
		}
		failures = 0
		if resp.Index <= index {
			continue
		}
		if err := c.reconcileAllocs(resp.Allocs, resp.Index); err != nil {
			c.logger.Warn("failed to fetch allocations", "error", err)
			if !c.sleep(backoff(1)) {
				return
			}
			continue
		}
		index = resp.Index
	}
}

// reconcileAllocs fetches new or changed allocations and applies them.
func (c *Client) reconcileAllocs(server map[string]uint64, index uint64) error {
	c.allocLock.RLock()
	var pull []string
	for id, modify := range server {
		ar, ok := c.allocs[id]
		if !ok {
			pull = append(pull, id)
			continue
		}
		ar.mu.Lock()
		stale := ar.alloc.AllocModifyIndex < modify
		ar.mu.Unlock()
		if stale {
			pull = append(pull, id)
		}
	}
	// An allocation missing from the answer is gone only if the server
	// that answered has applied the write that gave us our version of it:
	// a lagging follower (AllowStale) simply does not have it yet, and
	// destroying its containers would restart them.
	var gone []string
	for id, ar := range c.allocs {
		if _, ok := server[id]; ok {
			continue
		}
		ar.mu.Lock()
		known := ar.alloc.AllocModifyIndex
		ar.mu.Unlock()
		if index >= known {
			gone = append(gone, id)
		}
	}
	c.allocLock.RUnlock()

	if len(pull) > 0 {
		var resp structs.AllocsGetResponse
		// A follower answering must have applied at least index.
		err := c.config.RPC.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{
			NodeID:       c.nodeID,
			SecretID:     c.secretID,
			AllocIDs:     pull,
			QueryOptions: structs.QueryOptions{MinQueryIndex: index - 1, AllowStale: true, MaxQueryTime: 10 * time.Second},
		}, &resp)
		if err != nil {
			return err
		}
		for _, a := range resp.Allocs {
			c.applyAlloc(a.Copy())
		}
	}
	for _, id := range gone {
		c.removeAlloc(id)
	}
	return nil
}

// applyAlloc starts a runner for a new allocation or updates one.
func (c *Client) applyAlloc(alloc *structs.Allocation) {
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
	if err := c.db.putAlloc(alloc); err != nil {
		c.logger.Error("failed to persist allocation", "alloc_id", alloc.ID, "error", err)
	}
	ar, err := newAllocRunner(c, alloc, nil)
	if err != nil {
		c.logger.Error("cannot run allocation", "alloc_id", alloc.ID, "error", err)
		failed := alloc.Copy()
		failed.ClientStatus = structs.AllocClientStatusFailed
		failed.ClientDescription = err.Error()
		c.queueAllocUpdate(failed)
		return
	}
	c.logger.Info("starting allocation", "alloc_id", alloc.ID, "name", alloc.Name)
	c.allocs[alloc.ID] = ar
	c.goRunner(ar.run)
}

// removeAlloc destroys an allocation the servers no longer have.
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
		_ = c.db.deleteAlloc(id)
		_ = os.RemoveAll(ar.dir)
	})
}

// queueAllocUpdate records an allocation's latest client view for the
// syncer; repeated changes of one allocation collapse into one update.
func (c *Client) queueAllocUpdate(a *structs.Allocation) {
	update := &structs.Allocation{
		ID:                a.ID,
		NodeID:            a.NodeID,
		JobID:             a.JobID,
		TaskGroup:         a.TaskGroup,
		ClientStatus:      a.ClientStatus,
		ClientDescription: a.ClientDescription,
		TaskStates:        a.TaskStates,
		DeploymentStatus:  a.DeploymentStatus,
	}
	c.updateLock.Lock()
	c.pendingUpdates[a.ID] = update
	c.updateLock.Unlock()
	select {
	case c.updateCh <- struct{}{}:
	default:
	}
}

// syncAllocUpdates sends queued allocation updates. It waits a short
// coalescing window after the first change so changes that happen
// together (tasks of one allocation, allocations of one plan) go in one
// Raft write, but never longer: the window is what `job run` waits for.
func (c *Client) syncAllocUpdates() {
	for {
		select {
		case <-c.shutdownCh:
			return
		case <-c.updateCh:
		}
		if !c.sleep(c.config.AllocUpdateCoalesce) {
			return
		}
		for failures := 0; ; failures++ {
			err := c.flushAllocUpdates()
			if err == nil {
				break
			}
			c.logger.Warn("failed to send allocation updates", "error", err)
			if !c.sleep(backoff(failures)) {
				return
			}
		}
	}
}

// flushAllocUpdates sends everything queued; on failure it requeues what
// was not superseded meanwhile.
func (c *Client) flushAllocUpdates() error {
	c.updateLock.Lock()
	if len(c.pendingUpdates) == 0 {
		c.updateLock.Unlock()
		return nil
	}
	batch := c.pendingUpdates
	c.pendingUpdates = make(map[string]*structs.Allocation)
	c.updateLock.Unlock()

	updates := make([]*structs.Allocation, 0, len(batch))
	for _, a := range batch {
		updates = append(updates, a)
	}
	var resp structs.GenericResponse
	err := c.config.RPC.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{
		NodeID: c.nodeID, SecretID: c.secretID, Alloc: updates,
	}, &resp)
	if err == nil {
		return nil
	}
	c.updateLock.Lock()
	for id, a := range batch {
		if _, newer := c.pendingUpdates[id]; !newer {
			c.pendingUpdates[id] = a
		}
	}
	c.updateLock.Unlock()
	return err
}

// ErrUnknownAlloc is returned for log requests about allocations this
// client does not run.
var ErrUnknownAlloc = errors.New("allocation is not on this node")

// LogPath returns the base path of a task's stdout or stderr stream:
// the task driver keeps the stream in rotated files named after it
// (containerd.LogFiles lists them, oldest first).
func (c *Client) LogPath(allocID, task, stream string) (string, error) {
	if stream != "stdout" && stream != "stderr" {
		return "", fmt.Errorf("unknown log type %q; use stdout or stderr", stream)
	}
	c.allocLock.RLock()
	ar, ok := c.allocs[allocID]
	c.allocLock.RUnlock()
	if !ok {
		return "", fmt.Errorf("%s: %w", allocID, ErrUnknownAlloc)
	}
	ar.mu.Lock()
	_, known := ar.tasks[task]
	ar.mu.Unlock()
	if !known {
		return "", fmt.Errorf("allocation %s has no task %q", allocID, task)
	}
	return ar.LogPath(task, stream), nil
}

// AllocTasks lists the task names of an allocation this client runs.
func (c *Client) AllocTasks(allocID string) ([]string, error) {
	c.allocLock.RLock()
	ar, ok := c.allocs[allocID]
	c.allocLock.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w", allocID, ErrUnknownAlloc)
	}
	ar.mu.Lock()
	defer ar.mu.Unlock()
	names := make([]string, 0, len(ar.tasks))
	for n := range ar.tasks {
		names = append(names, n)
	}
	return names, nil
}

// TaskState returns the current state of a task this client runs.
func (c *Client) TaskState(allocID, task string) (*structs.TaskState, error) {
	c.allocLock.RLock()
	ar, ok := c.allocs[allocID]
	c.allocLock.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w", allocID, ErrUnknownAlloc)
	}
	ar.mu.Lock()
	tr, known := ar.tasks[task]
	ar.mu.Unlock()
	if !known {
		return nil, fmt.Errorf("allocation %s has no task %q", allocID, task)
	}
	return tr.TaskState(), nil
}
