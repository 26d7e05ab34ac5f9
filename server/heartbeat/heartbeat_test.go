package heartbeat

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// fakeClock is a Clock that moves only when Advance is called; timers
// due by then fire on the caller's goroutine, in deadline order.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      *fakeClock
	due    time.Time
	active bool
	f      func()
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1700000000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, due: c.now.Add(d), active: true, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.due, t.active = t.c.now.Add(d), true
	return was
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

// Advance moves the clock by d, firing every timer that falls due, one
// at a time, so a timer re-armed by its own callback fires again if it
// falls due before the new time too.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if t.active && !t.due.After(end) && (next == nil || t.due.Before(next.due)) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		c.now = next.due
		next.active = false
		c.mu.Unlock()
		next.f()
	}
}

// fakeRaft records the status writes; failures makes the next writes
// fail.
type fakeRaft struct {
	mu       sync.Mutex
	writes   []string
	failures int
}

func (r *fakeRaft) UpdateNodeStatus(nodeID, status string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures > 0 {
		r.failures--
		return errors.New("not the leader")
	}
	r.writes = append(r.writes, nodeID+"="+status)
	return nil
}

func (r *fakeRaft) Writes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

// fakeState is a State over a fixed node list.
type fakeState []*structs.Node

func (s fakeState) Nodes(memdb.WatchSet) ([]*structs.Node, error) { return s, nil }

const (
	testTTL   = 10 * time.Second
	testGrace = 5 * time.Second
)

// newTestTimers returns timers with a fake clock and no stagger, so a
// node is marked down exactly TTL + grace after its last heartbeat.
func newTestTimers() (*Timers, *fakeClock, *fakeRaft) {
	clock, raft := newFakeClock(), &fakeRaft{}
	h := New(Config{MinTTL: testTTL, Grace: testGrace, Clock: clock, Rand: func(int64) int64 { return 0 }}, raft)
	return h, clock, raft
}

func wantWrites(t *testing.T, raft *fakeRaft, want ...string) {
	t.Helper()
	got := raft.Writes()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("status writes %v, want %v", got, want)
	}
}

func TestTimers_MarkNodeDownAfterTTLPlusGrace(t *testing.T) {
	h, clock, raft := newTestTimers()
	if ttl := h.Reset("n1"); ttl != testTTL {
		t.Fatalf("TTL %s, want %s", ttl, testTTL)
	}
	clock.Advance(testTTL + testGrace - time.Millisecond)
	wantWrites(t, raft)
	clock.Advance(time.Millisecond)
	wantWrites(t, raft, "n1=down")
	if h.Count() != 0 {
		t.Fatalf("a node marked down is still tracked (%d)", h.Count())
	}
	// Nothing more happens to it.
	clock.Advance(time.Hour)
	wantWrites(t, raft, "n1=down")
}

func TestTimers_HeartbeatResetsTheTimer(t *testing.T) {
	h, clock, raft := newTestTimers()
	h.Reset("n1")
	h.Reset("n2")
	// n1 heartbeats every TTL; n2 stops.
	for i := 0; i < 5; i++ {
		clock.Advance(testTTL)
		h.Reset("n1")
	}
	wantWrites(t, raft, "n2=down")
	clock.Advance(testTTL + testGrace)
	wantWrites(t, raft, "n2=down", "n1=down")
}

func TestTimers_RacingHeartbeatKeepsNodeUp(t *testing.T) {
	h, _, raft := newTestTimers()
	h.Reset("n1")
	// The timer fires just as a heartbeat moves the deadline: expire must
	// see the new deadline and keep the node up.
	h.expire("n1")
	wantWrites(t, raft)
	if h.Count() != 1 {
		t.Fatal("the node is no longer tracked")
	}
}

func TestTimers_FailedWriteIsRetried(t *testing.T) {
	h, clock, raft := newTestTimers()
	raft.failures = 2
	h.Reset("n1")
	clock.Advance(testTTL + testGrace)
	wantWrites(t, raft)
	clock.Advance(ExpireRetry)
	wantWrites(t, raft)
	clock.Advance(ExpireRetry)
	wantWrites(t, raft, "n1=down")
}

func TestTimers_ClearStopsRetries(t *testing.T) {
	h, clock, raft := newTestTimers()
	raft.failures = 1
	h.Reset("n1")
	clock.Advance(testTTL + testGrace)
	// Leadership is lost while the write is being retried.
	h.ClearAll()
	clock.Advance(time.Hour)
	wantWrites(t, raft)
	if h.Count() != 0 {
		t.Fatalf("%d nodes tracked after ClearAll", h.Count())
	}
}

func TestTimers_ClearForgetsOneNode(t *testing.T) {
	h, clock, raft := newTestTimers()
	h.Reset("n1")
	h.Reset("n2")
	h.Clear("n1")
	clock.Advance(testTTL + testGrace)
	wantWrites(t, raft, "n2=down")
}

func TestTimers_InitializeArmsLiveNodesWithGrace(t *testing.T) {
	h, clock, raft := newTestTimers()
	ready := &structs.Node{ID: "ready", Status: structs.NodeStatusReady}
	initializing := &structs.Node{ID: "init", Status: structs.NodeStatusInit}
	down := &structs.Node{ID: "down", Status: structs.NodeStatusDown}
	if err := h.Initialize(fakeState{ready, initializing, down}); err != nil {
		t.Fatal(err)
	}
	if h.Count() != 2 {
		t.Fatalf("tracking %d nodes, want the 2 that are not down", h.Count())
	}
	clock.Advance(testTTL + testGrace - time.Millisecond)
	wantWrites(t, raft)
	clock.Advance(time.Millisecond)
	got := raft.Writes()
	sort.Strings(got)
	if fmt.Sprint(got) != "[init=down ready=down]" {
		t.Fatalf("writes %v", got)
	}
}

func TestTimers_TTLStretchesInBigClusters(t *testing.T) {
	cases := []struct {
		name         string
		nodes        int
		maxPerSecond float64
		want         time.Duration
	}{
		{"small cluster keeps the minimum", 10, 50, testTTL},
		{"at the limit", 500, 50, testTTL},
		{"twice the limit", 1000, 50, 20 * time.Second},
		{"no limit", 100000, 0, testTTL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{MinTTL: testTTL, MaxPerSecond: tc.maxPerSecond, Rand: func(int64) int64 { return 0 }}, &fakeRaft{})
			if got := h.ttl(tc.nodes); got != tc.want {
				t.Fatalf("ttl(%d) = %s, want %s", tc.nodes, got, tc.want)
			}
		})
	}
}

func TestTimers_StaggerIsAtMostAQuarter(t *testing.T) {
	var asked int64
	h := New(Config{MinTTL: testTTL, Rand: func(n int64) int64 { asked = n; return n - 1 }}, &fakeRaft{})
	got := h.ttl(1)
	if asked != int64(testTTL)/4+1 || got != testTTL+testTTL/4 {
		t.Fatalf("ttl %s with stagger bound %d", got, asked)
	}
}
