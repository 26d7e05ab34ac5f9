package gc

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// The collector is tested against a real state store: the fake Raft
// applies each entry with state.GCBatch, as every server's FSM does, so
// the leader's choices and the FSM's checks are exercised together.

// t0 is the start of every test's clock.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// world is a state store written at chosen times.
type world struct {
	t     *testing.T
	s     *state.StateStore
	index uint64
	node  *structs.Node
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, s: state.NewStateStore(), node: mock.Node()}
	w.must(w.s.UpsertNode(w.next(), w.node, t0.UnixNano(), nil))
	return w
}

func (w *world) next() uint64 {
	w.index++
	return w.index
}

func (w *world) must(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

// run registers job at, places count allocations with one evaluation
// (complete) and reports them running; it returns the evaluation and
// the allocations.
func (w *world) run(job *structs.Job, count int, at time.Time) (*structs.Evaluation, []*structs.Allocation) {
	w.t.Helper()
	e := mock.Eval(job)
	e.Status = structs.EvalStatusComplete
	e.CreateTime, e.ModifyTime = at.UnixNano(), at.UnixNano()
	w.must(w.s.UpsertJob(w.next(), job, at.UnixNano(), e))
	var allocs []*structs.Allocation
	for i := 0; i < count; i++ {
		a := mock.Alloc(job, w.node, i)
		a.EvalID = e.ID
		a.Namespace = structs.DefaultNamespace
		a.ClientStatus = structs.AllocClientStatusRunning
		allocs = append(allocs, a)
	}
	if count > 0 {
		w.must(w.s.UpsertPlanResults(w.next(), &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: allocs, EvalID: e.ID, UpdatedAt: at.UnixNano()}))
	}
	return e, allocs
}

// stop stops job at: a complete evaluation, its allocations stopped and
// reported complete.
func (w *world) stop(job *structs.Job, allocs []*structs.Allocation, at time.Time) *structs.Evaluation {
	w.t.Helper()
	stopped := job.Copy()
	stopped.Stop = true
	e := mock.Eval(job)
	e.Status = structs.EvalStatusComplete
	e.CreateTime, e.ModifyTime = at.UnixNano(), at.UnixNano()
	w.must(w.s.UpsertJob(w.next(), stopped, at.UnixNano(), e))
	var stops, reports []*structs.Allocation
	for _, a := range allocs {
		stops = append(stops, &structs.Allocation{ID: a.ID, DesiredStatus: structs.AllocDesiredStatusStop})
		reports = append(reports, &structs.Allocation{ID: a.ID, ClientStatus: structs.AllocClientStatusComplete})
	}
	if len(allocs) > 0 {
		w.must(w.s.UpsertPlanResults(w.next(), &structs.ApplyPlanResultsRequest{Job: stopped, AllocsStopped: stops, UpdatedAt: at.UnixNano()}))
		w.must(w.s.UpdateAllocsFromClient(w.next(), reports, at.UnixNano(), nil))
	}
	return e
}

// raft applies entries to the world's store, recording them.
type raft struct {
	w       *world
	entries []*structs.GCBatchRequest
	// before, when set, runs before each entry applies.
	before func(n int)
	fail   error
}

func (r *raft) CollectBatch(req *structs.GCBatchRequest) (*structs.GCBatchResult, uint64, error) {
	if r.fail != nil {
		return nil, 0, r.fail
	}
	if r.before != nil {
		r.before(len(r.entries))
	}
	if err := req.CheckShape(); err != nil {
		return nil, 0, err
	}
	r.entries = append(r.entries, req)
	index := r.w.next()
	res, err := r.w.s.GCBatch(index, req)
	return res, index, err
}

// collector returns a collector over w at *now with settings s.
func (w *world) collector(now *time.Time, s Settings, maxBatch int) (*Collector, *raft) {
	r := &raft{w: w}
	return New(Config{
		State:    func() State { return w.s.Snapshot() },
		Raft:     r,
		Now:      func() time.Time { return *now },
		Settings: s,
		MaxBatch: maxBatch,
	}), r
}

