package deploymentwatcher

import (
	"fmt"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// State is the read-only view the watcher decides from.
// *state.StateStore and *state.Snapshot satisfy it. The watcher never
// modifies what it returns. Jobs are named by namespace and ID (a
// deployment's Namespace and JobID): IDs repeat across namespaces.
type State interface {
	Deployments(ws memdb.WatchSet) ([]*structs.Deployment, error)
	AllocsByJob(ws memdb.WatchSet, namespace, jobID string) ([]*structs.Allocation, error)
	// JobByID returns nil, nil for an unknown job.
	JobByID(ws memdb.WatchSet, namespace, id string) (*structs.Job, error)
	// JobVersionsByID returns the kept versions of a job, newest first.
	JobVersionsByID(ws memdb.WatchSet, namespace, id string) ([]*structs.Job, error)
}

// Raft commits the watcher's decisions. The server implements it over
// its Raft log. The methods are called on the watcher's goroutine and
// return an error when the write was not committed; the watcher then
// decides again on its next pass, from the state as it is then.
type Raft interface {
	// PromoteCanaries promotes the canaries of every group of d and
	// creates the evaluation that continues the rollout.
	PromoteCanaries(d *structs.Deployment) error
	// MarkSuccessful marks d successful, which marks its job version
	// stable.
	MarkSuccessful(d *structs.Deployment) error
	// MarkFailed fails f.Deployment with f.Description, registers
	// f.RevertTo again in the same write when it is set, and creates the
	// evaluation that reconciles the job with the failed deployment.
	MarkFailed(f *Failure) error
}

// Failure is the decision to fail a deployment.
type Failure struct {
	Deployment *structs.Deployment
	// Description is the deployment's new status description: why it
	// failed, and what happens to the job.
	Description string
	// RevertTo is the job version an auto-revert registers again, nil
	// when none is asked for or none qualifies.
	RevertTo *structs.Job
}

// NewFailure decides how d fails for reason (one of the
// structs.DeploymentDesc* descriptions): when one of its groups asks for
// auto_revert, the job goes back to RevertTarget's version, and the
// description says so, or says that there is none. The leader's watcher
// and an operator's `deployment fail` decide through it alike.
func NewFailure(st State, d *structs.Deployment, reason string) (*Failure, error) {
	f := &Failure{Deployment: d, Description: reason}
	revert := false
	for _, tg := range d.TaskGroups {
		revert = revert || tg.AutoRevert
	}
	if !revert {
		return f, nil
	}
	target, err := RevertTarget(st, d)
	if err != nil {
		return nil, fmt.Errorf("find a version to revert deployment %s to: %w", d.ID, err)
	}
	if target == nil {
		f.Description += structs.DeploymentDescNoRollbackTargetFmt
		return f, nil
	}
	f.RevertTo = target
	f.Description += fmt.Sprintf(structs.DeploymentDescRollbackSuffix, target.Version)
	return f, nil
}

// RevertTarget returns the newest stable version of the deployment's
// job older than the deployed version whose spec differs from the
// current job's (registering the same spec again would change nothing),
// or nil.
func RevertTarget(st State, d *structs.Deployment) (*structs.Job, error) {
	current, err := st.JobByID(nil, d.Namespace, d.JobID)
	if err != nil || current == nil {
		return nil, err
	}
	versions, err := st.JobVersionsByID(nil, d.Namespace, d.JobID)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		if v.Version < d.JobVersion && v.Stable && current.SpecChanged(v) {
			return v, nil
		}
	}
	return nil, nil
}

// DefaultInterval is how often the leader looks at running deployments.
const DefaultInterval = 250 * time.Millisecond

// Config configures a Watcher.
type Config struct {
	// State returns the current view; it is called once per pass, so a
	// store replaced by a snapshot restore is seen at the next pass.
	State func() State
	Raft  Raft
	// Logger logs the watcher's decisions; nil logs nothing.
	Logger hclog.Logger
	// Now is the clock progress deadlines are compared with; nil is
	// time.Now.
	Now func() time.Time
	// Interval is the time between passes; zero is DefaultInterval.
	Interval time.Duration
}

// Watcher drives deployments on the leader. Clients report each
// allocation's health; the FSM counts healthy and unhealthy allocations
// per group and pushes the progress deadline on progress; the scheduler
// places the next batch when an evaluation (created with the health
// update) runs. What is left is decided here, from the state:
//   - an unhealthy allocation fails the deployment;
//   - a group without progress past its deadline fails it;
//   - a failed deployment with auto_revert registers the newest stable
//     earlier version again (NewFailure);
//   - canaries that are all healthy are promoted when auto_promote is set;
//   - a deployment whose groups are all healthy and promoted succeeds,
//     which marks its job version stable.
//
// Every decision is a Raft write that carries the leader's clock, so
// the state store stays deterministic.
type Watcher struct {
	cfg Config
}

// New returns a watcher; Run drives it.
func New(cfg Config) *Watcher {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	return &Watcher{cfg: cfg}
}

// Run makes a pass every Interval until stopCh closes. The leader runs
// it while it leads.
func (w *Watcher) Run(stopCh <-chan struct{}) {
	ticker := time.NewTicker(w.cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-stopCh:
			return
		case <-ticker.C:
		}
		w.pass()
	}
}

// pass looks at every active deployment once.
func (w *Watcher) pass() {
	st := w.cfg.State()
	deps, err := st.Deployments(nil)
	if err != nil {
		w.cfg.Logger.Error("deployment watcher cannot read deployments", "error", err)
		return
	}
	for _, d := range deps {
		if !d.Active() {
			continue
		}
		if err := w.watch(st, d); err != nil {
			w.cfg.Logger.Warn("deployment watcher failed", "deployment_id", d.ID, "error", err)
		}
	}
}

func (w *Watcher) watch(st State, d *structs.Deployment) error {
	allocs, err := st.AllocsByJob(nil, d.Namespace, d.JobID)
	if err != nil {
		return err
	}
	for _, a := range allocs {
		if a.DeploymentID == d.ID && a.DeploymentStatus.IsUnhealthy() {
			return w.fail(st, d, structs.DeploymentDescFailedAllocations)
		}
	}
	now := w.cfg.Now()
	complete, needPromote, canAutoPromote := true, false, true
	for _, tg := range d.TaskGroups {
		groupDone := tg.HealthyAllocs >= tg.DesiredTotal
		if tg.DesiredCanaries > 0 && !tg.Promoted {
			needPromote = true
			groupDone = false
			healthy := 0
			for _, id := range tg.PlacedCanaries {
				for _, a := range allocs {
					if a.ID == id && a.DeploymentStatus.IsHealthy() {
						healthy++
					}
				}
			}
			if !tg.AutoPromote || healthy < tg.DesiredCanaries {
				canAutoPromote = false
			}
		}
		if !groupDone {
			complete = false
			if tg.RequireProgressBy > 0 && now.UnixNano() > tg.RequireProgressBy {
				return w.fail(st, d, structs.DeploymentDescProgressDeadline)
			}
		}
	}
	switch {
	case needPromote && canAutoPromote:
		return w.cfg.Raft.PromoteCanaries(d)
	case complete:
		if err := w.cfg.Raft.MarkSuccessful(d); err != nil {
			return err
		}
		w.cfg.Logger.Info("deployment successful", "deployment_id", d.ID, "job_id", d.JobID, "version", d.JobVersion)
	}
	return nil
}

func (w *Watcher) fail(st State, d *structs.Deployment, reason string) error {
	f, err := NewFailure(st, d, reason)
	if err != nil {
		return err
	}
	return w.cfg.Raft.MarkFailed(f)
}
