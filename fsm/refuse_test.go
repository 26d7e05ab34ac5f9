package fsm

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// hashOf fingerprints the FSM's state (every table and the latest
// index).
func hashOf(t testing.TB, f *FSM) string {
	t.Helper()
	index, tables, err := f.State().Hash()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, k := range state.Tables {
		b.WriteString(k + "=" + tables[k] + ";")
	}
	return fmt.Sprintf("%slatest=%d", b.String(), index)
}

func rawApply(h *harness, data []byte) interface{} {
	h.index++
	return h.fsm.Apply(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data})
}

// assertRefused checks that resp is an invalid_request refusal, that
// the state did not change, and that no panic was needed to get there.
func assertRefused(t *testing.T, h *harness, resp interface{}, before string) {
	t.Helper()
	err, ok := resp.(error)
	if !ok || err == nil {
		t.Fatalf("response %#v, want a refusal error", resp)
	}
	if ce := structs.ParseCodedError(err); ce == nil || ce.Code != structs.CodeInvalid {
		t.Fatalf("refusal %q does not carry the invalid_request code", err)
	}
	if after := hashOf(t, h.fsm); after != before {
		t.Fatalf("a refused entry changed the state:\nbefore %s\nafter  %s", before, after)
	}
	if n := h.fsm.RecoveredPanics(); n != 0 {
		t.Fatalf("the entry was refused only by recovering %d panic(s); it needs an explicit check", n)
	}
}

func TestFSM_UnknownMessageTypeIsRefused(t *testing.T) {
	h := newHarness(t)
	populate(h)
	before := hashOf(t, h.fsm)

	ignorable := structs.MessageType(99) | structs.IgnoreUnknownTypeFlag
	if resp := rawApply(h, []byte{byte(ignorable), 0x80}); resp != nil {
		t.Fatalf("an unknown type with the ignore flag: %v, want it skipped", resp)
	}
	for i := 0; i < 2; i++ {
		// Twice: a restart replays the entry, and must refuse it again
		// the same way instead of crash-looping.
		resp := rawApply(h, []byte{99, 0x80})
		assertRefused(t, h, resp, before)
		if !strings.Contains(resp.(error).Error(), "unknown message type 99") {
			t.Fatalf("refusal does not name the type: %v", resp)
		}
	}
	// The FSM still applies what follows.
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: mock.Node()})
}

func TestFSM_UndecodableEntryIsRefused(t *testing.T) {
	job := mock.Job()
	valid, err := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: mock.Eval(job)})
	if err != nil {
		t.Fatal(err)
	}
	planEntry, err := structs.Encode(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job})
	if err != nil {
		t.Fatal(err)
	}
	compactPlan, err := structs.Encode(structs.ApplyPlanResultsCompactRequestType, &structs.ApplyPlanResultsBatchRequest{
		Plans: []*structs.ApplyPlanResultsRequest{{Job: job, AllocsPlaced: []*structs.Allocation{mock.Alloc(job, mock.Node(), 0)}}}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"truncated", valid[:len(valid)/2]},
		{"compact plan cut short", compactPlan[:len(compactPlan)-3]},
		{"compact plan with a trailing byte", append(append([]byte(nil), compactPlan...), 0)},
		{"compact entry of an unknown version", []byte{byte(structs.AllocClientUpdateCompactRequestType), 99, 0, 0}},
		{"compact huge declared length", []byte{byte(structs.AllocClientUpdateCompactRequestType), 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"type byte only", valid[:1]},
		{"reserved msgpack byte", []byte{byte(structs.JobRegisterRequestType), 0xc1}},
		{"garbage", []byte{byte(structs.NodeRegisterRequestType), 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff}},
		{"string for a struct", []byte{byte(structs.EvalUpdateRequestType), 0xa3, 'a', 'b', 'c'}},
		{"huge declared length", []byte{byte(structs.ApplyPlanResultsBatchRequestType), 0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"plan entry cut short", planEntry[:len(planEntry)-3]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			populate(h)
			before := hashOf(t, h.fsm)
			enqueued := len(h.rec.enqueued)
			assertRefused(t, h, rawApply(h, tc.data), before)
			assertRefused(t, h, rawApply(h, tc.data), before)
			if len(h.rec.enqueued) != enqueued {
				t.Fatal("a refused entry handed evaluations to the broker")
			}
		})
	}
}

