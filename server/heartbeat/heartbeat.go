package heartbeat

import (
	"math/rand"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// State is the read-only view the timers read when they are armed for
// every node on gaining leadership. *state.StateStore and
// *state.Snapshot satisfy it.
type State interface {
	// Nodes returns every node; the caller must not modify them.
	Nodes(ws memdb.WatchSet) ([]*structs.Node, error)
}

// Raft commits what the timers decide. The server implements it over
// its Raft log.
type Raft interface {
	// UpdateNodeStatus writes a node's new status (here always down)
	// through Raft, with the evaluations that replace the node's
	// allocations. It is called on a timer's goroutine, one call per
	// node at a time, and returns an error when the write was not
	// committed (this server no longer leads, Raft timed out); the
	// timer then retries after ExpireRetry.
	UpdateNodeStatus(nodeID, status string) error
}

// Clock is where the timers get the time and their timers from; tests
// inject one they move by hand.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f on its own goroutine once d has passed, as
	// time.AfterFunc does.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer a Clock made; *time.Timer is one.
type Timer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Config configures Timers.
type Config struct {
	// MinTTL is the shortest TTL given to clients.
	MinTTL time.Duration
	// Grace is added to every TTL before a node is marked down, and to
	// the first TTL after a leader election.
	Grace time.Duration
	// MaxPerSecond stretches TTLs in big clusters so the leader handles
	// at most this many heartbeats per second; zero never stretches.
	MaxPerSecond float64
	// Logger logs nodes marked down; nil logs nothing.
	Logger hclog.Logger
	// Clock is the time source; nil is the wall clock.
	Clock Clock
	// Rand returns a number in [0, n) for the TTL stagger; nil is
	// math/rand.
	Rand func(n int64) int64
}

// ExpireRetry is how soon a failed attempt to mark a node down is
// retried.
const ExpireRetry = time.Second

// Timers keeps one timer per node on the leader. A client's heartbeat
// resets its node's timer; when a timer fires, the node is marked down
// through Raft (so every server agrees), which makes its allocations
// lost and creates evaluations that replace them.
//
// A heartbeat that does not change the node's status is not written to
// Raft at all: it only resets the timer. That is what lets one leader
// hold thousands of nodes.
type Timers struct {
	cfg  Config
	raft Raft

	// l guards timers and deadlines. A timer may fire while a heartbeat
	// resets it; expire then finds the deadline moved and re-arms instead
	// of marking a live node down.
	l         sync.Mutex
	timers    map[string]Timer
	deadlines map[string]time.Time
}

// New returns Timers with no node tracked.
func New(cfg Config, raft Raft) *Timers {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Int63n
	}
	return &Timers{cfg: cfg, raft: raft, timers: make(map[string]Timer), deadlines: make(map[string]time.Time)}
}

// ttl returns the TTL to give a client: MinTTL, stretched in large
// clusters so heartbeats arrive at most MaxPerSecond, plus a random
// stagger of up to a quarter so clients spread out.
func (h *Timers) ttl(numNodes int) time.Duration {
	ttl := h.cfg.MinTTL
	if h.cfg.MaxPerSecond > 0 {
		scaled := time.Duration(float64(numNodes) / h.cfg.MaxPerSecond * float64(time.Second))
		if scaled > ttl {
			ttl = scaled
		}
	}
	return ttl + time.Duration(h.cfg.Rand(int64(ttl)/4+1))
}

// Reset restarts the node's timer (arming one for a node not tracked
// yet) and returns the TTL for the client. The node is marked down
// TTL + Grace from now unless it heartbeats again.
func (h *Timers) Reset(nodeID string) time.Duration {
	h.l.Lock()
	defer h.l.Unlock()
	ttl := h.ttl(len(h.timers))
	h.resetLocked(nodeID, ttl+h.cfg.Grace)
	return ttl
}

func (h *Timers) resetLocked(nodeID string, after time.Duration) {
	h.deadlines[nodeID] = h.cfg.Clock.Now().Add(after)
	if t, ok := h.timers[nodeID]; ok {
		t.Reset(after)
		return
	}
	h.timers[nodeID] = h.cfg.Clock.AfterFunc(after, func() { h.expire(nodeID) })
}

// Initialize arms a timer for every node that is not down, on gaining
// leadership. They get a full TTL plus grace: clients have had no
// leader to heartbeat to during the election.
func (h *Timers) Initialize(st State) error {
	nodes, err := st.Nodes(nil)
	if err != nil {
		return err
	}
	h.l.Lock()
	defer h.l.Unlock()
	for _, n := range nodes {
		if n.TerminalStatus() {
			continue
		}
		h.resetLocked(n.ID, h.ttl(len(nodes))+h.cfg.Grace)
	}
	return nil
}

// Clear stops one node's timer: the node said it is going down, or
// deregistered.
func (h *Timers) Clear(nodeID string) {
	h.l.Lock()
	defer h.l.Unlock()
	if t, ok := h.timers[nodeID]; ok {
		t.Stop()
		delete(h.timers, nodeID)
	}
	delete(h.deadlines, nodeID)
}

// ClearAll stops every timer, on losing leadership.
func (h *Timers) ClearAll() {
	h.l.Lock()
	defer h.l.Unlock()
	for id, t := range h.timers {
		t.Stop()
		delete(h.timers, id)
	}
	h.deadlines = make(map[string]time.Time)
}

// Count returns how many nodes are tracked.
func (h *Timers) Count() int {
	h.l.Lock()
	defer h.l.Unlock()
	return len(h.deadlines)
}

// expire marks a node down after its timer fired, unless a heartbeat
// moved its deadline meanwhile.
func (h *Timers) expire(nodeID string) {
	h.l.Lock()
	deadline, tracked := h.deadlines[nodeID]
	if !tracked {
		h.l.Unlock()
		return
	}
	if left := deadline.Sub(h.cfg.Clock.Now()); left > 0 {
		// A heartbeat raced the timer: keep waiting.
		h.timers[nodeID].Reset(left)
		h.l.Unlock()
		return
	}
	h.l.Unlock()
	h.cfg.Logger.Warn("node missed its heartbeat TTL, marking it down", "node_id", nodeID)
	if err := h.raft.UpdateNodeStatus(nodeID, structs.NodeStatusDown); err != nil {
		h.l.Lock()
		// Retry only while the node is tracked: ClearAll on losing
		// leadership, or a heartbeat's Clear, ends the attempts.
		if t, still := h.timers[nodeID]; still {
			h.cfg.Logger.Error("failed to mark node down; retrying", "node_id", nodeID, "error", err, "retry_in", ExpireRetry)
			h.deadlines[nodeID] = h.cfg.Clock.Now()
			t.Reset(ExpireRetry)
		}
		h.l.Unlock()
		return
	}
	h.l.Lock()
	// Stop tracking unless a heartbeat came back meanwhile.
	if d, ok := h.deadlines[nodeID]; ok && !d.After(h.cfg.Clock.Now()) {
		delete(h.timers, nodeID)
		delete(h.deadlines, nodeID)
	}
	h.l.Unlock()
}
