package structs

// Plan is what a scheduler run wants to change: allocations to stop and
// allocations to place (or update in place), per node. The plan applier
// re-checks it against the newest state before committing.
type Plan struct {
	EvalID string
	// EvalToken proves the submitting worker still holds the eval.
	EvalToken string
	Priority  int
	// Job is the job version the placements run; nil when the job was
	// purged.
	Job *Job

	// NodeUpdate holds allocations to stop, per node ID. Only ID,
	// DesiredStatus, DesiredDescription and ClientStatus (for lost) are
	// read from them.
	NodeUpdate map[string][]*Allocation
	// NodeAllocation holds allocations to place or update, per node ID.
	NodeAllocation map[string][]*Allocation

	// NodePreemptions holds allocations evicted for the plan's
	// placements, per node (DesiredStatus evict).
	NodePreemptions map[string][]*Allocation

	// Deployment is created (or updated) with the plan; DeploymentUpdates
	// change other deployments' status (e.g. cancel a superseded one).
	Deployment        *Deployment
	DeploymentUpdates []*DeploymentStatusUpdate

	// Annotations explain the plan per group; set for `job plan`.
	Annotations *PlanAnnotations

	// SnapshotIndex is the state index the plan was made against.
	SnapshotIndex uint64
}

// AppendPreemptedAlloc records an eviction.
func (p *Plan) AppendPreemptedAlloc(alloc *Allocation, preemptor string) {
	n := alloc.Copy()
	n.DesiredStatus = AllocDesiredStatusEvict
	n.DesiredDescription = "Preempted by allocation " + preemptor
	n.PreemptedByAllocation = preemptor
	n.Job = nil
	if p.NodePreemptions == nil {
		p.NodePreemptions = make(map[string][]*Allocation)
	}
	p.NodePreemptions[alloc.NodeID] = append(p.NodePreemptions[alloc.NodeID], n)
}

// AppendStoppedAlloc adds alloc to the plan as stopped, with a reason.
// clientStatus, when set, also overrides the client status (for lost
// allocations on down nodes).
func (p *Plan) AppendStoppedAlloc(alloc *Allocation, desc, clientStatus string) {
	n := alloc.Copy()
	n.DesiredStatus = AllocDesiredStatusStop
	n.DesiredDescription = desc
	if clientStatus != "" {
		n.ClientStatus = clientStatus
	}
	// The job travels once, in Plan.Job.
	n.Job = nil
	if p.NodeUpdate == nil {
		p.NodeUpdate = make(map[string][]*Allocation)
	}
	p.NodeUpdate[alloc.NodeID] = append(p.NodeUpdate[alloc.NodeID], n)
}

// AppendAlloc adds a placement or in-place update.
func (p *Plan) AppendAlloc(alloc *Allocation) {
	if p.NodeAllocation == nil {
		p.NodeAllocation = make(map[string][]*Allocation)
	}
	p.NodeAllocation[alloc.NodeID] = append(p.NodeAllocation[alloc.NodeID], alloc)
}

// IsNoOp reports whether the plan changes nothing.
func (p *Plan) IsNoOp() bool {
	return len(p.NodeUpdate) == 0 && len(p.NodeAllocation) == 0 && len(p.NodePreemptions) == 0 &&
		p.Deployment == nil && len(p.DeploymentUpdates) == 0
}

// PlanResult is what the plan applier committed.
type PlanResult struct {
	NodeUpdate      map[string][]*Allocation
	NodeAllocation  map[string][]*Allocation
	NodePreemptions map[string][]*Allocation
	// Deployment and DeploymentUpdates are committed with the plan.
	Deployment        *Deployment
	DeploymentUpdates []*DeploymentStatusUpdate
	// RejectedNodes lists nodes whose part of the plan no longer fit.
	RejectedNodes []string
	// RefreshIndex, when non-zero, tells the scheduler to refresh its
	// state to at least this index and re-plan what was rejected.
	RefreshIndex uint64
	// AllocIndex is the Raft index of the commit.
	AllocIndex uint64
}

// FullCommit reports whether everything in plan was committed, and
// counts what was expected and what was committed.
func (r *PlanResult) FullCommit(plan *Plan) (bool, int, int) {
	if r == nil {
		return false, 0, 0
	}
	expected, actual := 0, 0
	for node, allocs := range plan.NodeAllocation {
		expected += len(allocs)
		actual += len(r.NodeAllocation[node])
	}
	return expected == actual, expected, actual
}

// ApplyPlanResultsRequest is the Raft message that commits a plan.
type ApplyPlanResultsRequest struct {
	// Job is the job the placed allocations run; the FSM links each
	// allocation without a Job to it.
	Job *Job
	// AllocsPlaced are new or updated allocations (with AllocModifyIndex
	// moved by the FSM).
	AllocsPlaced []*Allocation
	// AllocsStopped carry the ID and new desired/client status of
	// allocations to stop.
	AllocsStopped []*Allocation
	// AllocsPreempted carry the ID, desired status (evict) and the
	// preempting allocation of evicted allocations.
	AllocsPreempted []*Allocation
	// Deployment is created or updated; DeploymentUpdates change other
	// deployments' status.
	Deployment        *Deployment
	DeploymentUpdates []*DeploymentStatusUpdate
	// Evals created with the plan (e.g. blocked or follow-up evals).
	Evals  []*Evaluation
	EvalID string
	// UpdatedAt is stamped by the leader, Unix nanos.
	UpdatedAt int64
}

// ApplyPlanResultsBatchRequest commits several plans in one Raft entry,
// applied in order in one state transaction: the plan applier gathers
// the plans that arrive while the previous entry commits, so Raft's
// round trip is paid once per batch, not once per plan.
type ApplyPlanResultsBatchRequest struct {
	Plans []*ApplyPlanResultsRequest
}
