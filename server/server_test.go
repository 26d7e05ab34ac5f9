package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

func TestServer_RegisterJobPlacesAllocations(t *testing.T) {
	s := testServer(t, nil)
	registerNode(t, s, mock.Node())
	registerNode(t, s, mock.Node())

	job := mock.Job()
	resp := registerJob(t, s, job)
	if resp.EvalID == "" || resp.JobModifyIndex == 0 || resp.Index == 0 {
		t.Fatalf("register response %+v", resp)
	}
	eval := waitForEval(t, s, resp.EvalID)
	if eval.Status != structs.EvalStatusComplete || len(eval.FailedTGAllocs) != 0 {
		t.Fatalf("eval %s failures %v", eval.Status, eval.FailedTGAllocs)
	}
	if n := len(liveAllocs(t, s, job.ID)); n != 3 {
		t.Fatalf("live allocs = %d, want 3", n)
	}
	stored, _ := s.State().JobByID(nil, "", job.ID)
	if stored.Status != structs.JobStatusRunning {
		t.Fatalf("job status %s, want running", stored.Status)
	}
}

func TestServer_RegisterRejectsInvalidJob(t *testing.T) {
	s := testServer(t, nil)
	job := mock.Job()
	job.TaskGroups[0].Tasks[0].Resources.MemoryMB = -1
	job.TaskGroups[0].Count = -2
	var resp structs.JobRegisterResponse
	err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp)
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Code != structs.CodeInvalid || ce.Status != 400 {
		t.Fatalf("err = %v, want an invalid_request error", err)
	}
	for _, want := range []string{"TaskGroups[0].Count", "TaskGroups[0].Tasks[0].Resources.MemoryMB"} {
		if !contains(ce.Message, want) {
			t.Errorf("error %q does not name %s", ce.Message, want)
		}
	}
}

func TestServer_EnforceIndex(t *testing.T) {
	s := testServer(t, nil)
	job := mock.Job()
	first := registerJob(t, s, job)

	var resp structs.JobRegisterResponse
	err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job, EnforceIndex: true, JobModifyIndex: first.JobModifyIndex + 99}, &resp)
	if ce := structs.ParseCodedError(err); ce == nil || ce.Code != structs.CodeConflict {
		t.Fatalf("stale check index: %v", err)
	}
	changed := job.Copy()
	changed.TaskGroups[0].Count = 1
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: changed, EnforceIndex: true, JobModifyIndex: first.JobModifyIndex}, &resp); err != nil {
		t.Fatalf("current check index rejected: %v", err)
	}
}

func TestServer_NoCapacityBlocksThenUnblocks(t *testing.T) {
	s := testServer(t, nil)
	small := mock.Node()
	small.NodeResources.Memory.MemoryMB = 600 // fits two 256 MB allocs
	registerNode(t, s, small)

	job := mock.Job()
	resp := registerJob(t, s, job)
	eval := waitForEval(t, s, resp.EvalID)
	m := eval.FailedTGAllocs["web"]
	if m == nil || m.DimensionExhausted["memory"] == 0 || eval.BlockedEval == "" {
		t.Fatalf("eval should explain memory exhaustion and block: %+v", eval)
	}
	if n := len(liveAllocs(t, s, job.ID)); n != 2 {
		t.Fatalf("placed %d allocs on a node that fits 2", n)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		return s.blockedEvals.Len() == 1, fmt.Errorf("blocked evals: %d", s.blockedEvals.Len())
	})

	// A new node frees capacity: the blocked eval places the third.
	registerNode(t, s, mock.Node())
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		n := len(liveAllocs(t, s, job.ID))
		return n == 3, fmt.Errorf("%d live allocs", n)
	})
	blocked := waitForEval(t, s, eval.BlockedEval)
	if blocked.Status != structs.EvalStatusComplete {
		t.Fatalf("blocked eval status %s", blocked.Status)
	}
}

