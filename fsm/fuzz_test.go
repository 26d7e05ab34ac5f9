package fsm

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// fuzzBase is a small populated state with fixed IDs and times (so the
// seeds below refer to objects that exist), as snapshot bytes: every
// fuzz input starts from a fresh restore of it.
type fuzzBase struct {
	// store holds the base state; fresh FSMs write to snapshots of it.
	store    *state.StateStore
	snapshot []byte
	hash     string   // of the state it restores to
	entries  [][]byte // the entries that built it, and more: the seeds
	index    uint64
}

var (
	fuzzBaseOnce sync.Once
	fuzzBaseVal  fuzzBase
)

func fixedJob(id string) *structs.Job {
	j := mock.Job()
	j.ID, j.Name = id, id
	return j
}

func fixedEval(id string, job *structs.Job) *structs.Evaluation {
	e := mock.Eval(job)
	e.ID = id
	return e
}

func fixedAlloc(id string, job *structs.Job, node *structs.Node, i int) *structs.Allocation {
	a := mock.Alloc(job, node, i)
	a.ID, a.EvalID = id, "00000000-0000-0000-0000-0000000000e1"
	a.Job = nil
	return a
}

func buildFuzzBase() fuzzBase {
	fuzzBaseOnce.Do(func() {
		node := mock.Node()
		node.ID, node.SecretID, node.Name = "00000000-0000-0000-0000-00000000000a", "secret", "node-a"
		node2 := mock.Node()
		node2.ID, node2.SecretID, node2.Name = "00000000-0000-0000-0000-00000000000b", "secret", "node-b"
		job := fixedJob("web")
		eval := fixedEval("00000000-0000-0000-0000-0000000000e1", job)
		a0, a1 := fixedAlloc("00000000-0000-0000-0000-0000000000a0", job, node, 0), fixedAlloc("00000000-0000-0000-0000-0000000000a1", job, node, 1)
		dep := &structs.Deployment{ID: "00000000-0000-0000-0000-0000000000d1", JobID: job.ID, Status: structs.DeploymentStatusRunning,
			TaskGroups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 3, DesiredCanaries: 1}}}
		stop := a1.Copy()
		stop.DesiredStatus = structs.AllocDesiredStatusStop
		failed := a0.Copy()
		failed.ClientStatus = structs.AllocClientStatusFailed
		bigger := job.Copy()
		bigger.TaskGroups[0].Count = 5

		msgs := []struct {
			typ structs.MessageType
			msg interface{}
		}{
			{structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node, UpdatedAt: 1}},
			{structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node2, UpdatedAt: 2}},
			{structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: eval, SubmitTime: 3}},
			{structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{a0, a1}, Deployment: dep, EvalID: eval.ID, UpdatedAt: 4}},
			{structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{eval}, UpdatedAt: 5}},
			{structs.SchedulerConfigRequestType, &structs.SchedulerSetConfigRequest{Config: structs.SchedulerConfiguration{}}},
			// The seeds past this point are applied on top of the base.
			{structs.NodeUpdateStatusRequestType, &structs.NodeUpdateStatusRequest{NodeID: node2.ID, Status: structs.NodeStatusDown, UpdatedAt: 6}},
			{structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{NodeID: node.ID, Alloc: []*structs.Allocation{failed}, UpdatedAt: 7}},
			{structs.ApplyPlanResultsBatchRequestType, &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{
				{Job: job, AllocsStopped: []*structs.Allocation{stop}, UpdatedAt: 8}}}},
			{structs.AllocClientUpdateCompactRequestType, &structs.AllocUpdateRequest{NodeID: node.ID, Alloc: []*structs.Allocation{failed}, UpdatedAt: 7}},
			{structs.ApplyPlanResultsCompactRequestType, &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{
				{Job: job, AllocsStopped: []*structs.Allocation{stop}, UpdatedAt: 8}}}},
			{structs.DeploymentAllocHealthRequestType, &structs.DeploymentAllocHealthRequest{DeploymentID: dep.ID, HealthyAllocationIDs: []string{a0.ID}, UpdatedAt: 9}},
			{structs.DeploymentPromoteRequestType, &structs.DeploymentPromoteRequest{DeploymentID: dep.ID, All: true, UpdatedAt: 10}},
			{structs.DeploymentStatusUpdateRequestType, &structs.DeploymentStatusUpdateRequest{
				DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: dep.ID, Status: structs.DeploymentStatusFailed}, Job: bigger, UpdatedAt: 11}},
			{structs.NodeUpdateDrainRequestType, &structs.NodeUpdateDrainRequest{NodeID: node.ID, DrainStrategy: &structs.DrainStrategy{StartedAt: 12}, UpdatedAt: 12}},
			{structs.NodeUpdateEligibilityRequestType, &structs.NodeUpdateEligibilityRequest{NodeID: node2.ID, Eligibility: structs.NodeSchedulingIneligible}},
			{structs.AllocUpdateDesiredTransitionRequestType, &structs.AllocUpdateDesiredTransitionRequest{
				Allocs: map[string]*structs.DesiredTransition{a0.ID: {Migrate: true}}, Evals: []*structs.Evaluation{fixedEval("00000000-0000-0000-0000-0000000000e2", job)}}},
			{structs.JobStabilityRequestType, &structs.JobStabilityRequest{JobID: job.ID, JobVersion: 0, Stable: true}},
			{structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: bigger, EnforceIndex: true, JobModifyIndex: 3, SubmitTime: 13}},
			{structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: job.ID, SubmitTime: 14}},
			{structs.NodeDeregisterRequestType, &structs.NodeSpecificRequest{NodeID: node2.ID}},
			{structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-a", Meta: map[string]string{"k": "v"}}}}},
			{structs.NamespaceDeleteRequestType, &structs.NamespaceDeleteRequest{Names: []string{"team-a"}}},
			{structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "q", Namespace: structs.DefaultNamespace, Limits: structs.QuotaLimits{MemoryMB: 1024}}}}},
			{structs.QuotaDeleteRequestType, &structs.QuotaDeleteRequest{Names: []string{"q"}}},
			{structs.GCBatchRequestType, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{{
				JobID: job.ID, Purge: true, Evals: []string{eval.ID}, Allocs: []string{a0.ID, a1.ID}, Deployments: []string{dep.ID}, Versions: []uint64{0},
			}}, Nodes: []string{node2.ID}}},
		}
		fsm, index := New(Config{}), uint64(0)
		var b fuzzBase
		for i, m := range msgs {
			buf, err := structs.Encode(m.typ, m.msg)
			if err != nil {
				panic(err)
			}
			b.entries = append(b.entries, buf)
			if i < 6 {
				index++
				if resp := fsm.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf}); resp != nil {
					panic(fmt.Sprintf("building the fuzz base, entry %d: %v", i, resp))
				}
			}
		}
		snap, err := fsm.Snapshot()
		if err != nil {
			panic(err)
		}
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			panic(err)
		}
		b.snapshot, b.index, b.hash, b.store = sink.Bytes(), index, hashOf(panicTB{}, fsm), fsm.State()
		fuzzBaseVal = b
	})
	return fuzzBaseVal
}

