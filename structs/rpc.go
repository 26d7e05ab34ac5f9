package structs

import "time"

// QueryOptions are carried by every read request.
type QueryOptions struct {
	// MinQueryIndex makes the query block until the state index is
	// greater than this (a blocking query), or MaxQueryTime passes.
	MinQueryIndex uint64
	MaxQueryTime  time.Duration
	// AllowStale lets a follower answer from its own state without
	// confirming leadership.
	AllowStale bool
	// Prefix filters list results by ID prefix.
	Prefix string
	// Namespace is the namespace the request is about ("": the default
	// one); lists also take AllNamespaces ("*") for every namespace.
	Namespace string
	// Forwarded is set by the server that forwards the request to the
	// leader; a server receiving a forwarded request never forwards it
	// again, so two servers with stale views cannot bounce it forever.
	Forwarded bool
	// AuthToken is the caller's ACL token secret. It travels in msgpack
	// (forwarding keeps it; the codec tag matters: the RPC codec falls
	// back to the json tag, which hides it), is hidden from JSON, is
	// never written to Raft (Encode drops it) and must never be logged.
	AuthToken string `codec:"AuthToken" json:"-"`
}

// IsRead reports that the request only reads.
func (q *QueryOptions) IsRead() bool { return true }

// AllowStaleRead reports whether any server may answer.
func (q *QueryOptions) AllowStaleRead() bool { return q.AllowStale }

// IsForwarded reports whether a server already forwarded the request.
func (q *QueryOptions) IsForwarded() bool { return q.Forwarded }

// SetForwarded marks the request as forwarded.
func (q *QueryOptions) SetForwarded() { q.Forwarded = true }

// WriteRequest is embedded in every write request.
type WriteRequest struct {
	// Forwarded: see QueryOptions.Forwarded.
	Forwarded bool
	// Namespace is the namespace the write is about ("": the default
	// one). It travels into the Raft entry with the request, so the FSM
	// applies job writes (deregister, stability) in that namespace.
	Namespace string
	// AuthToken: see QueryOptions.AuthToken.
	AuthToken string `codec:"AuthToken" json:"-"`
}

// IsRead reports that the request writes.
func (w *WriteRequest) IsRead() bool { return false }

// AllowStaleRead is false for writes.
func (w *WriteRequest) AllowStaleRead() bool { return false }

// IsForwarded reports whether a server already forwarded the request.
func (w *WriteRequest) IsForwarded() bool { return w.Forwarded }

// SetForwarded marks the request as forwarded.
func (w *WriteRequest) SetForwarded() { w.Forwarded = true }

// RPCInfo is implemented by every request (through QueryOptions or
// WriteRequest); servers use it to decide where a request is served.
type RPCInfo interface {
	IsRead() bool
	AllowStaleRead() bool
	IsForwarded() bool
	SetForwarded()
}

// QueryMeta is returned by every read.
type QueryMeta struct {
	// Index is the state index the answer reflects; pass it as
	// MinQueryIndex to wait for the next change.
	Index       uint64
	KnownLeader bool
	LastContact time.Duration
}

// WriteMeta is returned by every write.
type WriteMeta struct {
	// Index is the Raft index of the write.
	Index uint64
}

// GenericResponse is the reply of writes that return nothing else.
type GenericResponse struct {
	WriteMeta
}

// JobRegisterRequest registers (or updates) a job.
type JobRegisterRequest struct {
	Job *Job
	// EnforceIndex makes the registration fail unless the job's
	// JobModifyIndex equals JobModifyIndex (0: the job must not exist).
	EnforceIndex   bool
	JobModifyIndex uint64

	// Eval and SubmitTime are stamped by the leader.
	Eval       *Evaluation
	SubmitTime int64
	// ServiceVIPRange is the range the FSM allocates the job's service
	// VIPs from, stamped by the leader from its configuration so that
	// every server allocates alike. Entries written before VIPs existed
	// have none: DefaultServiceVIPRange.
	ServiceVIPRange string `json:",omitempty"`
	WriteRequest
}

// JobRegisterResponse answers a registration.
type JobRegisterResponse struct {
	EvalID          string
	EvalCreateIndex uint64
	JobModifyIndex  uint64
	Warnings        string
	WriteMeta
}

