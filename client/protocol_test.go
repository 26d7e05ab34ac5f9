package client

import (
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

// fakeServers is an RPCer standing in for the servers: each method's
// behaviour is a function of the call number; calls are recorded.
type fakeServers struct {
	mu       sync.Mutex
	calls    map[string]int
	handlers map[string]func(n int, args, reply interface{}) error
}

func newFakeServers() *fakeServers {
	return &fakeServers{calls: map[string]int{}, handlers: map[string]func(int, interface{}, interface{}) error{}}
}

func (f *fakeServers) handle(method string, h func(n int, args, reply interface{}) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[method] = h
}

func (f *fakeServers) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeServers) RPC(method string, args, reply interface{}) error {
	f.mu.Lock()
	n := f.calls[method]
	f.calls[method]++
	h := f.handlers[method]
	f.mu.Unlock()
	if h == nil {
		return fmt.Errorf("unexpected call %s", method)
	}
	return h(n, args, reply)
}

var errUnreachable = errors.New("connection refused")

// fakeAllocs is an allocSet that records what the protocol hands it.
type fakeAllocs struct {
	mu      sync.Mutex
	held    map[string]uint64
	applied []string
	removed []string
}

func (f *fakeAllocs) allocVersions() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]uint64{}
	for k, v := range f.held {
		out[k] = v
	}
	return out
}

func (f *fakeAllocs) applyAlloc(a *structs.Allocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held[a.ID] = a.AllocModifyIndex
	f.applied = append(f.applied, a.ID)
}

func (f *fakeAllocs) removeAlloc(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.held, id)
	f.removed = append(f.removed, id)
}

// testProtocol returns a protocol over rpc whose waits are recorded and
// return at once; it stops (as on shutdown) once stop is closed.
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
	stop  chan struct{}
}

func (s *sleepRecorder) sleep(d time.Duration) bool {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	select {
	case <-s.stop:
		return false
	default:
		return true
	}
}

func (s *sleepRecorder) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

func testProtocol(rpc RPCer, allocs allocSet) (*protocol, *sleepRecorder, chan struct{}) {
	shutdown := make(chan struct{})
	rec := &sleepRecorder{stop: shutdown}
	p := newProtocol(protocolConfig{
		rpc: rpc, logger: hclog.NewNullLogger(), allocs: allocs,
		node:   func() *structs.Node { return &structs.Node{ID: "n1", SecretID: "s1"} },
		nodeID: "n1", secretID: "s1", coalesce: time.Millisecond, shutdownCh: shutdown,
	})
	p.sleep, p.sleepIsTimer = rec.sleep, false
	p.randInt63n = rand.New(rand.NewSource(1)).Int63n
	return p, rec, shutdown
}

// shutdownOn closes shutdown once done is closed, ending the loop under
// test.
func shutdownOn(done <-chan struct{}, shutdown chan struct{}) {
	go func() {
		<-done
		close(shutdown)
	}()
}

