package structs

import "time"

// The scheduling RPCs between servers: a follower's scheduler workers
// take evaluations from the leader's eval broker and submit plans to its
// plan applier. Only servers may call them (a server certificate with
// mTLS); every call after the dequeue presents the delivery token.

// EvalDequeueRequest asks the leader's broker for an evaluation of one
// of Schedulers, waiting up to Timeout (a long poll kept well under the
// RPC call timeout).
//
// Server and Instance name the caller: its Raft ID and a nonce of its
// process start. The leader remembers them with the delivery, so that
// when that server restarts (a new Instance) or gossip reports it
// failed, the evaluations it held are handed to other workers at once
// instead of after the nack timeout. Older servers send neither; their
// deliveries wait out the nack timeout as before.
type EvalDequeueRequest struct {
	Schedulers []string
	Timeout    time.Duration
	Server     string
	Instance   string
}

// EvalDequeueResponse is the delivered evaluation (nil when the wait
// timed out), its delivery token, and the index the caller's state must
// reach before it schedules: the evaluation's modify index, or the
// leader's allocations index if later (so the caller sees the plans
// already committed).
type EvalDequeueResponse struct {
	Eval      *Evaluation
	Token     string
	WaitIndex uint64
}

// EvalAckRequest acks or nacks a delivered evaluation.
type EvalAckRequest struct {
	EvalID string
	Token  string
}

// EvalWorkerUpdateRequest writes an evaluation for the worker that holds
// delivery (EvalID, Token): the delivered evaluation's own update, a
// follow-up or blocked evaluation it creates, or a re-block.
type EvalWorkerUpdateRequest struct {
	EvalID string
	Token  string
	Eval   *Evaluation
}

// PlanSubmitRequest submits a plan to the leader's plan applier; the
// plan carries its evaluation's ID and delivery token.
type PlanSubmitRequest struct {
	Plan *Plan
}

// PlanSubmitResponse is the plan applier's answer.
type PlanSubmitResponse struct {
	Result *PlanResult
}