func TestFSM_InvalidJobIsRefused(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*structs.Job)
		want   string
	}{
		{"no groups", func(j *structs.Job) { j.TaskGroups = nil }, "TaskGroups"},
		{"negative count", func(j *structs.Job) { j.TaskGroups[0].Count = -1 }, "TaskGroups[0].Count"},
		{"count over the hard limit", func(j *structs.Job) { j.TaskGroups[0].Count = 1_000_000_000 }, "TaskGroups[0].Count"},
		{"cpu near MaxInt64", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = 1<<63 - 1 }, "Resources.CPU"},
		{"bad ID", func(j *structs.Job) { j.ID = "../../etc" }, "ID"},
		{"null task", func(j *structs.Job) { j.TaskGroups[0].Tasks = []*structs.Task{nil} }, "Tasks[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			populate(h)
			before := hashOf(t, h.fsm)
			job := mock.Job()
			tc.mutate(job)
			eval := mock.Eval(job)
			resp := h.apply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: eval})
			assertRefused(t, h, resp, before)
			if !strings.Contains(resp.(error).Error(), tc.want) {
				t.Fatalf("refusal %q does not name %s", resp, tc.want)
			}
			for _, id := range h.rec.enqueued {
				if id == eval.ID {
					t.Fatal("the refused job's evaluation reached the broker")
				}
			}
		})
	}
	t.Run("missing job", func(t *testing.T) {
		h := newHarness(t)
		before := hashOf(t, h.fsm)
		assertRefused(t, h, h.apply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{}), before)
	})
	t.Run("auto-revert of an invalid job", func(t *testing.T) {
		h := newHarness(t)
		populate(h)
		before := hashOf(t, h.fsm)
		job := mock.Job()
		job.TaskGroups[0].Count = -5
		resp := h.apply(structs.DeploymentStatusUpdateRequestType, &structs.DeploymentStatusUpdateRequest{
			DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: "x", Status: structs.DeploymentStatusFailed}, Job: job})
		assertRefused(t, h, resp, before)
	})
}

func TestFSM_NullElementsAreRefused(t *testing.T) {
	node := mock.Node()
	cases := []struct {
		name string
		typ  structs.MessageType
		msg  interface{}
	}{
		{"node register without node", structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{}},
		{"null evaluation", structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{nil}}},
		{"null placed allocation", structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{AllocsPlaced: []*structs.Allocation{nil}}},
		{"null plan in a batch", structs.ApplyPlanResultsBatchRequestType, &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{nil}}},
		{"null deployment group", structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{
			Deployment: &structs.Deployment{ID: "d", JobID: "j", TaskGroups: map[string]*structs.DeploymentState{"web": nil}}}},
		{"null client update", structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{NodeID: node.ID, Alloc: []*structs.Allocation{nil}}},
		{"null plan in a compact batch", structs.ApplyPlanResultsCompactRequestType, &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{nil}}},
		{"null placed allocation, compact", structs.ApplyPlanResultsCompactRequestType, &structs.ApplyPlanResultsBatchRequest{
			Plans: []*structs.ApplyPlanResultsRequest{{AllocsPlaced: []*structs.Allocation{nil}}}}},
		{"null compact client update", structs.AllocClientUpdateCompactRequestType, &structs.AllocUpdateRequest{NodeID: node.ID, Alloc: []*structs.Allocation{nil}}},
		{"deployment update without update", structs.DeploymentStatusUpdateRequestType, &structs.DeploymentStatusUpdateRequest{}},
		{"null desired transition", structs.AllocUpdateDesiredTransitionRequestType, &structs.AllocUpdateDesiredTransitionRequest{
			Allocs: map[string]*structs.DesiredTransition{"a": nil}}},
		{"null eligibility eval", structs.NodeUpdateEligibilityRequestType, &structs.NodeUpdateEligibilityRequest{
			NodeID: node.ID, Eligibility: structs.NodeSchedulingEligible, Evals: []*structs.Evaluation{nil}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node})
			before := hashOf(t, h.fsm)
			assertRefused(t, h, h.apply(tc.typ, tc.msg), before)
		})
	}
}

