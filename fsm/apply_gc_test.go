package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// gcScene registers a node and two jobs through the log: "done" ran an
// allocation to completion and was stopped; "live" runs one. It returns
// the rows of both.
type gcScene struct {
	node                   *structs.Node
	done, live             *structs.Job
	doneEval, liveEval     *structs.Evaluation
	doneAlloc, liveAlloc   *structs.Allocation
	stopEval               *structs.Evaluation
	doneAllocs, liveAllocs []string
}

func newGCScene(h *harness) *gcScene {
	s := &gcScene{node: mock.Node(), done: mock.Job(), live: mock.Job()}
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: s.node, UpdatedAt: 1})
	for _, x := range []struct {
		job   *structs.Job
		eval  **structs.Evaluation
		alloc **structs.Allocation
	}{{s.done, &s.doneEval, &s.doneAlloc}, {s.live, &s.liveEval, &s.liveAlloc}} {
		*x.eval = mock.Eval(x.job)
		h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: x.job, Eval: *x.eval, SubmitTime: 2})
		a := mock.Alloc(x.job, s.node, 0)
		a.EvalID = (*x.eval).ID
		a.Job = nil
		*x.alloc = a
		h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: x.job, AllocsPlaced: []*structs.Allocation{a}, EvalID: a.EvalID, UpdatedAt: 3})
		done := (*x.eval).Copy()
		done.Status = structs.EvalStatusComplete
		h.mustApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{done}, UpdatedAt: 4})
	}
	s.stopEval = mock.Eval(s.done)
	s.stopEval.Status = structs.EvalStatusComplete
	h.mustApply(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: s.done.ID, Eval: s.stopEval, SubmitTime: 5})
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{
		AllocsStopped: []*structs.Allocation{{ID: s.doneAlloc.ID, DesiredStatus: structs.AllocDesiredStatusStop}}, UpdatedAt: 6})
	h.mustApply(structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{
		Alloc: []*structs.Allocation{{ID: s.doneAlloc.ID, ClientStatus: structs.AllocClientStatusComplete}}, UpdatedAt: 7})
	return s
}

func (s *gcScene) purgeDone() *structs.GCBatchRequest {
	return &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{
		JobID: s.done.ID, Purge: true, Evals: []string{s.doneEval.ID, s.stopEval.ID}, Allocs: []string{s.doneAlloc.ID},
	}}}
}

func TestFSM_GCBatchDeletesWhatIsCollectable(t *testing.T) {
	h := newHarness(t)
	s := newGCScene(h)
	resp := h.apply(structs.GCBatchRequestType, s.purgeDone())
	res, ok := resp.(*structs.GCBatchResult)
	if !ok {
		t.Fatalf("response %#v, want a *GCBatchResult", resp)
	}
	if want := (structs.GCCounts{Jobs: 1, JobVersions: 2, Evals: 2, Allocs: 1}); res.Deleted != want {
		t.Fatalf("deleted %+v, want %+v", res.Deleted, want)
	}
	st := h.fsm.State()
	if j, _ := st.JobByID(nil, "", s.done.ID); j != nil {
		t.Fatal("the stopped job is still there")
	}
	if a, _ := st.AllocByID(nil, s.doneAlloc.ID); a != nil {
		t.Fatal("its allocation is still there")
	}
	if idx, _ := st.AllocsGCIndex(); idx != h.index {
		t.Fatalf("allocs_gc index %d, want %d", idx, h.index)
	}
	// The live job is untouched.
	if a, _ := st.AllocByID(nil, s.liveAlloc.ID); a == nil {
		t.Fatal("the live job's allocation went")
	}
}