// closeOnce returns a function closing ch on its first call only.
func closeOnce(ch chan struct{}) func() {
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// watchUntil runs p's watch as after registration until done.
func watchUntil(p *protocol, done <-chan struct{}, shutdown chan struct{}) {
	close(p.registered)
	shutdownOn(done, shutdown)
	p.watchAllocations()
}

func TestProtocol_RegistrationRetriesWithBackoff(t *testing.T) {
	f := newFakeServers()
	f.handle("Node.Register", func(n int, args, reply interface{}) error {
		if req := args.(*structs.NodeRegisterRequest); req.Node.SecretID != "s1" {
			t.Errorf("registration without the node's secret: %+v", req.Node)
		}
		if n < 4 {
			return errUnreachable
		}
		reply.(*structs.NodeUpdateResponse).HeartbeatTTL = 10 * time.Second
		return nil
	})
	p, rec, shutdown := testProtocol(f, &fakeAllocs{held: map[string]uint64{}})
	defer close(shutdown)
	if ttl := p.register(); ttl != 10*time.Second {
		t.Fatalf("register returned TTL %s, want 10s", ttl)
	}
	select {
	case <-p.registered:
	default:
		t.Fatal("Registered not closed after a successful registration")
	}
	waits := rec.recorded()
	if len(waits) != 4 {
		t.Fatalf("%d waits between 5 attempts, want 4: %v", len(waits), waits)
	}
	for i, w := range waits {
		// Attempt i waits in the upper half of min(250ms << i, 5s).
		full := min(defaultMinRetry<<uint(i), defaultMaxRetry)
		if w < full/2 || w > full {
			t.Errorf("wait %d = %s, want within [%s, %s]", i, w, full/2, full)
		}
	}
	if st := p.stats; st.registrations.Load() != 1 {
		t.Fatalf("registrations = %d, want 1", st.registrations.Load())
	}
}

func TestProtocol_HeartbeatsWithinTheTTL(t *testing.T) {
	cases := []struct {
		name string
		// fail makes heartbeat n fail as unreachable.
		fail func(n int) bool
	}{
		{"all answered", func(int) bool { return false }},
		{"every third fails", func(n int) bool { return n%3 == 1 }},
		{"a run of failures", func(n int) bool { return n >= 5 && n < 12 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServers()
			f.handle("Node.Register", func(n int, args, reply interface{}) error {
				reply.(*structs.NodeUpdateResponse).HeartbeatTTL = 20 * time.Second
				return nil
			})
			done := make(chan struct{})
			f.handle("Node.UpdateStatus", func(n int, args, reply interface{}) error {
				req := args.(*structs.NodeUpdateStatusRequest)
				if req.NodeID != "n1" || req.SecretID != "s1" || req.Status != structs.NodeStatusReady {
					t.Errorf("heartbeat %+v, want node n1 with its secret, ready", req)
				}
				if n == 20 {
					close(done)
				}
				if n >= 20 {
					return errUnreachable
				}
				if tc.fail(n) {
					return errUnreachable
				}
				// The servers shorten the TTL halfway through.
				ttl := 20 * time.Second
				if n >= 10 {
					ttl = 8 * time.Second
				}
				reply.(*structs.NodeUpdateResponse).HeartbeatTTL = ttl
				return nil
			})
			p, rec, shutdown := testProtocol(f, &fakeAllocs{held: map[string]uint64{}})
			shutdownOn(done, shutdown)
			p.registerAndHeartbeat()

			// Wait i precedes heartbeat i. The TTL in force is the last
			// one the servers gave. After an answer the next heartbeat
			// comes after about half of it (at most 55%); after a
			// failure, retries come at most a quarter of it apart, so the
			// first retry after one lost heartbeat still lands within
			// the TTL.
			waits := rec.recorded()
			ttl := 20 * time.Second
			var sinceAnswer time.Duration
			lastFailed := false
			for i := 0; i < 20 && i < len(waits); i++ {
				w := waits[i]
				sinceAnswer += w
				switch {
				case w <= 0:
					t.Errorf("wait %d is %s", i, w)
				case !lastFailed && w > ttl*11/20:
					t.Errorf("heartbeat %d comes %s after an answered one; the TTL is %s", i, w, ttl)
				case lastFailed && w > ttl/4:
					t.Errorf("retry %d comes %s after a failed heartbeat; the TTL is %s", i, w, ttl)
				}
				if i > 0 && tc.fail(i-1) && (i < 2 || !tc.fail(i-2)) && sinceAnswer >= ttl {
					t.Errorf("the retry after one lost heartbeat comes %s after the last answered one; the TTL is %s", sinceAnswer, ttl)
				}
				lastFailed = tc.fail(i)
				if !lastFailed {
					sinceAnswer = 0
					if i >= 10 {
						ttl = 8 * time.Second
					}
				}
			}
			if got := p.stats.heartbeatTTL.Load(); time.Duration(got) != 8*time.Second {
				t.Errorf("stats TTL %s, want the last one given, 8s", time.Duration(got))
			}
		})
	}
}

// A server answering with a missing, negative or absurdly short TTL
// makes the client neither panic nor spin: every wait is at least
// minHeartbeatWait, and a missing TTL means the fallback.
func TestProtocol_HostileTTLsNeitherPanicNorSpin(t *testing.T) {
	ttls := []time.Duration{time.Nanosecond, -5 * time.Second, 0, 3 * time.Nanosecond, time.Nanosecond}
	f := newFakeServers()
	f.handle("Node.Register", func(n int, args, reply interface{}) error {
		reply.(*structs.NodeUpdateResponse).HeartbeatTTL = ttls[0]
		return nil
	})
	done := make(chan struct{})
	finish := closeOnce(done)
	f.handle("Node.UpdateStatus", func(n int, args, reply interface{}) error {
		if n+1 >= len(ttls) {
			finish()
			return errUnreachable
		}
		reply.(*structs.NodeUpdateResponse).HeartbeatTTL = ttls[n+1]
		return nil
	})
	p, rec, shutdown := testProtocol(f, &fakeAllocs{held: map[string]uint64{}})
	shutdownOn(done, shutdown)
	p.registerAndHeartbeat()
	for i, w := range rec.recorded() {
		if w < minHeartbeatWait {
			t.Errorf("wait %d is %s, under %s", i, w, minHeartbeatWait)
		}
	}
}

func TestProtocol_ReregistersWhenTheServersForgetTheNode(t *testing.T) {
	f := newFakeServers()
	f.handle("Node.Register", func(n int, args, reply interface{}) error {
		reply.(*structs.NodeUpdateResponse).HeartbeatTTL = 10 * time.Second
		return nil
	})
	done := make(chan struct{})
	f.handle("Node.UpdateStatus", func(n int, args, reply interface{}) error {
		switch n {
		case 1:
			return structs.NewError(structs.CodeNotFound, "node n1 is not registered")
		case 3:
			close(done)
		}
		reply.(*structs.NodeUpdateResponse).HeartbeatTTL = 10 * time.Second
		return nil
	})
	p, _, shutdown := testProtocol(f, &fakeAllocs{held: map[string]uint64{}})
	shutdownOn(done, shutdown)
	p.registerAndHeartbeat()
	if got := f.count("Node.Register"); got != 2 {
		t.Fatalf("%d registrations, want 2 (the first, and after not found)", got)
	}
	if got := p.stats.reregistrations.Load(); got != 1 {
		t.Fatalf("reregistrations = %d, want 1", got)
	}
}

func TestProtocol_WatchPullsWhatChangedAndRemovesWhatIsGone(t *testing.T) {
	f := newFakeServers()
	allocs := &fakeAllocs{held: map[string]uint64{"keep": 5, "old": 7, "lagging": 50}}
	// Two answers: the first from a server at index 40 (it lacks
	// "lagging", placed at 50: not gone), the second at 60.
	answers := []*structs.NodeClientAllocsResponse{
		{Allocs: map[string]uint64{"keep": 5, "old": 9, "new": 30}, QueryMeta: structs.QueryMeta{Index: 40}},
		{Allocs: map[string]uint64{"keep": 5, "new": 30}, QueryMeta: structs.QueryMeta{Index: 60}},
	}
	var seenIndex []uint64
	done := make(chan struct{})
	finish := closeOnce(done)
	f.handle("Node.GetClientAllocs", func(n int, args, reply interface{}) error {
		req := args.(*structs.NodeSpecificRequest)
		seenIndex = append(seenIndex, req.MinQueryIndex)
		if !req.AllowStale || req.SecretID != "s1" {
			t.Errorf("watch %+v: want a stale read with the node's secret", req)
		}
		if n >= len(answers) {
			finish()
			return errUnreachable
		}
		*reply.(*structs.NodeClientAllocsResponse) = *answers[n]
		return nil
	})
	var pulled [][]string
	f.handle("Alloc.GetAllocs", func(n int, args, reply interface{}) error {
		req := args.(*structs.AllocsGetRequest)
		ids := append([]string(nil), req.AllocIDs...)
		sort.Strings(ids)
		pulled = append(pulled, ids)
		resp := reply.(*structs.AllocsGetResponse)
		for _, id := range ids {
			resp.Allocs = append(resp.Allocs, &structs.Allocation{ID: id, AllocModifyIndex: answers[0].Allocs[id]})
		}
		return nil
	})
	p, _, shutdown := testProtocol(f, allocs)
	watchUntil(p, done, shutdown)

	if len(pulled) != 1 || fmt.Sprint(pulled[0]) != "[new old]" {
		t.Fatalf("pulled %v, want one pull of [new old] (keep is unchanged)", pulled)
	}
	if fmt.Sprint(allocs.removed) != "[lagging old]" && fmt.Sprint(allocs.removed) != "[old lagging]" {
		t.Fatalf("removed %v, want old and lagging, only once a server at index 60 no longer lists them", allocs.removed)
	}
	if len(seenIndex) < 3 || seenIndex[0] != 0 || seenIndex[1] != 40 || seenIndex[2] != 60 {
		t.Fatalf("watch indexes %v, want 0, 40, 60", seenIndex)
	}
}

func TestProtocol_FailedPullIsRetriedAtTheSameIndex(t *testing.T) {
	f := newFakeServers()
	allocs := &fakeAllocs{held: map[string]uint64{}}
	var seenIndex []uint64
	done := make(chan struct{})
	finish := closeOnce(done)
	f.handle("Node.GetClientAllocs", func(n int, args, reply interface{}) error {
		if n <= 2 {
			seenIndex = append(seenIndex, args.(*structs.NodeSpecificRequest).MinQueryIndex)
		}
		if n >= 2 {
			finish()
			return errUnreachable
		}
		*reply.(*structs.NodeClientAllocsResponse) = structs.NodeClientAllocsResponse{
			Allocs: map[string]uint64{"a": 10}, QueryMeta: structs.QueryMeta{Index: 10}}
		return nil
	})
	f.handle("Alloc.GetAllocs", func(n int, args, reply interface{}) error {
		if n == 0 {
			return errUnreachable
		}
		reply.(*structs.AllocsGetResponse).Allocs = []*structs.Allocation{{ID: "a", AllocModifyIndex: 10}}
		return nil
	})
	p, _, shutdown := testProtocol(f, allocs)
	watchUntil(p, done, shutdown)
	if fmt.Sprint(seenIndex) != "[0 0 10]" {
		t.Fatalf("watch indexes %v, want [0 0 10]: the index moves only once the pull succeeded", seenIndex)
	}
	if fmt.Sprint(allocs.applied) != "[a]" {
		t.Fatalf("applied %v, want [a]", allocs.applied)
	}
	if got := p.stats.watchErrors.Load(); got < 1 {
		t.Fatalf("watch errors = %d, want the failed pull counted", got)
	}
}

func TestUpdateQueue_LastReportWinsAndAFailureLosesNothing(t *testing.T) {
	var (
		mu        sync.Mutex
		sent      [][]*structs.Allocation
		delivered = map[string]string{}
		failNext  = true
		inSend    = make(chan struct{})
		release   = make(chan struct{})
	)
	send := func(batch []*structs.Allocation) error {
		mu.Lock()
		fail := failNext
		failNext = false
		sent = append(sent, batch)
		mu.Unlock()
		if fail {
			// Reports arrive while the first send is on the wire.
			inSend <- struct{}{}
			<-release
			return errUnreachable
		}
		mu.Lock()
		defer mu.Unlock()
		for _, a := range batch {
			delivered[a.ID] = a.ClientStatus
		}
		return nil
	}
	q := newUpdateQueue(time.Millisecond, send, func(int) time.Duration { return time.Millisecond })
	defer q.close()
	report := func(id, status string) { q.queue(&structs.Allocation{ID: id, ClientStatus: status}) }

	report("a", structs.AllocClientStatusPending)
	report("a", structs.AllocClientStatusRunning) // replaces pending
	report("b", structs.AllocClientStatusPending)
	<-inSend
	report("a", structs.AllocClientStatusComplete) // newer than the batch in flight
	report("c", structs.AllocClientStatusRunning)
	close(release)

	want := map[string]string{"a": "complete", "b": "pending", "c": "running"}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(delivered) == fmt.Sprint(want), fmt.Errorf("delivered %v, want %v", delivered, want)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(sent[0]) != 2 {
		t.Fatalf("first batch has %d reports, want 2 (a's pending replaced by running, and b)", len(sent[0]))
	}
	for _, batch := range sent[1:] {
		for _, a := range batch {
			if a.ID == "a" && a.ClientStatus != structs.AllocClientStatusComplete {
				t.Fatalf("the retry sent a's older report %q after a newer one was queued", a.ClientStatus)
			}
		}
	}
}

// fakeTransport is a ServerRPCer over named fake servers; a server not
// up is unreachable.
type fakeTransport struct {
	mu    sync.Mutex
	up    map[string]bool
	calls []string
	// answer fills the reply of a call to an up server.
	answer func(addr, method string, reply interface{}) error
}

func (f *fakeTransport) RPC(addr, method string, args, reply interface{}) error {
	f.mu.Lock()
	f.calls = append(f.calls, addr)
	up := f.up[addr]
	f.mu.Unlock()
	if !up {
		return fmt.Errorf("rpc %s to %s: %w", method, addr, errUnreachable)
	}
	if f.answer != nil {
		return f.answer(addr, method, reply)
	}
	return nil
}

func (f *fakeTransport) setUp(addr string, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up[addr] = up
}

func (f *fakeTransport) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[len(f.calls)-1]
}