// JobDeregisterRequest stops (or purges) a job.
type JobDeregisterRequest struct {
	JobID string
	// Purge removes the job from the state store instead of marking it
	// stopped.
	Purge bool

	// Eval and SubmitTime are stamped by the leader.
	Eval       *Evaluation
	SubmitTime int64
	WriteRequest
}

// JobDeregisterResponse answers a deregistration.
type JobDeregisterResponse struct {
	EvalID          string
	EvalCreateIndex uint64
	JobModifyIndex  uint64
	WriteMeta
}

// JobSpecificRequest reads one job.
type JobSpecificRequest struct {
	JobID string
	QueryOptions
}

// SingleJobResponse carries one job, nil if unknown.
type SingleJobResponse struct {
	Job *Job
	QueryMeta
}

// JobListRequest lists jobs.
type JobListRequest struct {
	QueryOptions
}

// JobListResponse carries job stubs.
type JobListResponse struct {
	Jobs []*JobListStub
	QueryMeta
}

// JobVersionsResponse carries every kept version of a job, newest first.
type JobVersionsResponse struct {
	Versions []*Job
	QueryMeta
}

// JobAllocationsResponse carries a job's allocations.
type JobAllocationsResponse struct {
	Allocations []*AllocListStub
	QueryMeta
}

// JobEvaluationsResponse carries a job's evaluations.
type JobEvaluationsResponse struct {
	Evaluations []*Evaluation
	QueryMeta
}

// NodeRegisterRequest registers a node or updates its fingerprint.
type NodeRegisterRequest struct {
	Node *Node
	// Evals and UpdatedAt are stamped by the leader.
	Evals     []*Evaluation
	UpdatedAt int64
	WriteRequest
}

// NodeUpdateResponse answers node writes and heartbeats.
type NodeUpdateResponse struct {
	// HeartbeatTTL is how long the server waits for the next heartbeat
	// before marking the node down.
	HeartbeatTTL time.Duration
	EvalIDs      []string
	// LeaderRPCAddr and Servers tell the client where the servers are.
	LeaderRPCAddr string
	Servers       []string
	WriteMeta
}

// NodeUpdateStatusRequest changes a node's status (heartbeats carry it
// too).
type NodeUpdateStatusRequest struct {
	NodeID   string
	SecretID string
	Status   string
	// Evals and UpdatedAt are stamped by the leader.
	Evals     []*Evaluation
	UpdatedAt int64
	WriteRequest
}

// NodeSpecificRequest reads one node, or its allocations.
type NodeSpecificRequest struct {
	NodeID   string
	SecretID string
	QueryOptions
}

// SingleNodeResponse carries one node, nil if unknown.
type SingleNodeResponse struct {
	Node *Node
	QueryMeta
}

// NodeListRequest lists nodes.
type NodeListRequest struct {
	QueryOptions
}

// NodeListResponse carries node stubs.
type NodeListResponse struct {
	Nodes []*NodeListStub
	QueryMeta
}

// NodeClientAllocsResponse maps a node's allocation IDs to their
// AllocModifyIndex, so the client fetches only what changed.
type NodeClientAllocsResponse struct {
	Allocs map[string]uint64
	QueryMeta
}

// NodeAllocsResponse carries a node's allocations.
type NodeAllocsResponse struct {
	Allocs []*AllocListStub
	QueryMeta
}

// AllocUpdateRequest carries client status updates for allocations.
type AllocUpdateRequest struct {
	// NodeID and SecretID authenticate the reporting node: every
	// allocation updated must be placed on that node.
	NodeID   string
	SecretID string `json:"-" codec:"SecretID"`
	// Alloc holds ID, NodeID, ClientStatus, ClientDescription and
	// TaskStates of each updated allocation.
	Alloc []*Allocation
	// Evals are created by the leader for allocations that failed (to
	// reschedule them); UpdatedAt is stamped by the leader.
	Evals     []*Evaluation
	UpdatedAt int64
	WriteRequest
}

// AllocSpecificRequest reads one allocation.
type AllocSpecificRequest struct {
	AllocID string
	QueryOptions
}

// SingleAllocResponse carries one allocation, nil if unknown.
type SingleAllocResponse struct {
	Alloc *Allocation
	QueryMeta
}