func TestServer_PlanApplierRejectsStalePlan(t *testing.T) {
	s := testServer(t, nil)
	node := mock.Node()
	node.NodeResources.Memory.MemoryMB = 1000
	registerNode(t, s, node)
	job := mock.Job()
	job.TaskGroups[0].Count = 0
	registerJob(t, s, job)
	stored, _ := s.State().JobByID(nil, "", job.ID)

	// A plan made against the current snapshot: 3 x 256 MB fits 1000 MB.
	stale := s.State().Snapshot()
	plan := &structs.Plan{Job: stored, NodeAllocation: map[string][]*structs.Allocation{}}
	for i := 0; i < 3; i++ {
		a := mock.Alloc(stored, node, i)
		a.ClientStatus = structs.AllocClientStatusPending
		plan.AppendAlloc(a)
	}
	if res, _, err := evaluatePlan(newPlanViewOf(stale), plan); err != nil || len(res.RejectedNodes) != 0 {
		t.Fatalf("plan should fit the snapshot it was made from: %v %v", res, err)
	}

	// Meanwhile another plan fills the node.
	filler := &structs.Plan{Job: stored}
	big := mock.Alloc(stored, node, 9)
	big.AllocatedResources.Tasks["server"].Memory.MemoryMB = 600
	filler.AppendAlloc(big)
	fillRes, _, err := evaluatePlan(newPlanViewOf(s.State().Snapshot()), filler)
	if err != nil || len(fillRes.RejectedNodes) != 0 {
		t.Fatalf("filler rejected: %v", err)
	}
	if _, _, err := s.raftApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: stored, AllocsPlaced: []*structs.Allocation{big}}); err != nil {
		t.Fatal(err)
	}

	// Re-checked against the newest state, the stale plan no longer fits.
	res, reasons, err := evaluatePlan(newPlanViewOf(s.State().Snapshot()), plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RejectedNodes) != 1 || res.RejectedNodes[0] != node.ID || res.RefreshIndex == 0 {
		t.Fatalf("stale plan not rejected: %+v", res)
	}
	if reasons[node.ID] != "node exhausted: memory" {
		t.Fatalf("reason %q", reasons[node.ID])
	}
	if len(res.NodeAllocation) != 0 {
		t.Fatalf("rejected node's allocations still in the result")
	}
}

func TestServer_ConcurrentJobsNeverOvercommit(t *testing.T) {
	// Many jobs scheduled concurrently by several workers race for the
	// same small nodes; the plan applier must keep every node within
	// its capacity.
	s := testServer(t, func(c *Config) { c.NumSchedulers = 4 })
	var nodes []*structs.Node
	for i := 0; i < 3; i++ {
		n := mock.Node()
		n.NodeResources.Cpu.CpuShares = 2000
		n.NodeResources.Memory.MemoryMB = 2048
		registerNode(t, s, n)
		nodes = append(nodes, n)
	}
	var wg sync.WaitGroup
	var evalIDs sync.Map
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := mock.Job()
			job.TaskGroups[0].Count = 2
			var resp structs.JobRegisterResponse
			if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp); err != nil {
				t.Error(err)
				return
			}
			evalIDs.Store(resp.EvalID, true)
		}()
	}
	wg.Wait()
	evalIDs.Range(func(k, _ interface{}) bool {
		waitForEval(t, s, k.(string))
		return true
	})
	total := 0
	for _, n := range nodes {
		allocs, _ := s.State().AllocsByNode(nil, n.ID)
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
	// 2000 MHz / 500 MHz = 4 per node, 12 in all.
	if total != 12 {
		t.Fatalf("placed %d allocations, want the 12 that fit", total)
	}
}

func TestServer_HeartbeatExpiryMarksNodeDownAndReplaces(t *testing.T) {
	s := testServer(t, func(c *Config) {
		c.MinHeartbeatTTL = 200 * time.Millisecond
		c.HeartbeatGrace = 200 * time.Millisecond
	})
	a, b := mock.Node(), mock.Node()
	registerNode(t, s, a)
	job := mock.Job()
	job.TaskGroups[0].Count = 2
	waitForEval(t, s, registerJob(t, s, job).EvalID)
	registerNode(t, s, b)

	// Keep b alive with heartbeats; a stops heartbeating.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var resp structs.NodeUpdateResponse
			_ = s.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{NodeID: b.ID, SecretID: b.SecretID, Status: structs.NodeStatusReady}, &resp)
		}
	}()

	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		n, _ := s.State().NodeByID(nil, a.ID)
		return n.Status == structs.NodeStatusDown, fmt.Errorf("node a is %s", n.Status)
	})
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		live := liveAllocs(t, s, job.ID)
		for _, al := range live {
			if al.NodeID != b.ID {
				return false, fmt.Errorf("alloc %s still on node a", al.Name)
			}
		}
		return len(live) == 2, fmt.Errorf("%d live allocs", len(live))
	})
	all, _ := s.State().AllocsByNode(nil, a.ID)
	for _, al := range all {
		if al.ClientStatus != structs.AllocClientStatusLost || al.DesiredStatus != structs.AllocDesiredStatusStop {
			t.Fatalf("alloc on the down node: %s/%s, want stop/lost", al.DesiredStatus, al.ClientStatus)
		}
	}
	if bNode, _ := s.State().NodeByID(nil, b.ID); bNode.Status != structs.NodeStatusReady {
		t.Fatalf("heartbeating node went %s", bNode.Status)
	}
}

