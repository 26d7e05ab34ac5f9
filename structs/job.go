package structs

import (
	"reflect"
	"time"
)

// Job types.
const (
	// JobTypeService jobs run until stopped; lost or failed allocations
	// are replaced.
	JobTypeService = "service"
	// JobTypeBatch jobs run to completion; completed allocations are not
	// run again, failed ones are rescheduled per the reschedule policy.
	JobTypeBatch = "batch"
	// JobTypeSystem jobs run one allocation of each group on every
	// eligible node, including nodes that join later.
	JobTypeSystem = "system"
)

// DefaultNodePool is the node pool of jobs and nodes that name none.
const DefaultNodePool = "default"

// Job statuses, derived by the state store from the job's allocations.
const (
	JobStatusPending = "pending"
	JobStatusRunning = "running"
	JobStatusDead    = "dead"
)

// Job defaults applied by Canonicalize.
const (
	DefaultJobPriority  = 50
	MinJobPriority      = 1
	MaxJobPriority      = 100
	DefaultDatacenter   = "dc1"
	DefaultKillTimeout  = 5 * time.Second
	DefaultTaskCPU      = 100
	DefaultTaskMemoryMB = 300
)

// Job is the unit an operator submits: a named set of task groups, each
// run Count times.
type Job struct {
	// ID is the job's identifier, chosen by the operator, unique within
	// its namespace.
	ID string
	// Namespace is the namespace the job lives in (DefaultNamespace when
	// unset); the job is keyed by (Namespace, ID).
	Namespace string
	// Name defaults to ID.
	Name        string
	Type        string
	Priority    int
	Datacenters []string
	// NodePool restricts the job to nodes of that pool ("default" when
	// unset; "all" for any pool).
	NodePool    string
	Constraints []*Constraint
	Affinities  []*Affinity
	Spreads     []*Spread
	// Update is the default update strategy of the job's groups.
	Update     *UpdateStrategy
	Meta       map[string]string
	TaskGroups []*TaskGroup

	// Stop marks a job stopped by the operator (`job stop` without
	// -purge): it stays in the state store and its allocations stop.
	Stop bool

	// Status is derived by the state store; see JobStatus*.
	Status            string
	StatusDescription string

	// Version counts the job's registrations with a changed spec,
	// starting at 0. Previous versions are kept in the state store.
	Version uint64
	// Stable marks a version whose deployment succeeded; auto-revert
	// goes back to the newest stable version.
	Stable bool
	// SubmitTime is when the leader accepted this version, Unix nanos.
	SubmitTime int64

	CreateIndex uint64
	ModifyIndex uint64
	// JobModifyIndex is the Raft index at which the spec last changed;
	// status-only changes do not move it.
	JobModifyIndex uint64
}

// TaskGroup is the unit of placement: every task in a group runs on the
// same node, in one allocation.
type TaskGroup struct {
	Name             string
	Count            int
	Constraints      []*Constraint
	Affinities       []*Affinity
	Spreads          []*Spread
	Networks         []*NetworkResource
	RestartPolicy    *RestartPolicy
	ReschedulePolicy *ReschedulePolicy
	Update           *UpdateStrategy
	Migrate          *MigrateStrategy
	Tasks            []*Task
	Meta             map[string]string
	// Services are the group's `service` blocks (service.go); a task's
	// own services are in Task.Services.
	Services []*Service `json:",omitempty"`
}

// Task is one container.
type Task struct {
	Name        string
	Driver      string
	Config      *TaskConfig
	Env         map[string]string
	Resources   *Resources
	KillTimeout time.Duration
	Constraints []*Constraint
	Affinities  []*Affinity
	Meta        map[string]string
	// LogConfig bounds the task's output kept on the node; nil takes
	// DefaultLogConfig (see logs.go).
	LogConfig *LogConfig `json:",omitempty"`
	// Services are the task's `service` blocks; their checks run while
	// the task runs.
	Services []*Service `json:",omitempty"`
	// Templates are the task's `template` blocks, rendered by the client
	// into the task's directories before it starts and again when what
	// they read changes.
	Templates []*Template `json:",omitempty"`
}

// Template change modes.
const (
	TemplateChangeRestart = "restart"
	TemplateChangeSignal  = "signal"
	TemplateChangeNoop    = "noop"
)

