package sim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
)

// RPCer sends an RPC to the servers (the agent's server proxy).
type RPCer interface {
	RPC(method string, args, reply interface{}) error
}

// Config configures a Simulator.
type Config struct {
	// Count is how many nodes to simulate.
	Count int
	// RPC reaches the servers.
	RPC RPCer
	// NodeRPCs, when set, spread the nodes' own RPCs (registration,
	// heartbeats, allocation watches) over several server proxies: node
	// i uses NodeRPCs[i % len]. Like a fleet of real clients, each
	// sticking to its own server, this spreads the stale watch reads
	// over every server instead of loading one. Batched status updates
	// go through RPC.
	NodeRPCs []RPCer
	// NamePrefix names the nodes "<prefix>-00042"; simulators sharing a
	// cluster need different prefixes. Default "sim".
	NamePrefix string
	// Seed derives node IDs and shapes; the same seed and prefix give
	// the same nodes.
	Seed int64
	// Datacenters the nodes are spread over, round-robin. Default dc1.
	Datacenters []string
	// Racks is how many meta.rack values (r0..) the nodes are spread
	// over. Default 25.
	Racks int
	// StartDelay is how long an allocation stays pending before it is
	// reported running. Default 0.
	StartDelay time.Duration
	// BatchRuntime is how long a batch allocation runs before it is
	// reported complete. Default 1s.
	BatchRuntime time.Duration
	// UpdateCoalesce is how long allocation updates gather before they
	// are sent in one Node.UpdateAlloc (the real client waits 20ms).
	UpdateCoalesce time.Duration
	// RegisterParallelism bounds concurrent registrations. Default 64.
	RegisterParallelism int
	Logger              hclog.Logger
}

func (c *Config) defaults() {
	if c.NamePrefix == "" {
		c.NamePrefix = "sim"
	}
	if len(c.Datacenters) == 0 {
		c.Datacenters = []string{structs.DefaultDatacenter}
	}
	if c.Racks <= 0 {
		c.Racks = 25
	}
	if c.BatchRuntime <= 0 {
		c.BatchRuntime = time.Second
	}
	if c.UpdateCoalesce <= 0 {
		c.UpdateCoalesce = 20 * time.Millisecond
	}
	if c.RegisterParallelism <= 0 {
		c.RegisterParallelism = 64
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
}

// Stats counts what the simulator did.
type Stats struct {
	Registered       int64
	Heartbeats       int64
	HeartbeatErrors  int64
	Reregistrations  int64
	AllocsRunning    int64
	AllocsComplete   int64
	UpdatesSent      int64
	UpdateBatches    int64
	UpdateErrors     int64
	WatchErrors      int64
	MaxHeartbeatTTLs int64 // the largest TTL the servers gave, in ms
}

// Simulator runs simulated nodes.
type Simulator struct {
	cfg   Config
	nodes []*simNode

	stats struct {
		registered, heartbeats, heartbeatErrors, reregistrations atomic.Int64
		running, complete, updatesSent, updateBatches            atomic.Int64
		updateErrors, watchErrors, maxTTL                        atomic.Int64
	}

	updateMu sync.Mutex
	pending  map[string]*structs.Allocation
	updateCh chan struct{}
	// secrets maps node IDs to their secret IDs; written in New only.
	secrets map[string]string
}

// simNode is one simulated node and the allocations it "runs".
type simNode struct {
	sim  *Simulator
	node *structs.Node
	rpc  RPCer

	mu     sync.Mutex
	allocs map[string]*simAlloc
}

type simAlloc struct {
	modifyIndex uint64
	status      string // the client status last reported
	healthy     bool
	timers      []*time.Timer
}

// New builds the nodes; Run registers and runs them.
func New(cfg Config) *Simulator {
	cfg.defaults()
	s := &Simulator{cfg: cfg, pending: make(map[string]*structs.Allocation), updateCh: make(chan struct{}, 1),
		secrets: make(map[string]string, cfg.Count)}
	for i := 0; i < cfg.Count; i++ {
		rpc := cfg.RPC
		if len(cfg.NodeRPCs) > 0 {
			rpc = cfg.NodeRPCs[i%len(cfg.NodeRPCs)]
		}
		node := s.buildNode(i)
		s.secrets[node.ID] = node.SecretID
		s.nodes = append(s.nodes, &simNode{sim: s, node: node, rpc: rpc, allocs: make(map[string]*simAlloc)})
	}
	return s
}

// Nodes returns the simulated nodes' IDs.
func (s *Simulator) Nodes() []string {
	out := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.node.ID
	}
	return out
}

