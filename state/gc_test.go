package state

import (
	"reflect"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// gcFixture is a store with a node and one job that ran two
// allocations through an evaluation and a deployment.
type gcFixture struct {
	s      *StateStore
	node   *structs.Node
	job    *structs.Job
	eval   *structs.Evaluation
	dep    *structs.Deployment
	allocs []*structs.Allocation
	index  uint64
}

func (f *gcFixture) next() uint64 {
	f.index++
	return f.index
}

// newGCFixture registers job (a service job with a service, so its
// allocations have instances while they run), places two allocations
// with a deployment and reports them running.
func newGCFixture(t *testing.T, job *structs.Job) *gcFixture {
	t.Helper()
	f := &gcFixture{s: NewStateStore(), node: mock.Node(), job: job}
	if err := f.s.UpsertNode(f.next(), f.node, 1, nil); err != nil {
		t.Fatal(err)
	}
	f.eval = mock.Eval(job)
	if err := f.s.UpsertJob(f.next(), job, 2, f.eval); err != nil {
		t.Fatal(err)
	}
	f.dep = &structs.Deployment{ID: structs.GenerateUUID(), JobID: job.ID, Namespace: structs.DefaultNamespace,
		Status: structs.DeploymentStatusRunning, TaskGroups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 2}}}
	for i := 0; i < 2; i++ {
		a := mock.Alloc(job, f.node, i)
		a.EvalID = f.eval.ID
		a.DeploymentID = f.dep.ID
		a.Namespace = structs.DefaultNamespace
		a.ClientStatus = structs.AllocClientStatusPending
		f.allocs = append(f.allocs, a)
	}
	if err := f.s.UpsertPlanResults(f.next(), &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: f.allocs, Deployment: f.dep, UpdatedAt: 3}); err != nil {
		t.Fatal(err)
	}
	f.report(t, structs.AllocClientStatusRunning, f.allocIDs()...)
	done := f.eval.Copy()
	done.Status = structs.EvalStatusComplete
	if err := f.s.UpsertEvals(f.next(), []*structs.Evaluation{done}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *gcFixture) allocIDs() []string {
	var ids []string
	for _, a := range f.allocs {
		ids = append(ids, a.ID)
	}
	return ids
}

func (f *gcFixture) report(t *testing.T, status string, ids ...string) {
	t.Helper()
	var updates []*structs.Allocation
	for _, id := range ids {
		updates = append(updates, &structs.Allocation{ID: id, ClientStatus: status})
	}
	if err := f.s.UpdateAllocsFromClient(f.next(), updates, 4, nil); err != nil {
		t.Fatal(err)
	}
}

// stopJob stops the job, its allocations (reported complete) and its
// deployment (cancelled), as the scheduler and the clients would.
func (f *gcFixture) stopJob(t *testing.T) {
	t.Helper()
	stopped := f.job.Copy()
	stopped.Stop = true
	stopEval := mock.Eval(f.job)
	stopEval.Status = structs.EvalStatusComplete
	if err := f.s.UpsertJob(f.next(), stopped, 5, stopEval); err != nil {
		t.Fatal(err)
	}
	var stops []*structs.Allocation
	for _, a := range f.allocs {
		stops = append(stops, &structs.Allocation{ID: a.ID, DesiredStatus: structs.AllocDesiredStatusStop})
	}
	if err := f.s.UpsertPlanResults(f.next(), &structs.ApplyPlanResultsRequest{Job: stopped, AllocsStopped: stops, UpdatedAt: 6,
		DeploymentUpdates: []*structs.DeploymentStatusUpdate{{DeploymentID: f.dep.ID, Status: structs.DeploymentStatusCancelled}}}); err != nil {
		t.Fatal(err)
	}
	f.report(t, structs.AllocClientStatusComplete, f.allocIDs()...)
}

