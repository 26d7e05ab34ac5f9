package server

import (
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sync/semaphore"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// evalsProcessed reads a server's drover_worker_evals_processed_total
// for path.
func evalsProcessed(t *testing.T, s *Server, path string) int {
	t.Helper()
	var m dto.Metric
	if err := s.metrics.evalsProcessed.WithLabelValues(path).Write(&m); err != nil {
		t.Fatal(err)
	}
	return int(m.GetCounter().GetValue())
}

// startWorkers starts n scheduler workers on s, tracked for its
// Shutdown (the servers of these tests start with none, so the test
// decides who schedules).
func startWorkers(s *Server, n int) {
	for i := 0; i < n; i++ {
		w := newWorker(s, i)
		s.goFunc(w.run)
	}
}

// wantBadToken fails unless err is the broker's bad_eval_token refusal.
func wantBadToken(t *testing.T, what string, err error) {
	t.Helper()
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Code != structs.CodeBadEvalToken {
		t.Fatalf("%s: err = %v, want a %s error", what, err, structs.CodeBadEvalToken)
	}
}

// noNodeOverCapacity fails if any node's live allocations in s's state
// exceed its resources, and returns how many live allocations there are.
func noNodeOverCapacity(t *testing.T, s *Server, nodes []*structs.Node) int {
	t.Helper()
	total := 0
	for _, n := range nodes {
		allocs, err := s.State().AllocsByNode(nil, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		var live []*structs.Allocation
		for _, a := range allocs {
			if !a.TerminalStatus() {
				live = append(live, a)
			}
		}
		total += len(live)
		if fit, dim, used := structs.AllocsFit(n, live); !fit {
			t.Fatalf("node %s over capacity in %s: %+v", n.ID, dim, used)
		}
	}
	return total
}

func TestFollowerWorkers_ScheduleExactlyThroughTheLeader(t *testing.T) {
	// Only the followers run workers: every evaluation is dequeued from
	// the leader's broker over RPC, scheduled against a follower's own
	// state, and its plan re-checked by the leader's plan applier.
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.NumSchedulers = 0 })
	leader := c.waitLeader(c.servers...)
	followers := c.others(leader)
	for _, f := range followers {
		startWorkers(f, 2)
	}
	var nodes []*structs.Node
	for i := 0; i < 3; i++ {
		n := mock.Node()
		n.NodeResources.Cpu.CpuShares = 2000
		n.NodeResources.Memory.MemoryMB = 2048
		registerNode(t, leader, n)
		nodes = append(nodes, n)
	}
	// 12 jobs of two 500 MHz allocations race for 3 nodes of 4 each:
	// 24 asked, 12 fit.
	var evalIDs []string
	for i := 0; i < 12; i++ {
		job := mock.Job()
		job.TaskGroups[0].Count = 2
		resp := registerJob(t, followers[i%2], job)
		evalIDs = append(evalIDs, resp.EvalID)
	}
	for _, id := range evalIDs {
		waitForEval(t, leader, id)
	}
	if total := noNodeOverCapacity(t, leader, nodes); total != 12 {
		t.Fatalf("placed %d allocations, want the 12 that fit", total)
	}
	c.waitSameState(c.servers...)
	for _, f := range followers {
		if total := noNodeOverCapacity(t, f, nodes); total != 12 {
			t.Fatalf("%s has %d allocations, want 12", c.name(f), total)
		}
	}
	if n := evalsProcessed(t, leader, pathLocal) + evalsProcessed(t, leader, pathRPC); n != 0 {
		t.Fatalf("the leader, with no workers, counts %d evaluations", n)
	}
	rpc := 0
	for _, f := range followers {
		rpc += evalsProcessed(t, f, pathRPC)
		if n := evalsProcessed(t, f, pathLocal); n != 0 {
			t.Fatalf("%s counts %d local evaluations as a follower", c.name(f), n)
		}
	}
	if rpc < len(evalIDs) {
		t.Fatalf("the followers processed %d evaluations over RPC, want at least %d", rpc, len(evalIDs))
	}
	var placed dto.Metric
	if err := leader.metrics.allocsPlaced.Write(&placed); err != nil {
		t.Fatal(err)
	}
	if got := int(placed.GetCounter().GetValue()); got != 12 {
		t.Fatalf("the leader's drover_allocs_placed_total is %d, want 12", got)
	}
	if st := leader.evalBroker.Stats(); st.Unacked != 0 || st.Ready != 0 {
		t.Fatalf("broker after scheduling: %s", st)
	}
}