// An entry naming what is not collectable (a running allocation, a live
// job and its current version, a ready node, an evaluation named under
// a job that is not its own) deletes nothing: the state is exactly what
// it was, indexes included.
func TestFSM_GCBatchLeavesWhatIsNotCollectable(t *testing.T) {
	h := newHarness(t)
	s := newGCScene(h)
	before := hashOf(t, h.fsm)
	req := &structs.GCBatchRequest{
		Jobs: []*structs.GCJobRequest{
			{JobID: s.live.ID, Purge: true, Allocs: []string{s.liveAlloc.ID}, Versions: []uint64{0}},
			{JobID: s.done.ID, Evals: []string{s.liveEval.ID}},
		},
		Nodes: []string{s.node.ID},
	}
	resp := h.apply(structs.GCBatchRequestType, req)
	res, ok := resp.(*structs.GCBatchResult)
	if !ok {
		t.Fatalf("response %#v", resp)
	}
	if res.Deleted.Total() != 0 {
		t.Fatalf("deleted %+v", res.Deleted)
	}
	if want := (structs.GCCounts{Jobs: 1, JobVersions: 1, Evals: 1, Allocs: 1, Nodes: 1}); res.Skipped != want {
		t.Fatalf("skipped %+v, want %+v", res.Skipped, want)
	}
	if after := hashOf(t, h.fsm); after != before {
		t.Fatalf("the state changed:\nbefore %s\nafter  %s", before, after)
	}
}

func TestFSM_GCBatchHostileEntriesAreRefused(t *testing.T) {
	tooMany := &structs.GCBatchRequest{}
	for i := 0; i <= structs.MaxGCBatchObjects; i++ {
		tooMany.Nodes = append(tooMany.Nodes, fmt.Sprintf("node-%d", i))
	}
	manyInOneJob := &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: "j"}}}
	for i := 0; i < structs.MaxGCBatchObjects; i++ {
		manyInOneJob.Jobs[0].Allocs = append(manyInOneJob.Jobs[0].Allocs, fmt.Sprintf("a-%d", i))
	}
	manyInOneJob.Jobs[0].Purge = true // one more than fits
	cases := []struct {
		name string
		req  *structs.GCBatchRequest
		want string
	}{
		{"nothing named", &structs.GCBatchRequest{}, "names nothing"},
		{"an empty job group", &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: "j"}}}, "names nothing"},
		{"too many nodes", tooMany, "at most 512"},
		{"too many rows of a job", manyInOneJob, "at most 512"},
		{"null job group", &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{nil}, Nodes: []string{"n"}}, "Jobs[0] is null"},
		{"job without ID", &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{Evals: []string{"e"}}}}, "JobID is empty"},
		{"empty allocation ID", &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{JobID: "j", Allocs: []string{""}}}}, "Allocs[0] is empty"},
		{"empty node ID", &structs.GCBatchRequest{Nodes: []string{""}}, "Nodes[0] is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			newGCScene(h)
			before := hashOf(t, h.fsm)
			resp := h.apply(structs.GCBatchRequestType, tc.req)
			assertRefused(t, h, resp, before)
			if err := resp.(error); !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("refusal %q does not say %q", err, tc.want)
			}
		})
	}
	// Garbage bytes of the type.
	h := newHarness(t)
	newGCScene(h)
	before := hashOf(t, h.fsm)
	assertRefused(t, h, rawApply(h, []byte{byte(structs.GCBatchRequestType), 0xdf, 0xff, 0xff, 0xff, 0xff}), before)
}

// What a GC entry deleted stays deleted through a snapshot and restore,
// and the allocs_gc index survives it (clients depend on it).
func TestFSM_GCBatchSnapshotRestore(t *testing.T) {
	h := newHarness(t)
	s := newGCScene(h)
	h.mustApplyResult(structs.GCBatchRequestType, s.purgeDone())
	gcIndex := h.index
	snap, err := h.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	f := New(Config{})
	if err := f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if hashOf(t, f) != hashOf(t, h.fsm) {
		t.Fatal("the restored state differs")
	}
	if idx, _ := f.State().AllocsGCIndex(); idx != gcIndex {
		t.Fatalf("restored allocs_gc index %d, want %d", idx, gcIndex)
	}
	got, _ := f.State().AllRowCounts()
	want, _ := h.fsm.State().AllRowCounts()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows after restore %v, before %v", got, want)
	}
}

// mustApplyResult applies an entry whose response is a result, not nil.
func (h *harness) mustApplyResult(mt structs.MessageType, msg interface{}) interface{} {
	h.t.Helper()
	resp := h.apply(mt, msg)
	if err, ok := resp.(error); ok {
		h.t.Fatalf("apply %s: %v", mt, err)
	}
	return resp
}
