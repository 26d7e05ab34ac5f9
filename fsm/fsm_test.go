package fsm

import (
	"bytes"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// recorder is an EvalBroker and BlockedEvals that records calls.
type recorder struct {
	mu        sync.Mutex
	enqueued  []string
	blocked   []string
	untracked []string
	unblocked []uint64
}

func (r *recorder) Enqueue(e *structs.Evaluation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enqueued = append(r.enqueued, e.ID)
}
func (r *recorder) Block(e *structs.Evaluation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocked = append(r.blocked, e.ID)
}
func (r *recorder) Untrack(namespace, jobID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.untracked = append(r.untracked, namespace+"/"+jobID)
}
func (r *recorder) Unblock(index uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unblocked = append(r.unblocked, index)
}

type harness struct {
	t     *testing.T
	fsm   *FSM
	rec   *recorder
	index uint64
}

func newHarness(t *testing.T) *harness {
	rec := &recorder{}
	return &harness{t: t, rec: rec, fsm: New(Config{EvalBroker: rec, BlockedEvals: rec})}
}

func (h *harness) apply(mt structs.MessageType, msg interface{}) interface{} {
	h.t.Helper()
	buf, err := structs.Encode(mt, msg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	return h.fsm.Apply(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: buf})
}

func (h *harness) mustApply(mt structs.MessageType, msg interface{}) {
	h.t.Helper()
	if resp := h.apply(mt, msg); resp != nil {
		h.t.Fatalf("apply %s: %v", mt, resp)
	}
}

func TestFSM_JobRegisterEnqueuesEval(t *testing.T) {
	h := newHarness(t)
	job := mock.Job()
	eval := mock.Eval(job)
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: eval, SubmitTime: 42})

	got, _ := h.fsm.State().JobByID(nil, job.Namespace, job.ID)
	if got == nil || got.SubmitTime != 42 || got.CreateIndex != 1 {
		t.Fatalf("job not registered as sent: %+v", got)
	}
	e, _ := h.fsm.State().EvalByID(nil, eval.ID)
	if e == nil || e.CreateIndex != 1 {
		t.Fatalf("eval not written with the job: %+v", e)
	}
	if len(h.rec.enqueued) != 1 || h.rec.enqueued[0] != eval.ID {
		t.Fatalf("enqueued = %v, want the job's eval", h.rec.enqueued)
	}
}

func TestFSM_EnforceIndexInLogOrder(t *testing.T) {
	h := newHarness(t)
	job := mock.Job()
	// Two registrations both expecting a new job: the first wins, the
	// second is rejected when applied.
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, EnforceIndex: true, JobModifyIndex: 0})
	again := job.Copy()
	again.TaskGroups[0].Count = 9
	resp := h.apply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: again, EnforceIndex: true, JobModifyIndex: 0})
	if ce := structs.ParseCodedError(asError(resp)); ce == nil || ce.Code != structs.CodeConflict {
		t.Fatalf("second registration with a stale check index: %v", resp)
	}
	got, _ := h.fsm.State().JobByID(nil, job.Namespace, job.ID)
	if got.TaskGroups[0].Count != job.TaskGroups[0].Count {
		t.Fatal("the rejected registration changed the job")
	}
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: again, EnforceIndex: true, JobModifyIndex: got.JobModifyIndex})
}

func asError(v interface{}) error {
	err, _ := v.(error)
	return err
}

func TestFSM_JobDeregister(t *testing.T) {
	h := newHarness(t)
	job := mock.Job()
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job})

	stopEval := mock.Eval(job)
	h.mustApply(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: job.ID, Eval: stopEval})
	got, _ := h.fsm.State().JobByID(nil, job.Namespace, job.ID)
	if got == nil || !got.Stop || got.Version != 1 {
		t.Fatalf("stopped job: %+v", got)
	}

	h.mustApply(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: job.ID, Purge: true, Eval: mock.Eval(job)})
	if got, _ := h.fsm.State().JobByID(nil, job.Namespace, job.ID); got != nil {
		t.Fatal("purged job still present")
	}
	// Deregistering an unknown job is an error response, not a panic.
	if resp := h.apply(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: "missing"}); resp == nil {
		t.Fatal("deregistering an unknown job returned no error")
	}
}