func TestFollowerWorkers_DeadWorkersEvalIsRedelivered(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.NumSchedulers = 0
		cfg.EvalNackTimeout = 300 * time.Millisecond
	})
	leader := c.waitLeader(c.servers...)
	followers := c.others(leader)
	registerNode(t, leader, mock.Node())
	job := mock.Job()
	resp := registerJob(t, leader, job)

	// A follower's worker takes the evaluation over RPC, then its server
	// dies before it acks.
	doomed := followers[0]
	var deq structs.EvalDequeueResponse
	if err := doomed.peers.RPC(leader.config.RPCAdvertise.String(), "Eval.Dequeue",
		&structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: 5 * time.Second}, &deq); err != nil {
		t.Fatal(err)
	}
	if deq.Eval == nil || deq.Eval.ID != resp.EvalID || deq.Token == "" || deq.WaitIndex < deq.Eval.ModifyIndex {
		t.Fatalf("dequeue: %+v", deq)
	}
	if err := doomed.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// The other follower's worker gets it once the nack timeout fires.
	survivor := followers[1]
	startWorkers(survivor, 1)
	wantRedelivered(t, leader, survivor, job, deq, "the dead worker's")
}

// wantRedelivered waits for deq's evaluation of job to complete through
// survivor's worker, with the job placed, and checks that deq's token
// (holder's, for the message) is void.
func wantRedelivered(t *testing.T, leader, survivor *Server, job *structs.Job, deq structs.EvalDequeueResponse, holder string) {
	t.Helper()
	if done := waitForEval(t, leader, deq.Eval.ID); done.Status != structs.EvalStatusComplete {
		t.Fatalf("eval %s", done.Status)
	}
	if got := len(liveAllocs(t, leader, job.ID)); got != job.TaskGroups[0].Count {
		t.Fatalf("%d allocations placed, want %d", got, job.TaskGroups[0].Count)
	}
	if n := evalsProcessed(t, survivor, pathRPC); n != 1 {
		t.Fatalf("the surviving follower processed %d evaluations, want 1", n)
	}
	err := leader.RPC("Eval.Ack", &structs.EvalAckRequest{EvalID: deq.Eval.ID, Token: deq.Token}, &structs.GenericResponse{})
	wantBadToken(t, "ack with "+holder+" token", err)
}

// dequeueAs takes an evaluation from the leader's broker over from's
// connections, as from's worker does from a process started as
// instance.
func dequeueAs(t *testing.T, from, leader *Server, instance string, wait time.Duration) structs.EvalDequeueResponse {
	t.Helper()
	var deq structs.EvalDequeueResponse
	if err := from.peers.RPC(leader.config.RPCAdvertise.String(), "Eval.Dequeue",
		&structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: wait, Server: from.raftID, Instance: instance}, &deq); err != nil {
		t.Fatal(err)
	}
	return deq
}

func TestFollowerWorkers_RestartedServersEvalIsRedeliveredAtOnce(t *testing.T) {
	// With a minute's nack timeout, the evaluation a follower held when
	// it was restarted comes back on that server's first call from its
	// new process, not a minute later.
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.NumSchedulers = 0
		cfg.EvalNackTimeout = time.Minute
	})
	leader := c.waitLeader(c.servers...)
	follower := c.others(leader)[0]
	registerNode(t, leader, mock.Node())
	resp := registerJob(t, leader, mock.Job())

	before := dequeueAs(t, follower, leader, "before", 5*time.Second)
	if before.Eval == nil || before.Eval.ID != resp.EvalID {
		t.Fatalf("dequeue: %+v", before)
	}
	// The same process polling again is not a restart.
	if again := dequeueAs(t, follower, leader, "before", 300*time.Millisecond); again.Eval != nil {
		t.Fatalf("the holder's own second poll got %s", again.Eval.ID)
	}
	if err := leader.evalBroker.Outstanding(before.Eval.ID, before.Token); err != nil {
		t.Fatalf("the delivery was handed back without a restart: %v", err)
	}
	// The new process's first poll hands the old delivery back, and,
	// after the one-second nack delay, gets the evaluation itself.
	after := dequeueAs(t, follower, leader, "after", 5*time.Second)
	if after.Eval == nil || after.Eval.ID != resp.EvalID || after.Token == before.Token {
		t.Fatalf("the restarted server's dequeue: %+v", after)
	}
	err := leader.RPC("Eval.Ack", &structs.EvalAckRequest{EvalID: before.Eval.ID, Token: before.Token}, &structs.GenericResponse{})
	wantBadToken(t, "ack with the old process's token", err)
	if err := leader.RPC("Eval.Ack", &structs.EvalAckRequest{EvalID: after.Eval.ID, Token: after.Token}, &structs.GenericResponse{}); err != nil {
		t.Fatalf("ack with the new process's token: %v", err)
	}
}