func isUnreachable(err error) bool { return errors.Is(err, errUnreachable) }

func TestServers_FailsOverToAnotherServer(t *testing.T) {
	tr := &fakeTransport{up: map[string]bool{"a": true, "b": true, "c": true}}
	s := NewServers(ServersConfig{Transport: tr, Configured: []string{"a", "b"}, Unreachable: isUnreachable})
	call := func() error { return s.RPC("Status.Ping", struct{}{}, new(struct{})) }

	if err := call(); err != nil || tr.lastCall() != "a" {
		t.Fatalf("first call: %v to %s, want a", err, tr.lastCall())
	}
	tr.setUp("a", false)
	if err := call(); err != nil || tr.lastCall() != "b" {
		t.Fatalf("with a down: %v to %s, want b", err, tr.lastCall())
	}
	tr.setUp("a", true)
	if err := call(); err != nil || tr.lastCall() != "b" {
		t.Fatalf("a back: %v to %s, want to stay on b", err, tr.lastCall())
	}

	// A server that answers with an error is not failed over from.
	tr.answer = func(addr, method string, reply interface{}) error {
		return structs.NewError(structs.CodePermission, "node n1: secret ID does not match")
	}
	if err := call(); err == nil || tr.lastCall() != "b" {
		t.Fatalf("an error answer: %v from %s, want it returned from b", err, tr.lastCall())
	}
	tr.answer = nil

	// Servers learned from the servers' answers are tried too.
	s.SetServers("c", []string{"a", "b", "c"})
	tr.setUp("a", false)
	tr.setUp("b", false)
	if err := call(); err != nil || tr.lastCall() != "c" {
		t.Fatalf("a and b down: %v to %s, want c (learned)", err, tr.lastCall())
	}
	tr.setUp("c", false)
	err := call()
	if err == nil || !isUnreachable(err) {
		t.Fatalf("every server down: %v, want an unreachable error", err)
	}
}

