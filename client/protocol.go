package client

import (
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
)

// The protocol core: the client's side of its conversation with the
// servers, one implementation for a real client agent and for each node
// of the simulator (which runs real Clients with a fake driver).
//
//   - register: Node.Register until it succeeds, with exponential
//     backoff and jitter; the answer gives the heartbeat TTL.
//   - heartbeat: Node.UpdateStatus at about half the TTL (the first at a
//     random point of the first half, so nodes registered together do
//     not beat together); a failed heartbeat is retried well within the
//     TTL; "not found" means the servers forgot the node (its row was
//     garbage-collected, or a new cluster): register again.
//   - watch: Node.GetClientAllocs, a blocking query on the node's
//     allocations that answers with each one's AllocModifyIndex; the
//     new and changed ones are pulled with Alloc.GetAllocs and handed to
//     the alloc runners, and the ones the servers no longer list are
//     removed (only by a server that has applied the version held, see
//     pullAndApply).
//   - report: allocation status changes, coalesced per allocation (the
//     last report wins) and sent in one Node.UpdateAlloc per batch
//     (updateQueue).
//
// Every answer from a registration or heartbeat carries the servers'
// addresses; they go to the RPCer when it can use them (ServerHinter),
// which is how Servers fails over to servers the operator did not list.

// allocSet is what the protocol drives: the allocations the node runs.
// The protocol calls it from its watch goroutine only.
type allocSet interface {
	// allocVersions returns the AllocModifyIndex of every allocation
	// held.
	allocVersions() map[string]uint64
	// applyAlloc takes a new or changed allocation; the callee owns it.
	applyAlloc(a *structs.Allocation)
	// removeAlloc destroys an allocation the servers no longer have.
	removeAlloc(id string)
}

// Retry backoff for server calls.
const (
	defaultMinRetry = 250 * time.Millisecond
	defaultMaxRetry = 5 * time.Second
	// fallbackTTL is assumed if a server answers without a TTL.
	fallbackTTL = 10 * time.Second
	// minHeartbeatWait is the shortest wait between heartbeats.
	minHeartbeatWait = 10 * time.Millisecond
)

// watchMaxQueryTime is how long one blocking watch waits.
const watchMaxQueryTime = 5 * time.Minute

// protocol runs registration, heartbeats and the allocation watch for
// one node, and owns its update queue.
type protocol struct {
	rpc    RPCer
	logger hclog.Logger
	allocs allocSet
	// node returns the node to register, with fresh driver health.
	node             func() *structs.Node
	nodeID, secretID string

	updates *updateQueue
	stats   *counters

	shutdownCh <-chan struct{}
	// registered is closed once the node registered the first time.
	registered     chan struct{}
	registeredOnce sync.Once

	// Timing, shortened or recorded by tests: minRetry and maxRetry
	// bound the backoff; sleep waits (false on shutdown); randInt63n is
	// the jitter source.
	minRetry, maxRetry time.Duration
	sleep              func(time.Duration) bool
	randInt63n         func(int64) int64

	// sleepIsTimer: sleep is sleepTimer (tests replace it).
	sleepIsTimer bool
	// changed is signalled when the node changed (a driver's health):
	// the heartbeat loop registers it again at once.
	changed chan struct{}
}

// nodeChanged asks for the node to be registered again soon.
func (p *protocol) nodeChanged() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// sleepUnlessChanged waits d like sleep, but returns early with changed
// set when the node changed; ok is false on shutdown. Tests that replace
// sleep get their sleep, and see a change after it.
func (p *protocol) sleepUnlessChanged(d time.Duration) (ok, changed bool) {
	if p.sleepIsTimer {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-p.shutdownCh:
			return false, false
		case <-p.changed:
			return true, true
		case <-t.C:
			return true, false
		}
	}
	if !p.sleep(d) {
		return false, false
	}
	select {
	case <-p.changed:
		return true, true
	default:
		return true, false
	}
}

// counters are a client's protocol statistics; see Stats.
type counters struct {
	registrations, reregistrations           atomic.Int64
	heartbeats, heartbeatErrors, watchErrors atomic.Int64
	updatesSent, updateBatches, updateErrors atomic.Int64
	heartbeatTTL                             atomic.Int64
	allocsRunning, allocsComplete            atomic.Int64
}

// protocolConfig is what newProtocol needs.
type protocolConfig struct {
	rpc              RPCer
	logger           hclog.Logger
	allocs           allocSet
	node             func() *structs.Node
	nodeID, secretID string
	coalesce         time.Duration
	shutdownCh       <-chan struct{}
}

