package scheduler

import (
	"math/rand"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
)

// EvalContext is shared by the iterators of one scheduler run: the state,
// the plan being built (so placements made earlier in the run count
// against nodes), the metrics of the current placement, and the seeded
// random source.
type EvalContext struct {
	state   State
	plan    *structs.Plan
	logger  hclog.Logger
	rng     *rand.Rand
	metrics *structs.AllocMetric

	// nodeAllocs caches each node's non-terminal allocations in the
	// state snapshot; the plan's changes are layered on top per call.
	nodeAllocs map[string][]*structs.Allocation
}

// NewEvalContext returns a context for one scheduler run.
func NewEvalContext(state State, plan *structs.Plan, logger hclog.Logger, rng *rand.Rand) *EvalContext {
	return &EvalContext{
		state:      state,
		plan:       plan,
		logger:     logger,
		rng:        rng,
		metrics:    new(structs.AllocMetric),
		nodeAllocs: make(map[string][]*structs.Allocation),
	}
}

// Metrics returns the metrics of the placement in progress.
func (c *EvalContext) Metrics() *structs.AllocMetric { return c.metrics }

// ResetMetrics starts metrics for a new placement.
func (c *EvalContext) ResetMetrics() { c.metrics = new(structs.AllocMetric) }

// ProposedAllocs returns what would run on the node if the plan so far
// committed: the node's live allocations, less those the plan stops or
// updates, plus the plan's placements on it.
func (c *EvalContext) ProposedAllocs(nodeID string) ([]*structs.Allocation, error) {
	existing, ok := c.nodeAllocs[nodeID]
	if !ok {
		all, err := c.state.AllocsByNode(nil, nodeID)
		if err != nil {
			return nil, err
		}
		for _, a := range all {
			if !a.TerminalStatus() {
				existing = append(existing, a)
			}
		}
		c.nodeAllocs[nodeID] = existing
	}
	return structs.ProposedAllocs(existing, c.plan.NodeUpdate[nodeID], c.plan.NodeAllocation[nodeID]), nil
}
