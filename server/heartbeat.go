package server

import (
	"math/rand"
	"sync"
	"time"

	"github.com/droverhq/drover/structs"
)

// heartbeater keeps one timer per node on the leader. A client's
// heartbeat resets its node's timer; when a timer fires, the leader
// marks the node down through Raft (so every server agrees), which
// makes its allocations lost and creates evaluations that replace them.
//
// A heartbeat that does not change the node's status is not written to
// Raft at all: it only resets the timer. That is what lets one leader
// hold thousands of nodes.
type heartbeater struct {
	srv *Server

	// l guards timers and deadlines. A timer may fire while a heartbeat
	// resets it; expire then finds the deadline moved and re-arms instead
	// of marking a live node down.
	l         sync.Mutex
	timers    map[string]*time.Timer
	deadlines map[string]time.Time
}

func newHeartbeater(s *Server) *heartbeater {
	return &heartbeater{srv: s, timers: make(map[string]*time.Timer), deadlines: make(map[string]time.Time)}
}

// ttl returns the TTL to give a client: MinHeartbeatTTL, stretched in
// large clusters so heartbeats arrive at most MaxHeartbeatsPerSecond,
// plus a random stagger so clients spread out.
func (h *heartbeater) ttl(numNodes int) time.Duration {
	cfg := h.srv.config
	ttl := cfg.MinHeartbeatTTL
	if cfg.MaxHeartbeatsPerSecond > 0 {
		scaled := time.Duration(float64(numNodes) / cfg.MaxHeartbeatsPerSecond * float64(time.Second))
		if scaled > ttl {
			ttl = scaled
		}
	}
	return ttl + time.Duration(rand.Int63n(int64(ttl)/4+1))
}

// reset restarts the node's timer and returns the TTL for the client.
// The server waits TTL + HeartbeatGrace before marking the node down.
func (h *heartbeater) reset(nodeID string) time.Duration {
	h.l.Lock()
	defer h.l.Unlock()
	ttl := h.ttl(len(h.timers))
	h.resetLocked(nodeID, ttl+h.srv.config.HeartbeatGrace)
	return ttl
}

func (h *heartbeater) resetLocked(nodeID string, after time.Duration) {
	h.deadlines[nodeID] = time.Now().Add(after)
	if t, ok := h.timers[nodeID]; ok {
		t.Reset(after)
		return
	}
	h.timers[nodeID] = time.AfterFunc(after, func() { h.expire(nodeID) })
}

// initialize starts timers for every node that is not down, on gaining
// leadership. They get a full TTL plus grace: clients have had no leader
// to heartbeat to during the election.
func (h *heartbeater) initialize() error {
	nodes, err := h.srv.State().Nodes(nil)
	if err != nil {
		return err
	}
	h.l.Lock()
	defer h.l.Unlock()
	for _, n := range nodes {
		if n.TerminalStatus() {
			continue
		}
		h.resetLocked(n.ID, h.ttl(len(nodes))+h.srv.config.HeartbeatGrace)
	}
	return nil
}

// clear stops one node's timer.
func (h *heartbeater) clear(nodeID string) {
	h.l.Lock()
	defer h.l.Unlock()
	if t, ok := h.timers[nodeID]; ok {
		t.Stop()
		delete(h.timers, nodeID)
	}
	delete(h.deadlines, nodeID)
}

// clearAll stops every timer, on losing leadership.
func (h *heartbeater) clearAll() {
	h.l.Lock()
	defer h.l.Unlock()
	for id, t := range h.timers {
		t.Stop()
		delete(h.timers, id)
	}
	h.deadlines = make(map[string]time.Time)
}

// count returns how many nodes are tracked.
func (h *heartbeater) count() int {
	h.l.Lock()
	defer h.l.Unlock()
	return len(h.deadlines)
}

// expireRetry is how soon a failed attempt to mark a node down is
// retried.
const expireRetry = time.Second

// expire marks a node down after its timer fired, unless a heartbeat
// moved its deadline meanwhile.
func (h *heartbeater) expire(nodeID string) {
	h.l.Lock()
	deadline, tracked := h.deadlines[nodeID]
	if !tracked {
		h.l.Unlock()
		return
	}
	if left := time.Until(deadline); left > 0 {
		// A heartbeat raced the timer: keep waiting.
		h.timers[nodeID].Reset(left)
		h.l.Unlock()
		return
	}
	h.l.Unlock()
	if !h.srv.IsLeader() {
		return
	}
	h.srv.logger.Warn("node missed its heartbeat TTL, marking it down", "node_id", nodeID)
	h.srv.metrics.nodesDown.Inc()
	if err := h.srv.updateNodeStatus(nodeID, structs.NodeStatusDown); err != nil {
		h.srv.logger.Error("failed to mark node down; retrying", "node_id", nodeID, "error", err)
		h.l.Lock()
		if _, still := h.timers[nodeID]; still {
			h.deadlines[nodeID] = time.Now()
			h.timers[nodeID].Reset(expireRetry)
		}
		h.l.Unlock()
		return
	}
	h.l.Lock()
	// Stop tracking unless a heartbeat came back meanwhile.
	if d, ok := h.deadlines[nodeID]; ok && !d.After(time.Now()) {
		delete(h.timers, nodeID)
		delete(h.deadlines, nodeID)
	}
	h.l.Unlock()
}