func TestServers_NoServerKnown(t *testing.T) {
	s := NewServers(ServersConfig{Transport: &fakeTransport{up: map[string]bool{}}})
	err := s.RPC("Status.Ping", struct{}{}, new(struct{}))
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Code != structs.CodeNoLeader {
		t.Fatalf("no servers: %v, want a no_leader error", err)
	}
}

func TestProtocol_LearnsServersFromHeartbeatsAndFailsOver(t *testing.T) {
	tr := &fakeTransport{up: map[string]bool{"a": true, "b": true}}
	tr.answer = func(addr, method string, reply interface{}) error {
		if r, ok := reply.(*structs.NodeUpdateResponse); ok {
			r.HeartbeatTTL = 10 * time.Second
			r.LeaderRPCAddr, r.Servers = "a", []string{"a", "b"}
		}
		return nil
	}
	// Configured with a only: b is known from the answers.
	s := NewServers(ServersConfig{Transport: tr, Configured: []string{"a"}, Unreachable: isUnreachable})
	p, _, shutdown := testProtocol(s, &fakeAllocs{held: map[string]uint64{}})
	defer close(shutdown)
	if ttl := p.register(); ttl != 10*time.Second {
		t.Fatalf("register: TTL %s", ttl)
	}
	tr.setUp("a", false)
	if err := p.sendUpdates([]*structs.Allocation{{ID: "x", ClientStatus: "running"}}); err != nil {
		t.Fatalf("update with a down: %v", err)
	}
	if tr.lastCall() != "b" {
		t.Fatalf("update sent to %s, want b, learned from the registration answer", tr.lastCall())
	}
}
