package fsm

import (
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	metrics "github.com/hashicorp/go-metrics"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// EvalBroker receives evaluations that should be scheduled. The FSM
// calls it on the Raft apply goroutine after the evaluation is committed;
// implementations must not block and must ignore the call when they are
// not enabled (on followers).
type EvalBroker interface {
	Enqueue(eval *structs.Evaluation)
}

// BlockedEvals tracks evaluations waiting for capacity. Same calling
// rules as EvalBroker.
type BlockedEvals interface {
	// Block starts tracking a blocked evaluation.
	Block(eval *structs.Evaluation)
	// Untrack forgets the blocked evaluations of job (namespace,
	// jobID), once a newer evaluation placed everything the job needs.
	Untrack(namespace, jobID string)
	// Unblock re-enqueues blocked evaluations because capacity may have
	// freed up at index.
	Unblock(index uint64)
}

// Config configures an FSM.
type Config struct {
	Logger       hclog.Logger
	EvalBroker   EvalBroker
	BlockedEvals BlockedEvals
	// EventBufferSize bounds the events kept for streams (default
	// state.DefaultEventBufferSize).
	EventBufferSize int
}

// FSM applies the Raft log to the state store.
type FSM struct {
	logger  hclog.Logger
	broker  EvalBroker
	blocked BlockedEvals

	// stateLock guards state, which Restore swaps for a new store.
	stateLock sync.RWMutex
	state     *state.StateStore

	// recoveredPanics counts entries refused because they panicked.
	recoveredPanics atomic.Uint64

	// events keeps the events of recent writes for /v1/event/stream; it
	// outlives restores.
	events *state.EventBuffer
}

// New returns an FSM over an empty state store.
func New(cfg Config) *FSM {
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	broker, blocked := cfg.EvalBroker, cfg.BlockedEvals
	if broker == nil {
		broker = nopBroker{}
	}
	if blocked == nil {
		blocked = nopBlocked{}
	}
	f := &FSM{
		logger:  logger.Named("fsm"),
		broker:  broker,
		blocked: blocked,
		state:   state.NewStateStore(),
		events:  state.NewEventBuffer(cfg.EventBufferSize),
	}
	f.state.SetEventSink(f.events)
	return f
}

// Events returns the buffer of recent events.
func (f *FSM) Events() *state.EventBuffer { return f.events }

// State returns the current state store. Hold on to it only briefly: a
// restore replaces it (and closes its AbandonCh).
func (f *FSM) State() *state.StateStore {
	f.stateLock.RLock()
	defer f.stateLock.RUnlock()
	return f.state
}

// Apply applies one committed log entry. Its return value is the
// response of raft's ApplyFuture: nil, or an error for a request that
// was refused.
//
// Apply never panics. An entry it cannot apply, because its message
// type is unknown (without IgnoreUnknownTypeFlag), it does not decode,
// or it fails the structural checks of check.go (a JobRegister's job
// must pass Job.Validate), is logged and refused: the response is an
// error and the state is not changed. The decision depends on nothing
// but the entry and the state, so every server refuses the same entry
// the same way and their states stay identical, and a restart that
// replays the log refuses it again, harmlessly. (Panicking instead, as
// Drover once did, made a single bad entry a crash loop: raft replays
// the log on every start, so the server could never start again, and
// every server that applied the entry went down with it.) A panic
// from deeper down is recovered into a refusal too, as a last resort
// (and counted: each one is a missing check): the state store writes in
// transactions that abort when a panic unwinds them, so a panic there
// applies nothing of the entry.
func (f *FSM) Apply(l *raft.Log) (resp interface{}) {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	msgType := structs.MessageType(l.Data[0])
	buf := l.Data[1:]
	defer metrics.MeasureSince([]string{"drover", "fsm", msgType.String()}, time.Now())
	defer func() {
		if r := recover(); r != nil {
			f.recoveredPanics.Add(1)
			f.logger.Error("refused log entry: applying it panicked", "index", l.Index, "type", msgType.String(),
				"panic", r, "stack", string(debug.Stack()))
			resp = f.refuse(msgType, l.Index, fmt.Errorf("applying it panicked: %v", r))
		}
	}()
	resp = f.dispatch(msgType, buf, l.Index)
	if r, ok := resp.(refusal); ok {
		return f.refuse(msgType, l.Index, r.err)
	}
	return resp
}

// dispatch applies the entry by its type. It returns a refusal for an
// entry that cannot be applied at all (see Apply), or the apply's
// response.
func (f *FSM) dispatch(msgType structs.MessageType, buf []byte, index uint64) interface{} {
	switch msgType &^ structs.IgnoreUnknownTypeFlag {
	case structs.NodeRegisterRequestType:
		return f.applyNodeRegister(buf, index)
	case structs.NodeDeregisterRequestType:
		return f.applyNodeDeregister(buf, index)
	case structs.NodeUpdateStatusRequestType:
		return f.applyNodeUpdateStatus(buf, index)
	case structs.JobRegisterRequestType:
		return f.applyJobRegister(buf, index)
	case structs.JobDeregisterRequestType:
		return f.applyJobDeregister(buf, index)
	case structs.EvalUpdateRequestType:
		return f.applyEvalUpdate(buf, index)
	case structs.ApplyPlanResultsRequestType:
		return f.applyPlanResults(buf, index)
	case structs.AllocClientUpdateRequestType:
		return f.applyAllocClientUpdate(buf, index)
	case structs.DeploymentStatusUpdateRequestType:
		return f.applyDeploymentStatusUpdate(buf, index)
	case structs.DeploymentPromoteRequestType:
		return f.applyDeploymentPromote(buf, index)
	case structs.DeploymentAllocHealthRequestType:
		return f.applyDeploymentAllocHealth(buf, index)
	case structs.NodeUpdateDrainRequestType:
		return f.applyNodeUpdateDrain(buf, index)
	case structs.NodeUpdateEligibilityRequestType:
		return f.applyNodeUpdateEligibility(buf, index)
	case structs.AllocUpdateDesiredTransitionRequestType:
		return f.applyAllocDesiredTransition(buf, index)
	case structs.JobStabilityRequestType:
		return f.applyJobStability(buf, index)
	case structs.SchedulerConfigRequestType:
		return f.applySchedulerConfig(buf, index)
	case structs.ApplyPlanResultsBatchRequestType:
		return f.applyPlanResultsBatch(buf, index)
	case structs.ACLPolicyUpsertRequestType:
		return f.applyACLPolicyUpsert(buf, index)
	case structs.ACLPolicyDeleteRequestType:
		return f.applyACLPolicyDelete(buf, index)
	case structs.ACLTokenUpsertRequestType:
		return f.applyACLTokenUpsert(buf, index)
	case structs.ACLTokenDeleteRequestType:
		return f.applyACLTokenDelete(buf, index)
	case structs.ACLTokenBootstrapRequestType:
		return f.applyACLTokenBootstrap(buf, index)
	case structs.NamespaceUpsertRequestType:
		return f.applyNamespaceUpsert(buf, index)
	case structs.NamespaceDeleteRequestType:
		return f.applyNamespaceDelete(buf, index)
	case structs.QuotaUpsertRequestType:
		return f.applyQuotaUpsert(buf, index)
	case structs.QuotaDeleteRequestType:
		return f.applyQuotaDelete(buf, index)
	case structs.VariableApplyRequestType:
		return f.applyVariable(buf, index)
	case structs.RootKeyUpsertRequestType:
		return f.applyRootKeyUpsert(buf, index)
	case structs.RootKeyDeleteRequestType:
		return f.applyRootKeyDelete(buf, index)
	case structs.ClusterMetaRequestType:
		return f.applyClusterMeta(buf, index)
	case structs.GCBatchRequestType:
		return f.applyGCBatch(buf, index)
	case structs.ApplyPlanResultsCompactRequestType:
		return f.applyPlanResultsCompact(buf, index)
	case structs.AllocClientUpdateCompactRequestType:
		return f.applyAllocClientUpdateCompact(buf, index)
	}
	if msgType&structs.IgnoreUnknownTypeFlag != 0 {
		f.logger.Warn("ignoring unknown message type, upgrade to a newer version", "type", uint8(msgType))
		return nil
	}
	return refusal{fmt.Errorf("unknown message type %d; it was written by a newer Drover, or the log is corrupt", uint8(msgType))}
}

// refusal is what an apply function returns for an entry it cannot
// apply; Apply logs it and turns it into the response.
type refusal struct{ err error }

// refuse logs and counts a refused entry and returns the response for
// it: an invalid_request error (the code leads the message so that it
// survives net/rpc), or the validation error's problems for a job.
func (f *FSM) refuse(msgType structs.MessageType, index uint64, err error) error {
	f.logger.Error("refused log entry; the state is unchanged", "index", index, "type", msgType.String(), "error", err)
	metrics.IncrCounterWithLabels([]string{"drover", "fsm", "refused"}, 1, []metrics.Label{{Name: "type", Value: msgType.String()}})
	return structs.NewError(structs.CodeInvalid, fmt.Sprintf("log entry %d (%s) refused: %v", index, msgType, err))
}

// RecoveredPanics counts the entries refused because applying them
// panicked: a bug to fix with an explicit check (check.go), not an
// expected outcome. The fuzz tests require it to stay zero.
func (f *FSM) RecoveredPanics() uint64 { return f.recoveredPanics.Load() }

// decode decodes buf into out, or returns a refusal: the entry is
// corrupt, or was written by a Drover whose encoding this one does not
// read.
func decode(buf []byte, out interface{}) error {
	if err := structs.Decode(buf, out); err != nil {
		return fmt.Errorf("decode %T: %w", out, err)
	}
	return nil
}

// handleEvals passes committed evaluations to the leader's broker or
// blocked tracker. It reads them back from the state so they carry their
// Raft indexes.
func (f *FSM) handleEvals(st *state.StateStore, evals []*structs.Evaluation) {
	for _, e := range evals {
		stored, err := st.EvalByID(nil, e.ID)
		if err != nil || stored == nil {
			continue
		}
		switch {
		case stored.ShouldEnqueue():
			f.broker.Enqueue(stored)
		case stored.ShouldBlock():
			f.blocked.Block(stored)
		case stored.Status == structs.EvalStatusComplete && len(stored.FailedTGAllocs) == 0:
			f.blocked.Untrack(stored.Namespace, stored.JobID)
		}
	}
}

type nopBroker struct{}

func (nopBroker) Enqueue(*structs.Evaluation) {}

type nopBlocked struct{}

func (nopBlocked) Block(*structs.Evaluation) {}
func (nopBlocked) Untrack(string, string)    {}
func (nopBlocked) Unblock(uint64)            {}

var _ raft.FSM = (*FSM)(nil)

// errOrNil keeps a nil error a nil interface in Apply's response.
func errOrNil(err error) interface{} {
	if err == nil {
		return nil
	}
	return err
}