// rows lists the IDs of every eval, alloc and deployment of the job.
func (f *gcFixture) rows(t *testing.T) (evals, allocs, deps []string) {
	t.Helper()
	es, _ := f.s.EvalsByJob(nil, f.job.Namespace, f.job.ID)
	for _, e := range es {
		evals = append(evals, e.ID)
	}
	as, _ := f.s.AllocsByJob(nil, f.job.Namespace, f.job.ID)
	for _, a := range as {
		allocs = append(allocs, a.ID)
	}
	ds, _ := f.s.DeploymentsByJobID(nil, f.job.Namespace, f.job.ID)
	for _, d := range ds {
		deps = append(deps, d.ID)
	}
	return evals, allocs, deps
}

func (f *gcFixture) gc(t *testing.T, req *structs.GCBatchRequest) *structs.GCBatchResult {
	t.Helper()
	res, err := f.s.GCBatch(f.next(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// rebuilt restores a new store from s's primary tables, which derives
// the allocation rows by node and job, quota usage and service
// instances afresh.
func rebuilt(t *testing.T, s *StateStore) *StateStore {
	t.Helper()
	out := NewStateStore()
	r := out.Restore()
	jobs, _ := s.Jobs(nil)
	for _, j := range jobs {
		must(t, r.JobRestore(j))
	}
	versions, _ := s.JobVersions(nil)
	for _, v := range versions {
		must(t, r.JobVersionRestore(v))
	}
	nodes, _ := s.Nodes(nil)
	for _, n := range nodes {
		must(t, r.NodeRestore(n))
	}
	allocs, _ := s.Allocs(nil)
	for _, a := range allocs {
		must(t, r.AllocRestore(a))
	}
	evals, _ := s.Evals(nil)
	for _, e := range evals {
		must(t, r.EvalRestore(e))
	}
	deps, _ := s.Deployments(nil)
	for _, d := range deps {
		must(t, r.DeploymentRestore(d))
	}
	must(t, r.Commit())
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkDerived fails unless s's derived rows are what a rebuild derives.
func checkDerived(t *testing.T, s *StateStore) {
	t.Helper()
	fresh := rebuilt(t, s)
	got, _ := s.AllRowCounts()
	want, _ := fresh.AllRowCounts()
	for _, table := range []string{tableNodeAllocs, tableJobAllocs, TableServiceInstances} {
		if got[table] != want[table] {
			t.Errorf("%s: %d rows, a rebuild has %d", table, got[table], want[table])
		}
	}
	nodes, _ := s.Nodes(nil)
	for _, n := range nodes {
		a, _ := s.AllocsByNode(nil, n.ID)
		b, _ := fresh.AllocsByNode(nil, n.ID)
		if len(a) != len(b) {
			t.Errorf("node %s: %d allocations listed, a rebuild lists %d", n.ID, len(a), len(b))
		}
		if ua, ub := mustUsage(t, s), mustUsage(t, fresh); ua != ub {
			t.Errorf("quota usage %+v, a rebuild has %+v", ua, ub)
		}
	}
}

func mustUsage(t *testing.T, s *StateStore) structs.QuotaLimits {
	u, err := s.NamespaceUsage(nil, structs.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestGCBatch_StoppedJobGoesWithEverything(t *testing.T) {
	job := serviceJob(false, 0)
	f := newGCFixture(t, job)
	if n, _ := f.s.ServiceInstancesByName(nil, "", "web"); len(n) != 2 {
		t.Fatalf("%d instances while running, want 2", len(n))
	}
	f.stopJob(t)
	watch := f.s.AllocsChangedCh(f.node.ID)
	evals, allocs, deps := f.rows(t)
	if len(evals) != 2 || len(allocs) != 2 || len(deps) != 1 {
		t.Fatalf("before: %d evals, %d allocs, %d deployments", len(evals), len(allocs), len(deps))
	}
	res := f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{
		JobID: job.ID, Purge: true, Evals: evals, Allocs: allocs, Deployments: deps,
	}}})
	want := structs.GCCounts{Jobs: 1, JobVersions: 2, Evals: 2, Allocs: 2, Deployments: 1}
	if res.Deleted != want || res.Skipped != (structs.GCCounts{}) {
		t.Fatalf("deleted %+v skipped %+v, want deleted %+v", res.Deleted, res.Skipped, want)
	}
	if j, _ := f.s.JobByID(nil, job.Namespace, job.ID); j != nil {
		t.Fatal("the job is still there")
	}
	if v, _ := f.s.JobVersionsByID(nil, job.Namespace, job.ID); len(v) != 0 {
		t.Fatalf("%d versions left", len(v))
	}
	if e, a, d := f.rows(t); len(e)+len(a)+len(d) != 0 {
		t.Fatalf("left: %d evals, %d allocs, %d deployments", len(e), len(a), len(d))
	}
	if a, _ := f.s.AllocsByNode(nil, f.node.ID); len(a) != 0 {
		t.Fatalf("the node still lists %d allocations", len(a))
	}
	if idx, _ := f.s.AllocsGCIndex(); idx != f.index {
		t.Fatalf("allocs_gc index %d, want %d", idx, f.index)
	}
	select {
	case <-watch:
	default:
		t.Fatal("the node's allocation watch did not fire")
	}
	rows, _ := f.s.AllRowCounts()
	for _, table := range []string{TableJobs, TableJobVersion, TableAllocs, TableEvals, TableDeployment, tableNodeAllocs, tableJobAllocs, TableServiceInstances} {
		if rows[table] != 0 {
			t.Errorf("%s has %d rows left", table, rows[table])
		}
	}
	checkDerived(t, f.s)
}

func TestGCBatch_NotCollectableIsLeftAlone(t *testing.T) {
	job := serviceJob(false, 0)
	f := newGCFixture(t, job)
	pending := mock.Eval(job)
	if err := f.s.UpsertEvals(f.next(), []*structs.Evaluation{pending}); err != nil {
		t.Fatal(err)
	}
	evals, allocs, deps := f.rows(t)
	_, before, _ := f.s.Hash()
	beforeIdx, _ := f.s.LatestIndex()
	// Everything of a running job, its purge, its current version, and
	// a ready node.
	res := f.gc(t, &structs.GCBatchRequest{
		Jobs:  []*structs.GCJobRequest{{JobID: job.ID, Purge: true, Evals: []string{pending.ID}, Allocs: allocs, Deployments: deps, Versions: []uint64{0}}},
		Nodes: []string{f.node.ID},
	})
	if res.Deleted != (structs.GCCounts{}) {
		t.Fatalf("deleted %+v of a running job", res.Deleted)
	}
	if want := (structs.GCCounts{Jobs: 1, JobVersions: 1, Evals: 1, Allocs: 2, Deployments: 1, Nodes: 1}); res.Skipped != want {
		t.Fatalf("skipped %+v, want %+v", res.Skipped, want)
	}
	_, after, _ := f.s.Hash()
	if !reflect.DeepEqual(before, after) {
		t.Fatal("the state changed")
	}
	if idx, _ := f.s.LatestIndex(); idx != beforeIdx {
		t.Fatalf("an index moved to %d", idx)
	}
	if e, a, d := f.rows(t); len(e) != len(evals) || len(a) != 2 || len(d) != 1 {
		t.Fatalf("left: %d evals, %d allocs, %d deployments", len(e), len(a), len(d))
	}
}

func TestGCBatch_RowsOfAnotherJobAreSkipped(t *testing.T) {
	f := newGCFixture(t, serviceJob(false, 0))
	f.stopJob(t)
	evals, allocs, deps := f.rows(t)
	// Named under a job that does not exist (whose rows would all be
	// collectable), not under their own.
	res := f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: "other", Evals: evals, Allocs: allocs, Deployments: deps}}})
	if res.Deleted.Total() != 0 {
		t.Fatalf("deleted %+v through another job's group", res.Deleted)
	}
	if e, a, d := f.rows(t); len(e) != 2 || len(a) != 2 || len(d) != 1 {
		t.Fatalf("left: %d evals, %d allocs, %d deployments", len(e), len(a), len(d))
	}
}

