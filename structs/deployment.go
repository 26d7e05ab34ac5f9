package structs

import (
	"time"
)

// UpdateStrategy is a group's `update` block: how a new job version
// replaces the running allocations. A group without one is updated all
// at once, without a deployment.
type UpdateStrategy struct {
	// Stagger is the pause between batches (system jobs).
	Stagger time.Duration
	// MaxParallel is how many allocations are replaced at a time.
	MaxParallel int
	// HealthCheck is how a client judges an allocation's health:
	// "task_states", its tasks have run for MinHealthyTime; "checks", or
	// "" (the default), also its service checks have all passed for
	// MinHealthyTime, when the group has checks (task states alone when
	// it has none).
	HealthCheck string
	// MinHealthyTime is how long an allocation's tasks must run to count
	// as healthy.
	MinHealthyTime time.Duration
	// HealthyDeadline is how long an allocation has to become healthy.
	HealthyDeadline time.Duration
	// ProgressDeadline fails the deployment when no allocation becomes
	// healthy for this long.
	ProgressDeadline time.Duration
	// Canary places this many allocations of the new version beside the
	// old ones, then waits for promotion.
	Canary      int
	AutoPromote bool
	// AutoRevert reverts the job to its last stable version when the
	// deployment fails.
	AutoRevert bool
}

// Update strategy defaults for fields an `update` block leaves unset.
const (
	DefaultUpdateMaxParallel      = 1
	DefaultUpdateMinHealthyTime   = 10 * time.Second
	DefaultUpdateHealthyDeadline  = 5 * time.Minute
	DefaultUpdateProgressDeadline = 10 * time.Minute
	DefaultUpdateStagger          = 30 * time.Second
	UpdateHealthCheckTaskStates   = "task_states"
	UpdateHealthCheckChecks       = "checks"
)

// Copy returns a copy.
func (u *UpdateStrategy) Copy() *UpdateStrategy {
	if u == nil {
		return nil
	}
	n := *u
	return &n
}

// inherit fills the fields u leaves unset (zero) from the job-level
// strategy, so a group's update block overrides the job's field by field.
// A boolean can only be inherited as true: a group cannot switch off
// auto_revert or auto_promote that the job sets.
func (u *UpdateStrategy) inherit(job *UpdateStrategy) {
	if u.Stagger == 0 {
		u.Stagger = job.Stagger
	}
	if u.MaxParallel == 0 {
		u.MaxParallel = job.MaxParallel
	}
	if u.HealthCheck == "" {
		u.HealthCheck = job.HealthCheck
	}
	if u.MinHealthyTime == 0 {
		u.MinHealthyTime = job.MinHealthyTime
	}
	if u.HealthyDeadline == 0 {
		u.HealthyDeadline = job.HealthyDeadline
	}
	if u.ProgressDeadline == 0 {
		u.ProgressDeadline = job.ProgressDeadline
	}
	if u.Canary == 0 {
		u.Canary = job.Canary
	}
	u.AutoPromote = u.AutoPromote || job.AutoPromote
	u.AutoRevert = u.AutoRevert || job.AutoRevert
}

// Canonicalize fills unset fields with defaults.
func (u *UpdateStrategy) Canonicalize() {
	if u.MaxParallel == 0 {
		u.MaxParallel = DefaultUpdateMaxParallel
	}
	// HealthCheck stays "" (checks when the group has them): the
	// strategy does not know whether it has.
	if u.MinHealthyTime == 0 {
		u.MinHealthyTime = DefaultUpdateMinHealthyTime
	}
	if u.HealthyDeadline == 0 {
		u.HealthyDeadline = DefaultUpdateHealthyDeadline
	}
	if u.ProgressDeadline == 0 {
		u.ProgressDeadline = DefaultUpdateProgressDeadline
	}
	if u.Stagger == 0 {
		u.Stagger = DefaultUpdateStagger
	}
}

// Rolling reports whether the strategy rolls (versus all at once).
func (u *UpdateStrategy) Rolling() bool { return u != nil && u.MaxParallel > 0 }