func TestFollowerWorkers_FailedServersEvalIsRedeliveredAtOnce(t *testing.T) {
	// With a minute's nack timeout, the evaluation a follower held when
	// it died goes to another server's worker once gossip reports the
	// holder failed.
	fake := &fakeMembership{changes: make(chan struct{}, 1)}
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.NumSchedulers = 0
		cfg.EvalNackTimeout = time.Minute
		cfg.Membership = fake
	})
	leader := c.waitLeader(c.servers...)
	followers := c.others(leader)
	doomed, survivor := followers[0], followers[1]
	registerNode(t, leader, mock.Node())
	job := mock.Job()
	resp := registerJob(t, leader, job)

	deq := dequeueAs(t, doomed, leader, doomed.instance, 5*time.Second)
	if deq.Eval == nil || deq.Eval.ID != resp.EvalID {
		t.Fatalf("dequeue: %+v", deq)
	}
	if err := doomed.Shutdown(); err != nil {
		t.Fatal(err)
	}
	startWorkers(survivor, 1)
	// Gossip still says alive: the delivery stays where it is.
	time.Sleep(1500 * time.Millisecond)
	if err := leader.evalBroker.Outstanding(deq.Eval.ID, deq.Token); err != nil {
		t.Fatalf("the delivery was handed back before gossip said anything: %v", err)
	}
	failed := serverMember(c.name(doomed), doomed.raftID, doomed.config.RPCAdvertise.String(), 0)
	failed.Status = gossip.StatusFailed
	fake.set(gossip.Member{}, failed)
	fake.changes <- struct{}{}

	wantRedelivered(t, leader, survivor, job, deq, "the failed server's")
}

