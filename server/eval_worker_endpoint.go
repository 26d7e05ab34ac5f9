package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/droverhq/drover/structs"
)

// The scheduling RPCs a follower's workers call on the leader: Eval.Dequeue,
// Eval.Ack, Eval.Nack and Eval.WorkerUpdate take evaluations from and
// report them to the leader's eval broker, and Plan.Submit hands a plan
// to the leader's plan applier (Nomad's design). The leader's own
// workers use the broker and plan queue in process.
//
// Server-to-server only, as Keyring.KEK: they are registered on the
// server RPC server alone, so a client certificate cannot reach them
// (clientRPCServer does not have them; restrictedCodec refuses the
// call), and no HTTP handler calls them. They are never forwarded: a
// server that does not lead answers no_leader and the worker looks for
// the leader again. Every call after Dequeue presents the delivery
// token, checked with EvalBroker.Outstanding as the in-process path
// does, so a worker whose delivery timed out (and was given to another
// worker) cannot ack, nack, write or plan for the evaluation.

// maxRemoteDequeueTimeout caps a Dequeue long poll well under the RPC
// call timeout (rpcpool.DefaultCallTimeout).
const maxRemoteDequeueTimeout = 10 * time.Second

// errNotLeaderBroker refuses a scheduling RPC on a server whose broker
// is off: it does not lead (or does not lead yet).
var errNotLeaderBroker = structs.NewError(structs.CodeNoLeader, "no cluster leader: this server's eval broker is disabled (it does not lead)")

// Plan is the RPC endpoint for plan submissions from other servers'
// workers.
type Plan struct {
	srv *Server
}

// Dequeue waits up to args.Timeout for an evaluation and returns it with
// its delivery token and the index the caller's state must reach first.
func (e *Eval) Dequeue(args *structs.EvalDequeueRequest, reply *structs.EvalDequeueResponse) error {
	if len(args.Schedulers) == 0 {
		return structs.NewError(structs.CodeInvalid, "no scheduler types to dequeue")
	}
	timeout := args.Timeout
	if timeout <= 0 || timeout > maxRemoteDequeueTimeout {
		timeout = maxRemoteDequeueTimeout
	}
	if args.Server != "" {
		// A server calling from a new process holds nothing of what
		// its earlier one took: hand that back now.
		stale, err := e.srv.evalBroker.Restarted(args.Server, args.Instance)
		if err != nil {
			e.srv.logger.Warn("failed to hand back a restarted server's evaluations", "server", args.Server, "error", err)
		}
		if len(stale) > 0 {
			e.srv.logger.Info("server restarted while holding evaluations; redelivering them", "server", args.Server, "evals", stale)
		}
	}
	eval, token, err := e.srv.evalBroker.Dequeue(args.Schedulers, timeout, e.srv.shutdownCh)
	if errors.Is(err, ErrBrokerDisabled) {
		return errNotLeaderBroker
	}
	if err != nil || eval == nil {
		return err
	}
	// The caller schedules against its own state: it must see at least
	// what this leader saw when it handed the evaluation out, including
	// the plans committed for the job's previous evaluation (without
	// them it would place the job's allocations a second time; the plan
	// applier checks capacity, not counts).
	latest, err := e.srv.State().LatestIndex()
	if err != nil {
		_ = e.srv.evalBroker.Nack(eval.ID, token)
		return fmt.Errorf("dequeue %s: %w", eval.ID, err)
	}
	if args.Server != "" {
		// Not an error for the caller: without the record the delivery
		// waits out the nack timeout if the caller dies, as before.
		_ = e.srv.evalBroker.Hold(eval.ID, token, args.Server, args.Instance)
	}
	reply.Eval, reply.Token, reply.WaitIndex = eval, token, max(eval.ModifyIndex, latest)
	return nil
}

// Ack reports a delivered evaluation done.
func (e *Eval) Ack(args *structs.EvalAckRequest, reply *structs.GenericResponse) error {
	if !e.srv.evalBroker.Enabled() {
		return errNotLeaderBroker
	}
	return e.srv.evalBroker.Ack(args.EvalID, args.Token)
}

// Nack returns a delivered evaluation for redelivery.
func (e *Eval) Nack(args *structs.EvalAckRequest, reply *structs.GenericResponse) error {
	if !e.srv.evalBroker.Enabled() {
		return errNotLeaderBroker
	}
	return e.srv.evalBroker.Nack(args.EvalID, args.Token)
}

// WorkerUpdate writes an evaluation for the holder of a delivery: the
// scheduler's UpdateEval, CreateEval and ReblockEval.
func (e *Eval) WorkerUpdate(args *structs.EvalWorkerUpdateRequest, reply *structs.GenericResponse) error {
	if !e.srv.evalBroker.Enabled() {
		return errNotLeaderBroker
	}
	if args.Eval == nil {
		return structs.NewError(structs.CodeInvalid, "missing evaluation")
	}
	index, err := e.srv.writeWorkerEval(args.EvalID, args.Token, args.Eval)
	reply.Index = index
	return err
}

// Submit hands a plan to the plan applier and waits for its result.
func (p *Plan) Submit(args *structs.PlanSubmitRequest, reply *structs.PlanSubmitResponse) error {
	if !p.srv.evalBroker.Enabled() {
		return errNotLeaderBroker
	}
	if args.Plan == nil {
		return structs.NewError(structs.CodeInvalid, "missing plan")
	}
	// Refuse a stale token before queueing; the applier checks again
	// when it re-checks the plan.
	if err := p.srv.evalBroker.Outstanding(args.Plan.EvalID, args.Plan.EvalToken); err != nil {
		return err
	}
	future, err := p.srv.planQueue.Enqueue(args.Plan)
	if err != nil {
		return err
	}
	result, err := future.Wait(p.srv.shutdownCh)
	if err != nil {
		return err
	}
	reply.Result = result
	return nil
}

// writeWorkerEval writes eval through Raft for the worker holding the
// delivery (evalID, token), and returns the index of the write. A stale
// token comes back as the broker's coded error, unwrapped, so that its
// code crosses the wire.
func (s *Server) writeWorkerEval(evalID, token string, eval *structs.Evaluation) (uint64, error) {
	if err := s.evalBroker.Outstanding(evalID, token); err != nil {
		return 0, err
	}
	now := time.Now().UnixNano()
	if eval.CreateTime == 0 {
		eval.CreateTime = now
	}
	eval.ModifyTime = now
	_, index, err := s.raftApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{
		Evals: []*structs.Evaluation{eval}, EvalToken: token, UpdatedAt: now,
	})
	return index, err
}
