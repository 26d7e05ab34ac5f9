package api

import "time"

// Job is a job as the API returns it. Durations are nanoseconds, as in
// Nomad's JSON.
type Job struct {
	ID                string
	Namespace         string
	Name              string
	Type              string
	Priority          int
	Datacenters       []string
	Meta              map[string]string
	TaskGroups        []*TaskGroup
	Stop              bool
	Status            string
	StatusDescription string
	Version           uint64
	Stable            bool
	SubmitTime        int64
	NodePool          string
	CreateIndex       uint64
	ModifyIndex       uint64
	JobModifyIndex    uint64
}

// TaskGroup is a group of tasks placed together.
type TaskGroup struct {
	Name             string
	Count            int
	Update           *UpdateStrategy
	Networks         []*NetworkResource
	RestartPolicy    *RestartPolicy
	ReschedulePolicy *ReschedulePolicy
	Tasks            []*Task
	Meta             map[string]string
}

// NetworkResource asks for ports.
type NetworkResource struct {
	Mode          string
	ReservedPorts []Port
	DynamicPorts  []Port
}

// Port is a labelled port.
type Port struct {
	Label       string
	Value       int
	To          int
	HostNetwork string
}

// RestartPolicy is a group's restart policy.
type RestartPolicy struct {
	Attempts int
	Interval time.Duration
	Delay    time.Duration
	Mode     string
}

// ReschedulePolicy is a group's reschedule policy.
type ReschedulePolicy struct {
	Attempts      int
	Interval      time.Duration
	Delay         time.Duration
	DelayFunction string
	MaxDelay      time.Duration
	Unlimited     bool
}

// Task is one container.
type Task struct {
	Name        string
	Driver      string
	Config      map[string]interface{}
	Env         map[string]string
	Resources   *Resources
	KillTimeout time.Duration
	Meta        map[string]string
	// LogConfig bounds the task's output kept on its node; nil means
	// 10 files of 10 MB per stream.
	LogConfig *LogConfig `json:",omitempty"`
}

// LogConfig is a task's logs block: each output stream is kept in at
// most MaxFiles files (1-100) of at most MaxFileSizeMB (1-10240) each.
type LogConfig struct {
	MaxFiles      int
	MaxFileSizeMB int
}

// UpdateStrategy is a group's update block.
type UpdateStrategy struct {
	MaxParallel      int
	MinHealthyTime   time.Duration
	HealthyDeadline  time.Duration
	ProgressDeadline time.Duration
	Canary           int
	AutoPromote      bool
	AutoRevert       bool
}

// Resources a task asks for.
type Resources struct {
	CPU      int
	MemoryMB int
}

// JobListStub is a job in a list.
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

// JobRegisterResponse answers a registration.
type JobRegisterResponse struct {
	EvalID          string
	EvalCreateIndex uint64
	JobModifyIndex  uint64
	Warnings        string
}

// JobDeregisterResponse answers a stop.
type JobDeregisterResponse struct {
	EvalID          string
	EvalCreateIndex uint64
	JobModifyIndex  uint64
}

// Allocation is a placement of a task group on a node.
type Allocation struct {
	ID                 string
	EvalID             string
	Name               string
	NodeID             string
	NodeName           string
	JobID              string
	Namespace          string
	Job                *Job
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
	DesiredTransition  struct{ Migrate bool }
	// Metrics explains the placement.
	Metrics               *AllocMetric
	PreemptedAllocations  []string
	PreemptedByAllocation string
	CreateIndex           uint64
	ModifyIndex           uint64
	AllocModifyIndex      uint64
	// CreateTime and ModifyTime are Unix nanoseconds.
	CreateTime int64
	ModifyTime int64
}

// AllocationListStub is an allocation in a list.
type AllocationListStub = Allocation

// AllocDeploymentStatus is an allocation's health in its deployment.
type AllocDeploymentStatus struct {
	Healthy   *bool
	Timestamp int64
	Canary    bool
}

// AllocatedResources is what an allocation was granted.
type AllocatedResources struct {
	Tasks  map[string]*AllocatedTaskResources
	Shared AllocatedSharedResources
}

// AllocatedTaskResources is one task's share.
type AllocatedTaskResources struct {
	Cpu    struct{ CpuShares int64 }
	Memory struct{ MemoryMB int64 }
}

// AllocatedSharedResources is shared by the group.
type AllocatedSharedResources struct {
	Ports []PortMapping
}

// PortMapping is a granted port.
type PortMapping struct {
	Label  string
	Value  int
	To     int
	HostIP string
}

// TaskState is a task's state on its client.
type TaskState struct {
	State       string
	Failed      bool
	Restarts    uint64
	LastRestart time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	Events      []*TaskEvent
}

// TaskEvent is something that happened to a task.
type TaskEvent struct {
	Type     string
	Time     int64
	Message  string
	ExitCode int
	Signal   int
}

