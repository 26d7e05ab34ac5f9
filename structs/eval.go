package structs

import "time"

// Evaluation statuses.
const (
	EvalStatusPending  = "pending"
	EvalStatusComplete = "complete"
	EvalStatusFailed   = "failed"
	// EvalStatusBlocked evaluations wait for capacity: they are
	// re-enqueued by the leader when a node becomes ready or
	// allocations finish.
	EvalStatusBlocked  = "blocked"
	EvalStatusCanceled = "canceled"
)

// What triggered an evaluation.
const (
	EvalTriggerJobRegister       = "job-register"
	EvalTriggerJobDeregister     = "job-deregister"
	EvalTriggerNodeUpdate        = "node-update"
	EvalTriggerRetryFailed       = "alloc-failure"
	EvalTriggerQueuedAllocs      = "queued-allocs"
	EvalTriggerRescheduling      = "alloc-reschedule"
	EvalTriggerMaxPlans          = "max-plan-attempts"
	EvalTriggerNodeDown          = "node-down"
	EvalTriggerDeploymentWatcher = "deployment-watcher"
	EvalTriggerNodeDrain         = "node-drain"
	EvalTriggerPreemption        = "preemption"
	EvalTriggerJobRevert         = "job-revert"
	EvalTriggerScheduled         = "scheduled"
)

// Evaluation is a request to reconcile one job's desired and actual
// state. The scheduler processes it into a plan.
type Evaluation struct {
	ID          string
	Priority    int
	Type        string
	TriggeredBy string
	JobID       string
	// Namespace is the job's namespace: the evaluation is about job
	// (Namespace, JobID).
	Namespace      string
	JobModifyIndex uint64
	// DeploymentID is the deployment the evaluation continues.
	DeploymentID      string
	NodeID            string
	NodeModifyIndex   uint64
	Status            string
	StatusDescription string

	// WaitUntil (Unix nanos) delays the evaluation until that time; used
	// for rescheduling failed allocations after their delay.
	WaitUntil int64

	// NextEval, PreviousEval and BlockedEval link evaluations that
	// continue one another.
	NextEval     string
	PreviousEval string
	BlockedEval  string

	// FailedTGAllocs explains, per task group, why allocations could not
	// be placed.
	FailedTGAllocs map[string]*AllocMetric
	// QueuedAllocations counts, per task group, allocations still
	// waiting for placement.
	QueuedAllocations map[string]int

	// SnapshotIndex is the state index the scheduler planned against.
	SnapshotIndex uint64

	CreateIndex uint64
	ModifyIndex uint64
	CreateTime  int64
	ModifyTime  int64
}

// TerminalStatus reports whether the evaluation is finished.
func (e *Evaluation) TerminalStatus() bool {
	switch e.Status {
	case EvalStatusComplete, EvalStatusFailed, EvalStatusCanceled:
		return true
	}
	return false
}

// ShouldEnqueue reports whether the eval broker should schedule it.
func (e *Evaluation) ShouldEnqueue() bool {
	return e.Status == EvalStatusPending
}

// ShouldBlock reports whether it waits in the blocked-evals tracker.
func (e *Evaluation) ShouldBlock() bool {
	return e.Status == EvalStatusBlocked
}

// Copy returns a deep copy.
func (e *Evaluation) Copy() *Evaluation {
	if e == nil {
		return nil
	}
	c := *e
	if e.FailedTGAllocs != nil {
		c.FailedTGAllocs = make(map[string]*AllocMetric, len(e.FailedTGAllocs))
		for k, v := range e.FailedTGAllocs {
			c.FailedTGAllocs[k] = v.Copy()
		}
	}
	if e.QueuedAllocations != nil {
		c.QueuedAllocations = make(map[string]int, len(e.QueuedAllocations))
		for k, v := range e.QueuedAllocations {
			c.QueuedAllocations[k] = v
		}
	}
	return &c
}

// CreateBlockedEval returns a blocked evaluation that continues e once
// capacity frees up.
func (e *Evaluation) CreateBlockedEval(failed map[string]*AllocMetric) *Evaluation {
	return &Evaluation{
		ID:             GenerateUUID(),
		Priority:       e.Priority,
		Type:           e.Type,
		TriggeredBy:    EvalTriggerQueuedAllocs,
		JobID:          e.JobID,
		Namespace:      e.Namespace,
		JobModifyIndex: e.JobModifyIndex,
		Status:         EvalStatusBlocked,
		PreviousEval:   e.ID,
		FailedTGAllocs: failed,
	}
}

