package structs

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Allocation desired statuses, set by the scheduler.
const (
	AllocDesiredStatusRun  = "run"
	AllocDesiredStatusStop = "stop"
	// AllocDesiredStatusEvict: preempted for a higher-priority job.
	AllocDesiredStatusEvict = "evict"
)

// Allocation client statuses, reported by the client (lost: by the
// leader when the node goes down).
const (
	AllocClientStatusPending  = "pending"
	AllocClientStatusRunning  = "running"
	AllocClientStatusComplete = "complete"
	AllocClientStatusFailed   = "failed"
	AllocClientStatusLost     = "lost"
)

// Allocation is one placement of a task group on a node.
type Allocation struct {
	ID     string
	EvalID string
	// Name is "<job>.<group>[<index>]"; the index is stable across
	// replacements so an operator can follow "instance 2" of a group.
	Name     string
	NodeID   string
	NodeName string
	JobID    string
	// Namespace is the job's namespace; the allocation belongs to job
	// (Namespace, JobID).
	Namespace string
	// Job is the job version this allocation runs. Allocations placed
	// in the same plan share one *Job; treat it as immutable.
	Job        *Job
	JobVersion uint64
	TaskGroup  string

	AllocatedResources *AllocatedResources

	DesiredStatus      string
	DesiredDescription string
	ClientStatus       string
	ClientDescription  string
	TaskStates         map[string]*TaskState
	// Checks are the client's latest results of the allocation's
	// service checks, keyed by CheckKey(service, check); reported with
	// the client's updates like TaskStates.
	Checks map[string]*CheckStatus `json:",omitempty"`

	// PreviousAllocation is the allocation this one replaces;
	// NextAllocation is the one that replaced it.
	PreviousAllocation string
	NextAllocation     string
	RescheduleTracker  *RescheduleTracker
	// FollowupEvalID is the delayed evaluation that will reschedule this
	// failed allocation.
	FollowupEvalID string

	// DeploymentID is the deployment that placed the allocation, and
	// DeploymentStatus its health there (reported by the client).
	DeploymentID     string
	DeploymentStatus *AllocDeploymentStatus
	// DesiredTransition asks the scheduler to migrate it (drain).
	DesiredTransition DesiredTransition
	// Metrics explains the placement: nodes evaluated and filtered, and
	// the top scored nodes with each score component.
	Metrics *AllocMetric
	// PreemptedAllocations are the allocations evicted to make room for
	// this one; PreemptedByAllocation the one this was evicted for.
	PreemptedAllocations  []string
	PreemptedByAllocation string

	CreateIndex uint64
	ModifyIndex uint64
	// AllocModifyIndex moves when the server changes the allocation
	// (desired status, job); client status updates do not move it.
	AllocModifyIndex uint64
	// CreateTime and ModifyTime are Unix nanoseconds.
	CreateTime int64
	ModifyTime int64
}

// AllocatedResources is what the scheduler granted an allocation.
type AllocatedResources struct {
	Tasks  map[string]*AllocatedTaskResources
	Shared AllocatedSharedResources
}

// AllocatedTaskResources is one task's share.
type AllocatedTaskResources struct {
	Cpu    AllocatedCpuResources
	Memory AllocatedMemoryResources
}

// AllocatedCpuResources is CPU in MHz (shares).
type AllocatedCpuResources struct {
	CpuShares int64
}

// AllocatedMemoryResources is memory in MiB.
type AllocatedMemoryResources struct {
	MemoryMB int64
}

// AllocatedSharedResources is shared by the group's tasks.
type AllocatedSharedResources struct {
	Ports []AllocatedPortMapping
}

// AllocatedPortMapping is a port granted on the node.
type AllocatedPortMapping struct {
	Label  string
	Value  int
	To     int
	HostIP string
}

// Task states.
const (
	TaskStatePending = "pending"
	TaskStateRunning = "running"
	TaskStateDead    = "dead"
)

// TaskState is the client's view of one task.
type TaskState struct {
	State       string
	Failed      bool
	Restarts    uint64
	LastRestart time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	Events      []*TaskEvent
}