// Node is a client machine.
type Node struct {
	ID                    string
	Name                  string
	Datacenter            string
	NodeClass             string
	HTTPAddr              string
	Attributes            map[string]string
	Meta                  map[string]string
	NodeResources         *NodeResources
	ReservedResources     *NodeReservedResources
	Drivers               map[string]*DriverInfo
	Status                string
	StatusDescription     string
	StatusUpdatedAt       int64
	SchedulingEligibility string
	NodePool              string
	DrainStrategy         *DrainStrategy
	CreateIndex           uint64
	ModifyIndex           uint64
}

// DrainStrategy is a drain in progress.
type DrainStrategy struct {
	Deadline         time.Duration
	IgnoreSystemJobs bool
	StartedAt        int64
	ForceDeadline    int64
}

// NodeListStub is a node in a list.
type NodeListStub struct {
	ID                    string
	Name                  string
	Datacenter            string
	NodeClass             string
	Address               string
	HTTPAddr              string
	Status                string
	StatusDescription     string
	SchedulingEligibility string
	NodePool              string
	Drain                 bool
	Drivers               map[string]*DriverInfo
	NodeResources         *NodeResources
	CreateIndex           uint64
	ModifyIndex           uint64
}

// NodeResources is what a node offers.
type NodeResources struct {
	Cpu struct {
		CpuShares     int64
		TotalCpuCores int
	}
	Memory struct {
		MemoryMB int64
	}
	MinDynamicPort int
	MaxDynamicPort int
}

// NodeReservedResources is held back on a node.
type NodeReservedResources struct {
	Cpu struct {
		CpuShares int64
	}
	Memory struct {
		MemoryMB int64
	}
	ReservedPorts []int
}

// DriverInfo is a fingerprinted driver.
type DriverInfo struct {
	Attributes        map[string]string
	Detected          bool
	Healthy           bool
	HealthDescription string
	UpdateTime        int64
}

// Evaluation is a scheduling request and its outcome.
type Evaluation struct {
	ID                string
	Priority          int
	Type              string
	TriggeredBy       string
	JobID             string
	Namespace         string
	JobModifyIndex    uint64
	DeploymentID      string
	NodeID            string
	Status            string
	StatusDescription string
	WaitUntil         int64
	NextEval          string
	PreviousEval      string
	BlockedEval       string
	FailedTGAllocs    map[string]*AllocMetric
	QueuedAllocations map[string]int
	SnapshotIndex     uint64
	CreateIndex       uint64
	ModifyIndex       uint64
	CreateTime        int64
	ModifyTime        int64
}

// AllocMetric explains a placement.
type AllocMetric struct {
	NodesEvaluated     int
	NodesFiltered      int
	NodesAvailable     map[string]int
	ClassFiltered      map[string]int
	ConstraintFiltered map[string]int
	NodesExhausted     int
	ClassExhausted     map[string]int
	DimensionExhausted map[string]int
	ScoreMetaData      []*NodeScoreMeta
	AllocationTime     time.Duration
	CoalescedFailures  int
	// QuotaExhausted explains a placement refused by the namespace's
	// quota: quota "team-a" exhausted: memory 4096/4096 MB.
	QuotaExhausted []string
}

// NodeScoreMeta is a node's score.
type NodeScoreMeta struct {
	NodeID    string
	Scores    map[string]float64
	NormScore float64
}

// Deployment tracks the rollout of a job version.
type Deployment struct {
	ID                string
	JobID             string
	Namespace         string
	JobVersion        uint64
	JobModifyIndex    uint64
	TaskGroups        map[string]*DeploymentState
	Status            string
	StatusDescription string
	History           []*DeploymentEvent
	CreateIndex       uint64
	ModifyIndex       uint64
	CreateTime        int64
	ModifyTime        int64
}

// DeploymentState is one group's rollout.
type DeploymentState struct {
	AutoRevert        bool
	AutoPromote       bool
	ProgressDeadline  time.Duration
	RequireProgressBy int64
	Promoted          bool
	PlacedCanaries    []string
	DesiredCanaries   int
	DesiredTotal      int
	PlacedAllocs      int
	HealthyAllocs     int
	UnhealthyAllocs   int
}

// DeploymentEvent is a line of a deployment's history.
type DeploymentEvent struct {
	Time    int64
	Message string
}

// DeploymentUpdateResponse answers deployment writes.
type DeploymentUpdateResponse struct {
	EvalID                string
	DeploymentModifyIndex uint64
	RevertedJobVersion    *uint64
}

// SchedulerConfiguration is the cluster's scheduler setting.
type SchedulerConfiguration struct {
	PreemptionConfig struct {
		SystemSchedulerEnabled  bool
		ServiceSchedulerEnabled bool
		BatchSchedulerEnabled   bool
	}
	CreateIndex uint64
	ModifyIndex uint64
}