// CreateFailedFollowUpEval returns an evaluation that retries e after
// wait, used when e hit its delivery limit.
func (e *Evaluation) CreateFailedFollowUpEval(now time.Time, wait time.Duration) *Evaluation {
	return &Evaluation{
		ID:             GenerateUUID(),
		Priority:       e.Priority,
		Type:           e.Type,
		TriggeredBy:    EvalTriggerRetryFailed,
		JobID:          e.JobID,
		Namespace:      e.Namespace,
		JobModifyIndex: e.JobModifyIndex,
		Status:         EvalStatusPending,
		WaitUntil:      now.Add(wait).UnixNano(),
		PreviousEval:   e.ID,
	}
}

// AllocMetric explains a placement: how many nodes were looked at, which
// were filtered out and why, which ran out of which resource, and how
// the best ones scored.
type AllocMetric struct {
	NodesEvaluated int
	NodesFiltered  int
	// NodesAvailable counts ready nodes per datacenter the job may use.
	NodesAvailable map[string]int
	// ClassFiltered and ConstraintFiltered count nodes filtered per node
	// class and per constraint (e.g. "missing driver \"containerd\"").
	ClassFiltered      map[string]int
	ConstraintFiltered map[string]int
	NodesExhausted     int
	ClassExhausted     map[string]int
	// DimensionExhausted counts nodes that ran out of "cpu", "memory" or
	// "ports".
	DimensionExhausted map[string]int
	// ScoreMetaData lists the top-scoring nodes with their scores.
	ScoreMetaData []*NodeScoreMeta
	// AllocationTime is how long the placement took to compute.
	AllocationTime time.Duration
	// CoalescedFailures counts further allocations of the same group that
	// failed for the same reason.
	CoalescedFailures int
	// QuotaExhausted explains a placement refused by the namespace's
	// quota, e.g. `quota "team-a" exhausted: memory 4096/4096 MB`
	// (structs.QuotaSpec.QuotaExceeded).
	QuotaExhausted []string
}

// NodeScoreMeta is one node's score breakdown.
type NodeScoreMeta struct {
	NodeID string
	// Scores are the components set for the node, in the scheduler's
	// order; JSON shows them as an object, name to score.
	Scores    ScoreComponents
	NormScore float64
}

// Copy returns a deep copy.
func (m *AllocMetric) Copy() *AllocMetric {
	if m == nil {
		return nil
	}
	c := *m
	c.NodesAvailable = copyIntMap(m.NodesAvailable)
	c.ClassFiltered = copyIntMap(m.ClassFiltered)
	c.ConstraintFiltered = copyIntMap(m.ConstraintFiltered)
	c.ClassExhausted = copyIntMap(m.ClassExhausted)
	c.DimensionExhausted = copyIntMap(m.DimensionExhausted)
	c.QuotaExhausted = append([]string(nil), m.QuotaExhausted...)
	if m.ScoreMetaData != nil {
		c.ScoreMetaData = make([]*NodeScoreMeta, len(m.ScoreMetaData))
		for i, s := range m.ScoreMetaData {
			sc := *s
			sc.Scores = append(ScoreComponents(nil), s.Scores...)
			c.ScoreMetaData[i] = &sc
		}
	}
	return &c
}

// EvaluateNode records that a node was looked at.
func (m *AllocMetric) EvaluateNode() { m.NodesEvaluated++ }

// FilterNode records a node filtered out by a constraint.
func (m *AllocMetric) FilterNode(node *Node, constraint string) {
	m.NodesFiltered++
	if node != nil && node.NodeClass != "" {
		if m.ClassFiltered == nil {
			m.ClassFiltered = make(map[string]int)
		}
		m.ClassFiltered[node.NodeClass]++
	}
	if constraint != "" {
		if m.ConstraintFiltered == nil {
			m.ConstraintFiltered = make(map[string]int)
		}
		m.ConstraintFiltered[constraint]++
	}
}

// ExhaustedNode records a node that lacked a resource.
func (m *AllocMetric) ExhaustedNode(node *Node, dimension string) {
	m.NodesExhausted++
	if node != nil && node.NodeClass != "" {
		if m.ClassExhausted == nil {
			m.ClassExhausted = make(map[string]int)
		}
		m.ClassExhausted[node.NodeClass]++
	}
	if dimension != "" {
		if m.DimensionExhausted == nil {
			m.DimensionExhausted = make(map[string]int)
		}
		m.DimensionExhausted[dimension]++
	}
}

func copyIntMap(m map[string]int) map[string]int {
	if m == nil {
		return nil
	}
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