// A batch job that finished (dead, not stopped): its completed
// allocations are its results, which the scheduler counts. Without a
// purge they are kept; with one, the job goes with them.
func TestGCBatch_FinishedAllocsOfALiveJob(t *testing.T) {
	job := mock.BatchJob()
	f := newGCFixture(t, job)
	f.report(t, structs.AllocClientStatusComplete, f.allocIDs()...)
	if j, _ := f.s.JobByID(nil, job.Namespace, job.ID); j.Status != structs.JobStatusDead {
		t.Fatalf("job status %s, want dead", j.Status)
	}
	evals, allocs, _ := f.rows(t)
	res := f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: job.ID, Allocs: allocs}}})
	if res.Deleted.Allocs != 0 || res.Skipped.Allocs != 2 {
		t.Fatalf("without a purge: deleted %+v skipped %+v", res.Deleted, res.Skipped)
	}
	// The deployment is still running: the job is not done, and its
	// allocations are those of a live job.
	res = f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: job.ID, Purge: true, Allocs: allocs}}})
	if res.Deleted.Total() != 0 || res.Skipped != (structs.GCCounts{Jobs: 1, Allocs: 2}) {
		t.Fatalf("with a running deployment: deleted %+v skipped %+v", res.Deleted, res.Skipped)
	}
	if err := f.s.UpdateDeploymentStatus(f.next(), &structs.DeploymentStatusUpdateRequest{
		DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: f.dep.ID, Status: structs.DeploymentStatusSuccessful}}); err != nil {
		t.Fatal(err)
	}
	// Over two entries, as the collector cuts a large job: the first
	// deletes the allocations, the second the rest and the job.
	res = f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: job.ID, Purge: true, Allocs: allocs}}})
	if res.Deleted != (structs.GCCounts{Allocs: 2}) || res.Skipped != (structs.GCCounts{}) {
		t.Fatalf("first part: deleted %+v skipped %+v", res.Deleted, res.Skipped)
	}
	if j, _ := f.s.JobByID(nil, job.Namespace, job.ID); j == nil || j.Status != structs.JobStatusDead {
		t.Fatalf("between the parts the job is %+v, want it dead", j)
	}
	res = f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: job.ID, Purge: true, Evals: evals, Deployments: []string{f.dep.ID}}}})
	if want := (structs.GCCounts{Jobs: 1, JobVersions: 1, Evals: 1, Deployments: 1}); res.Deleted != want {
		t.Fatalf("last part: deleted %+v, want %+v", res.Deleted, want)
	}
	checkDerived(t, f.s)
}

