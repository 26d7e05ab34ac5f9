package fsm

import (
	"reflect"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// compactScene is a log of plan batches and client updates over two
// nodes and a job with a deployment: placements, in-place updates,
// stops (one lost), preemptions, task states, check results,
// deployment health and a failure with its evaluation.
type compactScene struct {
	setup   []entry
	plans   []*structs.ApplyPlanResultsBatchRequest
	updates []*structs.AllocUpdateRequest
}

type entry struct {
	typ structs.MessageType
	msg interface{}
}

func newCompactScene() *compactScene {
	s := &compactScene{}
	node, node2 := mock.Node(), mock.Node()
	job, other := mock.Job(), mock.Job()
	job.TaskGroups[0].Count = 4
	s.setup = []entry{
		{structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node, UpdatedAt: 1}},
		{structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node2, UpdatedAt: 2}},
		{structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: mock.Eval(job)}},
		{structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: other, Eval: mock.Eval(other)}},
	}
	dep := &structs.Deployment{ID: structs.GenerateUUID(), JobID: job.ID, Namespace: job.Namespace, JobVersion: job.Version,
		Status: structs.DeploymentStatusRunning, TaskGroups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 4}}}

	// Entry 1: two plans placing on both nodes, with metrics; the job
	// travels in the plan, one allocation keeps its own copy.
	var placed []*structs.Allocation
	mkPlan := func(j *structs.Job, n int, d *structs.Deployment) *structs.ApplyPlanResultsRequest {
		p := &structs.ApplyPlanResultsRequest{Job: j, EvalID: structs.GenerateUUID(), UpdatedAt: 1_000 + int64(len(placed)), Deployment: d}
		for i := 0; i < n; i++ {
			a := mock.Alloc(j, []*structs.Node{node, node2}[i%2], i)
			a.Job, a.TaskStates, a.ClientStatus = nil, nil, structs.AllocClientStatusPending
			a.EvalID = p.EvalID
			if d != nil {
				a.DeploymentID = d.ID
				a.DeploymentStatus = &structs.AllocDeploymentStatus{Canary: i == 0}
			}
			a.Metrics = &structs.AllocMetric{NodesEvaluated: 2, NodesAvailable: map[string]int{"dc1": 2},
				ScoreMetaData:  []*structs.NodeScoreMeta{{NodeID: node.ID, Scores: structs.ScoreComponents{{Name: structs.ScoreBinpack, Score: 0.25}}, NormScore: 0.25}},
				AllocationTime: time.Millisecond}
			p.AllocsPlaced = append(p.AllocsPlaced, a)
			placed = append(placed, a)
		}
		return p
	}
	p1, p2 := mkPlan(job, 4, dep), mkPlan(other, 3, nil)
	p2.AllocsPlaced[2].Job = other
	p2.Evals = []*structs.Evaluation{mock.Eval(other)}
	s.plans = append(s.plans, &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{p1, p2}})

	// Entry 2: client reports: running with task states and checks,
	// health, one failed (with the leader's evaluation).
	var reports []*structs.Allocation
	for i, a := range placed {
		r := &structs.Allocation{ID: a.ID, NodeID: a.NodeID, ClientStatus: structs.AllocClientStatusRunning,
			TaskStates: map[string]*structs.TaskState{"server": {State: structs.TaskStateRunning, StartedAt: time.Unix(1700000000+int64(i), 5).UTC(),
				Events: []*structs.TaskEvent{{Type: structs.TaskEventStarted, Time: 7, Message: "started"}}}},
			Checks: map[string]*structs.CheckStatus{structs.CheckKey("web", "http"): {Service: "web", Check: "http", Status: structs.ServiceStatusPassing, Output: "HTTP 200", Timestamp: 9}},
		}
		if a.DeploymentID != "" {
			healthy := i != 1
			r.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: &healthy, Timestamp: 11}
		}
		if i == 5 {
			r.ClientStatus, r.ClientDescription = structs.AllocClientStatusFailed, "exited 1"
			r.TaskStates["server"].State, r.TaskStates["server"].Failed = structs.TaskStateDead, true
			r.TaskStates["server"].FinishedAt = time.Unix(1700000100, 0).UTC()
		}
		reports = append(reports, r)
	}
	s.updates = append(s.updates, &structs.AllocUpdateRequest{Alloc: reports, Evals: []*structs.Evaluation{mock.Eval(other)}, UpdatedAt: 2_000})

	// Entry 3: stop one allocation (lost), preempt another, update one
	// in place and cancel the deployment.
	stop := placed[0].Copy()
	stop.DesiredStatus, stop.DesiredDescription, stop.ClientStatus = structs.AllocDesiredStatusStop, "node down", structs.AllocClientStatusLost
	evict := placed[4].Copy()
	evict.DesiredStatus, evict.DesiredDescription, evict.PreemptedByAllocation = structs.AllocDesiredStatusEvict, "preempted", placed[1].ID
	inPlace := placed[2].Copy()
	inPlace.DesiredDescription = "updated in place"
	p3 := &structs.ApplyPlanResultsRequest{Job: job, EvalID: structs.GenerateUUID(), UpdatedAt: 3_000,
		AllocsPlaced: []*structs.Allocation{inPlace}, AllocsStopped: []*structs.Allocation{stop}, AllocsPreempted: []*structs.Allocation{evict},
		DeploymentUpdates: []*structs.DeploymentStatusUpdate{{DeploymentID: dep.ID, Status: structs.DeploymentStatusCancelled, StatusDescription: "superseded"}}}
	s.plans = append(s.plans, &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{p3}})

	// Entry 4: the stopped ones report complete.
	s.updates = append(s.updates, &structs.AllocUpdateRequest{UpdatedAt: 4_000, Alloc: []*structs.Allocation{
		{ID: stop.ID, NodeID: stop.NodeID, ClientStatus: structs.AllocClientStatusComplete},
		{ID: evict.ID, NodeID: evict.NodeID, ClientStatus: structs.AllocClientStatusComplete, FollowupEvalID: "f"},
	}})
	return s
}