func TestFSM_EvalUpdateRoutesByStatus(t *testing.T) {
	h := newHarness(t)
	job := mock.Job()
	pending := mock.Eval(job)
	blocked := mock.Eval(job)
	blocked.Status = structs.EvalStatusBlocked
	complete := mock.Eval(job)
	complete.Status = structs.EvalStatusComplete
	h.mustApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{pending, blocked, complete}})

	if !reflect.DeepEqual(h.rec.enqueued, []string{pending.ID}) {
		t.Fatalf("enqueued %v", h.rec.enqueued)
	}
	if !reflect.DeepEqual(h.rec.blocked, []string{blocked.ID}) {
		t.Fatalf("blocked %v", h.rec.blocked)
	}
	if !reflect.DeepEqual(h.rec.untracked, []string{"default/" + job.ID}) {
		t.Fatalf("untracked %v", h.rec.untracked)
	}
}

func TestFSM_NodeAndAllocUpdatesUnblock(t *testing.T) {
	h := newHarness(t)
	node := mock.Node()
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node, UpdatedAt: 5})
	if len(h.rec.unblocked) != 1 {
		t.Fatalf("a ready node must unblock evals; unblocked %v", h.rec.unblocked)
	}
	h.mustApply(structs.NodeUpdateStatusRequestType, &structs.NodeUpdateStatusRequest{NodeID: node.ID, Status: structs.NodeStatusDown, UpdatedAt: 6})
	if len(h.rec.unblocked) != 1 {
		t.Fatalf("a down node must not unblock evals; unblocked %v", h.rec.unblocked)
	}
	n, _ := h.fsm.State().NodeByID(nil, node.ID)
	if n.Status != structs.NodeStatusDown || n.StatusUpdatedAt != 6 {
		t.Fatalf("node status: %+v", n)
	}

	job := mock.Job()
	alloc := mock.Alloc(job, node, 0)
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{alloc}})
	update := alloc.Copy()
	update.ClientStatus = structs.AllocClientStatusFailed
	h.mustApply(structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{Alloc: []*structs.Allocation{update}, UpdatedAt: 7})
	if len(h.rec.unblocked) != 2 {
		t.Fatalf("a terminal alloc must unblock evals; unblocked %v", h.rec.unblocked)
	}
	a, _ := h.fsm.State().AllocByID(nil, alloc.ID)
	if a.ClientStatus != structs.AllocClientStatusFailed || a.ModifyTime != 7 {
		t.Fatalf("alloc after client update: %+v", a)
	}
}

// memSink is a raft.SnapshotSink writing to memory.
type memSink struct {
	bytes.Buffer
	canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }
func (s *memSink) Close() error  { return nil }

// populate fills every table through the FSM, as the log would.
func populate(h *harness) {
	populateDefaultNamespace(h)
	populateNamespaces(h)
	populateQuotas(h)
	populateServiceVIPs(h)
	populateVariables(h)
}

// populateVariables writes two root keys (one rotated out) and sealed
// variables; the FSM never sees plaintext, so the "ciphertext" here is
// opaque bytes.
func populateVariables(h *harness) {
	h.mustApply(structs.RootKeyUpsertRequestType, &structs.RootKeyUpsertRequest{Keys: []*structs.RootKey{
		{KeyID: "k1", State: structs.RootKeyActive, KEKID: "kek", Wrapped: []byte("wrapped-1"), CreateTime: 1}}})
	h.mustApply(structs.RootKeyUpsertRequestType, &structs.RootKeyUpsertRequest{Keys: []*structs.RootKey{
		{KeyID: "k1", State: structs.RootKeyInactive, KEKID: "kek", Wrapped: []byte("wrapped-1"), CreateTime: 1},
		{KeyID: "k2", State: structs.RootKeyActive, KEKID: "kek", Wrapped: []byte("wrapped-2"), CreateTime: 2}}})
	for i, path := range []string{"app/config", "app/db", "certs/shop"} {
		resp := h.apply(structs.VariableApplyRequestType, &structs.VariableApplyRequest{Op: structs.VarOpSet, Var: &structs.VariableEncrypted{
			VariableMetadata: structs.VariableMetadata{Namespace: "default", Path: path, CreateTime: int64(i), ModifyTime: int64(i)},
			KeyID:            []string{"k1", "k2", "k2"}[i], Data: []byte("sealed-" + path)}})
		if r, ok := resp.(*structs.VariableApplyResponse); !ok || r.Conflicted || r.Meta == nil {
			h.t.Fatalf("apply variable %s: %#v", path, resp)
		}
	}
	populateClusterMeta(h)
}