func (w *world) counts() map[string]int {
	w.t.Helper()
	c, err := w.s.AllRowCounts()
	w.must(err)
	return c
}

func (w *world) job(job *structs.Job) *structs.Job {
	j, err := w.s.JobByID(nil, job.Namespace, job.ID)
	w.must(err)
	return j
}

func collect(t *testing.T, c *Collector, force bool) *structs.SystemGCResponse {
	t.Helper()
	resp, err := c.Collect(force, false)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestCollector_Thresholds(t *testing.T) {
	w := newWorld(t)
	now := t0
	c, _ := w.collector(&now, DefaultSettings(), 0)

	stopped := mock.Job()
	e1, allocs := w.run(stopped, 2, t0)
	stopEval := w.stop(stopped, allocs, t0.Add(10*time.Minute))
	live := mock.Job()
	w.run(live, 1, t0)

	// 30 minutes on: nothing is an hour old.
	now = t0.Add(40 * time.Minute)
	if resp := collect(t, c, false); resp.Chosen.Total() != 0 {
		t.Fatalf("at 40m: chose %+v", resp.Chosen)
	}
	// 2 hours on: the stopped job's first evaluation is old enough and
	// goes with its allocations; the job keeps its newest evaluation and
	// waits for the job threshold; the live job keeps everything.
	now = t0.Add(2 * time.Hour)
	resp := collect(t, c, false)
	if want := (structs.GCCounts{Evals: 1, Allocs: 2}); resp.Deleted != want || resp.Chosen != want {
		t.Fatalf("at 2h: chose %+v deleted %+v, want %+v", resp.Chosen, resp.Deleted, want)
	}
	if e, _ := w.s.EvalByID(nil, e1.ID); e != nil {
		t.Fatal("the old evaluation is still there")
	}
	if e, _ := w.s.EvalByID(nil, stopEval.ID); e == nil {
		t.Fatal("the stopped job's newest evaluation went")
	}
	if j := w.job(stopped); j == nil || j.Status != structs.JobStatusDead {
		t.Fatalf("stopped job %+v, want it kept, dead", j)
	}
	// 5 hours on: the stopped job goes whole.
	now = t0.Add(5 * time.Hour)
	resp = collect(t, c, false)
	if want := (structs.GCCounts{Jobs: 1, JobVersions: 2, Evals: 1}); resp.Deleted != want {
		t.Fatalf("at 5h: deleted %+v, want %+v", resp.Deleted, want)
	}
	if w.job(stopped) != nil {
		t.Fatal("the stopped job is still there")
	}
	// Days on, the live job is as it was.
	now = t0.Add(100 * time.Hour)
	if resp := collect(t, c, false); resp.Chosen.Total() != 0 {
		t.Fatalf("chose %+v of a live job", resp.Chosen)
	}
	if got := w.counts(); got[state.TableAllocs] != 1 || got[state.TableEvals] != 1 || got[state.TableJobs] != 1 {
		t.Fatalf("rows %v, want the live job's", got)
	}
}

func TestCollector_ForceIgnoresAgesNotLiveness(t *testing.T) {
	w := newWorld(t)
	now := t0.Add(time.Minute)
	c, _ := w.collector(&now, DefaultSettings(), 0)
	stopped := mock.Job()
	_, allocs := w.run(stopped, 3, t0)
	w.stop(stopped, allocs, t0)
	live := mock.Job()
	w.run(live, 2, t0)
	if resp := collect(t, c, false); resp.Chosen.Total() != 0 {
		t.Fatalf("a minute on, without force: chose %+v", resp.Chosen)
	}
	resp := collect(t, c, true)
	if want := (structs.GCCounts{Jobs: 1, JobVersions: 2, Evals: 2, Allocs: 3}); resp.Deleted != want || resp.Skipped != (structs.GCCounts{}) {
		t.Fatalf("forced: deleted %+v skipped %+v, want %+v", resp.Deleted, resp.Skipped, want)
	}
	if j := w.job(live); j == nil || j.Status != structs.JobStatusRunning {
		t.Fatalf("live job %+v", j)
	}
	if a, _ := w.s.AllocsByJob(nil, live.Namespace, live.ID); len(a) != 2 {
		t.Fatalf("live job has %d allocations, want 2", len(a))
	}
}

func TestCollector_DryRunWritesNothing(t *testing.T) {
	w := newWorld(t)
	now := t0
	c, r := w.collector(&now, DefaultSettings(), 0)
	stopped := mock.Job()
	e1, allocs := w.run(stopped, 2, t0)
	e2 := w.stop(stopped, allocs, t0)
	down := mock.Node()
	down.Status = structs.NodeStatusDown
	w.must(w.s.UpsertNode(w.next(), down, t0.UnixNano(), nil))
	_, before, _ := w.s.Hash()

	resp, err := c.Collect(true, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.entries) != 0 {
		t.Fatalf("a dry run wrote %d entries", len(r.entries))
	}
	if _, after, _ := w.s.Hash(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("a dry run changed the state")
	}
	if !resp.DryRun || resp.Deleted.Total() != 0 {
		t.Fatalf("report %+v", resp)
	}
	if want := (structs.GCCounts{Jobs: 1, JobVersions: 2, Evals: 2, Allocs: 2, Nodes: 1}); resp.Chosen != want {
		t.Fatalf("chose %+v, want %+v", resp.Chosen, want)
	}
	o := resp.Objects
	wantEvals := []string{e1.ID, e2.ID}
	sort.Strings(wantEvals)
	gotEvals := append([]string(nil), o.Evals...)
	sort.Strings(gotEvals)
	key := structs.NewNamespacedID(stopped.Namespace, stopped.ID).String()
	if fmt.Sprint(gotEvals) != fmt.Sprint(wantEvals) || len(o.Allocs) != 2 || fmt.Sprint(o.Jobs) != fmt.Sprint([]string{key}) ||
		fmt.Sprint(o.Nodes) != fmt.Sprint([]string{down.ID}) || fmt.Sprint(o.JobVersions) != fmt.Sprint([]string{key + "@1", key + "@0"}) {
		t.Fatalf("listed %+v", o)
	}
}

// Of a live job's finished allocations, the newest TerminalAllocs stay
// whatever their age; older collectable ones go. A failed allocation
// nothing replaced is never collectable while its job lives.
func TestCollector_TerminalAllocCap(t *testing.T) {
	w := newWorld(t)
	now := t0.Add(time.Minute)
	s := DefaultSettings()
	s.TerminalAllocs = 3
	c, _ := w.collector(&now, s, 0)
	job := mock.Job()
	job.TaskGroups[0].Count = 1
	_, allocs := w.run(job, 1, t0)
	prev := allocs[0]
	var replaced []string
	for i := 0; i < 8; i++ {
		// prev fails and is replaced by next, in one plan.
		w.must(w.s.UpdateAllocsFromClient(w.next(), []*structs.Allocation{{ID: prev.ID, ClientStatus: structs.AllocClientStatusFailed}}, t0.UnixNano(), nil))
		next := mock.Alloc(job, w.node, 0)
		next.Namespace = structs.DefaultNamespace
		next.PreviousAllocation = prev.ID
		w.must(w.s.UpsertPlanResults(w.next(), &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{next}, UpdatedAt: t0.UnixNano()}))
		replaced = append(replaced, prev.ID)
		prev = next
	}
	// The last one fails too; nothing replaces it.
	w.must(w.s.UpdateAllocsFromClient(w.next(), []*structs.Allocation{{ID: prev.ID, ClientStatus: structs.AllocClientStatusFailed}}, t0.UnixNano(), nil))

	resp := collect(t, c, false)
	// 9 finished: the newest 3 stay (the unreplaced one among them);
	// the 6 oldest replaced ones go.
	if resp.Deleted.Allocs != 6 {
		t.Fatalf("deleted %+v, want 6 allocations", resp.Deleted)
	}
	for i, id := range replaced {
		a, _ := w.s.AllocByID(nil, id)
		if gone := a == nil; gone != (i < 6) {
			t.Fatalf("replaced allocation %d: gone %t", i, gone)
		}
	}
	if a, _ := w.s.AllocByID(nil, prev.ID); a == nil {
		t.Fatal("the unreplaced failed allocation went")
	}
	// With a cap of 1 the unreplaced failure still stays: the scheduler
	// counts it.
	s.TerminalAllocs = 1
	c, _ = w.collector(&now, s, 0)
	collect(t, c, false)
	if a, _ := w.s.AllocByID(nil, prev.ID); a == nil {
		t.Fatal("the unreplaced failed allocation went under a cap of 1")
	}
	if a, _ := w.s.AllocsByJob(nil, job.Namespace, job.ID); len(a) != 1 {
		t.Fatalf("%d allocations left, want the unreplaced one", len(a))
	}
}