// Stats returns the counters so far.
func (s *Simulator) Stats() Stats {
	return Stats{
		Registered:       s.stats.registered.Load(),
		Heartbeats:       s.stats.heartbeats.Load(),
		HeartbeatErrors:  s.stats.heartbeatErrors.Load(),
		Reregistrations:  s.stats.reregistrations.Load(),
		AllocsRunning:    s.stats.running.Load(),
		AllocsComplete:   s.stats.complete.Load(),
		UpdatesSent:      s.stats.updatesSent.Load(),
		UpdateBatches:    s.stats.updateBatches.Load(),
		UpdateErrors:     s.stats.updateErrors.Load(),
		WatchErrors:      s.stats.watchErrors.Load(),
		MaxHeartbeatTTLs: s.stats.maxTTL.Load(),
	}
}

// nodeShapes are the machine sizes simulated nodes get, round-robin
// with some randomness: cpu MHz, memory MB, cores, class.
var nodeShapes = []struct {
	cpu, mem int64
	cores    int
	class    string
}{
	{8000, 16 * 1024, 4, "small"},
	{14000, 32 * 1024, 8, "medium"},
	{16000, 32 * 1024, 8, "medium"},
	{28000, 64 * 1024, 16, "large"},
	{56000, 128 * 1024, 32, "xlarge"},
}

// uuidFrom derives a stable UUID-shaped ID.
func uuidFrom(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Simulator) buildNode(i int) *structs.Node {
	seed := fmt.Sprint(s.cfg.Seed)
	name := fmt.Sprintf("%s-%05d", s.cfg.NamePrefix, i)
	rng := rand.New(rand.NewSource(s.cfg.Seed*1_000_003 + int64(i)))
	shape := nodeShapes[rng.Intn(len(nodeShapes))]
	ip := fmt.Sprintf("10.%d.%d.%d", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
	return &structs.Node{
		ID:         uuidFrom("node", seed, name),
		SecretID:   uuidFrom("secret", seed, name),
		Name:       name,
		Datacenter: s.cfg.Datacenters[i%len(s.cfg.Datacenters)],
		NodeClass:  shape.class,
		HTTPAddr:   ip + ":4646",
		Attributes: map[string]string{
			"kernel.name":               "linux",
			"kernel.version":            "6.1.0",
			"os.name":                   "debian",
			"os.version":                "12",
			"cpu.arch":                  "amd64",
			"cpu.numcores":              fmt.Sprint(shape.cores),
			"cpu.totalcompute":          fmt.Sprint(shape.cpu),
			"memory.totalbytes":         fmt.Sprint(shape.mem * 1024 * 1024),
			"unique.hostname":           name,
			"unique.network.ip-address": ip,
			"driver.containerd":         "1",
			"simulated":                 "true",
		},
		Meta: map[string]string{"rack": fmt.Sprintf("r%d", i%s.cfg.Racks)},
		NodeResources: &structs.NodeResources{
			Cpu:            structs.NodeCpuResources{CpuShares: shape.cpu, TotalCpuCores: shape.cores},
			Memory:         structs.NodeMemoryResources{MemoryMB: shape.mem},
			MinDynamicPort: structs.DefaultMinDynamicPort,
			MaxDynamicPort: structs.DefaultMaxDynamicPort,
		},
		ReservedResources: &structs.NodeReservedResources{
			Cpu:    structs.NodeCpuResources{CpuShares: 100},
			Memory: structs.NodeMemoryResources{MemoryMB: 256},
		},
		Drivers: map[string]*structs.DriverInfo{
			"containerd": {Detected: true, Healthy: true, HealthDescription: "simulated"},
		},
		Status: structs.NodeStatusReady,
	}
}

// Run registers every node (progress reports registrations as they
// complete, may be nil), then heartbeats and plays the client until ctx
// is done. It returns once every node registered or ctx ended; the
// nodes keep running in the background until ctx is done.
func (s *Simulator) Run(ctx context.Context, progress func(registered, total int)) error {
	go s.syncUpdates(ctx)
	sem := make(chan struct{}, s.cfg.RegisterParallelism)
	var wg sync.WaitGroup
	var done atomic.Int64
	for _, n := range s.nodes {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func(n *simNode) {
			defer wg.Done()
			ttl, ok := n.register(ctx)
			<-sem
			if !ok {
				return
			}
			if d := done.Add(1); progress != nil {
				progress(int(d), len(s.nodes))
			}
			go n.heartbeat(ctx, ttl)
			go n.watch(ctx)
		}(n)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}

// sleep waits d or until ctx is done; false means done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt, 5)
	return d + time.Duration(rand.Int63n(int64(d/2)+1))
}

// register registers the node until it succeeds.
func (n *simNode) register(ctx context.Context) (time.Duration, bool) {
	for attempt := 0; ; attempt++ {
		var resp structs.NodeUpdateResponse
		err := n.rpc.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n.node}, &resp)
		if err == nil {
			n.sim.stats.registered.Add(1)
			n.noteTTL(resp.HeartbeatTTL)
			return resp.HeartbeatTTL, true
		}
		if attempt%10 == 0 {
			n.sim.cfg.Logger.Warn("simulated node failed to register", "node", n.node.Name, "error", err)
		}
		if !sleep(ctx, backoff(attempt)) {
			return 0, false
		}
	}
}