func TestServer_RestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) { c.DataDir = dir }
	s := testServer(t, cfg)
	registerNode(t, s, mock.Node())
	job := mock.Job()
	waitForEval(t, s, registerJob(t, s, job).EvalID)
	before := len(liveAllocs(t, s, job.ID))
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}

	s2 := testServer(t, cfg)
	stored, _ := s2.State().JobByID(nil, "", job.ID)
	if stored == nil {
		t.Fatal("job lost across a restart")
	}
	if after := len(liveAllocs(t, s2, job.ID)); after != before || after != 3 {
		t.Fatalf("allocs before %d, after %d", before, after)
	}
}

func TestServer_SnapshotAndRestartFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) { c.DataDir = dir; c.RaftTrailingLogs = 2 }
	s := testServer(t, cfg)
	registerNode(t, s, mock.Node())
	job := mock.Job()
	waitForEval(t, s, registerJob(t, s, job).EvalID)
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	s2 := testServer(t, cfg)
	if n := len(liveAllocs(t, s2, job.ID)); n != 3 {
		t.Fatalf("after restoring from a snapshot: %d allocs", n)
	}
}

func TestServer_NetworkRPC(t *testing.T) {
	s := testServer(t, nil)
	pool := rpcpool.New()
	defer pool.Shutdown()
	addr := s.RPCAddr().String()

	var leader string
	if err := pool.RPC(addr, "Status.Leader", &structs.GenericRequest{}, &leader); err != nil {
		t.Fatal(err)
	}
	if leader != addr {
		t.Fatalf("leader %q, want %q", leader, addr)
	}
	var resp structs.JobRegisterResponse
	if err := pool.RPC(addr, "Job.Register", &structs.JobRegisterRequest{Job: mock.Job()}, &resp); err != nil || resp.EvalID == "" {
		t.Fatalf("register over the network: %v %+v", err, resp)
	}
	// An endpoint error keeps its code across the wire.
	var dresp structs.JobDeregisterResponse
	err := pool.RPC(addr, "Job.Deregister", &structs.JobDeregisterRequest{JobID: "nope"}, &dresp)
	var ce *structs.CodedError
	if !errors.As(err, &ce) || ce.Code != structs.CodeNotFound || ce.Status != 404 {
		t.Fatalf("err = %#v, want a not_found CodedError", err)
	}
}