// Every server refuses an entry the same way: two FSMs with the same
// state that apply the same bad and good entries end up identical.
func TestFSM_RefusalIsDeterministic(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	node := mock.Node()
	job := mock.Job()
	bad := job.Copy()
	bad.TaskGroups[0].Count = -1
	entries := [][]byte{}
	for _, e := range []struct {
		typ structs.MessageType
		msg interface{}
	}{
		{structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node}},
		{structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: bad}},
		{structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: mock.Eval(job)}},
		{structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{nil}}},
	} {
		buf, err := structs.Encode(e.typ, e.msg)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, buf)
	}
	entries = append(entries, []byte{77, 1, 2, 3}, []byte{byte(structs.JobRegisterRequestType), 0xc1})
	var respA, respB []string
	for _, data := range entries {
		for _, x := range []struct {
			h    *harness
			resp *[]string
		}{{a, &respA}, {b, &respB}} {
			r := rawApply(x.h, data)
			s := ""
			if err, ok := r.(error); ok {
				s = err.Error()
			}
			*x.resp = append(*x.resp, s)
		}
	}
	if ha, hb := hashOf(t, a.fsm), hashOf(t, b.fsm); ha != hb {
		t.Fatalf("servers diverged:\n%s\n%s", ha, hb)
	}
	if !reflect.DeepEqual(respA, respB) {
		t.Fatalf("responses differ:\n%q\n%q", respA, respB)
	}
	if respA[2] != "" || respA[1] == "" || respA[4] == "" {
		t.Fatalf("responses %q: want the valid job applied and the bad entries refused", respA)
	}
}

func TestFSM_RestoreGarbageIsAnError(t *testing.T) {
	h := newHarness(t)
	populate(h)
	snap, err := h.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	good := sink.Bytes()
	wrongVersion, err := structs.Encode(0, &snapshotHeader{Version: snapshotVersion + 1})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("this is not a snapshot \x00\xff\xc1")},
		{"truncated", good[:len(good)*2/3]},
		{"header only, then an unknown record", append(append([]byte(nil), good[:20]...), 0xee, 0x01)},
		{"newer version", wrongVersion[1:]},
		{"huge declared string", []byte{0x82, 0xa7, 'V', 'e', 'r', 's', 'i', 'o', 'n', 0xdb, 0x7f, 0xff, 0xff, 0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := New(Config{})
			f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: mustEncode(t, structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: mock.Node()})})
			before := hashOf(t, f)
			old := f.State()
			err := f.Restore(io.NopCloser(bytes.NewReader(tc.data)))
			if err == nil {
				t.Fatal("restoring a bad snapshot succeeded")
			}
			if f.RecoveredPanics() != 0 {
				t.Fatalf("the restore panicked (recovered): %v", err)
			}
			if f.State() != old || hashOf(t, f) != before {
				t.Fatal("a failed restore replaced the state")
			}
			select {
			case <-old.AbandonCh():
				t.Fatal("a failed restore abandoned the current store")
			default:
			}
		})
	}
	// The good snapshot still restores.
	f := New(Config{})
	if err := f.Restore(io.NopCloser(bytes.NewReader(good))); err != nil {
		t.Fatalf("restoring a good snapshot: %v", err)
	}
	if hashOf(t, f) != hashOf(t, h.fsm) {
		t.Fatal("the restored state differs")
	}
}

func mustEncode(t testing.TB, typ structs.MessageType, msg interface{}) []byte {
	t.Helper()
	buf, err := structs.Encode(typ, msg)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}