func TestEvalWorkerRPC_StaleTokensRefused(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	node := mock.Node()
	registerNode(t, s, node)
	job := mock.Job()
	resp := registerJob(t, s, job)

	dequeue := func() *structs.EvalDequeueResponse {
		t.Helper()
		var deq structs.EvalDequeueResponse
		if err := s.RPC("Eval.Dequeue", &structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: 5 * time.Second}, &deq); err != nil {
			t.Fatal(err)
		}
		if deq.Eval == nil || deq.Eval.ID != resp.EvalID {
			t.Fatalf("dequeue: %+v", deq)
		}
		return &deq
	}
	first := dequeue()
	if err := s.RPC("Eval.Nack", &structs.EvalAckRequest{EvalID: first.Eval.ID, Token: first.Token}, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	second := dequeue()
	if second.Token == first.Token {
		t.Fatal("a redelivery kept its token")
	}

	stale := first.Token
	wantBadToken(t, "Eval.Ack", s.RPC("Eval.Ack", &structs.EvalAckRequest{EvalID: resp.EvalID, Token: stale}, &structs.GenericResponse{}))
	var err error
	wantBadToken(t, "Eval.Nack", s.RPC("Eval.Nack", &structs.EvalAckRequest{EvalID: resp.EvalID, Token: stale}, &structs.GenericResponse{}))
	update := second.Eval.Copy()
	update.Status = structs.EvalStatusFailed
	err = s.RPC("Eval.WorkerUpdate", &structs.EvalWorkerUpdateRequest{EvalID: resp.EvalID, Token: stale, Eval: update}, &structs.GenericResponse{})
	wantBadToken(t, "Eval.WorkerUpdate", err)
	if got, _ := s.State().EvalByID(nil, resp.EvalID); got.Status != structs.EvalStatusPending {
		t.Fatalf("a refused update wrote the eval: %s", got.Status)
	}
	stored, err := s.State().JobByID(nil, "", job.ID)
	if err != nil || stored == nil {
		t.Fatalf("job: %v %v", stored, err)
	}
	alloc := mock.Alloc(stored, node, 0)
	alloc.EvalID = resp.EvalID
	plan := &structs.Plan{EvalID: resp.EvalID, EvalToken: stale, Priority: stored.Priority, Job: stored,
		NodeAllocation: map[string][]*structs.Allocation{node.ID: {alloc}}}
	var planResp structs.PlanSubmitResponse
	wantBadToken(t, "Plan.Submit", s.RPC("Plan.Submit", &structs.PlanSubmitRequest{Plan: plan}, &planResp))
	if got := liveAllocs(t, s, job.ID); len(got) != 0 {
		t.Fatalf("a refused plan placed %d allocations", len(got))
	}

	// The current token works: the plan commits, the eval is written
	// and acked.
	plan.EvalToken = second.Token
	if err := s.RPC("Plan.Submit", &structs.PlanSubmitRequest{Plan: plan}, &planResp); err != nil {
		t.Fatal(err)
	}
	if planResp.Result == nil || planResp.Result.AllocIndex == 0 || len(planResp.Result.NodeAllocation[node.ID]) != 1 {
		t.Fatalf("plan result: %+v", planResp.Result)
	}
	update.Status = structs.EvalStatusComplete
	if err := s.RPC("Eval.WorkerUpdate", &structs.EvalWorkerUpdateRequest{EvalID: resp.EvalID, Token: second.Token, Eval: update}, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := s.RPC("Eval.Ack", &structs.EvalAckRequest{EvalID: resp.EvalID, Token: second.Token}, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	if got := liveAllocs(t, s, job.ID); len(got) != 1 {
		t.Fatalf("%d allocations after the plan, want 1", len(got))
	}
	// Acked: the token is spent.
	wantBadToken(t, "Eval.Ack twice", s.RPC("Eval.Ack", &structs.EvalAckRequest{EvalID: resp.EvalID, Token: second.Token}, &structs.GenericResponse{}))
}

func TestEvalWorkerRPC_RefusesNonServers(t *testing.T) {
	pki := newTestPKI(t)
	s := testServer(t, func(c *Config) {
		c.TLS = pki.server
		c.NumSchedulers = 0
	})
	addr := s.RPCAddr().String()
	registerNode(t, s, mock.Node())
	resp := registerJob(t, s, mock.Job())

	client := rpcpool.New(rpcpool.WithTLS(pki.client.OutgoingRPC()))
	defer client.Shutdown()
	calls := []struct {
		method string
		args   interface{}
		reply  interface{}
	}{
		{"Eval.Dequeue", &structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: time.Second}, &structs.EvalDequeueResponse{}},
		{"Eval.Ack", &structs.EvalAckRequest{EvalID: resp.EvalID}, &structs.GenericResponse{}},
		{"Eval.Nack", &structs.EvalAckRequest{EvalID: resp.EvalID}, &structs.GenericResponse{}},
		{"Eval.WorkerUpdate", &structs.EvalWorkerUpdateRequest{EvalID: resp.EvalID, Eval: &structs.Evaluation{ID: resp.EvalID}}, &structs.GenericResponse{}},
		{"Plan.Submit", &structs.PlanSubmitRequest{Plan: &structs.Plan{EvalID: resp.EvalID}}, &structs.PlanSubmitResponse{}},
	}
	for _, tc := range calls {
		t.Run("client certificate "+tc.method, func(t *testing.T) {
			wantPermission(t, client.RPC(addr, tc.method, tc.args, tc.reply), tc.method+" needs a server certificate")
		})
		t.Run("cli certificate "+tc.method, func(t *testing.T) {
			if err := rawCall(t, addr, pki.cli.OutgoingRPC(), tc.method, tc.args, tc.reply); err == nil {
				t.Fatalf("%s with a cli certificate was answered", tc.method)
			}
		})
	}
	// The refused dequeue took nothing from the broker.
	if st := s.evalBroker.Stats(); st.Ready != 1 || st.Unacked != 0 {
		t.Fatalf("broker after refused calls: %s", st)
	}

	// A server certificate gets the evaluation.
	server := rpcpool.New(rpcpool.WithTLS(pki.server.OutgoingRPC()))
	defer server.Shutdown()
	var deq structs.EvalDequeueResponse
	if err := server.RPC(addr, "Eval.Dequeue", &structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: 5 * time.Second}, &deq); err != nil {
		t.Fatal(err)
	}
	if deq.Eval == nil || deq.Eval.ID != resp.EvalID {
		t.Fatalf("dequeue with a server certificate: %+v", deq)
	}
}

func TestEvalWorkerRPC_FollowerRefusesWithNoLeader(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.NumSchedulers = 0 })
	leader := c.waitLeader(c.servers...)
	f := c.others(leader)[0]
	var deq structs.EvalDequeueResponse
	err := f.RPC("Eval.Dequeue", &structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: time.Second}, &deq)
	wantNoLeader(t, "Eval.Dequeue on a follower", err)
	err = f.RPC("Plan.Submit", &structs.PlanSubmitRequest{Plan: &structs.Plan{EvalID: "x"}}, &structs.PlanSubmitResponse{})
	wantNoLeader(t, "Plan.Submit on a follower", err)
}

