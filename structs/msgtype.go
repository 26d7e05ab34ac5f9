package structs

import (
	"bytes"
	"fmt"
	"reflect"

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
	// New types are added here, never inserted or renumbered.
)

// IgnoreUnknownTypeFlag is set on message types that an older server may
// skip if it does not know them. Types without the flag make an unknown
// server panic, which is right for anything that changes state others
// depend on.
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

// Encode writes a Raft log entry: the message type byte, then msg in
// msgpack.
func Encode(t MessageType, msg interface{}) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(uint8(t))
	if err := codec.NewEncoder(&buf, MsgpackHandle).Encode(msg); err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	// Raft keeps the entry (in its log cache, and in flight to each
	// follower); the buffer grew by doubling, so a large entry may have
	// up to twice its length in capacity. Keep only what it uses.
	if b := buf.Bytes(); cap(b) > 64<<10 && cap(b)-len(b) > len(b)/8 {
		return append([]byte(nil), b...), nil
	}
	return buf.Bytes(), nil
}

// Decode reads msgpack written by Encode (without the type byte) into out.
func Decode(buf []byte, out interface{}) error {
	return codec.NewDecoderBytes(buf, MsgpackHandle).Decode(out)
}

var mapStringInterfaceType = reflect.TypeOf(map[string]interface{}(nil))