func TestCollector_JobVersionsCap(t *testing.T) {
	w := newWorld(t)
	now := t0
	s := DefaultSettings()
	s.JobVersions = 2
	c, _ := w.collector(&now, s, 0)
	job := mock.Job()
	for i := 0; i < 5; i++ {
		j := job.Copy()
		j.Meta = map[string]string{"v": fmt.Sprint(i)}
		w.run(j, 0, t0)
	}
	resp := collect(t, c, false)
	if resp.Deleted.JobVersions != 3 {
		t.Fatalf("deleted %+v, want 3 versions", resp.Deleted)
	}
	vs, _ := w.s.JobVersionsByID(nil, job.Namespace, job.ID)
	if len(vs) != 2 || vs[0].Version != 4 || vs[1].Version != 3 {
		t.Fatalf("kept versions %d", len(vs))
	}
}

func TestCollector_BatchEvaluationsWaitLonger(t *testing.T) {
	w := newWorld(t)
	now := t0
	c, _ := w.collector(&now, DefaultSettings(), 0)
	job := mock.BatchJob()
	job.TaskGroups[0].Count = 1
	old, allocs := w.run(job, 1, t0)
	// The first allocation failed and was replaced; the replacement
	// runs, with a newer evaluation.
	w.must(w.s.UpdateAllocsFromClient(w.next(), []*structs.Allocation{{ID: allocs[0].ID, ClientStatus: structs.AllocClientStatusFailed}}, t0.UnixNano(), nil))
	e2 := mock.Eval(job)
	e2.Status = structs.EvalStatusComplete
	e2.ModifyTime = t0.UnixNano()
	next := mock.Alloc(job, w.node, 0)
	next.Namespace = structs.DefaultNamespace
	next.EvalID = e2.ID
	next.PreviousAllocation = allocs[0].ID
	w.must(w.s.UpsertPlanResults(w.next(), &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{next}, Evals: []*structs.Evaluation{e2}, UpdatedAt: t0.UnixNano()}))

	now = t0.Add(2 * time.Hour)
	if resp := collect(t, c, false); resp.Chosen.Total() != 0 {
		t.Fatalf("at 2h a batch job lost %+v", resp.Chosen)
	}
	now = t0.Add(25 * time.Hour)
	resp := collect(t, c, false)
	if want := (structs.GCCounts{Evals: 1, Allocs: 1}); resp.Deleted != want {
		t.Fatalf("at 25h deleted %+v, want %+v", resp.Deleted, want)
	}
	if e, _ := w.s.EvalByID(nil, old.ID); e != nil {
		t.Fatal("the old batch evaluation is still there")
	}
	if a, _ := w.s.AllocByID(nil, next.ID); a == nil {
		t.Fatal("the running allocation went")
	}
}