// AllocsGetRequest reads several allocations by ID: the RPC clients pull
// the allocations placed on them with. The answer leaves out the
// placement metrics, which clients never read (a third of an
// allocation's encoding).
type AllocsGetRequest struct {
	// NodeID and SecretID authenticate the node: only allocations placed
	// on it are returned.
	NodeID   string
	SecretID string `json:"-" codec:"SecretID"`
	AllocIDs []string
	QueryOptions
}

// AllocsGetResponse carries the allocations found.
type AllocsGetResponse struct {
	Allocs []*Allocation
	QueryMeta
}

// AllocListRequest lists allocations.
type AllocListRequest struct {
	QueryOptions
}

// AllocListResponse carries allocation stubs.
type AllocListResponse struct {
	Allocations []*AllocListStub
	QueryMeta
}

// EvalSpecificRequest reads one evaluation.
type EvalSpecificRequest struct {
	EvalID string
	QueryOptions
}

// SingleEvalResponse carries one evaluation, nil if unknown.
type SingleEvalResponse struct {
	Eval *Evaluation
	QueryMeta
}

// EvalListRequest lists evaluations (by namespace, "*" for all, and ID
// prefix).
type EvalListRequest struct {
	QueryOptions
}

// EvalListResponse carries evaluations.
type EvalListResponse struct {
	Evaluations []*Evaluation
	QueryMeta
}

// EvalUpdateRequest writes evaluations (scheduler workers report the
// outcome of an evaluation and create follow-ups).
type EvalUpdateRequest struct {
	Evals     []*Evaluation
	EvalToken string
	// UpdatedAt is stamped by the leader.
	UpdatedAt int64
	WriteRequest
}

// GenericRequest is a request with no arguments beyond its options.
type GenericRequest struct {
	QueryOptions
}

// Blocking query limits, shared by the servers (which wait) and the RPC
// pool (which must wait longer).
const (
	// DefaultQueryTime is a blocking query's wait when none is given.
	DefaultQueryTime = 5 * time.Minute
	// MaxQueryTime caps a blocking query's wait.
	MaxQueryTime = 10 * time.Minute
	// QueryJitterFraction: a server adds up to wait/QueryJitterFraction
	// at random, so that many watchers do not all return at once.
	QueryJitterFraction = 16
)

// QueryWait returns how long a blocking query may block on the server,
// jitter not included.
func (q QueryOptions) QueryWait() time.Duration {
	wait := q.MaxQueryTime
	if wait <= 0 {
		wait = DefaultQueryTime
	}
	if wait > MaxQueryTime {
		wait = MaxQueryTime
	}
	return wait
}

// RPCTimeout tells the RPC pool how long a call may take: for a blocking
// query, the longest the server may block, jitter included.
func (q QueryOptions) RPCTimeout() time.Duration {
	if q.MinQueryIndex == 0 {
		return 0
	}
	wait := q.QueryWait()
	return wait + wait/QueryJitterFraction
}

// RaftServer is one server of the Raft configuration.
type RaftServer struct {
	ID      string
	Node    string
	Address string
	Leader  bool
	Voter   bool
}

// RaftConfigurationResponse is the Raft configuration.
type RaftConfigurationResponse struct {
	Servers []*RaftServer
	// Index is the Raft index of the configuration.
	Index uint64
}

// RaftPeerRequest names a Raft peer to remove, by ID or address.
type RaftPeerRequest struct {
	ID      string
	Address string
	WriteRequest
}

// StateHashResponse fingerprints one server's state store: a SHA-256
// per table over its objects in canonical msgpack, at Index. Servers
// that applied the same log to the same index have the same hashes.
type StateHashResponse struct {
	Server string
	Index  uint64
	Tables map[string]string
	// Rows counts the rows of every table, derived ones included (those
	// are not hashed: they follow from the others).
	Rows map[string]int
}

// DeploymentStatusUpdateRequest changes a deployment's status, and may
// register a job (auto-revert) and create an evaluation with it.
type DeploymentStatusUpdateRequest struct {
	DeploymentUpdate *DeploymentStatusUpdate
	// Job, when set, is registered as the job's next version (revert).
	Job *Job
	// Eval, when set, is created.
	Eval *Evaluation
	// Event is appended to the deployment's history.
	Event      string
	UpdatedAt  int64
	SubmitTime int64
	WriteRequest
}

