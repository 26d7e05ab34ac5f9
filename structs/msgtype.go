package structs

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// MessageType is the first byte of every Raft log entry Drover writes; it
// selects the FSM's apply function. The values are append-only: a value,
// once released, keeps its meaning forever, because old log entries and
// snapshots are replayed by new servers.
type MessageType uint8

const (
	NodeRegisterRequestType                 MessageType = 0
	NodeDeregisterRequestType               MessageType = 1
	NodeUpdateStatusRequestType             MessageType = 2
	JobRegisterRequestType                  MessageType = 3
	JobDeregisterRequestType                MessageType = 4
	EvalUpdateRequestType                   MessageType = 5
	ApplyPlanResultsRequestType             MessageType = 6
	AllocClientUpdateRequestType            MessageType = 7
	DeploymentStatusUpdateRequestType       MessageType = 8
	DeploymentPromoteRequestType            MessageType = 9
	DeploymentAllocHealthRequestType        MessageType = 10
	NodeUpdateDrainRequestType              MessageType = 11
	NodeUpdateEligibilityRequestType        MessageType = 12
	AllocUpdateDesiredTransitionRequestType MessageType = 13
	JobStabilityRequestType                 MessageType = 14
	SchedulerConfigRequestType              MessageType = 15
	ApplyPlanResultsBatchRequestType        MessageType = 16
	ACLPolicyUpsertRequestType              MessageType = 17
	ACLPolicyDeleteRequestType              MessageType = 18
	ACLTokenUpsertRequestType               MessageType = 19
	ACLTokenDeleteRequestType               MessageType = 20
	ACLTokenBootstrapRequestType            MessageType = 21
	NamespaceUpsertRequestType              MessageType = 22
	NamespaceDeleteRequestType              MessageType = 23
	QuotaUpsertRequestType                  MessageType = 24
	QuotaDeleteRequestType                  MessageType = 25
	VariableApplyRequestType                MessageType = 26
	RootKeyUpsertRequestType                MessageType = 27
	RootKeyDeleteRequestType                MessageType = 28
	// ClusterMetaRequestType creates the cluster ID (snapshots). The
	// leader writes it with IgnoreUnknownTypeFlag: an older server skips
	// it.
	ClusterMetaRequestType MessageType = 29
	// GCBatchRequestType deletes what the leader's garbage collector
	// chose (GCBatchRequest).
	GCBatchRequestType MessageType = 30
	// ApplyPlanResultsCompactRequestType commits a batch of plans
	// (ApplyPlanResultsBatchRequest) in the compact encoding
	// (compact.go): what the plan applier writes.
	ApplyPlanResultsCompactRequestType MessageType = 31
	// AllocClientUpdateCompactRequestType records client allocation
	// updates (AllocUpdateRequest) in the compact encoding: what
	// Node.UpdateAlloc writes.
	AllocClientUpdateCompactRequestType MessageType = 32
	// New types are added here, never inserted or renumbered, and
	// MaxMessageType moved to the last. A leader writes a type above
	// LegacyMaxMessageType only when every server applies it (servers
	// advertise MaxMessageType in gossip; see server/log_types.go), so
	// a new type needs an older encoding to fall back on, or waits.
)

// MaxMessageType is the highest message type this build applies.
const MaxMessageType = AllocClientUpdateCompactRequestType

// LegacyMaxMessageType is what a server that does not advertise the
// message types it applies is taken to apply: such servers predate the
// advertisement, and every type up to this one predates them.
const LegacyMaxMessageType = ClusterMetaRequestType

// IgnoreUnknownTypeFlag is set on message types that an older server may
// skip if it does not know them. A type without the flag that a server
// does not know is refused by its FSM: logged, answered with an error,
// and the state left unchanged, the same way on every server of that
// version (fsm/check.go). It never crashes a server.
const IgnoreUnknownTypeFlag MessageType = 128