func TestServer_BlockingQueryWakesOnChange(t *testing.T) {
	s := testServer(t, nil)
	node := mock.Node()
	registerNode(t, s, node)
	var first structs.NodeClientAllocsResponse
	req := &structs.NodeSpecificRequest{NodeID: node.ID, SecretID: node.SecretID}
	if err := s.RPC("Node.GetClientAllocs", req, &first); err != nil {
		t.Fatal(err)
	}
	done := make(chan structs.NodeClientAllocsResponse, 1)
	go func() {
		var resp structs.NodeClientAllocsResponse
		blocking := &structs.NodeSpecificRequest{NodeID: node.ID, SecretID: node.SecretID,
			QueryOptions: structs.QueryOptions{MinQueryIndex: first.Index, MaxQueryTime: 10 * time.Second}}
		_ = s.RPC("Node.GetClientAllocs", blocking, &resp)
		done <- resp
	}()
	select {
	case <-done:
		t.Fatal("blocking query returned before anything changed")
	case <-time.After(100 * time.Millisecond):
	}
	registerJob(t, s, mock.Job())
	select {
	case resp := <-done:
		if len(resp.Allocs) != 3 || resp.Index <= first.Index {
			t.Fatalf("woke with %d allocs at index %d", len(resp.Allocs), resp.Index)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query did not wake when allocations were placed")
	}
}

func TestServer_ForwardWaitsForLeaderThenFails(t *testing.T) {
	// A server that never bootstraps has no leader: writes wait
	// RPCHoldTimeout and fail with no_leader.
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.BootstrapExpect = 3
	cfg.Membership = emptyMembership{}
	cfg.RPCHoldTimeout = 200 * time.Millisecond
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	start := time.Now()
	var resp structs.JobRegisterResponse
	err = s.RPC("Job.Register", &structs.JobRegisterRequest{Job: mock.Job()}, &resp)
	if !errors.Is(err, structs.ErrNoLeader) {
		t.Fatalf("err = %v, want no_leader", err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("failed after %s, before the hold timeout", waited)
	}
	// Stale reads are served locally even without a leader.
	var list structs.JobListResponse
	if err := s.RPC("Job.List", &structs.JobListRequest{QueryOptions: structs.QueryOptions{AllowStale: true}}, &list); err != nil {
		t.Fatalf("stale read without a leader: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// emptyMembership is a gossip pool with nobody in it.
type emptyMembership struct{}

func (emptyMembership) Servers() []gossip.Member   { return nil }
func (emptyMembership) Subscribe() <-chan struct{} { return make(chan struct{}) }

func TestServer_ShutdownWithOpenConnections(t *testing.T) {
	s := testServer(t, nil)
	pool := rpcpool.New()
	defer pool.Shutdown()
	// A pooled session stays open after the call, as clients' do.
	var leader string
	if err := pool.RPC(s.RPCAddr().String(), "Status.Leader", &structs.GenericRequest{}, &leader); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hangs while a peer holds a pooled connection")
	}
}

func TestBlockedEvals_MissedUnblockEnqueuesAtOnce(t *testing.T) {
	b := NewEvalBroker(time.Minute, 3)
	b.SetEnabled(true)
	defer b.SetEnabled(false)
	blocked := NewBlockedEvals(b)
	blocked.SetEnabled(true)

	// Capacity freed at index 50, before the eval planned at 40 blocked.
	blocked.Unblock(50)
	late := mock.Eval(mock.Job())
	late.Status, late.SnapshotIndex = structs.EvalStatusBlocked, 40
	blocked.Block(late)
	if blocked.Len() != 0 {
		t.Fatal("an eval that missed a capacity change was blocked")
	}
	if e, _, _ := b.Dequeue(schedulerTypes, time.Second, nil); e == nil || e.ID != late.ID {
		t.Fatal("the eval was not enqueued")
	}
	// One planned after the change waits for the next.
	current := mock.Eval(mock.Job())
	current.Status, current.SnapshotIndex = structs.EvalStatusBlocked, 60
	blocked.Block(current)
	if blocked.Len() != 1 {
		t.Fatal("an up-to-date blocked eval was not tracked")
	}
}

func TestServer_GetAllocsAnswersCatchUpReadsAtOnce(t *testing.T) {
	s := testServer(t, nil)
	node := mock.Node()
	registerNode(t, s, node)
	job := mock.Job()
	waitForEval(t, s, registerJob(t, s, job).EvalID)
	allocs := liveAllocs(t, s, job.ID)
	// The client reports on one allocation: its ModifyIndex moves past
	// the others'.
	update := allocs[0].Copy()
	update.ClientStatus = structs.AllocClientStatusRunning
	var gr structs.GenericResponse
	if err := s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: node.ID, SecretID: node.SecretID, Alloc: []*structs.Allocation{update}}, &gr); err != nil {
		t.Fatal(err)
	}
	var watch structs.NodeClientAllocsResponse
	if err := s.RPC("Node.GetClientAllocs", &structs.NodeSpecificRequest{NodeID: node.ID, SecretID: node.SecretID}, &watch); err != nil {
		t.Fatal(err)
	}

	// The client pulls another allocation with the watch's index, as
	// "a server that has applied this": it must not wait for that
	// allocation to change.
	start := time.Now()
	var resp structs.AllocsGetResponse
	err := s.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{
		NodeID:       node.ID,
		SecretID:     node.SecretID,
		AllocIDs:     []string{allocs[1].ID},
		QueryOptions: structs.QueryOptions{MinQueryIndex: watch.Index - 1, AllowStale: true, MaxQueryTime: 5 * time.Second},
	}, &resp)
	if err != nil || len(resp.Allocs) != 1 {
		t.Fatalf("%v %+v", err, resp)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("a read for a server that is caught up waited %s", waited)
	}
	// Clients get no placement metrics; the stored allocation keeps them.
	if resp.Allocs[0].Metrics != nil {
		t.Fatal("Alloc.GetAllocs sent the placement metrics to a client")
	}
	if stored, _ := s.State().AllocByID(nil, allocs[1].ID); stored.Metrics == nil {
		t.Fatal("the stored allocation lost its placement metrics")
	}
}

// TestServer_PipelinedPlansNeverOvercommit submits plans that each fit
// alone but not together, all at once: the plan applier checks a plan
// while the previous one commits, against a snapshot with the previous
// plan applied, so only the plans that fit together commit.
func TestServer_PipelinedPlansNeverOvercommit(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	node := mock.Node()
	node.NodeResources.Memory.MemoryMB = 1000
	registerNode(t, s, node)

	const plans = 6
	futures := make([]*PlanFuture, 0, plans)
	for i := 0; i < plans; i++ {
		job := mock.Job()
		job.TaskGroups[0].Count = 0
		registerJob(t, s, job)
		stored, _ := s.State().JobByID(nil, "", job.ID)
		eval := mock.Eval(stored)
		eval.ID = structs.GenerateUUID()
		s.evalBroker.Enqueue(eval)
		got, token, err := s.evalBroker.Dequeue([]string{stored.Type}, 10*time.Second, nil)
		if err != nil || got == nil {
			t.Fatalf("dequeue: %v", err)
		}
		// 400 MB each: two fit in 1000 MB, three do not.
		a := mock.Alloc(stored, node, 0)
		a.ClientStatus = structs.AllocClientStatusPending
		a.AllocatedResources.Tasks["server"].Memory.MemoryMB = 400
		a.AllocatedResources.Shared.Ports = nil
		plan := &structs.Plan{EvalID: got.ID, EvalToken: token, Job: stored}
		plan.AppendAlloc(a)
		f, err := s.planQueue.Enqueue(plan)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	committed := 0
	for _, f := range futures {
		res, err := f.Wait(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.NodeAllocation[node.ID]) > 0 {
			committed++
		} else if len(res.RejectedNodes) != 1 || res.RefreshIndex == 0 {
			t.Fatalf("plan neither committed nor rejected with a refresh index: %+v", res)
		}
	}
	if committed != 2 {
		t.Fatalf("%d plans committed, want the 2 that fit together", committed)
	}
	allocs, _ := s.State().AllocsByNode(nil, node.ID)
	if fit, dim, _ := structs.AllocsFit(node, allocs); !fit || len(allocs) != 2 {
		t.Fatalf("node holds %d allocations, fit=%v (%s)", len(allocs), fit, dim)
	}
}

// Plans that queue up while an entry commits share the next Raft entry:
// twenty plans submitted at once commit in fewer than twenty entries,
// each plan's result names the entry it committed in, and every
// allocation is stored at that index.
func TestServer_QueuedPlansShareRaftEntries(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	node := mock.Node()
	registerNode(t, s, node)

	const n = 20
	plans := make([]*structs.Plan, 0, n)
	for i := 0; i < n; i++ {
		job := mock.Job()
		job.TaskGroups[0].Count = 0
		registerJob(t, s, job)
		stored, _ := s.State().JobByID(nil, "", job.ID)
		eval := mock.Eval(stored)
		eval.ID = structs.GenerateUUID()
		s.evalBroker.Enqueue(eval)
		got, token, err := s.evalBroker.Dequeue([]string{stored.Type}, 10*time.Second, nil)
		if err != nil || got == nil {
			t.Fatalf("dequeue: %v", err)
		}
		a := mock.Alloc(stored, node, 0)
		a.AllocatedResources.Tasks["server"].Memory.MemoryMB = 10
		a.AllocatedResources.Tasks["server"].Cpu.CpuShares = 10
		a.AllocatedResources.Shared.Ports = nil
		plan := &structs.Plan{EvalID: got.ID, EvalToken: token, Job: stored}
		plan.AppendAlloc(a)
		plans = append(plans, plan)
	}
	futures := make([]*PlanFuture, 0, n)
	for _, plan := range plans {
		f, err := s.planQueue.Enqueue(plan)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	entries := map[uint64]bool{}
	for i, f := range futures {
		res, err := f.Wait(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.NodeAllocation[node.ID]) != 1 || res.AllocIndex == 0 {
			t.Fatalf("plan %d: %+v", i, res)
		}
		entries[res.AllocIndex] = true
		for _, a := range plans[i].NodeAllocation[node.ID] {
			stored, _ := s.State().AllocByID(nil, a.ID)
			if stored == nil || stored.CreateIndex != res.AllocIndex || stored.Job == nil {
				t.Fatalf("plan %d committed at %d, its allocation: %+v", i, res.AllocIndex, stored)
			}
		}
	}
	if len(entries) >= n {
		t.Fatalf("%d plans committed in %d Raft entries: none was batched", n, len(entries))
	}
	t.Logf("%d plans committed in %d Raft entries", n, len(entries))
}

func TestServer_LargeClientUpdateSplitsEntriesKeepingEvalsWithTheirCause(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	job := mock.Job()
	job.TaskGroups[0].Count = 1300
	registerJob(t, s, job)
	stored, _ := s.State().JobByID(nil, "", job.ID)
	node := mock.Node()
	registerNode(t, s, node)
	plan := &structs.ApplyPlanResultsRequest{Job: stored, UpdatedAt: 1}
	for i := 0; i < 1300; i++ {
		a := mock.Alloc(stored, node, i)
		a.Job, a.TaskStates, a.ClientStatus = nil, nil, structs.AllocClientStatusPending
		plan.AllocsPlaced = append(plan.AllocsPlaced, a)
	}
	if _, _, err := s.raftApply(structs.ApplyPlanResultsRequestType, plan); err != nil {
		t.Fatal(err)
	}
	before, _ := s.State().LatestIndex()

	// 1,300 updates; the last one reports a failure, which needs an
	// evaluation.
	req := &structs.AllocUpdateRequest{NodeID: node.ID, SecretID: node.SecretID}
	for i, a := range plan.AllocsPlaced {
		u := &structs.Allocation{ID: a.ID, NodeID: a.NodeID, ClientStatus: structs.AllocClientStatusRunning}
		if i == 600 || i == len(plan.AllocsPlaced)-1 {
			u.ClientStatus = structs.AllocClientStatusFailed
		}
		req.Alloc = append(req.Alloc, u)
	}
	// An older report of the failed allocation, earlier in the batch,
	// must not be applied after the failure.
	stale := &structs.Allocation{ID: plan.AllocsPlaced[600].ID, NodeID: node.ID, ClientStatus: structs.AllocClientStatusRunning}
	req.Alloc = append([]*structs.Allocation{stale}, req.Alloc...)
	var resp structs.GenericResponse
	if err := s.RPC("Node.UpdateAlloc", req, &resp); err != nil {
		t.Fatal(err)
	}
	if entries := resp.Index - before; entries < 3 {
		t.Fatalf("1,300 updates went in %d Raft entries (%d..%d); want at least 3 of at most %d", entries, before, resp.Index, maxAllocUpdatesPerEntry)
	}
	failed := map[string]bool{plan.AllocsPlaced[600].ID: true, plan.AllocsPlaced[len(plan.AllocsPlaced)-1].ID: true}
	for _, a := range plan.AllocsPlaced {
		got, _ := s.State().AllocByID(nil, a.ID)
		want := structs.AllocClientStatusRunning
		if failed[a.ID] {
			want = structs.AllocClientStatusFailed
		}
		if got.ClientStatus != want {
			t.Fatalf("alloc %s: client status %q, want %q", a.ID, got.ClientStatus, want)
		}
	}
	evals, _ := s.State().EvalsByJob(nil, "", job.ID)
	var retry *structs.Evaluation
	for _, e := range evals {
		if e.TriggeredBy == structs.EvalTriggerRetryFailed {
			retry = e
		}
	}
	if retry == nil {
		t.Fatal("no evaluation for the failed allocation")
	}
	for id := range failed {
		got, _ := s.State().AllocByID(nil, id)
		if retry.CreateIndex != got.ModifyIndex {
			t.Fatalf("the evaluation was committed at %d, a failure it answers at %d: it could run before seeing it", retry.CreateIndex, got.ModifyIndex)
		}
	}
}

func TestPlanView_UncommittedPlansCountOnTheirNodes(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	node := mock.Node()
	registerNode(t, s, node)
	job := mock.Job()
	registerJob(t, s, job)
	stored, _ := s.State().JobByID(nil, "", job.ID)
	running := mock.Alloc(stored, node, 0)
	running.Job = nil
	if _, _, err := s.raftApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: stored, AllocsPlaced: []*structs.Allocation{running}}); err != nil {
		t.Fatal(err)
	}

	view := s.newPlanView()
	placed := mock.Alloc(stored, node, 1)
	stop := running.Copy()
	stop.DesiredStatus = structs.AllocDesiredStatusStop
	view.apply(&structs.ApplyPlanResultsRequest{Job: stored, AllocsPlaced: []*structs.Allocation{placed}, AllocsStopped: []*structs.Allocation{stop}})

	allocs, err := view.allocsByNode(node.ID)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, a := range allocs {
		if !a.TerminalStatus() {
			live[a.ID] = true
		}
	}
	if len(allocs) != 2 || !live[placed.ID] || live[running.ID] {
		t.Fatalf("view of the node: %d allocations, live %v; want the placement live and the stopped one not", len(allocs), live)
	}
	// The real state is untouched, and a rejected plan is told to wait
	// for the entry in Raft.
	if real, _ := s.State().AllocByID(nil, running.ID); real.DesiredStatus != structs.AllocDesiredStatusRun {
		t.Fatal("the view changed the state store")
	}
	latest, _ := s.State().LatestIndex()
	if idx, _ := view.latestIndex(); idx != latest+1 {
		t.Fatalf("view index %d, want %d", idx, latest+1)
	}

	// A deployment update needs its deployment in the state or in the view.
	upd := &structs.ApplyPlanResultsRequest{DeploymentUpdates: []*structs.DeploymentStatusUpdate{{DeploymentID: "missing", Status: structs.DeploymentStatusCancelled}}}
	if err := view.canApply(upd); err == nil {
		t.Fatal("an update of an unknown deployment would fail the batch, but canApply accepted it")
	}
	view.apply(&structs.ApplyPlanResultsRequest{Deployment: &structs.Deployment{ID: "missing", JobID: job.ID}})
	if err := view.canApply(upd); err != nil {
		t.Fatalf("deployment created by an uncommitted plan: %v", err)
	}
}

// TestServer_RefusesLostRaftLogWithSnapshots: a data dir whose raft.db
// is gone while snapshots remain does not start (the server would roll
// back silently) unless Recover is set.
func TestServer_RefusesLostRaftLogWithSnapshots(t *testing.T) {
	dir := t.TempDir()
	s := testServer(t, func(c *Config) { c.DataDir = dir; c.NumSchedulers = 0 })
	registerNode(t, s, mock.Node())
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "raft", "raft.db")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.Logger = hclog.NewNullLogger()
	_, err := NewServer(cfg)
	if err == nil || !strings.Contains(err.Error(), "has 1 Raft snapshot(s) but no raft.db") || !strings.Contains(err.Error(), "-recover") {
		t.Fatalf("start without raft.db: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "raft", "raft.db")); !os.IsNotExist(statErr) {
		t.Fatal("the refused start created a new raft.db")
	}
	cfg.Recover = true
	s2, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("start with Recover: %v", err)
	}
	defer s2.Shutdown()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		nodes, err := s2.State().Nodes(nil)
		return err == nil && len(nodes) == 1, err
	})
}