// Task event types.
const (
	TaskEventReceived     = "Received"
	TaskEventDriverStart  = "Driver"
	TaskEventStarted      = "Started"
	TaskEventTerminated   = "Terminated"
	TaskEventRestarting   = "Restarting"
	TaskEventNotRestart   = "Not Restarting"
	TaskEventKilling      = "Killing"
	TaskEventKilled       = "Killed"
	TaskEventDriverError  = "Driver Failure"
	TaskEventReattached   = "Reattached"
	TaskEventSetupFailure = "Setup Failure"
	// TaskEventTemplate: a template of the task waits for what it
	// reads, or could not be rendered after the task started.
	TaskEventTemplate = "Template"
	// TaskEventRestartSignal: the task is restarted because a template
	// it reads changed (not counted against the restart policy).
	TaskEventRestartSignal = "Restart Signaled"
	// TaskEventSignaling: the task is sent a signal because a template
	// it reads changed.
	TaskEventSignaling = "Signaling"
)

// MaxTaskEvents is how many events a task state keeps.
const MaxTaskEvents = 10

// TaskEvent is one thing that happened to a task.
type TaskEvent struct {
	Type     string
	Time     int64
	Message  string
	ExitCode int
	Signal   int
}

// RescheduleTracker records the reschedules that led to an allocation.
type RescheduleTracker struct {
	Events []*RescheduleEvent
}

// RescheduleEvent is one reschedule.
type RescheduleEvent struct {
	RescheduleTime int64
	PrevAllocID    string
	PrevNodeID     string
	Delay          time.Duration
}

// AllocName returns the allocation name for a group instance.
func AllocName(job, group string, index int) string {
	return job + "." + group + "[" + strconv.Itoa(index) + "]"
}

// Index returns the instance index parsed from the allocation's name.
func (a *Allocation) Index() int {
	l := strings.LastIndexByte(a.Name, '[')
	r := strings.LastIndexByte(a.Name, ']')
	if l < 0 || r <= l {
		return -1
	}
	i, err := strconv.Atoi(a.Name[l+1 : r])
	if err != nil {
		return -1
	}
	return i
}

// ServerTerminalStatus reports whether the scheduler wants the allocation
// stopped.
func (a *Allocation) ServerTerminalStatus() bool {
	return a.DesiredStatus == AllocDesiredStatusStop || a.DesiredStatus == AllocDesiredStatusEvict
}

// ClientTerminalStatus reports whether the allocation has finished on the
// client (or was lost with its node).
func (a *Allocation) ClientTerminalStatus() bool {
	switch a.ClientStatus {
	case AllocClientStatusComplete, AllocClientStatusFailed, AllocClientStatusLost:
		return true
	}
	return false
}

// ClientStatusAfterReport is the client status of an allocation stored
// with status stored once its client reports reported: a lost
// allocation stays lost (the servers already replaced it) unless the
// client says it completed.
func ClientStatusAfterReport(stored, reported string) string {
	if stored == AllocClientStatusLost && reported != AllocClientStatusComplete {
		return stored
	}
	return reported
}

// TerminalStatus reports whether the allocation no longer holds, or will
// soon no longer hold, resources on its node.
func (a *Allocation) TerminalStatus() bool {
	return a.ServerTerminalStatus() || a.ClientTerminalStatus()
}

// FailedAt returns when the allocation failed: the latest FinishedAt of
// its failed tasks, as the client reported them. It does not move when
// the allocation is later annotated (FollowupEvalID) or updated, so
// reschedule delays count from the failure itself. Allocations without
// a failed task report their ModifyTime.
func (a *Allocation) FailedAt() time.Time {
	var at time.Time
	for _, ts := range a.TaskStates {
		if ts != nil && ts.Failed && ts.FinishedAt.After(at) {
			at = ts.FinishedAt
		}
	}
	if at.IsZero() {
		return time.Unix(0, a.ModifyTime)
	}
	return at
}

// Ports returns the port values the allocation holds on its node.
func (a *Allocation) Ports() []int {
	if a.AllocatedResources == nil {
		return nil
	}
	out := make([]int, 0, len(a.AllocatedResources.Shared.Ports))
	for _, p := range a.AllocatedResources.Shared.Ports {
		out = append(out, p.Value)
	}
	return out
}

