package state

import (
	"errors"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func TestStateStore_UpsertJobVersions(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	if err := s.UpsertJob(10, job, 111, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := s.JobByID(nil, job.Namespace, job.ID)
	if got.Version != 0 || got.CreateIndex != 10 || got.JobModifyIndex != 10 || got.SubmitTime != 111 {
		t.Fatalf("first registration: version %d create %d jmi %d submit %d", got.Version, got.CreateIndex, got.JobModifyIndex, got.SubmitTime)
	}

	// Same spec again: no new version, JobModifyIndex kept.
	if err := s.UpsertJob(11, job, 222, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.JobByID(nil, job.Namespace, job.ID)
	if got.Version != 0 || got.JobModifyIndex != 10 || got.ModifyIndex != 11 || got.SubmitTime != 111 {
		t.Fatalf("unchanged spec: version %d jmi %d mi %d submit %d", got.Version, got.JobModifyIndex, got.ModifyIndex, got.SubmitTime)
	}

	// Changed spec: next version.
	changed := job.Copy()
	changed.TaskGroups[0].Count = 5
	if err := s.UpsertJob(12, changed, 333, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.JobByID(nil, job.Namespace, job.ID)
	if got.Version != 1 || got.JobModifyIndex != 12 || got.CreateIndex != 10 {
		t.Fatalf("changed spec: version %d jmi %d create %d", got.Version, got.JobModifyIndex, got.CreateIndex)
	}
	versions, _ := s.JobVersionsByID(nil, job.Namespace, job.ID)
	if len(versions) != 2 || versions[0].Version != 1 || versions[1].Version != 0 {
		t.Fatalf("versions: %d", len(versions))
	}
	if idx, _ := s.Index(TableJobs); idx != 12 {
		t.Fatalf("jobs index = %d, want 12", idx)
	}
}

func TestStateStore_JobVersionsTrimmed(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	// A second job whose ID has the first as a prefix must not be
	// counted or trimmed with it.
	other := mock.Job()
	other.ID = job.ID + "-other"
	if err := s.UpsertJob(1, other, 0, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < JobVersionsKept+3; i++ {
		j := job.Copy()
		j.TaskGroups[0].Count = i + 1
		if err := s.UpsertJob(uint64(i+2), j, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	versions, _ := s.JobVersionsByID(nil, job.Namespace, job.ID)
	if len(versions) != JobVersionsKept {
		t.Fatalf("kept %d versions, want %d", len(versions), JobVersionsKept)
	}
	if versions[0].Version != uint64(JobVersionsKept+2) {
		t.Fatalf("newest kept version = %d", versions[0].Version)
	}
	if ov, _ := s.JobVersionsByID(nil, other.Namespace, other.ID); len(ov) != 1 {
		t.Fatalf("other job lost its version: %d", len(ov))
	}
}

func TestStateStore_JobStatus(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	eval := mock.Eval(job)
	if err := s.UpsertJob(1, job, 0, eval); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		j, _ := s.JobByID(nil, job.Namespace, job.ID)
		return j.Status
	}
	if st := status(); st != structs.JobStatusPending {
		t.Fatalf("with a pending eval: %s", st)
	}

	node := mock.Node()
	alloc := mock.Alloc(job, node, 0)
	alloc.ClientStatus = structs.AllocClientStatusPending
	if err := s.UpsertPlanResults(2, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{alloc}, UpdatedAt: 50}); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != structs.JobStatusRunning {
		t.Fatalf("with a live alloc: %s", st)
	}

	done := eval.Copy()
	done.Status = structs.EvalStatusComplete
	if err := s.UpsertEvals(3, []*structs.Evaluation{done}); err != nil {
		t.Fatal(err)
	}
	update := alloc.Copy()
	update.ClientStatus = structs.AllocClientStatusComplete
	if err := s.UpdateAllocsFromClient(4, []*structs.Allocation{update}, 60, nil); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != structs.JobStatusDead {
		t.Fatalf("everything finished: %s", st)
	}
}

func TestStateStore_PlanResultsKeepClientState(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	node := mock.Node()
	alloc := mock.Alloc(job, node, 0)
	alloc.Job = nil // travels in the request
	req := &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{alloc}, UpdatedAt: 100}
	if err := s.UpsertPlanResults(5, req); err != nil {
		t.Fatal(err)
	}
	got, _ := s.AllocByID(nil, alloc.ID)
	if got.Job != job || got.CreateIndex != 5 || got.AllocModifyIndex != 5 || got.CreateTime != 100 {
		t.Fatalf("placed alloc: job linked %v, create %d, ami %d, ctime %d", got.Job == job, got.CreateIndex, got.AllocModifyIndex, got.CreateTime)
	}

	// The client reports; AllocModifyIndex must not move.
	report := got.Copy()
	report.ClientStatus = structs.AllocClientStatusRunning
	report.TaskStates = map[string]*structs.TaskState{"server": {State: structs.TaskStateRunning}}
	if err := s.UpdateAllocsFromClient(6, []*structs.Allocation{report}, 200, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.AllocByID(nil, alloc.ID)
	if got.ModifyIndex != 6 || got.AllocModifyIndex != 5 || got.ModifyTime != 200 || got.ClientStatus != structs.AllocClientStatusRunning {
		t.Fatalf("after client update: mi %d ami %d status %s", got.ModifyIndex, got.AllocModifyIndex, got.ClientStatus)
	}

	// An in-place update from the scheduler keeps the client's view.
	inplace := got.Copy()
	inplace.ClientStatus = ""
	inplace.TaskStates = nil
	if err := s.UpsertPlanResults(7, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{inplace}, UpdatedAt: 300}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.AllocByID(nil, alloc.ID)
	if got.ClientStatus != structs.AllocClientStatusRunning || got.TaskStates["server"] == nil || got.CreateTime != 100 || got.AllocModifyIndex != 7 {
		t.Fatalf("in-place update lost client state: %+v", got)
	}

	// Stopping it, and a replacement linked to it.
	stop := &structs.Allocation{ID: alloc.ID, DesiredStatus: structs.AllocDesiredStatusStop, DesiredDescription: "replaced"}
	repl := mock.Alloc(job, node, 0)
	repl.PreviousAllocation = alloc.ID
	if err := s.UpsertPlanResults(8, &structs.ApplyPlanResultsRequest{Job: job, AllocsStopped: []*structs.Allocation{stop}, AllocsPlaced: []*structs.Allocation{repl}, UpdatedAt: 400}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.AllocByID(nil, alloc.ID)
	if got.DesiredStatus != structs.AllocDesiredStatusStop || got.NextAllocation != repl.ID || got.DesiredDescription != "replaced" {
		t.Fatalf("stopped alloc: %+v", got)
	}
	onNode, _ := s.AllocsByNode(nil, node.ID)
	if len(onNode) != 2 {
		t.Fatalf("allocs on node = %d, want 2", len(onNode))
	}
}

func TestStateStore_NodeStatusAndEligibility(t *testing.T) {
	s := NewStateStore()
	node := mock.Node()
	node.SchedulingEligibility = ""
	if err := s.UpsertNode(1, node, 10, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := s.NodeByID(nil, node.ID)
	if got.SchedulingEligibility != structs.NodeSchedulingEligible || got.StatusUpdatedAt != 10 {
		t.Fatalf("registered node: %+v", got)
	}
	if err := s.UpdateNodeStatus(2, node.ID, structs.NodeStatusDown, 20, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.NodeByID(nil, node.ID)
	if got.Status != structs.NodeStatusDown || got.StatusUpdatedAt != 20 || got.ModifyIndex != 2 {
		t.Fatalf("down node: %+v", got)
	}
	err := s.UpdateNodeStatus(3, "nope", structs.NodeStatusDown, 30, nil)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown node: err = %v, want ErrNotFound", err)
	}
}

func TestStateStore_WatchFiresOnChange(t *testing.T) {
	s := NewStateStore()
	node := mock.Node()
	if err := s.UpsertNode(1, node, 0, nil); err != nil {
		t.Fatal(err)
	}
	ws := memdb.NewWatchSet()
	if _, err := s.AllocsByNode(ws, node.ID); err != nil {
		t.Fatal(err)
	}
	// Nothing changed: the watch times out.
	if timedOut := ws.Watch(time.After(20 * time.Millisecond)); !timedOut {
		t.Fatal("watch fired without a change")
	}
	job := mock.Job()
	go func() {
		_ = s.UpsertPlanResults(2, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{mock.Alloc(job, node, 0)}})
	}()
	if timedOut := ws.Watch(time.After(5 * time.Second)); timedOut {
		t.Fatal("watch did not fire when an alloc was placed on the node")
	}
}

func TestStateStore_SnapshotIsImmutable(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	if err := s.UpsertJob(1, job, 0, nil); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	if err := s.DeleteJob(2, job.Namespace, job.ID, nil); err != nil {
		t.Fatal(err)
	}
	if j, _ := snap.JobByID(nil, job.Namespace, job.ID); j == nil {
		t.Fatal("snapshot saw a later delete")
	}
	if j, _ := s.JobByID(nil, job.Namespace, job.ID); j != nil {
		t.Fatal("store still has the deleted job")
	}
	if idx, _ := snap.LatestIndex(); idx != 1 {
		t.Fatalf("snapshot latest index = %d, want 1", idx)
	}
}

func TestStateStore_HashFollowsContent(t *testing.T) {
	a, b := NewStateStore(), NewStateStore()
	job := mock.Job()
	node := mock.Node()
	for _, s := range []*StateStore{a, b} {
		if err := s.UpsertNode(1, node, 5, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertJob(2, job, 6, nil); err != nil {
			t.Fatal(err)
		}
	}
	ia, ha, err := a.Hash()
	if err != nil {
		t.Fatal(err)
	}
	ib, hb, _ := b.Hash()
	if ia != 2 || ib != 2 || len(ha) != len(Tables) {
		t.Fatalf("indexes %d %d, %d tables", ia, ib, len(ha))
	}
	for table := range ha {
		if ha[table] != hb[table] {
			t.Fatalf("table %s hashes differ for identical stores", table)
		}
	}
	if err := b.UpdateNodeStatus(3, node.ID, structs.NodeStatusDown, 7, nil); err != nil {
		t.Fatal(err)
	}
	_, hb, _ = b.Hash()
	if hb[TableNodes] == ha[TableNodes] || hb[TableJobs] != ha[TableJobs] {
		t.Fatal("only the changed table's hash must change")
	}
}

// A batch of plans commits in one transaction: a plan that cannot apply
// leaves the plans before it uncommitted too.
func TestStateStore_UpsertPlanResultsBatchIsAtomic(t *testing.T) {
	s := NewStateStore()
	node := mock.Node()
	job := mock.Job()
	first := mock.Alloc(job, node, 0)
	second := mock.Alloc(job, node, 1)
	good := &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{first}, UpdatedAt: 10}
	bad := &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{second}, UpdatedAt: 10,
		DeploymentUpdates: []*structs.DeploymentStatusUpdate{{DeploymentID: "no-such-deployment", Status: structs.DeploymentStatusFailed}}}
	if err := s.UpsertPlanResultsBatch(5, []*structs.ApplyPlanResultsRequest{good, bad}); err == nil {
		t.Fatal("a batch with an unknown deployment applied")
	}
	if a, _ := s.AllocByID(nil, first.ID); a != nil {
		t.Fatal("the first plan of a failed batch was committed")
	}

	third := mock.Alloc(job, node, 2)
	next := &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{third}, UpdatedAt: 11}
	if err := s.UpsertPlanResultsBatch(6, []*structs.ApplyPlanResultsRequest{good, next}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{first.ID, third.ID} {
		a, _ := s.AllocByID(nil, id)
		if a == nil || a.CreateIndex != 6 || a.Job == nil || a.Job.ID != job.ID {
			t.Fatalf("alloc %s after the batch: %+v", id, a)
		}
	}
	if idx, _ := s.Index(TableAllocs); idx != 6 {
		t.Fatalf("allocs table index %d, want 6", idx)
	}
}

// A node's allocation watch fires when the server changes one of its
// allocations, and not for client status reports or other nodes.
func TestStateStore_AllocsChangedCh(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	n1, n2 := mock.Node(), mock.Node()
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch1, ch2 := s.AllocsChangedCh(n1.ID), s.AllocsChangedCh(n2.ID)
	a := mock.Alloc(job, n1, 0)
	if err := s.UpsertPlanResultsBatch(2, []*structs.ApplyPlanResultsRequest{{Job: job, AllocsPlaced: []*structs.Allocation{a}}}); err != nil {
		t.Fatal(err)
	}
	if !closed(ch1) || closed(ch2) {
		t.Fatalf("after a placement on node 1: node 1 woken %v, node 2 woken %v", closed(ch1), closed(ch2))
	}

	ch1 = s.AllocsChangedCh(n1.ID)
	update := a.Copy()
	update.ClientStatus = structs.AllocClientStatusRunning
	if err := s.UpdateAllocsFromClient(3, []*structs.Allocation{update}, 30, nil); err != nil {
		t.Fatal(err)
	}
	if closed(ch1) {
		t.Fatal("a client's own status report woke its watch")
	}

	stop := a.Copy()
	stop.DesiredStatus = structs.AllocDesiredStatusStop
	if err := s.UpsertPlanResults(4, &structs.ApplyPlanResultsRequest{Job: job, AllocsStopped: []*structs.Allocation{stop}}); err != nil {
		t.Fatal(err)
	}
	if !closed(ch1) {
		t.Fatal("stopping the node's allocation did not wake its watch")
	}

	ch1 = s.AllocsChangedCh(n1.ID)
	if err := s.UpdateAllocsDesiredTransitions(5, map[string]*structs.DesiredTransition{a.ID: {Migrate: true}}, nil); err != nil {
		t.Fatal(err)
	}
	if !closed(ch1) {
		t.Fatal("a desired transition did not wake the node's watch")
	}
	if snap := s.Snapshot(); snap.AllocsChangedCh(n1.ID) != nil {
		t.Fatal("a snapshot hands out allocation watches")
	}
}

// A client's health report does not clear the canary flag the
// scheduler set.
func TestStateStore_ClientHealthKeepsCanary(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	node := mock.Node()
	d := &structs.Deployment{ID: structs.GenerateUUID(), JobID: job.ID, Status: structs.DeploymentStatusRunning,
		TaskGroups: map[string]*structs.DeploymentState{job.TaskGroups[0].Name: {DesiredTotal: 1, DesiredCanaries: 1}}}
	a := mock.Alloc(job, node, 0)
	a.DeploymentID = d.ID
	a.DeploymentStatus = &structs.AllocDeploymentStatus{Canary: true}
	if err := s.UpsertPlanResults(2, &structs.ApplyPlanResultsRequest{Job: job, Deployment: d, AllocsPlaced: []*structs.Allocation{a}}); err != nil {
		t.Fatal(err)
	}
	healthy := true
	update := a.Copy()
	update.ClientStatus = structs.AllocClientStatusRunning
	update.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: &healthy}
	if err := s.UpdateAllocsFromClient(3, []*structs.Allocation{update}, 30, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := s.AllocByID(nil, a.ID)
	if !got.DeploymentStatus.IsCanary() || !got.DeploymentStatus.IsHealthy() {
		t.Fatalf("deployment status after the client's report: %+v", got.DeploymentStatus)
	}
}

// AllocsByEval finds an evaluation's allocations among its job's.
func TestStateStore_AllocsByEval(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	node := mock.Node()
	e1, e2 := mock.Eval(job), mock.Eval(job)
	e2.ID = structs.GenerateUUID()
	other := mock.Job()
	e3 := mock.Eval(other)
	e3.ID = structs.GenerateUUID()
	if err := s.UpsertEvals(1, []*structs.Evaluation{e1, e2, e3}); err != nil {
		t.Fatal(err)
	}
	a1, a2, a3 := mock.Alloc(job, node, 0), mock.Alloc(job, node, 1), mock.Alloc(other, node, 0)
	a1.EvalID, a2.EvalID, a3.EvalID = e1.ID, e2.ID, e1.ID // a3: another job's alloc claiming e1
	for _, req := range []*structs.ApplyPlanResultsRequest{
		{Job: job, AllocsPlaced: []*structs.Allocation{a1, a2}},
		{Job: other, AllocsPlaced: []*structs.Allocation{a3}},
	} {
		if err := s.UpsertPlanResults(2, req); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.AllocsByEval(nil, e1.ID)
	if err != nil || len(got) != 1 || got[0].ID != a1.ID {
		t.Fatalf("allocs of e1: %v %v", got, err)
	}
	if got, _ := s.AllocsByEval(nil, "no-such-eval"); len(got) != 0 {
		t.Fatalf("allocs of an unknown eval: %v", got)
	}
}

func TestStateStore_JobStatusFindsTheLiveEvalAmongMany(t *testing.T) {
	s := NewStateStore()
	job := mock.Job()
	job.TaskGroups[0].Count = 0
	if err := s.UpsertJob(1, job, 0, nil); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		j, _ := s.JobByID(nil, job.Namespace, job.ID)
		return j.Status
	}
	var evals []*structs.Evaluation
	for i := 0; i < 200; i++ {
		e := mock.Eval(job)
		e.Status = structs.EvalStatusComplete
		evals = append(evals, e)
	}
	blocked := mock.Eval(job)
	blocked.Status = structs.EvalStatusBlocked
	evals = append(evals, blocked)
	if err := s.UpsertEvals(2, evals); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != structs.JobStatusPending {
		t.Fatalf("one blocked eval among 200 complete ones: %s, want pending", st)
	}
	canceled := blocked.Copy()
	canceled.Status = structs.EvalStatusCanceled
	if err := s.UpsertEvals(3, []*structs.Evaluation{canceled}); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != structs.JobStatusDead {
		t.Fatalf("every eval terminal, nothing running: %s, want dead", st)
	}
}