func (n *simNode) noteTTL(ttl time.Duration) {
	ms := ttl.Milliseconds()
	for {
		cur := n.sim.stats.maxTTL.Load()
		if ms <= cur || n.sim.stats.maxTTL.CompareAndSwap(cur, ms) {
			return
		}
	}
}

// heartbeat keeps the node alive: a heartbeat every half TTL (the first
// one at a random point of the first half, so 10,000 nodes registered
// together do not beat together).
func (n *simNode) heartbeat(ctx context.Context, ttl time.Duration) {
	wait := time.Duration(rand.Int63n(int64(ttl/2) + 1))
	failures := 0
	for {
		if !sleep(ctx, wait) {
			return
		}
		var resp structs.NodeUpdateResponse
		err := n.rpc.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{
			NodeID: n.node.ID, SecretID: n.node.SecretID, Status: structs.NodeStatusReady,
		}, &resp)
		if err != nil {
			n.sim.stats.heartbeatErrors.Add(1)
			failures++
			if ce := structs.ParseCodedError(err); ce != nil && ce.Code == structs.CodeNotFound {
				n.sim.stats.reregistrations.Add(1)
				var ok bool
				if ttl, ok = n.register(ctx); !ok {
					return
				}
				failures = 0
				wait = ttl / 2
				continue
			}
			// Retry soon, but never later than the TTL allows.
			wait = min(backoff(failures), ttl/4)
			continue
		}
		n.sim.stats.heartbeats.Add(1)
		failures = 0
		if resp.HeartbeatTTL > 0 {
			ttl = resp.HeartbeatTTL
			n.noteTTL(ttl)
		}
		wait = ttl / 2
	}
}

// watchMaxQueryTime is how long one blocking watch waits.
const watchMaxQueryTime = 5 * time.Minute

// watch follows the node's allocations with blocking queries, as the
// real client does.
func (n *simNode) watch(ctx context.Context) {
	var index uint64
	failures := 0
	for ctx.Err() == nil {
		var resp structs.NodeClientAllocsResponse
		err := n.rpc.RPC("Node.GetClientAllocs", &structs.NodeSpecificRequest{
			NodeID: n.node.ID, SecretID: n.node.SecretID,
			QueryOptions: structs.QueryOptions{MinQueryIndex: index, MaxQueryTime: watchMaxQueryTime, AllowStale: true},
		}, &resp)
		if err != nil {
			n.sim.stats.watchErrors.Add(1)
			failures++
			if !sleep(ctx, backoff(failures)) {
				return
			}
			continue
		}
		failures = 0
		if resp.Index <= index {
			continue
		}
		if err := n.reconcile(ctx, resp.Allocs, resp.Index); err != nil {
			n.sim.stats.watchErrors.Add(1)
			if !sleep(ctx, backoff(1)) {
				return
			}
			continue
		}
		index = resp.Index
	}
}

