package scheduler

import (
	"sort"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Harness is a Planner over a real state store: it records every plan
// and evaluation the scheduler submits and applies them to the store,
// as the leader's plan applier would, so that state-dependent behaviour
// (re-plans, follow-up evals) is exercised for real.
type Harness struct {
	t     *testing.T
	State *state.StateStore

	mu          sync.Mutex
	Plans       []*structs.Plan
	Evals       []*structs.Evaluation // UpdateEval calls
	CreateEvals []*structs.Evaluation
	Reblocked   []*structs.Evaluation

	// RejectPlans rejects this many plans outright (nothing committed,
	// RefreshIndex set), to exercise re-planning.
	RejectPlans int

	nextIndex uint64
	// Now is the clock given to schedulers.
	Now time.Time
}

// NewHarness returns a harness over an empty store.
func NewHarness(t *testing.T) *Harness {
	return &Harness{t: t, State: state.NewStateStore(), nextIndex: 1000, Now: time.Unix(1_800_000_000, 0)}
}

// NextIndex returns a fresh Raft-like index.
func (h *Harness) NextIndex() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextIndex++
	return h.nextIndex
}

// SubmitPlan implements Planner.
func (h *Harness) SubmitPlan(plan *structs.Plan) (*structs.PlanResult, State, error) {
	h.mu.Lock()
	h.Plans = append(h.Plans, plan)
	reject := h.RejectPlans > 0
	if reject {
		h.RejectPlans--
	}
	h.mu.Unlock()

	index := h.NextIndex()
	if reject {
		result := &structs.PlanResult{RefreshIndex: index}
		for node := range plan.NodeAllocation {
			result.RejectedNodes = append(result.RejectedNodes, node)
		}
		return result, h.State.Snapshot(), nil
	}

	// The scheduler planned against a consistent snapshot, so the plan
	// applier's re-check must pass: anything else is a scheduler bug.
	h.checkPlan(plan)

	req := &structs.ApplyPlanResultsRequest{
		Job: plan.Job, EvalID: plan.EvalID, UpdatedAt: h.Now.UnixNano(),
		Deployment: plan.Deployment, DeploymentUpdates: plan.DeploymentUpdates,
	}
	for _, node := range sortedKeys(plan.NodeUpdate) {
		req.AllocsStopped = append(req.AllocsStopped, plan.NodeUpdate[node]...)
	}
	for _, node := range sortedKeys(plan.NodePreemptions) {
		req.AllocsPreempted = append(req.AllocsPreempted, plan.NodePreemptions[node]...)
	}
	for _, node := range sortedKeys(plan.NodeAllocation) {
		req.AllocsPlaced = append(req.AllocsPlaced, plan.NodeAllocation[node]...)
	}
	if err := h.State.UpsertPlanResults(index, req); err != nil {
		return nil, nil, err
	}
	return &structs.PlanResult{
		NodeUpdate: plan.NodeUpdate, NodeAllocation: plan.NodeAllocation, NodePreemptions: plan.NodePreemptions,
		Deployment: plan.Deployment, DeploymentUpdates: plan.DeploymentUpdates, AllocIndex: index,
	}, nil, nil
}

// checkPlan re-checks a plan as the leader's plan applier does: on every
// node that receives a non-terminal allocation, what would run after
// the plan must fit the node, and new allocations need a ready node.
// Violations fail the test.
func (h *Harness) checkPlan(plan *structs.Plan) {
	h.t.Helper()
	for _, nodeID := range sortedKeys(plan.NodeAllocation) {
		placed := plan.NodeAllocation[nodeID]
		node, err := h.State.NodeByID(nil, nodeID)
		if err != nil {
			h.t.Fatal(err)
		}
		all, err := h.State.AllocsByNode(nil, nodeID)
		if err != nil {
			h.t.Fatal(err)
		}
		known := make(map[string]bool, len(all))
		var existing []*structs.Allocation
		for _, a := range all {
			known[a.ID] = true
			if !a.TerminalStatus() {
				existing = append(existing, a)
			}
		}
		needsRoom := false
		for _, a := range placed {
			if a.TerminalStatus() {
				continue
			}
			needsRoom = true
			if !known[a.ID] && (node == nil || !node.Ready()) {
				h.t.Errorf("plan for eval %s places %s on node %s, which is not ready", plan.EvalID, a.Name, nodeID)
			}
		}
		if !needsRoom || node == nil {
			continue
		}
		removed := append(append([]*structs.Allocation(nil), plan.NodeUpdate[nodeID]...), plan.NodePreemptions[nodeID]...)
		proposed := structs.ProposedAllocs(existing, removed, placed)
		if fit, dim, used := structs.AllocsFit(node, proposed); !fit {
			h.t.Errorf("plan for eval %s over-commits node %s (%s): %s exhausted, %+v used of %+v",
				plan.EvalID, node.Name, nodeID, dim, used, node.CheckedCapacity())
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// UpdateEval implements Planner.
func (h *Harness) UpdateEval(eval *structs.Evaluation) error {
	h.mu.Lock()
	h.Evals = append(h.Evals, eval)
	h.mu.Unlock()
	return h.State.UpsertEvals(h.NextIndex(), []*structs.Evaluation{eval})
}

// CreateEval implements Planner.
func (h *Harness) CreateEval(eval *structs.Evaluation) error {
	h.mu.Lock()
	h.CreateEvals = append(h.CreateEvals, eval)
	h.mu.Unlock()
	return h.State.UpsertEvals(h.NextIndex(), []*structs.Evaluation{eval})
}

// ReblockEval implements Planner.
func (h *Harness) ReblockEval(eval *structs.Evaluation) error {
	h.mu.Lock()
	h.Reblocked = append(h.Reblocked, eval)
	h.mu.Unlock()
	return h.State.UpsertEvals(h.NextIndex(), []*structs.Evaluation{eval})
}

// Process runs the scheduler for eval's type against a fresh snapshot.
func (h *Harness) Process(eval *structs.Evaluation) {
	h.t.Helper()
	cfg := Config{Logger: hclog.NewNullLogger(), Now: func() time.Time { return h.Now }}
	sched, err := NewScheduler(eval.Type, cfg, h.State.Snapshot(), h)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := sched.Process(eval); err != nil {
		h.t.Fatalf("process eval: %v", err)
	}
}

// LastPlan returns the newest plan, failing the test if there is none.
func (h *Harness) LastPlan() *structs.Plan {
	h.t.Helper()
	if len(h.Plans) == 0 {
		h.t.Fatal("no plan was submitted")
	}
	return h.Plans[len(h.Plans)-1]
}

// LastEval returns the newest UpdateEval, failing if there is none.
func (h *Harness) LastEval() *structs.Evaluation {
	h.t.Helper()
	if len(h.Evals) == 0 {
		h.t.Fatal("the evaluation was never updated")
	}
	return h.Evals[len(h.Evals)-1]
}

// Placed flattens a plan's placements.
func Placed(p *structs.Plan) []*structs.Allocation {
	var out []*structs.Allocation
	for _, allocs := range p.NodeAllocation {
		out = append(out, allocs...)
	}
	return out
}

// Stopped flattens a plan's stops.
func Stopped(p *structs.Plan) []*structs.Allocation {
	var out []*structs.Allocation
	for _, allocs := range p.NodeUpdate {
		out = append(out, allocs...)
	}
	return out
}