// placeAllocs commits n pending allocations of a new job on node and
// returns them.
func placeAllocs(t *testing.T, s *Server, node *structs.Node, n int) []*structs.Allocation {
	t.Helper()
	job := mock.Job()
	job.TaskGroups[0].Count = n
	registerJob(t, s, job)
	stored, _ := s.State().JobByID(nil, "", job.ID)
	plan := &structs.ApplyPlanResultsRequest{Job: stored, UpdatedAt: 1}
	for i := 0; i < n; i++ {
		a := mock.Alloc(stored, node, i)
		a.Job, a.TaskStates, a.ClientStatus = nil, nil, structs.AllocClientStatusPending
		plan.AllocsPlaced = append(plan.AllocsPlaced, a)
	}
	if _, _, err := s.raftApply(structs.ApplyPlanResultsRequestType, plan); err != nil {
		t.Fatal(err)
	}
	return plan.AllocsPlaced
}

// Reports of several clients arriving together are written in one Raft
// entry.
func TestServer_ClientUpdatesOfManyCallsShareOneEntry(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	// The window never ends: the entry is written when it is full.
	s.allocUpdates = newAllocUpdateBatcher(s, time.Hour)
	const nodes, per = 8, maxAllocUpdatesPerEntry / 8
	var reqs []*structs.AllocUpdateRequest
	for i := 0; i < nodes; i++ {
		node := mock.Node()
		registerNode(t, s, node)
		req := &structs.AllocUpdateRequest{NodeID: node.ID, SecretID: node.SecretID}
		for _, a := range placeAllocs(t, s, node, per) {
			req.Alloc = append(req.Alloc, &structs.Allocation{ID: a.ID, ClientStatus: structs.AllocClientStatusRunning})
		}
		reqs = append(reqs, req)
	}
	before, _ := s.State().LatestIndex()
	indexes := make([]uint64, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp structs.GenericResponse
			errs[i] = s.RPC("Node.UpdateAlloc", req, &resp)
			indexes[i] = resp.Index
		}()
	}
	wg.Wait()
	for i := range reqs {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if indexes[i] != before+1 {
			t.Fatalf("call %d answered index %d; want every call in the one entry at %d", i, indexes[i], before+1)
		}
		for _, u := range reqs[i].Alloc {
			if got, _ := s.State().AllocByID(nil, u.ID); got.ClientStatus != structs.AllocClientStatusRunning || got.ModifyIndex != before+1 {
				t.Fatalf("alloc %s: %s at %d", u.ID, got.ClientStatus, got.ModifyIndex)
			}
		}
	}
}