// String names the message type for logs and metrics.
func (t MessageType) String() string {
	switch t &^ IgnoreUnknownTypeFlag {
	case NodeRegisterRequestType:
		return "NodeRegister"
	case NodeDeregisterRequestType:
		return "NodeDeregister"
	case NodeUpdateStatusRequestType:
		return "NodeUpdateStatus"
	case JobRegisterRequestType:
		return "JobRegister"
	case JobDeregisterRequestType:
		return "JobDeregister"
	case EvalUpdateRequestType:
		return "EvalUpdate"
	case ApplyPlanResultsRequestType:
		return "ApplyPlanResults"
	case AllocClientUpdateRequestType:
		return "AllocClientUpdate"
	case DeploymentStatusUpdateRequestType:
		return "DeploymentStatusUpdate"
	case DeploymentPromoteRequestType:
		return "DeploymentPromote"
	case DeploymentAllocHealthRequestType:
		return "DeploymentAllocHealth"
	case NodeUpdateDrainRequestType:
		return "NodeUpdateDrain"
	case NodeUpdateEligibilityRequestType:
		return "NodeUpdateEligibility"
	case AllocUpdateDesiredTransitionRequestType:
		return "AllocUpdateDesiredTransition"
	case JobStabilityRequestType:
		return "JobStability"
	case SchedulerConfigRequestType:
		return "SchedulerConfig"
	case ApplyPlanResultsBatchRequestType:
		return "ApplyPlanResultsBatch"
	case ACLPolicyUpsertRequestType:
		return "ACLPolicyUpsert"
	case ACLPolicyDeleteRequestType:
		return "ACLPolicyDelete"
	case ACLTokenUpsertRequestType:
		return "ACLTokenUpsert"
	case ACLTokenDeleteRequestType:
		return "ACLTokenDelete"
	case ACLTokenBootstrapRequestType:
		return "ACLTokenBootstrap"
	case NamespaceUpsertRequestType:
		return "NamespaceUpsert"
	case NamespaceDeleteRequestType:
		return "NamespaceDelete"
	case QuotaUpsertRequestType:
		return "QuotaUpsert"
	case QuotaDeleteRequestType:
		return "QuotaDelete"
	case VariableApplyRequestType:
		return "VariableApply"
	case RootKeyUpsertRequestType:
		return "RootKeyUpsert"
	case RootKeyDeleteRequestType:
		return "RootKeyDelete"
	case ClusterMetaRequestType:
		return "ClusterMeta"
	case GCBatchRequestType:
		return "GCBatch"
	case ApplyPlanResultsCompactRequestType:
		return "ApplyPlanResultsCompact"
	case AllocClientUpdateCompactRequestType:
		return "AllocClientUpdateCompact"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// MsgpackHandle is the codec used for the Raft log, FSM snapshots and the
// RPC wire format. Maps are written in sorted key order so that encoding
// the same value twice gives the same bytes.
var MsgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.RawToString = true
	h.Canonical = true
	h.MapType = mapStringInterfaceType
	return h
}()

// encoder is a reusable buffer and msgpack encoder for Encode.
type encoder struct {
	buf bytes.Buffer
	enc *codec.Encoder
}

// encoders keeps Encode's buffers between calls: a plan batch entry is
// up to a few megabytes, and a fresh buffer grew to it by doubling on
// every entry (a fifth of the leader's allocated bytes under load).
var encoders = sync.Pool{New: func() interface{} {
	e := &encoder{}
	e.enc = codec.NewEncoder(&e.buf, MsgpackHandle)
	return e
}}

// maxPooledEncodeBuffer bounds the buffers kept for reuse.
const maxPooledEncodeBuffer = 8 << 20

// Encode writes a Raft log entry: the message type byte, then msg in
// msgpack. The result is a new slice of exactly its length: Raft keeps
// it (in its log cache and in flight to each follower).
//
// A request's AuthToken (the caller's ACL secret) is never written: msg
// is encoded from a copy without it (withoutAuthToken), so an endpoint
// that passes its RPC args to Raft as they came cannot put a secret in
// the log or in snapshots.
//
// The compact types (ApplyPlanResultsCompactRequestType,
// AllocClientUpdateCompactRequestType) are written in the compact
// encoding instead (compact.go), which leaves the secrets out itself.
func Encode(t MessageType, msg interface{}) ([]byte, error) {
	switch t &^ IgnoreUnknownTypeFlag {
	case ApplyPlanResultsCompactRequestType, AllocClientUpdateCompactRequestType:
		return encodeCompactMsg(t, msg)
	}
	msg = withoutAuthToken(msg)
	e := encoders.Get().(*encoder)
	e.buf.Reset()
	e.enc.Reset(&e.buf)
	e.buf.WriteByte(uint8(t))
	err := e.enc.Encode(msg)
	var out []byte
	if err == nil {
		out = append([]byte(nil), e.buf.Bytes()...)
	}
	if e.buf.Cap() <= maxPooledEncodeBuffer {
		encoders.Put(e)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return out, nil
}

// Decode reads msgpack written by Encode (without the type byte) into out.
func Decode(buf []byte, out interface{}) error {
	return codec.NewDecoderBytes(buf, MsgpackHandle).Decode(out)
}

var mapStringInterfaceType = reflect.TypeOf(map[string]interface{}(nil))