func TestCollector_DownNodes(t *testing.T) {
	w := newWorld(t)
	now := t0
	c, _ := w.collector(&now, DefaultSettings(), 0)
	add := func(downAt time.Time) *structs.Node {
		n := mock.Node()
		w.must(w.s.UpsertNode(w.next(), n, t0.UnixNano(), nil))
		w.must(w.s.UpdateNodeStatus(w.next(), n.ID, structs.NodeStatusDown, downAt.UnixNano(), nil))
		return n
	}
	old := add(t0)
	recent := add(t0.Add(2 * time.Hour))
	busy := add(t0)
	job := mock.Job()
	a := mock.Alloc(job, busy, 0)
	a.Namespace = structs.DefaultNamespace
	w.must(w.s.UpsertJob(w.next(), job, 0, nil))
	w.must(w.s.UpsertPlanResults(w.next(), &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{a}}))

	now = t0.Add(25 * time.Hour)
	resp := collect(t, c, false)
	if resp.Deleted.Nodes != 1 {
		t.Fatalf("deleted %+v, want one node", resp.Deleted)
	}
	for _, x := range []struct {
		n    *structs.Node
		gone bool
	}{{old, true}, {recent, false}, {busy, false}, {w.node, false}} {
		n, _ := w.s.NodeByID(nil, x.n.ID)
		if (n == nil) != x.gone {
			t.Fatalf("node %s: gone %t, want %t", x.n.ID, n == nil, x.gone)
		}
	}
}