// Template is a task's `template` block: a Go text/template rendered by
// the client into DestPath (relative to the task directory: local/...,
// secrets/... or alloc/...). Field names follow Nomad's job JSON.
type Template struct {
	// EmbeddedTmpl is the template text (`data`, or the content of
	// `source` read by the CLI next to the job file).
	EmbeddedTmpl string
	// SourcePath is the `source` the job file named, for display.
	SourcePath string `json:",omitempty"`
	DestPath   string
	// Envvars: the rendered file is KEY=VALUE lines added to the task's
	// environment.
	Envvars      bool
	ChangeMode   string
	ChangeSignal string `json:",omitempty"`
	// Splay staggers the restarts or signals a change causes: each
	// allocation waits a random time up to Splay.
	Splay time.Duration
	// Perms is the octal mode of the rendered file ("0644" default).
	Perms string `json:",omitempty"`
	// WaitMissing bounds how long a task waits for a variable its
	// template names that does not exist (default 30s); then the task
	// fails naming the path.
	WaitMissing time.Duration
}

// TaskConfig is the driver configuration of a task. Its JSON keys are
// lower-case, as in Nomad's job JSON.
type TaskConfig struct {
	Image   string   `json:"image"`
	Command string   `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
}

// Resources a task asks for.
type Resources struct {
	// CPU in MHz.
	CPU int
	// MemoryMB is the memory limit in MiB.
	MemoryMB int
}

// NetworkResource asks for ports on the node (host networking).
type NetworkResource struct {
	Mode          string
	ReservedPorts []Port
	DynamicPorts  []Port
}

// Port is a labelled port: a static one (ReservedPorts, Value set) or a
// dynamic one (DynamicPorts, Value chosen by the scheduler).
type Port struct {
	Label       string
	Value       int
	To          int
	HostNetwork string
}

// Restart policy modes.
const (
	RestartPolicyModeFail  = "fail"
	RestartPolicyModeDelay = "delay"
)

// RestartPolicy tells the client how often to restart a failed task in
// place before giving up on the allocation.
type RestartPolicy struct {
	// Attempts restarts allowed within Interval.
	Attempts int
	Interval time.Duration
	// Delay between a task's exit and its restart.
	Delay time.Duration
	// Mode is what happens when Attempts are used up within Interval:
	// "fail" fails the allocation (so the server may reschedule it),
	// "delay" waits until the interval ends and tries again.
	Mode string
}

// Reschedule delay functions.
const (
	DelayFunctionConstant    = "constant"
	DelayFunctionExponential = "exponential"
	DelayFunctionFibonacci   = "fibonacci"
)

// ReschedulePolicy tells the server how to replace a failed allocation
// with a new one, possibly on another node.
type ReschedulePolicy struct {
	Attempts      int
	Interval      time.Duration
	Delay         time.Duration
	DelayFunction string
	MaxDelay      time.Duration
	Unlimited     bool
}

// DefaultRestartPolicy returns the restart policy used when a group has
// none.
func DefaultRestartPolicy(jobType string) *RestartPolicy {
	if jobType == JobTypeBatch {
		return &RestartPolicy{Attempts: 3, Interval: 24 * time.Hour, Delay: 15 * time.Second, Mode: RestartPolicyModeFail}
	}
	return &RestartPolicy{Attempts: 2, Interval: 30 * time.Minute, Delay: 15 * time.Second, Mode: RestartPolicyModeFail}
}

// DefaultReschedulePolicy returns the reschedule policy used when a group
// has none.
func DefaultReschedulePolicy(jobType string) *ReschedulePolicy {
	if jobType == JobTypeBatch {
		return &ReschedulePolicy{Attempts: 1, Interval: 24 * time.Hour, Delay: 5 * time.Second, DelayFunction: DelayFunctionConstant}
	}
	return &ReschedulePolicy{Delay: 30 * time.Second, DelayFunction: DelayFunctionExponential, MaxDelay: time.Hour, Unlimited: true}
}

// Canonicalize fills in defaults. It is called by the leader before a
// job is written and by the CLI before it shows or validates a job; it is
// idempotent.
func (j *Job) Canonicalize() {
	if j == nil {
		return
	}
	if j.Name == "" {
		j.Name = j.ID
	}
	j.Namespace = NamespaceOrDefault(j.Namespace)
	if j.Type == "" {
		j.Type = JobTypeService
	}
	if j.Priority == 0 {
		j.Priority = DefaultJobPriority
	}
	if len(j.Datacenters) == 0 {
		j.Datacenters = []string{DefaultDatacenter}
	}
	if j.NodePool == "" {
		j.NodePool = DefaultNodePool
	}
	for _, sp := range j.Spreads {
		if sp != nil && sp.Weight == 0 {
			sp.Weight = 50
		}
	}
	for _, tg := range j.TaskGroups {
		if tg == nil {
			continue
		}
		ApplyServiceDefaults(tg)
		// A group inherits the job's update block; either way unset
		// fields get defaults. System jobs update all at once.
		if tg.Update == nil && j.Update != nil {
			tg.Update = j.Update.Copy()
		} else if tg.Update != nil && j.Update != nil {
			tg.Update.inherit(j.Update)
		}
		if tg.Update != nil {
			if j.Type == JobTypeSystem || j.Type == JobTypeBatch {
				tg.Update = nil
			} else {
				tg.Update.Canonicalize()
			}
		}
		for _, sp := range tg.Spreads {
			if sp != nil && sp.Weight == 0 {
				sp.Weight = 50
			}
		}
		if tg.RestartPolicy == nil {
			tg.RestartPolicy = DefaultRestartPolicy(j.Type)
		} else if tg.RestartPolicy.Mode == "" {
			tg.RestartPolicy.Mode = RestartPolicyModeFail
		}
		if tg.ReschedulePolicy == nil {
			tg.ReschedulePolicy = DefaultReschedulePolicy(j.Type)
		} else if tg.ReschedulePolicy.DelayFunction == "" {
			tg.ReschedulePolicy.DelayFunction = DelayFunctionConstant
		}
		for _, n := range tg.Networks {
			if n != nil && n.Mode == "" {
				n.Mode = "host"
			}
		}
		for _, t := range tg.Tasks {
			if t == nil {
				continue
			}
			if t.Resources == nil {
				t.Resources = &Resources{CPU: DefaultTaskCPU, MemoryMB: DefaultTaskMemoryMB}
			}
			if t.KillTimeout == 0 {
				t.KillTimeout = DefaultKillTimeout
			}
			for _, tmpl := range t.Templates {
				if tmpl != nil {
					tmpl.canonicalize()
				}
			}
		}
	}
}

// LookupTaskGroup returns the group with the given name, or nil.
func (j *Job) LookupTaskGroup(name string) *TaskGroup {
	for _, tg := range j.TaskGroups {
		if tg.Name == name {
			return tg
		}
	}
	return nil
}

// LookupTask returns the task with the given name, or nil.
func (tg *TaskGroup) LookupTask(name string) *Task {
	for _, t := range tg.Tasks {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Stopped reports whether the job should have nothing running.
func (j *Job) Stopped() bool {
	return j == nil || j.Stop
}

// Copy returns a deep copy of the job.
func (j *Job) Copy() *Job {
	if j == nil {
		return nil
	}
	n := *j
	n.Datacenters = copyStrings(j.Datacenters)
	n.Meta = copyMap(j.Meta)
	n.Constraints = copyConstraints(j.Constraints)
	n.Affinities = copyAffinities(j.Affinities)
	n.Spreads = copySpreads(j.Spreads)
	n.Update = j.Update.Copy()
	if j.TaskGroups != nil {
		n.TaskGroups = make([]*TaskGroup, len(j.TaskGroups))
		for i, tg := range j.TaskGroups {
			n.TaskGroups[i] = tg.Copy()
		}
	}
	return &n
}

// Copy returns a deep copy of the group.
func (tg *TaskGroup) Copy() *TaskGroup {
	if tg == nil {
		return nil
	}
	n := *tg
	n.Meta = copyMap(tg.Meta)
	n.Constraints = copyConstraints(tg.Constraints)
	n.Affinities = copyAffinities(tg.Affinities)
	n.Spreads = copySpreads(tg.Spreads)
	n.Update = tg.Update.Copy()
	if tg.Migrate != nil {
		m := *tg.Migrate
		n.Migrate = &m
	}
	if tg.Networks != nil {
		n.Networks = make([]*NetworkResource, len(tg.Networks))
		for i, nw := range tg.Networks {
			n.Networks[i] = nw.Copy()
		}
	}
	if tg.RestartPolicy != nil {
		rp := *tg.RestartPolicy
		n.RestartPolicy = &rp
	}
	if tg.ReschedulePolicy != nil {
		rp := *tg.ReschedulePolicy
		n.ReschedulePolicy = &rp
	}
	if tg.Tasks != nil {
		n.Tasks = make([]*Task, len(tg.Tasks))
		for i, t := range tg.Tasks {
			n.Tasks[i] = t.Copy()
		}
	}
	n.Services = copyServices(tg.Services)
	return &n
}

// Copy returns a deep copy of the task.
func (t *Task) Copy() *Task {
	if t == nil {
		return nil
	}
	n := *t
	n.Env = copyMap(t.Env)
	n.Meta = copyMap(t.Meta)
	n.Constraints = copyConstraints(t.Constraints)
	n.Affinities = copyAffinities(t.Affinities)
	n.LogConfig = t.LogConfig.Copy()
	n.Services = copyServices(t.Services)
	n.Templates = copyTemplates(t.Templates)
	if t.Config != nil {
		c := *t.Config
		c.Args = copyStrings(t.Config.Args)
		n.Config = &c
	}
	if t.Resources != nil {
		r := *t.Resources
		n.Resources = &r
	}
	return &n
}

// Copy returns a deep copy of the network resource.
func (n *NetworkResource) Copy() *NetworkResource {
	if n == nil {
		return nil
	}
	c := *n
	c.ReservedPorts = append([]Port(nil), n.ReservedPorts...)
	c.DynamicPorts = append([]Port(nil), n.DynamicPorts...)
	return &c
}

// JobListStub is the short form of a job returned by list endpoints.
type JobListStub struct {
	ID                string
	Namespace         string
	Name              string
	Type              string
	Priority          int
	Status            string
	StatusDescription string
	Stop              bool
	Version           uint64
	SubmitTime        int64
	CreateIndex       uint64
	ModifyIndex       uint64
	JobModifyIndex    uint64
	Stable            bool
	Datacenters       []string
}

// Stub returns the list form of the job.
func (j *Job) Stub() *JobListStub {
	return &JobListStub{
		ID:             j.ID,
		Namespace:      j.Namespace,
		Name:           j.Name,
		Type:           j.Type,
		Priority:       j.Priority,
		Status:         j.Status,
		Stop:           j.Stop,
		Version:        j.Version,
		SubmitTime:     j.SubmitTime,
		CreateIndex:    j.CreateIndex,
		ModifyIndex:    j.ModifyIndex,
		JobModifyIndex: j.JobModifyIndex,
		Stable:         j.Stable,
		Datacenters:    j.Datacenters,
	}
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	n := make(map[string]string, len(m))
	for k, v := range m {
		n[k] = v
	}
	return n
}

func copyStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

// SpecChanged reports whether other differs from j in anything the
// operator wrote (everything but status, version, timestamps and Raft
// indexes). Registering an unchanged spec does not create a new version.
func (j *Job) SpecChanged(other *Job) bool {
	if j == nil || other == nil {
		return j != other
	}
	a, b := j.Copy(), other.Copy()
	for _, x := range []*Job{a, b} {
		x.Status, x.StatusDescription = "", ""
		x.Version, x.SubmitTime, x.Stable = 0, 0, false
		x.CreateIndex, x.ModifyIndex, x.JobModifyIndex = 0, 0, 0
	}
	return !reflect.DeepEqual(a, b)
}

func copyConstraints(cs []*Constraint) []*Constraint {
	if cs == nil {
		return nil
	}
	out := make([]*Constraint, len(cs))
	for i, c := range cs {
		out[i] = c.Copy()
	}
	return out
}

func copyAffinities(as []*Affinity) []*Affinity {
	if as == nil {
		return nil
	}
	out := make([]*Affinity, len(as))
	for i, a := range as {
		out[i] = a.Copy()
	}
	return out
}

func copySpreads(ss []*Spread) []*Spread {
	if ss == nil {
		return nil
	}
	out := make([]*Spread, len(ss))
	for i, sp := range ss {
		out[i] = sp.Copy()
	}
	return out
}

// MigrateMaxParallel is how many of the group's allocations may move off
// a draining node at once: the migrate block's, else the update block's,
// else 1.
func (tg *TaskGroup) MigrateMaxParallel() int {
	if tg.Migrate != nil && tg.Migrate.MaxParallel > 0 {
		return tg.Migrate.MaxParallel
	}
	if tg.Update != nil && tg.Update.MaxParallel > 0 {
		return tg.Update.MaxParallel
	}
	return 1
}