// populateDefaultNamespace fills every table but the namespaces (which
// keeps the default one alone), as a cluster without namespaces would.
func populateDefaultNamespace(h *harness) {
	node := mock.Node()
	node.Attributes["extra"] = "x"
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node, UpdatedAt: 1})
	node2 := mock.Node()
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node2, UpdatedAt: 2})

	job := mock.Job()
	eval := mock.Eval(job)
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: eval, SubmitTime: 3})
	v2 := job.Copy()
	v2.TaskGroups[0].Count = 4
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: v2, Eval: mock.Eval(v2), SubmitTime: 4})

	var allocs []*structs.Allocation
	for i := 0; i < 4; i++ {
		a := mock.Alloc(v2, node, i)
		a.Job = nil
		a.EvalID = eval.ID
		a.TaskStates["server"].Events = []*structs.TaskEvent{{Type: structs.TaskEventStarted, Time: 99}}
		allocs = append(allocs, a)
	}
	blocked := eval.CreateBlockedEval(map[string]*structs.AllocMetric{"web": {NodesEvaluated: 2, DimensionExhausted: map[string]int{"memory": 2}}})
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: v2, AllocsPlaced: allocs, Evals: []*structs.Evaluation{blocked}, UpdatedAt: 5})
	done := eval.Copy()
	done.Status = structs.EvalStatusComplete
	h.mustApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{done}})
	h.mustApply(structs.NodeUpdateStatusRequestType, &structs.NodeUpdateStatusRequest{NodeID: node2.ID, Status: structs.NodeStatusDown, UpdatedAt: 6})

	dep := &structs.Deployment{ID: structs.GenerateUUID(), JobID: v2.ID, JobVersion: 1, Status: structs.DeploymentStatusRunning,
		TaskGroups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 4, DesiredCanaries: 1}}}
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: v2, Deployment: dep, UpdatedAt: 7})
	h.mustApply(structs.DeploymentPromoteRequestType, &structs.DeploymentPromoteRequest{DeploymentID: dep.ID, All: true, UpdatedAt: 8})
	h.mustApply(structs.SchedulerConfigRequestType, &structs.SchedulerSetConfigRequest{Config: structs.SchedulerConfiguration{
		PreemptionConfig: structs.PreemptionConfig{SystemSchedulerEnabled: true, ServiceSchedulerEnabled: true}}})
	populateACL(h)
}

// tableDump reads every table of a store, for comparison.
func tableDump(t *testing.T, s *state.StateStore) map[string]interface{} {
	t.Helper()
	jobs, err := s.Jobs(nil)
	if err != nil {
		t.Fatal(err)
	}
	versions, _ := s.JobVersions(nil)
	nodes, _ := s.Nodes(nil)
	allocs, _ := s.Allocs(nil)
	evals, _ := s.Evals(nil)
	indexes, _ := s.Indexes()
	deployments, _ := s.Deployments(nil)
	confs, _ := s.SchedulerConfigs()
	tables := map[string]interface{}{
		state.TableDeployment: deployments,
		state.TableSchedConf:  confs,
		state.TableIndex:      indexes,
		state.TableJobs:       jobs,
		state.TableJobVersion: versions,
		state.TableNodes:      nodes,
		state.TableAllocs:     allocs,
		state.TableEvals:      evals,
	}
	for table, rows := range aclDump(t, s) {
		tables[table] = rows
	}
	namespaces, _ := s.Namespaces(nil)
	tables[state.TableNamespaces] = namespaces
	quotas, _ := s.Quotas(nil)
	tables[state.TableQuotas] = quotas
	vips, _ := s.ServiceVIPs(nil)
	tables[state.TableServiceVIPs] = vips
	var vars []*structs.VariableEncrypted
	_ = s.VariablesByPrefix(nil, structs.AllNamespaces, "", func(v *structs.VariableEncrypted) bool {
		vars = append(vars, v)
		return true
	})
	tables[state.TableVariables] = vars
	keys, _ := s.RootKeys(nil)
	tables[state.TableRootKeys] = keys
	var metas []*structs.ClusterMeta
	if m, _ := s.ClusterMeta(); m != nil {
		metas = append(metas, m)
	}
	tables[state.TableClusterMeta] = metas
	return tables
}