// panicTB stands in for a testing.TB where there is none (building the
// shared base): a failure there is a broken test, so it panics.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatal(args ...interface{})         { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(f string, a ...interface{}) { panic(fmt.Sprintf(f, a...)) }

// fresh returns an FSM over a writable copy of the base state: a
// memdb snapshot, which shares the base's structure and never changes
// it (cheaper than a restore, which matters at thousands of inputs a
// second).
func (b fuzzBase) fresh() *FSM {
	return &FSM{logger: hclog.NewNullLogger(), broker: nopBroker{}, blocked: nopBlocked{}, state: &b.store.Snapshot().StateStore}
}

// FuzzFSM_Apply applies an arbitrary log entry to a populated state.
// Invariants:
//
//   - Apply never panics, not even one recovered inside Apply (each
//     such input needs an explicit check);
//   - a refused entry (an error response) leaves the state hash
//     unchanged;
//   - Apply is deterministic: a second server with the same state that
//     applies the same entry ends with the same hash and the same
//     verdict (for a garbage collection entry, the same counts);
//   - replaying the entry (a restart) does not panic either.
func FuzzFSM_Apply(f *testing.F) {
	base := buildFuzzBase()
	for _, e := range base.entries {
		f.Add(e)
	}
	f.Add([]byte{99, 0x80})
	f.Add([]byte{byte(structs.JobRegisterRequestType), 0xc1})
	f.Add([]byte{byte(structs.ApplyPlanResultsBatchRequestType), 0x81, 0xa5, 'P', 'l', 'a', 'n', 's', 0x91, 0xc0})

	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := base.fresh(), base.fresh()
		before := base.hash
		index := base.index + 1
		respA := a.Apply(&raft.Log{Index: index, Term: 2, Type: raft.LogCommand, Data: data})
		respB := b.Apply(&raft.Log{Index: index, Term: 2, Type: raft.LogCommand, Data: data})
		if n := a.RecoveredPanics() + b.RecoveredPanics(); n != 0 {
			t.Fatalf("Apply panicked (recovered %d); add an explicit check: %v", n, respA)
		}
		errA, refusedA := respA.(error)
		_, refusedB := respB.(error)
		if gcA, ok := respA.(*structs.GCBatchResult); ok {
			// A garbage collection entry answers with what it deleted:
			// the same on both servers.
			if gcB, _ := respB.(*structs.GCBatchResult); gcB == nil || *gcA != *gcB {
				t.Fatalf("garbage collection results differ: %+v, %#v", gcA, respB)
			}
		} else if respA != nil && !refusedA {
			t.Fatalf("response %#v is neither nil, an error nor a garbage collection result", respA)
		}
		afterA, afterB := hashOf(t, a), hashOf(t, b)
		if refusedA && afterA != before {
			t.Fatalf("a refused entry (%v) changed the state", errA)
		}
		if refusedA != refusedB || afterA != afterB {
			t.Fatalf("two servers applying the same entry diverged: refused %t/%t\n%s\n%s", refusedA, refusedB, afterA, afterB)
		}
		a.Apply(&raft.Log{Index: index + 1, Term: 2, Type: raft.LogCommand, Data: data})
		if n := a.RecoveredPanics(); n != 0 {
			t.Fatalf("replaying the entry panicked (recovered %d)", n)
		}
	})
}