func TestGCBatch_LiveJobKeepsItsNewestDeploymentAndCurrentVersion(t *testing.T) {
	job := serviceJob(false, 0)
	f := newGCFixture(t, job)
	// A second version with its own deployment; the first is finished.
	v1 := job.Copy()
	v1.TaskGroups[0].Count = 5
	if err := f.s.UpsertJob(f.next(), v1, 10, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.s.UpdateDeploymentStatus(f.next(), &structs.DeploymentStatusUpdateRequest{
		DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: f.dep.ID, Status: structs.DeploymentStatusSuccessful}}); err != nil {
		t.Fatal(err)
	}
	res := f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: job.ID, Deployments: []string{f.dep.ID}, Versions: []uint64{0, 1}}}})
	if res.Deleted != (structs.GCCounts{JobVersions: 1}) || res.Skipped != (structs.GCCounts{Deployments: 1, JobVersions: 1}) {
		t.Fatalf("deleted %+v skipped %+v; want version 0 deleted, the newest deployment and version 1 kept", res.Deleted, res.Skipped)
	}
	newer := &structs.Deployment{ID: structs.GenerateUUID(), JobID: job.ID, Namespace: structs.DefaultNamespace, JobVersion: 1, Status: structs.DeploymentStatusRunning,
		TaskGroups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 5}}}
	if err := f.s.UpsertDeployment(f.next(), newer); err != nil {
		t.Fatal(err)
	}
	res = f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: job.ID, Deployments: []string{f.dep.ID, newer.ID}}}})
	if res.Deleted != (structs.GCCounts{Deployments: 1}) || res.Skipped != (structs.GCCounts{Deployments: 1}) {
		t.Fatalf("deleted %+v skipped %+v; want the old deployment deleted, the running one kept", res.Deleted, res.Skipped)
	}
	if d, _ := f.s.DeploymentByID(nil, f.dep.ID); d != nil {
		t.Fatal("the old deployment is still there")
	}
	if j, _ := f.s.JobByID(nil, job.Namespace, job.ID); j.Status != structs.JobStatusRunning {
		t.Fatalf("job status %s", j.Status)
	}
}

