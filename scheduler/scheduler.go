package scheduler

import (
	"fmt"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// State is the read-only view of the cluster the scheduler plans
// against; *state.Snapshot implements it. Returned objects are shared
// and must not be modified. Everything keyed by job takes the job's
// namespace and ID: job IDs repeat across namespaces.
type State interface {
	JobByID(ws memdb.WatchSet, namespace, id string) (*structs.Job, error)
	Nodes(ws memdb.WatchSet) ([]*structs.Node, error)
	// NodesDerived returns build(every node), memoized per change of the
	// nodes table under key (see state.StateStore.NodesDerived).
	NodesDerived(key string, build func(all []*structs.Node) interface{}) (interface{}, error)
	NodeByID(ws memdb.WatchSet, id string) (*structs.Node, error)
	AllocsByJob(ws memdb.WatchSet, namespace, jobID string) ([]*structs.Allocation, error)
	AllocsByNode(ws memdb.WatchSet, nodeID string) ([]*structs.Allocation, error)
	LatestDeploymentByJobID(ws memdb.WatchSet, namespace, jobID string) (*structs.Deployment, error)
	SchedulerConfig() (uint64, *structs.SchedulerConfiguration, error)
	LatestIndex() (uint64, error)
	// AllocByID returns an allocation, nil if unknown.
	AllocByID(ws memdb.WatchSet, id string) (*structs.Allocation, error)
	// QuotaOfNamespace returns the quota the namespace is held to, nil
	// when none; NamespaceUsage what its allocations hold (quota.go).
	QuotaOfNamespace(ws memdb.WatchSet, namespace string) (*structs.QuotaSpec, error)
	NamespaceUsage(ws memdb.WatchSet, namespace string) (structs.QuotaLimits, error)
}

// Planner is how the scheduler changes the cluster. The server's worker
// implements it; tests use a Harness. All methods are called from the
// scheduler's goroutine.
type Planner interface {
	// SubmitPlan hands a plan to the leader's plan applier and waits for
	// the result. When part of the plan was rejected, the result has a
	// RefreshIndex and the returned State is at least that new; the
	// scheduler must re-plan against it. Otherwise State is nil.
	SubmitPlan(plan *structs.Plan) (*structs.PlanResult, State, error)

	// UpdateEval records the outcome of the evaluation being processed.
	UpdateEval(eval *structs.Evaluation) error

	// CreateEval creates a new evaluation (blocked or follow-up).
	CreateEval(eval *structs.Evaluation) error

	// ReblockEval puts a blocked evaluation back into the blocked
	// tracker, with updated failure metrics, when it still cannot place.
	ReblockEval(eval *structs.Evaluation) error
}

// Scheduler processes one evaluation.
type Scheduler interface {
	Process(eval *structs.Evaluation) error
}

// Config carries what a scheduler needs besides state and planner.
type Config struct {
	Logger hclog.Logger
	// Now is the clock used for reschedule delays; time.Now by default.
	// Tests inject a fixed clock.
	Now func() time.Time
	// Annotate submits the plan even when it changes nothing, so a dry
	// run (`job plan`) always sees the per-group annotations.
	Annotate bool
}

// Factory builds a scheduler.
type Factory func(cfg Config, state State, planner Planner) Scheduler

// BuiltinSchedulers maps job types to their scheduler.
var BuiltinSchedulers = map[string]Factory{
	structs.JobTypeService: NewServiceScheduler,
	structs.JobTypeBatch:   NewBatchScheduler,
	structs.JobTypeSystem:  NewSystemScheduler,
}

// NewScheduler returns the scheduler for an evaluation type.
func NewScheduler(evalType string, cfg Config, state State, planner Planner) (Scheduler, error) {
	f, ok := BuiltinSchedulers[evalType]
	if !ok {
		return nil, fmt.Errorf("no scheduler for evaluation type %q", evalType)
	}
	return f(cfg, state, planner), nil
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}