func TestFollowerWorkers_NackWhenStateIsBehind(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.NumSchedulers = 0 })
	leader := c.waitLeader(c.servers...)
	f := c.others(leader)[0]
	registerNode(t, leader, mock.Node())
	resp := registerJob(t, leader, mock.Job())
	addr := leader.config.RPCAdvertise.String()
	var deq structs.EvalDequeueResponse
	if err := f.peers.RPC(addr, "Eval.Dequeue", &structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: 5 * time.Second}, &deq); err != nil {
		t.Fatal(err)
	}
	if deq.Eval == nil || deq.Eval.ID != resp.EvalID {
		t.Fatalf("dequeue: %+v", deq)
	}
	// An index the follower's state will not reach: the worker gives up
	// and nacks rather than scheduling on stale state.
	w := newWorker(f, 0)
	w.indexWait = 100 * time.Millisecond
	w.process(deq.Eval, deq.Token, addr, deq.WaitIndex+1_000_000)
	if err := leader.evalBroker.Outstanding(deq.Eval.ID, deq.Token); err == nil {
		t.Fatal("the evaluation is still outstanding: the worker did not nack it")
	}
	if got, _ := leader.State().EvalByID(nil, resp.EvalID); got.Status != structs.EvalStatusPending {
		t.Fatalf("eval %s after a nack", got.Status)
	}
	if n := evalsProcessed(t, f, pathRPC); n != 0 {
		t.Fatalf("a nacked evaluation was counted (%d)", n)
	}
	// Redelivered after the nack delay, and scheduled.
	startWorkers(f, 1)
	if done := waitForEval(t, leader, resp.EvalID); done.Status != structs.EvalStatusComplete {
		t.Fatalf("eval %s", done.Status)
	}
}

// planCountingPeers passes calls on, and for Plan.Submit holds each for
// a while and records the most allocations in flight at once.
type planCountingPeers struct {
	Peers
	window int64
	mu     sync.Mutex
	now    int64
	most   int64
	calls  int
}

func (p *planCountingPeers) RPC(addr, method string, args, reply interface{}) error {
	if method != "Plan.Submit" {
		return p.Peers.RPC(addr, method, args, reply)
	}
	w := planWeight(args.(*structs.PlanSubmitRequest).Plan, p.window)
	p.mu.Lock()
	p.now += w
	p.most = max(p.most, p.now)
	p.calls++
	p.mu.Unlock()
	// Long enough that every worker's plan would be out at once
	// without the window.
	time.Sleep(50 * time.Millisecond)
	err := p.Peers.RPC(addr, method, args, reply)
	p.mu.Lock()
	p.now -= w
	p.mu.Unlock()
	return err
}

func TestFollowerWorkers_PlansAtTheLeaderStayWithinTheWindow(t *testing.T) {
	// A follower's six workers schedule twelve jobs of two allocations
	// each; with a window of three allocations, one plan at a time is
	// at the leader.
	const window = 3
	counters := map[string]*planCountingPeers{}
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.NumSchedulers = 0
		counters[cfg.NodeID] = &planCountingPeers{Peers: cfg.Peers, window: window}
		cfg.Peers = counters[cfg.NodeID]
	})
	leader := c.waitLeader(c.servers...)
	f := c.others(leader)[0]
	counting := counters[f.config.NodeID]
	f.remotePlans, f.remotePlanWindow = semaphore.NewWeighted(window), window
	startWorkers(f, 6)
	n := mock.Node()
	n.NodeResources.Cpu.CpuShares = 100000
	n.NodeResources.Memory.MemoryMB = 100000
	registerNode(t, leader, n)
	var evalIDs []string
	for i := 0; i < 12; i++ {
		job := mock.Job()
		job.TaskGroups[0].Count = 2
		evalIDs = append(evalIDs, registerJob(t, leader, job).EvalID)
	}
	for _, id := range evalIDs {
		if e := waitForEval(t, leader, id); e.Status != structs.EvalStatusComplete {
			t.Fatalf("eval %s: %s", id, e.Status)
		}
	}
	if total := noNodeOverCapacity(t, leader, []*structs.Node{n}); total != 24 {
		t.Fatalf("placed %d allocations, want 24", total)
	}
	counting.mu.Lock()
	defer counting.mu.Unlock()
	if counting.calls < 12 {
		t.Fatalf("%d plans went through the follower's connections, want at least 12", counting.calls)
	}
	if counting.most > window {
		t.Fatalf("%d allocations of the follower's plans were at the leader at once, want at most %d", counting.most, window)
	}
}