func TestGCBatch_Nodes(t *testing.T) {
	f := newGCFixture(t, serviceJob(false, 0))
	down := mock.Node()
	down.Status = structs.NodeStatusDown
	if err := f.s.UpsertNode(f.next(), down, 7, nil); err != nil {
		t.Fatal(err)
	}
	busy := mock.Node()
	if err := f.s.UpsertNode(f.next(), busy, 7, nil); err != nil {
		t.Fatal(err)
	}
	// A down node that still lists a running allocation.
	a := mock.Alloc(f.job, busy, 5)
	a.Namespace = structs.DefaultNamespace
	if err := f.s.UpsertPlanResults(f.next(), &structs.ApplyPlanResultsRequest{Job: f.job, AllocsPlaced: []*structs.Allocation{a}}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.UpdateNodeStatus(f.next(), busy.ID, structs.NodeStatusDown, 8, nil); err != nil {
		t.Fatal(err)
	}
	res := f.gc(t, &structs.GCBatchRequest{Nodes: []string{down.ID, busy.ID, f.node.ID, "nope"}})
	if res.Deleted != (structs.GCCounts{Nodes: 1}) || res.Skipped != (structs.GCCounts{Nodes: 3}) {
		t.Fatalf("deleted %+v skipped %+v", res.Deleted, res.Skipped)
	}
	if n, _ := f.s.NodeByID(nil, down.ID); n != nil {
		t.Fatal("the down node is still there")
	}
	for _, id := range []string{busy.ID, f.node.ID} {
		if n, _ := f.s.NodeByID(nil, id); n == nil {
			t.Fatalf("node %s was deleted", id)
		}
	}
}

// A purge of a job whose rows are not all named leaves the job, with
// the rows it still has, and says nothing is wrong: a later entry of
// the same collection names them.
func TestGCBatch_PurgeWaitsForTheLastRows(t *testing.T) {
	job := serviceJob(false, 0)
	f := newGCFixture(t, job)
	f.stopJob(t)
	evals, allocs, deps := f.rows(t)
	res := f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: job.ID, Purge: true, Allocs: allocs, Deployments: deps, Evals: evals[:1]}}})
	if res.Deleted.Jobs != 0 || res.Skipped.Jobs != 0 || res.Deleted.Evals != 1 {
		t.Fatalf("deleted %+v skipped %+v", res.Deleted, res.Skipped)
	}
	if j, _ := f.s.JobByID(nil, job.Namespace, job.ID); j == nil || j.Status != structs.JobStatusDead {
		t.Fatalf("job %+v, want it kept and dead", j)
	}
	checkDerived(t, f.s)
}

// The event stream sees what a collection deletes, at its index.
func TestGCBatch_DeletionsAreEvents(t *testing.T) {
	job := serviceJob(false, 0)
	f := newGCFixture(t, job)
	f.stopJob(t)
	evals, allocs, deps := f.rows(t)
	sink := &recordSink{}
	f.s.SetEventSink(sink)
	f.gc(t, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: job.ID, Purge: true, Evals: evals, Allocs: allocs, Deployments: deps}}})
	if len(sink.batches) != 1 || sink.batches[0].Index != f.index {
		t.Fatalf("%d batches, want one at index %d", len(sink.batches), f.index)
	}
	count := map[string]int{}
	for _, e := range sink.batches[0].Events {
		count[e.Type]++
	}
	want := map[string]int{"JobDeleted": 1, "EvaluationDeleted": 2, "AllocationDeleted": 2, "DeploymentDeleted": 1}
	if !reflect.DeepEqual(count, want) {
		t.Fatalf("events %v, want %v", count, want)
	}
}