// A job with more rows than fit in one entry goes over several, none
// larger than the bound; the job stays dead until the last one deletes
// it.
func TestCollector_LargeJobInSeveralEntries(t *testing.T) {
	w := newWorld(t)
	now := t0
	c, r := w.collector(&now, DefaultSettings(), 10)
	job := mock.BatchJob()
	job.TaskGroups[0].Count = 23
	_, allocs := w.run(job, 23, t0)
	var done []*structs.Allocation
	for _, a := range allocs {
		done = append(done, &structs.Allocation{ID: a.ID, ClientStatus: structs.AllocClientStatusComplete})
	}
	// Finished, not stopped: dead, and its allocations are its results.
	w.must(w.s.UpdateAllocsFromClient(w.next(), done, t0.UnixNano(), nil))
	if j := w.job(job); j.Status != structs.JobStatusDead {
		t.Fatalf("status %s", j.Status)
	}
	var statuses []string
	r.before = func(int) {
		if j := w.job(job); j != nil {
			statuses = append(statuses, j.Status)
		}
	}
	resp := collect(t, c, true)
	if want := (structs.GCCounts{Jobs: 1, JobVersions: 1, Evals: 1, Allocs: 23}); resp.Deleted != want {
		t.Fatalf("deleted %+v, want %+v (skipped %+v)", resp.Deleted, want, resp.Skipped)
	}
	if len(r.entries) < 3 || resp.Entries != len(r.entries) {
		t.Fatalf("%d entries (report: %d), want at least 3", len(r.entries), resp.Entries)
	}
	for i, e := range r.entries {
		if n := e.Objects(); n > 10 {
			t.Fatalf("entry %d names %d objects, over the bound of 10", i, n)
		}
	}
	for i, s := range statuses {
		if s != structs.JobStatusDead {
			t.Fatalf("before entry %d the job was %s", i, s)
		}
	}
	if w.job(job) != nil {
		t.Fatal("the job is still there")
	}
}

// What changes between the collector's choice and the commit is
// skipped by the FSM: here the stopped job is registered again before
// the entry applies.
func TestCollector_ChangedMeanwhileIsSkipped(t *testing.T) {
	w := newWorld(t)
	now := t0.Add(5 * time.Hour)
	c, r := w.collector(&now, DefaultSettings(), 0)
	job := mock.Job()
	_, allocs := w.run(job, 2, t0)
	w.stop(job, allocs, t0)
	var again *structs.Evaluation
	r.before = func(int) {
		again, _ = w.run(job, 0, now)
		again.Status = structs.EvalStatusPending
		w.must(w.s.UpsertEvals(w.next(), []*structs.Evaluation{again}))
	}
	resp := collect(t, c, false)
	if resp.Chosen.Jobs != 1 || resp.Deleted.Jobs != 0 || resp.Skipped.Jobs != 1 {
		t.Fatalf("chose %+v deleted %+v skipped %+v", resp.Chosen, resp.Deleted, resp.Skipped)
	}
	j := w.job(job)
	if j == nil || j.Stop {
		t.Fatalf("the job registered again is %+v", j)
	}
	if e, _ := w.s.EvalByID(nil, again.ID); e == nil {
		t.Fatal("its new evaluation went")
	}
}