func TestFSM_SnapshotRestoreRoundTrip(t *testing.T) {
	h := newHarness(t)
	populate(h)
	before := tableDump(t, h.fsm.State())

	snap, err := h.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	restored := New(Config{})
	oldState := restored.State()
	if err := restored.Restore(ioNopCloser{&sink.Buffer}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-oldState.AbandonCh():
	case <-time.After(time.Second):
		t.Fatal("restore did not abandon the old store")
	}
	after := tableDump(t, restored.State())

	for _, table := range state.Tables {
		t.Run(table, func(t *testing.T) {
			b, a := before[table], after[table]
			if reflect.ValueOf(b).Len() == 0 {
				t.Fatalf("table %s is empty before the snapshot; populate must fill it", table)
			}
			if !reflect.DeepEqual(normalize(t, b), normalize(t, a)) {
				t.Fatalf("table %s differs after restore:\nbefore %#v\nafter  %#v", table, b, a)
			}
		})
	}
	// The lists by node and by job are not in the snapshot: the restore
	// rebuilds them.
	allocs, _ := h.fsm.State().Allocs(nil)
	for _, a := range allocs {
		for what, list := range map[string]func(*state.StateStore) ([]*structs.Allocation, error){
			"node " + a.NodeID: func(s *state.StateStore) ([]*structs.Allocation, error) { return s.AllocsByNode(nil, a.NodeID) },
			"job " + a.JobID: func(s *state.StateStore) ([]*structs.Allocation, error) {
				return s.AllocsByJob(nil, a.Namespace, a.JobID)
			},
		} {
			b, _ := list(h.fsm.State())
			r, _ := list(restored.State())
			if len(b) == 0 || !reflect.DeepEqual(normalize(t, b), normalize(t, r)) {
				t.Fatalf("allocations of %s: %d before the snapshot, %d after restore", what, len(b), len(r))
			}
		}
	}
}

// normalize re-encodes a value so that the comparison ignores pointer
// identity (allocations share one *Job before a restore and each carry
// their own after).
func normalize(t *testing.T, v interface{}) []byte {
	buf, err := structs.Encode(0, v)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

type ioNopCloser struct{ *bytes.Buffer }

func (ioNopCloser) Close() error { return nil }

// A batch entry applies every plan at its index, hands their evaluations
// to the broker and unblocks once if any plan stopped allocations.
func TestFSM_ApplyPlanResultsBatch(t *testing.T) {
	h := newHarness(t)
	node := mock.Node()
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node})
	jobA, jobB := mock.Job(), mock.Job()
	a0 := mock.Alloc(jobA, node, 0)
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: jobA, AllocsPlaced: []*structs.Allocation{a0}})

	stop := a0.Copy()
	stop.DesiredStatus = structs.AllocDesiredStatusStop
	a1 := mock.Alloc(jobA, node, 1)
	b0 := mock.Alloc(jobB, node, 0)
	followup := mock.Eval(jobB)
	followup.Status = structs.EvalStatusPending
	before := len(h.rec.unblocked)
	h.mustApply(structs.ApplyPlanResultsBatchRequestType, &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{
		{Job: jobA, AllocsStopped: []*structs.Allocation{stop}, AllocsPlaced: []*structs.Allocation{a1}, UpdatedAt: 9},
		{Job: jobB, AllocsPlaced: []*structs.Allocation{b0}, Evals: []*structs.Evaluation{followup}, UpdatedAt: 9},
	}})
	st := h.fsm.State()
	for _, want := range []struct {
		id, job string
		desired string
	}{{a0.ID, jobA.ID, structs.AllocDesiredStatusStop}, {a1.ID, jobA.ID, structs.AllocDesiredStatusRun}, {b0.ID, jobB.ID, structs.AllocDesiredStatusRun}} {
		a, _ := st.AllocByID(nil, want.id)
		if a == nil || a.ModifyIndex != h.index || a.Job == nil || a.Job.ID != want.job || a.DesiredStatus != want.desired {
			t.Fatalf("alloc %s after the batch (index %d): %+v", want.id, h.index, a)
		}
	}
	if e, _ := st.EvalByID(nil, followup.ID); e == nil {
		t.Fatal("the batch's evaluation was not stored")
	}
	if got := len(h.rec.unblocked) - before; got != 1 {
		t.Fatalf("a batch that stops allocations unblocks once, got %d", got)
	}
	if !slices.Contains(h.rec.enqueued, followup.ID) {
		t.Fatalf("the batch's pending evaluation was not handed to the broker: %v", h.rec.enqueued)
	}
}