// A report that changes nothing is not written; one that follows a
// different report still on its way is.
func TestServer_UnchangedClientReportIsNotWritten(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	node := mock.Node()
	registerNode(t, s, node)
	allocs := placeAllocs(t, s, node, 2)
	report := func(id, status string) *structs.AllocUpdateRequest {
		return &structs.AllocUpdateRequest{NodeID: node.ID, SecretID: node.SecretID,
			Alloc: []*structs.Allocation{{ID: id, ClientStatus: status, ClientDescription: "tasks are " + status}}}
	}
	var resp structs.GenericResponse
	if err := s.RPC("Node.UpdateAlloc", report(allocs[0].ID, structs.AllocClientStatusRunning), &resp); err != nil {
		t.Fatal(err)
	}
	written, _ := s.State().LatestIndex()
	if resp.Index != written {
		t.Fatalf("answered %d, state at %d", resp.Index, written)
	}
	// The same report again: nothing is written, the answer is the
	// state's index.
	resp = structs.GenericResponse{}
	if err := s.RPC("Node.UpdateAlloc", report(allocs[0].ID, structs.AllocClientStatusRunning), &resp); err != nil {
		t.Fatal(err)
	}
	if now, _ := s.State().LatestIndex(); now != written || resp.Index != written {
		t.Fatalf("an unchanged report moved the state from %d to %d (answered %d)", written, now, resp.Index)
	}
	if got, _ := s.State().AllocByID(nil, allocs[0].ID); got.ModifyIndex != written {
		t.Fatalf("alloc rewritten at %d", got.ModifyIndex)
	}

	// A report equal to the stored state while a different one waits to
	// be written is not dropped: the waiting report's status would be
	// the last word.
	s.allocUpdates = newAllocUpdateBatcher(s, time.Hour)
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- s.RPC("Node.UpdateAlloc", report(allocs[1].ID, structs.AllocClientStatusRunning), &structs.GenericResponse{})
	}()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		s.allocUpdates.mu.Lock()
		defer s.allocUpdates.mu.Unlock()
		return s.allocUpdates.inflight[allocs[1].ID] == 1, fmt.Errorf("the first report is not in the open entry yet")
	})
	// The stored status, reported while "running" waits: it replaces
	// the waiting report in its entry.
	secondDone := make(chan error, 1)
	go func() {
		secondDone <- s.RPC("Node.UpdateAlloc", report(allocs[1].ID, structs.AllocClientStatusPending), &structs.GenericResponse{})
	}()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		b := s.allocUpdates
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.open == nil || b.open.req.Alloc[b.open.pos[allocs[1].ID]].ClientStatus != structs.AllocClientStatusPending {
			return false, fmt.Errorf("the second report is not in the open entry")
		}
		b.writeLocked(b.open)
		return true, nil
	})
	for _, done := range []chan error{firstDone, secondDone} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.State().AllocByID(nil, allocs[1].ID); got.ClientStatus != structs.AllocClientStatusPending {
		t.Fatalf("alloc is %s; the last report said pending", got.ClientStatus)
	}
}