func TestCollector_RaftFailureEndsThePass(t *testing.T) {
	w := newWorld(t)
	now := t0
	c, r := w.collector(&now, DefaultSettings(), 0)
	job := mock.Job()
	_, allocs := w.run(job, 1, t0)
	w.stop(job, allocs, t0)
	r.fail = errors.New("not the leader")
	resp, err := c.Collect(true, false)
	if err == nil || resp == nil || resp.Chosen.Jobs != 1 || resp.Entries != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if w.job(job) == nil {
		t.Fatal("the job went though nothing was committed")
	}
}

// Run makes passes until stopped, with the configured interval.
func TestCollector_Run(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	passes := 0
	now := t0
	c := New(Config{
		State: func() State {
			mu.Lock()
			passes++
			mu.Unlock()
			return w.s.Snapshot()
		},
		Raft:     &raft{w: w},
		Now:      func() time.Time { return now },
		Settings: Settings{Interval: 5 * time.Millisecond},
	})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { c.Run(stop); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := passes
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d passes in 5s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after stop")
	}
}

func TestSettings_Validate(t *testing.T) {
	if err := DefaultSettings().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Settings)
		want   string
	}{
		{"zero eval threshold", func(s *Settings) { s.EvalThreshold = 0 }, "eval_gc_threshold"},
		{"negative job threshold", func(s *Settings) { s.JobThreshold = -time.Hour }, "job_gc_threshold"},
		{"interval under a second", func(s *Settings) { s.Interval = 10 * time.Millisecond }, "interval"},
		{"seven versions", func(s *Settings) { s.JobVersions = 7 }, "job_versions"},
		{"no versions", func(s *Settings) { s.JobVersions = 0 }, "job_versions"},
		{"no finished allocations", func(s *Settings) { s.TerminalAllocs = 0 }, "terminal_allocs"},
		{"too many finished allocations", func(s *Settings) { s.TerminalAllocs = MaxTerminalAllocs + 1 }, "terminal_allocs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSettings()
			tc.mutate(&s)
			err := s.Validate()
			if err == nil || !contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestSplit_BoundAndOrder(t *testing.T) {
	big := &structs.GCJobRequest{JobID: "big", Purge: true}
	for i := 0; i < 25; i++ {
		big.Allocs = append(big.Allocs, fmt.Sprintf("a%02d", i))
	}
	big.Evals = []string{"e1", "e2"}
	small := &structs.GCJobRequest{JobID: "small", Evals: []string{"x"}}
	ch := &choice{groups: []*structs.GCJobRequest{small, big}, nodes: []string{"n1", "n2"}}
	entries := split(ch, 10)
	seen := map[string]int{}
	for i, e := range entries {
		if n := e.Objects(); n > 10 || n == 0 {
			t.Fatalf("entry %d has %d objects", i, n)
		}
		for _, j := range e.Jobs {
			if j.JobID == "big" && !j.Purge {
				t.Fatalf("entry %d: a part of the purged job without Purge", i)
			}
			for _, id := range append(append([]string(nil), j.Allocs...), j.Evals...) {
				seen[id]++
			}
		}
		for _, id := range e.Nodes {
			seen[id]++
		}
	}
	if len(seen) != 30 {
		t.Fatalf("%d distinct objects in the entries, want 30", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s named %d times", id, n)
		}
	}
	// The big job's evaluations come in its last part.
	var lastBig *structs.GCJobRequest
	for _, e := range entries {
		for _, j := range e.Jobs {
			if j.JobID == "big" {
				lastBig = j
			}
		}
	}
	if len(lastBig.Evals) != 2 {
		t.Fatalf("the last part of the big job has evaluations %v", lastBig.Evals)
	}
}