// Copy returns a copy of the allocation. The Job pointer is shared (jobs
// in allocations are immutable); everything else is deep-copied.
func (a *Allocation) Copy() *Allocation {
	if a == nil {
		return nil
	}
	c := *a
	if a.AllocatedResources != nil {
		ar := &AllocatedResources{Shared: AllocatedSharedResources{
			Ports: append([]AllocatedPortMapping(nil), a.AllocatedResources.Shared.Ports...),
		}}
		if a.AllocatedResources.Tasks != nil {
			ar.Tasks = make(map[string]*AllocatedTaskResources, len(a.AllocatedResources.Tasks))
			for k, v := range a.AllocatedResources.Tasks {
				tv := *v
				ar.Tasks[k] = &tv
			}
		}
		c.AllocatedResources = ar
	}
	if a.TaskStates != nil {
		c.TaskStates = make(map[string]*TaskState, len(a.TaskStates))
		for k, v := range a.TaskStates {
			c.TaskStates[k] = v.Copy()
		}
	}
	if a.RescheduleTracker != nil {
		c.RescheduleTracker = &RescheduleTracker{Events: append([]*RescheduleEvent(nil), a.RescheduleTracker.Events...)}
	}
	c.DeploymentStatus = a.DeploymentStatus.Copy()
	c.PreemptedAllocations = copyStrings(a.PreemptedAllocations)
	if a.Checks != nil {
		c.Checks = make(map[string]*CheckStatus, len(a.Checks))
		for k, v := range a.Checks {
			c.Checks[k] = v.Copy()
		}
	}
	return &c
}

// Copy returns a deep copy of the task state.
func (ts *TaskState) Copy() *TaskState {
	if ts == nil {
		return nil
	}
	c := *ts
	if ts.Events != nil {
		c.Events = make([]*TaskEvent, len(ts.Events))
		for i, e := range ts.Events {
			ec := *e
			c.Events[i] = &ec
		}
	}
	return &c
}

// AddEvent appends an event, keeping the newest MaxTaskEvents.
func (ts *TaskState) AddEvent(e *TaskEvent) {
	ts.Events = append(ts.Events, e)
	if n := len(ts.Events); n > MaxTaskEvents {
		ts.Events = append([]*TaskEvent(nil), ts.Events[n-MaxTaskEvents:]...)
	}
}

// Successful reports whether a dead task finished without failing.
func (ts *TaskState) Successful() bool {
	return ts.State == TaskStateDead && !ts.Failed
}

// AllocListStub is the short form of an allocation returned by list
// endpoints: everything but the job.
type AllocListStub struct {
	ID                 string
	EvalID             string
	Name               string
	NodeID             string
	NodeName           string
	JobID              string
	Namespace          string
	JobVersion         uint64
	TaskGroup          string
	AllocatedResources *AllocatedResources
	DesiredStatus      string
	DesiredDescription string
	ClientStatus       string
	ClientDescription  string
	TaskStates         map[string]*TaskState
	PreviousAllocation string
	NextAllocation     string
	FollowupEvalID     string
	DeploymentID       string
	DeploymentStatus   *AllocDeploymentStatus
	CreateIndex        uint64
	ModifyIndex        uint64
	CreateTime         int64
	ModifyTime         int64
}

// Stub returns the list form of the allocation.
func (a *Allocation) Stub() *AllocListStub {
	return &AllocListStub{
		ID:                 a.ID,
		EvalID:             a.EvalID,
		Name:               a.Name,
		NodeID:             a.NodeID,
		NodeName:           a.NodeName,
		JobID:              a.JobID,
		Namespace:          a.Namespace,
		JobVersion:         a.JobVersion,
		TaskGroup:          a.TaskGroup,
		AllocatedResources: a.AllocatedResources,
		DesiredStatus:      a.DesiredStatus,
		DesiredDescription: a.DesiredDescription,
		ClientStatus:       a.ClientStatus,
		ClientDescription:  a.ClientDescription,
		TaskStates:         a.TaskStates,
		PreviousAllocation: a.PreviousAllocation,
		NextAllocation:     a.NextAllocation,
		FollowupEvalID:     a.FollowupEvalID,
		DeploymentID:       a.DeploymentID,
		DeploymentStatus:   a.DeploymentStatus,
		CreateIndex:        a.CreateIndex,
		ModifyIndex:        a.ModifyIndex,
		CreateTime:         a.CreateTime,
		ModifyTime:         a.ModifyTime,
	}
}

// String identifies the allocation in logs.
func (a *Allocation) String() string {
	return fmt.Sprintf("alloc %s (%s)", a.ID, a.Name)
}