func newProtocol(cfg protocolConfig) *protocol {
	p := &protocol{
		rpc: cfg.rpc, logger: cfg.logger, allocs: cfg.allocs, node: cfg.node,
		nodeID: cfg.nodeID, secretID: cfg.secretID,
		stats:      new(counters),
		shutdownCh: cfg.shutdownCh,
		registered: make(chan struct{}),
		minRetry:   defaultMinRetry, maxRetry: defaultMaxRetry,
		randInt63n: rand.Int63n,
		changed:    make(chan struct{}, 1),
	}
	p.sleep, p.sleepIsTimer = p.sleepTimer, true
	p.updates = newUpdateQueue(cfg.coalesce, p.sendUpdates, p.backoff)
	return p
}

// run starts the heartbeat and watch loops through goFunc (the client's
// tracked goroutines).
func (p *protocol) run(goFunc func(func())) {
	goFunc(p.registerAndHeartbeat)
	goFunc(p.watchAllocations)
}

// sleepTimer waits d or until shutdown; it reports whether to go on.
func (p *protocol) sleepTimer(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.shutdownCh:
		return false
	case <-t.C:
		return true
	}
}

// backoff is the wait before retry number attempt (0-based): doubling
// from minRetry up to maxRetry, each wait drawn from its upper half so
// that clients failing together retry apart.
func (p *protocol) backoff(attempt int) time.Duration {
	d := p.maxRetry
	if attempt < 30 {
		if e := p.minRetry << uint(attempt); e > 0 && e < d {
			d = e
		}
	}
	return d/2 + time.Duration(p.randInt63n(int64(d/2)+1))
}

// noteServers passes the servers' own list on to the RPCer.
func (p *protocol) noteServers(resp *structs.NodeUpdateResponse) {
	if h, ok := p.rpc.(ServerHinter); ok && (resp.LeaderRPCAddr != "" || len(resp.Servers) > 0) {
		h.SetServers(resp.LeaderRPCAddr, resp.Servers)
	}
}

// register registers the node until it succeeds; it returns the TTL, or
// 0 on shutdown.
func (p *protocol) register() time.Duration {
	for attempt := 0; ; attempt++ {
		var resp structs.NodeUpdateResponse
		err := p.rpc.RPC("Node.Register", &structs.NodeRegisterRequest{Node: p.node()}, &resp)
		if err == nil {
			ttl := resp.HeartbeatTTL
			if ttl <= 0 {
				ttl = fallbackTTL
			}
			p.stats.registrations.Add(1)
			p.stats.heartbeatTTL.Store(int64(ttl))
			p.noteServers(&resp)
			p.logger.Info("node registered", "node_id", p.nodeID, "heartbeat_ttl", ttl)
			p.registeredOnce.Do(func() { close(p.registered) })
			return ttl
		}
		// A thousand simulated nodes failing together must not flood the
		// log: every tenth attempt says it again.
		if attempt%10 == 0 {
			p.logger.Warn("failed to register node; retrying", "error", err, "attempt", attempt+1)
		}
		if !p.sleep(p.backoff(attempt)) {
			return 0
		}
	}
}

// nextHeartbeat is the wait after a successful registration or
// heartbeat: half the TTL, give or take a twentieth of it at random, so
// that nodes whose TTL changed together drift apart while the servers
// see the same rate on average (they size the TTL for it); after a
// registration, a random point of the first half.
func (p *protocol) nextHeartbeat(ttl time.Duration, first bool) time.Duration {
	var wait time.Duration
	if first {
		wait = time.Duration(p.randInt63n(int64(ttl/2) + 1))
	} else {
		wait = ttl/2 - ttl/20 + time.Duration(p.randInt63n(int64(ttl/10)+1))
	}
	// A server answering with an absurdly short TTL must not make the
	// client spin.
	return max(wait, minHeartbeatWait)
}

// retryHeartbeat is the wait after failures failed heartbeats in a row:
// the backoff, but never more than a quarter of the TTL, so a server
// that blinked sees the node again before the TTL runs out.
func (p *protocol) retryHeartbeat(ttl time.Duration, failures int) time.Duration {
	return max(min(p.backoff(failures-1), ttl/4), minHeartbeatWait)
}