// FuzzFSM_Restore restores arbitrary bytes as a snapshot. Invariants:
// no panic (not even a recovered one); a failed restore keeps the
// current state; a successful one yields a state that snapshots and
// restores again to the same hash.
func FuzzFSM_Restore(f *testing.F) {
	base := buildFuzzBase()
	f.Add(base.snapshot)
	f.Add(base.snapshot[:len(base.snapshot)/2])
	f.Add(base.snapshot[:24])
	f.Add([]byte{})
	f.Add([]byte("\x82\xa7Version\x02\xa9LastIndex\x05\x09"))

	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := New(Config{})
		old := fsm.State()
		before := hashOf(t, fsm)
		err := fsm.Restore(io.NopCloser(bytes.NewReader(data)))
		if n := fsm.RecoveredPanics(); n != 0 {
			t.Fatalf("restore panicked (recovered %d): %v", n, err)
		}
		if err != nil {
			if fsm.State() != old || hashOf(t, fsm) != before {
				t.Fatal("a failed restore replaced the state")
			}
			return
		}
		restored := hashOf(t, fsm)
		snap, err := fsm.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			t.Fatalf("persist a restored state: %v", err)
		}
		again := New(Config{})
		if err := again.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
			t.Fatalf("restore a snapshot of a restored state: %v", err)
		}
		if got := hashOf(t, again); got != restored {
			t.Fatalf("snapshot round trip changed the state:\n%s\n%s", restored, got)
		}
	})
}