func TestAllocReportUnchanged(t *testing.T) {
	healthy, unhealthy := true, false
	stored := func() *structs.Allocation {
		return &structs.Allocation{ID: "a", DeploymentID: "d", ClientStatus: structs.AllocClientStatusRunning, ClientDescription: "up",
			TaskStates:       map[string]*structs.TaskState{"web": {State: "running", Events: []*structs.TaskEvent{{Type: "Started", Time: 5}}}},
			Checks:           map[string]*structs.CheckStatus{"web/http": {Status: structs.ServiceStatusPassing, Timestamp: 7}},
			DeploymentStatus: &structs.AllocDeploymentStatus{Healthy: &healthy, Timestamp: 9}}
	}
	report := func(change func(*structs.Allocation)) *structs.Allocation {
		a := stored()
		a.DeploymentID = ""
		change(a)
		return a
	}
	lost := stored()
	lost.ClientStatus = structs.AllocClientStatusLost
	for _, tc := range []struct {
		name string
		old  *structs.Allocation
		u    *structs.Allocation
		want bool
	}{
		{"same", stored(), report(func(*structs.Allocation) {}), true},
		{"status", stored(), report(func(a *structs.Allocation) { a.ClientStatus = structs.AllocClientStatusFailed }), false},
		{"description", stored(), report(func(a *structs.Allocation) { a.ClientDescription = "down" }), false},
		{"task event", stored(), report(func(a *structs.Allocation) {
			a.TaskStates["web"].Events = append(a.TaskStates["web"].Events, &structs.TaskEvent{Type: "Restarting"})
		}), false},
		{"check", stored(), report(func(a *structs.Allocation) { a.Checks["web/http"].Status = structs.ServiceStatusCritical }), false},
		{"health", stored(), report(func(a *structs.Allocation) { a.DeploymentStatus.Healthy = &unhealthy }), false},
		{"no health reported", stored(), report(func(a *structs.Allocation) { a.DeploymentStatus = nil }), true},
		{"lost stays lost", lost, report(func(*structs.Allocation) {}), true},
		{"lost then complete", lost, report(func(a *structs.Allocation) { a.ClientStatus = structs.AllocClientStatusComplete }), false},
	} {
		if got := allocReportUnchanged(tc.old, tc.u); got != tc.want {
			t.Errorf("%s: unchanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}