func (u *UpdateStrategy) validate(p *problems, path string) {
	if u.MaxParallel < 0 {
		p.add(path+".MaxParallel", "%d is negative", u.MaxParallel)
	}
	if u.Canary < 0 {
		p.add(path+".Canary", "%d is negative", u.Canary)
	}
	switch u.HealthCheck {
	case "", UpdateHealthCheckChecks, UpdateHealthCheckTaskStates:
	default:
		p.add(path+".HealthCheck", "unknown health check %q; accepted: %q, %q (or unset: checks)", u.HealthCheck, UpdateHealthCheckChecks, UpdateHealthCheckTaskStates)
	}
	if u.MinHealthyTime < 0 || u.HealthyDeadline < 0 || u.ProgressDeadline < 0 || u.Stagger < 0 {
		p.add(path, "durations must not be negative")
	}
	if u.HealthyDeadline > 0 && u.MinHealthyTime >= u.HealthyDeadline {
		p.add(path+".MinHealthyTime", "min_healthy_time (%s) must be shorter than healthy_deadline (%s)", u.MinHealthyTime, u.HealthyDeadline)
	}
	if u.ProgressDeadline > 0 && u.HealthyDeadline > u.ProgressDeadline {
		p.add(path+".HealthyDeadline", "healthy_deadline (%s) must not be longer than progress_deadline (%s)", u.HealthyDeadline, u.ProgressDeadline)
	}
	if u.AutoPromote && u.Canary == 0 {
		p.add(path+".AutoPromote", "auto_promote needs canaries (canary > 0)")
	}
}

// MigrateStrategy is a group's `migrate` block: how allocations move off
// a draining node.
type MigrateStrategy struct {
	// MaxParallel is how many allocations of the group migrate at once.
	MaxParallel int
}

// Deployment statuses.
const (
	DeploymentStatusRunning    = "running"
	DeploymentStatusPaused     = "paused"
	DeploymentStatusFailed     = "failed"
	DeploymentStatusSuccessful = "successful"
	DeploymentStatusCancelled  = "cancelled"
)

// Deployment descriptions.
const (
	DeploymentDescRunning             = "Deployment is running"
	DeploymentDescRunningNeedsPromote = "Deployment is running but requires manual promotion"
	DeploymentDescSuccessful          = "Deployment completed successfully"
	DeploymentDescNewerJob            = "Cancelled because the job was updated"
	DeploymentDescStopped             = "Cancelled because the job is stopped"
	DeploymentDescFailedAllocations   = "Failed due to unhealthy allocations"
	DeploymentDescProgressDeadline    = "Failed due to progress deadline"
	DeploymentDescFailedByUser        = "Deployment marked as failed"
	DeploymentDescRollbackSuffix      = " - rolling back to job version %d"
	DeploymentDescNoRollbackTargetFmt = " - no stable job version to auto revert to"
)

// Deployment tracks the rollout of one job version.
type Deployment struct {
	ID    string
	JobID string
	// Namespace is the job's namespace: the deployment rolls out job
	// (Namespace, JobID).
	Namespace  string
	JobVersion uint64
	// JobModifyIndex and JobCreateIndex identify the job version.
	JobModifyIndex uint64
	JobCreateIndex uint64
	// TaskGroups holds the rollout state per group.
	TaskGroups        map[string]*DeploymentState
	Status            string
	StatusDescription string
	// EvalPriority is the priority of the evaluations the deployment
	// watcher creates.
	EvalPriority int
	// History lists what happened, oldest first (bounded).
	History []*DeploymentEvent

	CreateIndex uint64
	ModifyIndex uint64
	CreateTime  int64
	ModifyTime  int64
}

// MaxDeploymentHistory bounds Deployment.History.
const MaxDeploymentHistory = 100

// DeploymentEvent is one line of a deployment's history.
type DeploymentEvent struct {
	Time    int64
	Message string
}

// DeploymentState is one group's rollout.
type DeploymentState struct {
	AutoRevert       bool
	AutoPromote      bool
	ProgressDeadline time.Duration
	// RequireProgressBy (Unix nanos) is when the deployment fails unless
	// an allocation becomes healthy.
	RequireProgressBy int64
	Promoted          bool
	PlacedCanaries    []string
	DesiredCanaries   int
	DesiredTotal      int
	PlacedAllocs      int
	HealthyAllocs     int
	UnhealthyAllocs   int
}

// Active reports whether the deployment is still in progress.
func (d *Deployment) Active() bool {
	return d.Status == DeploymentStatusRunning || d.Status == DeploymentStatusPaused
}

// RequiresPromotion reports whether some group's canaries await
// promotion.
func (d *Deployment) RequiresPromotion() bool {
	for _, s := range d.TaskGroups {
		if s.DesiredCanaries > 0 && !s.Promoted {
			return true
		}
	}
	return false
}