// registerAndHeartbeat registers the node, then heartbeats within the
// TTL the servers give, registering again if they forgot the node.
func (p *protocol) registerAndHeartbeat() {
	ttl := p.register()
	if ttl == 0 {
		return
	}
	wait := p.nextHeartbeat(ttl, true)
	failures := 0
	for {
		ok, changed := p.sleepUnlessChanged(wait)
		if !ok {
			return
		}
		if changed {
			// A driver's health changed: register the node again (an
			// update), so the servers place by its new health now.
			if ttl = p.register(); ttl == 0 {
				return
			}
			failures = 0
			wait = p.nextHeartbeat(ttl, false)
			continue
		}
		var resp structs.NodeUpdateResponse
		err := p.rpc.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{
			NodeID: p.nodeID, SecretID: p.secretID, Status: structs.NodeStatusReady,
		}, &resp)
		if err != nil {
			p.stats.heartbeatErrors.Add(1)
			if ce := structs.ParseCodedError(err); ce != nil && ce.Code == structs.CodeNotFound {
				p.logger.Warn("the servers do not know this node; registering again")
				p.stats.reregistrations.Add(1)
				if ttl = p.register(); ttl == 0 {
					return
				}
				failures = 0
				wait = p.nextHeartbeat(ttl, true)
				continue
			}
			failures++
			wait = p.retryHeartbeat(ttl, failures)
			if failures%10 == 1 {
				p.logger.Warn("heartbeat failed; retrying", "error", err, "attempt", failures, "retry_in", wait)
			}
			continue
		}
		p.stats.heartbeats.Add(1)
		failures = 0
		if resp.HeartbeatTTL > 0 {
			ttl = resp.HeartbeatTTL
			p.stats.heartbeatTTL.Store(int64(ttl))
		}
		p.noteServers(&resp)
		wait = p.nextHeartbeat(ttl, false)
	}
}

// watchAllocations follows the node's allocations with blocking queries
// and hands the changes to the alloc runners.
func (p *protocol) watchAllocations() {
	select {
	case <-p.registered:
	case <-p.shutdownCh:
		return
	}
	var index uint64
	failures := 0
	for {
		select {
		case <-p.shutdownCh:
			return
		default:
		}
		var resp structs.NodeClientAllocsResponse
		err := p.rpc.RPC("Node.GetClientAllocs", &structs.NodeSpecificRequest{
			NodeID: p.nodeID, SecretID: p.secretID,
			QueryOptions: structs.QueryOptions{MinQueryIndex: index, MaxQueryTime: watchMaxQueryTime, AllowStale: true},
		}, &resp)
		if err == nil && resp.Index > index {
			err = p.pullAndApply(resp.Allocs, resp.Index)
			if err == nil {
				index = resp.Index
			}
		}
		if err != nil {
			p.stats.watchErrors.Add(1)
			failures++
			if failures%10 == 1 {
				p.logger.Warn("failed to watch allocations; retrying", "error", err, "attempt", failures)
			}
			if !p.sleep(p.backoff(failures - 1)) {
				return
			}
			continue
		}
		failures = 0
	}
}

// pullAndApply fetches the allocations that are new or changed against
// what the runners hold, hands them over, and removes what the servers
// no longer list.
func (p *protocol) pullAndApply(server map[string]uint64, index uint64) error {
	held := p.allocs.allocVersions()
	var pull []string
	for id, modify := range server {
		if have, ok := held[id]; !ok || have < modify {
			pull = append(pull, id)
		}
	}
	// An allocation missing from the answer is gone only if the server
	// that answered has applied the write that gave us our version of
	// it: a lagging follower (AllowStale) simply does not have it yet,
	// and destroying its tasks would restart them.
	var gone []string
	for id, have := range held {
		if _, ok := server[id]; !ok && index >= have {
			gone = append(gone, id)
		}
	}
	if len(pull) > 0 {
		var resp structs.AllocsGetResponse
		// A follower answering must have applied at least index.
		err := p.rpc.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{
			NodeID: p.nodeID, SecretID: p.secretID, AllocIDs: pull,
			QueryOptions: structs.QueryOptions{MinQueryIndex: index - 1, AllowStale: true, MaxQueryTime: 10 * time.Second},
		}, &resp)
		if err != nil {
			return err
		}
		for _, a := range resp.Allocs {
			// Freshly decoded: the runners may keep it.
			p.allocs.applyAlloc(a)
		}
	}
	for _, id := range gone {
		p.allocs.removeAlloc(id)
	}
	return nil
}

// sendUpdates sends one batch of allocation reports.
func (p *protocol) sendUpdates(batch []*structs.Allocation) error {
	var resp structs.GenericResponse
	err := p.rpc.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{
		NodeID: p.nodeID, SecretID: p.secretID, Alloc: batch,
	}, &resp)
	if err != nil {
		p.stats.updateErrors.Add(1)
		p.logger.Warn("failed to send allocation updates; retrying", "error", err, "updates", len(batch))
		return err
	}
	p.stats.updatesSent.Add(int64(len(batch)))
	p.stats.updateBatches.Add(1)
	return nil
}