// run applies the scene to a fresh harness, the plans and updates
// written as planType and updateType.
func (s *compactScene) run(t *testing.T, planType, updateType structs.MessageType) *harness {
	h := newHarness(t)
	for _, e := range s.setup {
		h.mustApply(e.typ, e.msg)
	}
	for i := range s.plans {
		h.mustApply(planType, s.plans[i])
		h.mustApply(updateType, s.updates[i])
	}
	return h
}

// TestFSM_CompactEntriesApplyAsMsgpackOnes applies the same plans and
// client updates once as msgpack entries and once as compact ones, and
// requires identical states and identical calls to the broker and the
// blocked evals.
func TestFSM_CompactEntriesApplyAsMsgpackOnes(t *testing.T) {
	s := newCompactScene()
	old := s.run(t, structs.ApplyPlanResultsBatchRequestType, structs.AllocClientUpdateRequestType)
	compact := s.run(t, structs.ApplyPlanResultsCompactRequestType, structs.AllocClientUpdateCompactRequestType)

	if a, b := hashOf(t, old.fsm), hashOf(t, compact.fsm); a != b {
		t.Fatalf("states differ:\nmsgpack %s\ncompact %s", a, b)
	}
	oldAllocs, err := old.fsm.State().Allocs(nil)
	if err != nil {
		t.Fatal(err)
	}
	compactAllocs, err := compact.fsm.State().Allocs(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(oldAllocs) != 7 {
		t.Fatalf("%d allocations, want the 7 placed", len(oldAllocs))
	}
	if !reflect.DeepEqual(oldAllocs, compactAllocs) {
		t.Fatalf("stored allocations differ")
	}
	// The scene did what it says: a lost stop, an eviction, a failure.
	byID := map[string]*structs.Allocation{}
	for _, a := range compactAllocs {
		byID[a.ID] = a
	}
	stop, evict := s.plans[1].Plans[0].AllocsStopped[0], s.plans[1].Plans[0].AllocsPreempted[0]
	if a := byID[stop.ID]; a.DesiredStatus != structs.AllocDesiredStatusStop || a.DesiredDescription != "node down" || a.ClientStatus != structs.AllocClientStatusComplete {
		t.Fatalf("stopped allocation: desired %s (%s) client %s", a.DesiredStatus, a.DesiredDescription, a.ClientStatus)
	}
	if a := byID[evict.ID]; a.DesiredStatus != structs.AllocDesiredStatusEvict || a.PreemptedByAllocation == "" || a.FollowupEvalID != "f" {
		t.Fatalf("evicted allocation: %+v", a)
	}
	if a := byID[s.updates[0].Alloc[5].ID]; a.ClientStatus != structs.AllocClientStatusFailed || a.Checks == nil {
		t.Fatalf("failed allocation: %+v", a)
	}
	if !reflect.DeepEqual(old.rec.enqueued, compact.rec.enqueued) || !reflect.DeepEqual(old.rec.unblocked, compact.rec.unblocked) ||
		!reflect.DeepEqual(old.rec.blocked, compact.rec.blocked) || !reflect.DeepEqual(old.rec.untracked, compact.rec.untracked) {
		t.Fatalf("broker calls differ: msgpack %+v, compact %+v", old.rec, compact.rec)
	}
	if len(compact.rec.unblocked) == 0 {
		t.Fatal("the stops and the failure unblocked nothing")
	}
}

// TestFSM_CompactEntriesDecodeAsMsgpackOnes checks that the compact
// decoding of the scene's entries equals the msgpack decoding, stopped
// and preempted allocations cut to what the FSM reads.
func TestFSM_CompactEntriesDecodeAsMsgpackOnes(t *testing.T) {
	s := newCompactScene()
	for i, batch := range s.plans {
		buf, err := structs.Encode(structs.ApplyPlanResultsBatchRequestType, batch)
		if err != nil {
			t.Fatal(err)
		}
		var want structs.ApplyPlanResultsBatchRequest
		if err := structs.Decode(buf[1:], &want); err != nil {
			t.Fatal(err)
		}
		for _, p := range want.Plans {
			for j := range p.AllocsStopped {
				p.AllocsStopped[j] = structs.CompactStop(p.AllocsStopped[j])
			}
			for j := range p.AllocsPreempted {
				p.AllocsPreempted[j] = structs.CompactStop(p.AllocsPreempted[j])
			}
		}
		cbuf, err := structs.Encode(structs.ApplyPlanResultsCompactRequestType, batch)
		if err != nil {
			t.Fatal(err)
		}
		got, err := structs.DecodeCompactPlanBatch(cbuf[1:])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("plan batch %d: the compact decoding differs from the msgpack one", i)
		}
		if len(cbuf) >= len(buf) {
			t.Errorf("plan batch %d: compact entry %d bytes, msgpack %d", i, len(cbuf), len(buf))
		}
	}
	for i, upd := range s.updates {
		buf, err := structs.Encode(structs.AllocClientUpdateRequestType, upd)
		if err != nil {
			t.Fatal(err)
		}
		var want structs.AllocUpdateRequest
		if err := structs.Decode(buf[1:], &want); err != nil {
			t.Fatal(err)
		}
		cbuf, err := structs.Encode(structs.AllocClientUpdateCompactRequestType, upd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := structs.DecodeCompactAllocUpdate(cbuf[1:])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("client update %d: the compact decoding differs from the msgpack one", i)
		}
	}
}