// reconcile fetches the allocations that are new or changed and plays
// them; allocations the servers no longer list are forgotten.
func (n *simNode) reconcile(ctx context.Context, server map[string]uint64, index uint64) error {
	n.mu.Lock()
	var pull []string
	for id, modify := range server {
		if a, ok := n.allocs[id]; !ok || a.modifyIndex < modify {
			pull = append(pull, id)
		}
	}
	for id, a := range n.allocs {
		if _, ok := server[id]; !ok && index >= a.modifyIndex {
			for _, t := range a.timers {
				t.Stop()
			}
			delete(n.allocs, id)
		}
	}
	n.mu.Unlock()
	if len(pull) == 0 {
		return nil
	}
	var resp structs.AllocsGetResponse
	err := n.rpc.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{
		NodeID:       n.node.ID,
		SecretID:     n.node.SecretID,
		AllocIDs:     pull,
		QueryOptions: structs.QueryOptions{MinQueryIndex: index - 1, AllowStale: true, MaxQueryTime: 10 * time.Second},
	}, &resp)
	if err != nil {
		return err
	}
	for _, a := range resp.Allocs {
		n.apply(a)
	}
	return nil
}

// apply plays the client's part for one allocation.
func (n *simNode) apply(a *structs.Allocation) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sa, known := n.allocs[a.ID]
	if !known {
		if a.TerminalStatus() {
			return // stopped before it ever "ran" here
		}
		sa = &simAlloc{status: a.ClientStatus}
		n.allocs[a.ID] = sa
	}
	sa.modifyIndex = a.AllocModifyIndex
	if a.ClientTerminalStatus() {
		return
	}
	if a.DesiredStatus != structs.AllocDesiredStatusRun {
		// Stopped or evicted: the "tasks" exit at once.
		n.setStatusLocked(a, sa, structs.AllocClientStatusComplete)
		return
	}
	if known {
		return
	}
	// A new allocation: running after StartDelay; batch ones complete
	// after BatchRuntime; deployment ones healthy after min_healthy_time.
	var tg *structs.TaskGroup
	if a.Job != nil {
		tg = a.Job.LookupTaskGroup(a.TaskGroup)
	}
	after := func(d time.Duration, f func()) {
		sa.timers = append(sa.timers, time.AfterFunc(d, f))
	}
	start := n.sim.cfg.StartDelay
	run := func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if cur := n.allocs[a.ID]; cur == sa && sa.status == structs.AllocClientStatusPending {
			n.setStatusLocked(a, sa, structs.AllocClientStatusRunning)
		}
	}
	if start <= 0 {
		n.setStatusLocked(a, sa, structs.AllocClientStatusRunning)
	} else {
		after(start, run)
	}
	if a.Job != nil && a.Job.Type == structs.JobTypeBatch {
		after(start+n.sim.cfg.BatchRuntime, func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if cur := n.allocs[a.ID]; cur == sa && sa.status == structs.AllocClientStatusRunning {
				n.setStatusLocked(a, sa, structs.AllocClientStatusComplete)
			}
		})
	}
	if a.DeploymentID != "" && tg != nil && tg.Update != nil {
		after(start+tg.Update.MinHealthyTime, func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if cur := n.allocs[a.ID]; cur == sa && sa.status == structs.AllocClientStatusRunning && !sa.healthy {
				sa.healthy = true
				n.sendLocked(a, sa)
			}
		})
	}
}