// DeploymentPromoteRequest promotes canaries.
type DeploymentPromoteRequest struct {
	DeploymentID string
	// All promotes every group; otherwise Groups.
	All    bool
	Groups []string
	// Eval is created by the leader to continue the rollout.
	Eval      *Evaluation
	UpdatedAt int64
	WriteRequest
}

// DeploymentAllocHealthRequest sets allocations' health in a deployment
// (the deployment watcher, or an operator).
type DeploymentAllocHealthRequest struct {
	DeploymentID           string
	HealthyAllocationIDs   []string
	UnhealthyAllocationIDs []string
	UpdatedAt              int64
	WriteRequest
}

// DeploymentSpecificRequest reads or acts on one deployment.
type DeploymentSpecificRequest struct {
	DeploymentID string
	QueryOptions
}

// DeploymentFailRequest fails a deployment (operator).
type DeploymentFailRequest struct {
	DeploymentID string
	WriteRequest
}

// SingleDeploymentResponse carries one deployment, nil if unknown.
type SingleDeploymentResponse struct {
	Deployment *Deployment
	QueryMeta
}

// DeploymentListRequest lists deployments.
type DeploymentListRequest struct {
	QueryOptions
}

// DeploymentListResponse carries deployments.
type DeploymentListResponse struct {
	Deployments []*Deployment
	QueryMeta
}

// DeploymentUpdateResponse answers deployment writes.
type DeploymentUpdateResponse struct {
	EvalID                string
	DeploymentModifyIndex uint64
	// RevertedJobVersion is set when the write reverted the job.
	RevertedJobVersion *uint64
	WriteMeta
}

// NodeUpdateDrainRequest starts (DrainStrategy set) or stops a drain.
type NodeUpdateDrainRequest struct {
	NodeID        string
	DrainStrategy *DrainStrategy
	// MarkEligible makes the node eligible again when the drain stops.
	MarkEligible bool
	UpdatedAt    int64
	WriteRequest
}

// NodeUpdateEligibilityRequest sets a node's scheduling eligibility.
type NodeUpdateEligibilityRequest struct {
	NodeID      string
	Eligibility string
	// Evals and UpdatedAt are stamped by the leader.
	Evals     []*Evaluation
	UpdatedAt int64
	WriteRequest
}

// AllocUpdateDesiredTransitionRequest marks allocations to migrate.
type AllocUpdateDesiredTransitionRequest struct {
	Allocs map[string]*DesiredTransition
	Evals  []*Evaluation
	WriteRequest
}

// JobStabilityRequest marks a job version stable or not.
type JobStabilityRequest struct {
	JobID      string
	JobVersion uint64
	Stable     bool
	WriteRequest
}

// JobRevertRequest registers an earlier version's spec as the job's next
// version.
type JobRevertRequest struct {
	JobID      string
	JobVersion uint64
	// EnforcePriorVersion, when set, fails the revert unless the current
	// version is this one.
	EnforcePriorVersion *uint64
	WriteRequest
}

// JobPlanRequest asks what registering Job would do.
type JobPlanRequest struct {
	Job  *Job
	Diff bool
	WriteRequest
}

// JobPlanResponse is the dry run's outcome.
type JobPlanResponse struct {
	// Annotations count, per group, what the scheduler would do.
	Annotations *PlanAnnotations
	// FailedTGAllocs explains placements that would fail.
	FailedTGAllocs map[string]*AllocMetric
	// JobModifyIndex is the current job's, for `job run -check-index`.
	JobModifyIndex uint64
	// Diff compares the registered job and the planned one.
	Diff *JobDiff
	// CreatedEvals are follow-ups the scheduler would create.
	CreatedEvals []*Evaluation
	// Warnings are things that will not stop the job from registering
	// but will likely stop it from running, one per line (Nomad's
	// field): templates that read variables that do not exist.
	Warnings string `json:",omitempty"`
	WriteMeta
}

// SchedulerSetConfigRequest replaces the scheduler configuration.
type SchedulerSetConfigRequest struct {
	Config SchedulerConfiguration
	WriteRequest
}

// SchedulerConfigResponse carries the scheduler configuration.
type SchedulerConfigResponse struct {
	Config *SchedulerConfiguration
	QueryMeta
}