// AddEvent appends a history line, keeping the newest.
func (d *Deployment) AddEvent(at int64, msg string) {
	d.History = append(d.History, &DeploymentEvent{Time: at, Message: msg})
	if n := len(d.History); n > MaxDeploymentHistory {
		d.History = append([]*DeploymentEvent(nil), d.History[n-MaxDeploymentHistory:]...)
	}
}

// Copy returns a deep copy.
func (d *Deployment) Copy() *Deployment {
	if d == nil {
		return nil
	}
	c := *d
	c.TaskGroups = make(map[string]*DeploymentState, len(d.TaskGroups))
	for k, v := range d.TaskGroups {
		s := *v
		s.PlacedCanaries = append([]string(nil), v.PlacedCanaries...)
		c.TaskGroups[k] = &s
	}
	c.History = make([]*DeploymentEvent, len(d.History))
	for i, e := range d.History {
		ec := *e
		c.History[i] = &ec
	}
	return &c
}

// DeploymentStatusUpdate changes a deployment's status.
type DeploymentStatusUpdate struct {
	DeploymentID      string
	Status            string
	StatusDescription string
}

// AllocDeploymentStatus is an allocation's health in its deployment,
// reported by its client.
type AllocDeploymentStatus struct {
	// Healthy is nil until the client decided.
	Healthy   *bool
	Timestamp int64
	Canary    bool
}

// IsHealthy reports a decided healthy status.
func (s *AllocDeploymentStatus) IsHealthy() bool {
	return s != nil && s.Healthy != nil && *s.Healthy
}

// IsUnhealthy reports a decided unhealthy status.
func (s *AllocDeploymentStatus) IsUnhealthy() bool {
	return s != nil && s.Healthy != nil && !*s.Healthy
}

// IsCanary reports whether the allocation is a canary.
func (s *AllocDeploymentStatus) IsCanary() bool { return s != nil && s.Canary }

// Copy returns a copy.
func (s *AllocDeploymentStatus) Copy() *AllocDeploymentStatus {
	if s == nil {
		return nil
	}
	c := *s
	if s.Healthy != nil {
		h := *s.Healthy
		c.Healthy = &h
	}
	return &c
}

// DesiredTransition asks the scheduler to move an allocation.
type DesiredTransition struct {
	// Migrate moves the allocation off its node (drain).
	Migrate bool
}

// DrainStrategy is a node's drain in progress.
type DrainStrategy struct {
	// Deadline after which remaining allocations are stopped at once;
	// 0 means no deadline.
	Deadline         time.Duration
	IgnoreSystemJobs bool
	// StartedAt and ForceDeadline are Unix nanos (ForceDeadline 0: none).
	StartedAt     int64
	ForceDeadline int64
}

// Copy returns a copy.
func (d *DrainStrategy) Copy() *DrainStrategy {
	if d == nil {
		return nil
	}
	c := *d
	return &c
}

// PreemptionConfig says which schedulers may preempt.
type PreemptionConfig struct {
	SystemSchedulerEnabled  bool
	ServiceSchedulerEnabled bool
	BatchSchedulerEnabled   bool
}

// SchedulerConfiguration is the cluster-wide scheduler setting, stored
// in Raft.
type SchedulerConfiguration struct {
	PreemptionConfig PreemptionConfig
	CreateIndex      uint64
	ModifyIndex      uint64
}

// DefaultSchedulerConfiguration preempts for system jobs only.
func DefaultSchedulerConfiguration() *SchedulerConfiguration {
	return &SchedulerConfiguration{PreemptionConfig: PreemptionConfig{SystemSchedulerEnabled: true}}
}

// PreemptionEnabled reports whether jobs of this type may preempt.
func (c *SchedulerConfiguration) PreemptionEnabled(jobType string) bool {
	if c == nil {
		c = DefaultSchedulerConfiguration()
	}
	switch jobType {
	case JobTypeSystem:
		return c.PreemptionConfig.SystemSchedulerEnabled
	case JobTypeService:
		return c.PreemptionConfig.ServiceSchedulerEnabled
	case JobTypeBatch:
		return c.PreemptionConfig.BatchSchedulerEnabled
	}
	return false
}

// DesiredUpdates counts what a plan does to one group.
type DesiredUpdates struct {
	Ignore            int
	Place             int
	Migrate           int
	Stop              int
	InPlaceUpdate     int
	DestructiveUpdate int
	Canary            int
	Preemptions       int
}

// PlanAnnotations explain a plan per group (job plan).
type PlanAnnotations struct {
	DesiredTGUpdates map[string]*DesiredUpdates
	// PreemptedAllocs lists the allocations the plan evicts.
	PreemptedAllocs []*AllocListStub
}