// setStatusLocked moves the allocation to status and queues the update.
func (n *simNode) setStatusLocked(a *structs.Allocation, sa *simAlloc, status string) {
	if sa.status == status {
		return
	}
	switch status {
	case structs.AllocClientStatusRunning:
		n.sim.stats.running.Add(1)
	case structs.AllocClientStatusComplete:
		if sa.status == structs.AllocClientStatusRunning {
			n.sim.stats.running.Add(-1)
		}
		n.sim.stats.complete.Add(1)
	}
	sa.status = status
	n.sendLocked(a, sa)
}

// sendLocked queues the allocation's current simulated state.
func (n *simNode) sendLocked(a *structs.Allocation, sa *simAlloc) {
	now := time.Now()
	states := make(map[string]*structs.TaskState)
	if a.Job != nil {
		if tg := a.Job.LookupTaskGroup(a.TaskGroup); tg != nil {
			for _, t := range tg.Tasks {
				ts := &structs.TaskState{State: structs.TaskStateRunning, StartedAt: now}
				if sa.status == structs.AllocClientStatusComplete {
					ts.State, ts.FinishedAt = structs.TaskStateDead, now
				}
				states[t.Name] = ts
			}
		}
	}
	update := &structs.Allocation{
		ID:                a.ID,
		NodeID:            a.NodeID,
		JobID:             a.JobID,
		TaskGroup:         a.TaskGroup,
		ClientStatus:      sa.status,
		ClientDescription: "simulated",
		TaskStates:        states,
	}
	if sa.healthy {
		healthy := true
		update.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: &healthy, Timestamp: now.UnixNano()}
	}
	n.sim.queue(update)
}

func (s *Simulator) queue(a *structs.Allocation) {
	s.updateMu.Lock()
	s.pending[a.ID] = a
	s.updateMu.Unlock()
	select {
	case s.updateCh <- struct{}{}:
	default:
	}
}

// syncUpdates sends queued allocation updates of every node after a
// short coalescing window.
func (s *Simulator) syncUpdates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.updateCh:
		}
		if !sleep(ctx, s.cfg.UpdateCoalesce) {
			return
		}
		for failures := 0; ; failures++ {
			err := s.flush()
			if err == nil {
				break
			}
			s.stats.updateErrors.Add(1)
			s.cfg.Logger.Warn("simulated allocation updates failed", "error", err)
			if !sleep(ctx, backoff(failures)) {
				return
			}
		}
	}
}

// maxUpdateBatch bounds the updates one flush takes from the queue.
const maxUpdateBatch = 2000

// maxUpdateSenders bounds the per-node Node.UpdateAlloc calls one flush
// has in flight.
const maxUpdateSenders = 32

// flush sends the queued updates. A node may report only on its own
// allocations, with its own secret, so the updates go out as one
// Node.UpdateAlloc per node, as a fleet of real clients would send them.
func (s *Simulator) flush() error {
	for {
		s.updateMu.Lock()
		if len(s.pending) == 0 {
			s.updateMu.Unlock()
			return nil
		}
		byNode := make(map[string][]*structs.Allocation)
		taken := 0
		for id, a := range s.pending {
			byNode[a.NodeID] = append(byNode[a.NodeID], a)
			delete(s.pending, id)
			if taken++; taken == maxUpdateBatch {
				break
			}
		}
		s.updateMu.Unlock()

		var (
			wg       sync.WaitGroup
			errMu    sync.Mutex
			firstErr error
			sem      = make(chan struct{}, maxUpdateSenders)
		)
		for nodeID, batch := range byNode {
			wg.Add(1)
			sem <- struct{}{}
			go func(nodeID string, batch []*structs.Allocation) {
				defer wg.Done()
				defer func() { <-sem }()
				var resp structs.GenericResponse
				err := s.cfg.RPC.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{
					NodeID: nodeID, SecretID: s.secrets[nodeID], Alloc: batch,
				}, &resp)
				if err != nil {
					s.updateMu.Lock()
					for _, a := range batch {
						if _, newer := s.pending[a.ID]; !newer {
							s.pending[a.ID] = a
						}
					}
					s.updateMu.Unlock()
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
				s.stats.updatesSent.Add(int64(len(batch)))
				s.stats.updateBatches.Add(1)
			}(nodeID, batch)
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
	}
}
