package structs

// Events are what the state store's committed writes changed, one per
// changed object, streamed at /v1/event/stream. They are derived on
// every server from the writes it applies (never written to Raft), so
// every server produces the same events with the same indexes, and a
// consumer may resume on any server from the last index it saw.

// Event topics.
const (
	TopicJob        = "Job"
	TopicAllocation = "Allocation"
	TopicEvaluation = "Evaluation"
	TopicDeployment = "Deployment"
	TopicNode       = "Node"
	// TopicAll matches every topic in a subscription.
	TopicAll = "*"
)

// EventTopics lists the topics a subscription may name.
var EventTopics = []string{TopicJob, TopicAllocation, TopicEvaluation, TopicDeployment, TopicNode}

// Event is one change.
type Event struct {
	Topic string
	// Type says what happened: JobRegistered (a new spec),
	// JobDeregistered (stopped), JobUpdated (status), JobDeleted, AllocationCreated, AllocationUpdated,
	// AllocationDeleted, EvaluationUpdated, EvaluationDeleted,
	// DeploymentUpdated, DeploymentDeleted, NodeRegistration, NodeUpdated,
	// NodeDeregistration.
	Type string
	// Key is the object's ID.
	Key       string
	Namespace string
	// FilterKeys are other keys a subscription may match: an
	// allocation's, evaluation's or deployment's job ID (and
	// deployment ID).
	FilterKeys []string `json:",omitempty"`
	// Index is the Raft index of the write.
	Index uint64
	// Object is the object after the change (before it, for a
	// deletion). It is shared with the state store: read-only. The
	// stream encodes it as Payload {"<Topic>": object}.
	Object interface{} `json:"-"`
}
