package server

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/scheduler"
	"github.com/droverhq/drover/structs"
)

// Worker dequeues evaluations from the leader's eval broker, runs the
// scheduler on a state snapshot at least as new as the evaluation, and
// acks or nacks the evaluation. It is the scheduler's Planner: plans go
// to the plan queue, evaluation updates through Raft, both stamped with
// the delivery token.
//
// Workers run on every server but only dequeue while the broker is
// enabled, that is, on the leader.
type Worker struct {
	srv    *Server
	id     int
	logger hclog.Logger

	// The evaluation being processed and its delivery token; touched only
	// by the worker's goroutine (the scheduler runs on it too). Every
	// write the scheduler makes is checked against them, including
	// writes of the blocked and follow-up evaluations it creates.
	evalID    string
	evalToken string

	// newScheduler builds the scheduler for an evaluation
	// (scheduler.NewScheduler; tests swap it).
	newScheduler func(typ string, cfg scheduler.Config, state scheduler.State, planner scheduler.Planner) (scheduler.Scheduler, error)
}

func newWorker(s *Server, id int) *Worker {
	return &Worker{srv: s, id: id, logger: s.logger.Named("worker").With("worker_id", id), newScheduler: scheduler.NewScheduler}
}

// dequeueTimeout bounds each wait on the broker so the worker notices
// shutdown and leadership changes.
const dequeueTimeout = 500 * time.Millisecond

// indexWaitTimeout bounds how long a worker waits for the local state to
// catch up with an evaluation.
const indexWaitTimeout = 5 * time.Second

// schedulerTypes are the queues workers take evaluations from.
var schedulerTypes = []string{structs.JobTypeService, structs.JobTypeBatch, structs.JobTypeSystem}

func (w *Worker) run() {
	for {
		if w.srv.isShutdown() {
			return
		}
		eval, token, err := w.srv.evalBroker.Dequeue(schedulerTypes, dequeueTimeout, w.srv.shutdownCh)
		if err != nil {
			if errors.Is(err, ErrBrokerDisabled) {
				// Not the leader: wait and look again.
				select {
				case <-w.srv.shutdownCh:
					return
				case <-time.After(dequeueTimeout):
				}
			}
			continue
		}
		if eval == nil {
			continue
		}
		w.process(eval, token)
	}
}

// process runs the scheduler for one evaluation and acks or nacks it.
func (w *Worker) process(eval *structs.Evaluation, token string) {
	w.evalID, w.evalToken = eval.ID, token
	if err := w.srv.waitForIndex(eval.ModifyIndex, indexWaitTimeout); err != nil {
		w.logger.Error("state is behind the evaluation", "eval_id", eval.ID, "error", err)
		_ = w.srv.evalBroker.Nack(eval.ID, token)
		return
	}
	err := w.schedule(eval)
	if err != nil {
		w.logger.Error("failed to process evaluation", "eval_id", eval.ID, "job_id", eval.JobID, "error", err)
		_ = w.srv.evalBroker.Nack(eval.ID, token)
		return
	}
	if err := w.srv.evalBroker.Ack(eval.ID, token); err != nil {
		w.logger.Warn("failed to ack evaluation", "eval_id", eval.ID, "error", err)
	}
}

// schedule runs the scheduler for eval. A panic in the scheduler (a bug,
// or a job no check foresaw) fails this evaluation instead of the
// leader: it is logged with its stack and returned as an error, so the
// evaluation is nacked and, after the broker's delivery limit, failed.
func (w *Worker) schedule(eval *structs.Evaluation) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.srv.metrics.schedulerPanics.Inc()
			w.logger.Error("the scheduler panicked; the evaluation fails, the server goes on",
				"eval_id", eval.ID, "job_id", eval.JobID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("scheduler panic: %v", r)
		}
	}()
	sched, err := w.newScheduler(eval.Type, scheduler.Config{Logger: w.logger}, w.srv.State().Snapshot(), w)
	if err != nil {
		return err
	}
	return sched.Process(eval)
}

// SubmitPlan implements scheduler.Planner.
func (w *Worker) SubmitPlan(plan *structs.Plan) (*structs.PlanResult, scheduler.State, error) {
	plan.EvalToken = w.evalToken
	future, err := w.srv.planQueue.Enqueue(plan)
	if err != nil {
		return nil, nil, err
	}
	result, err := future.Wait(w.srv.shutdownCh)
	if err != nil {
		return nil, nil, err
	}
	// Let the next snapshot see what was just committed, and refresh
	// when the applier rejected part of the plan.
	wait := result.AllocIndex
	if result.RefreshIndex > wait {
		wait = result.RefreshIndex
	}
	if wait > 0 {
		if err := w.srv.waitForIndex(wait, indexWaitTimeout); err != nil {
			return nil, nil, err
		}
	}
	if result.RefreshIndex != 0 {
		return result, w.srv.State().Snapshot(), nil
	}
	return result, nil, nil
}

// UpdateEval implements scheduler.Planner.
func (w *Worker) UpdateEval(eval *structs.Evaluation) error {
	return w.writeEval(eval)
}

// CreateEval implements scheduler.Planner.
func (w *Worker) CreateEval(eval *structs.Evaluation) error {
	return w.writeEval(eval)
}

// ReblockEval implements scheduler.Planner.
func (w *Worker) ReblockEval(eval *structs.Evaluation) error {
	eval.Status = structs.EvalStatusBlocked
	return w.writeEval(eval)
}

func (w *Worker) writeEval(eval *structs.Evaluation) error {
	if err := w.srv.evalBroker.Outstanding(w.evalID, w.evalToken); err != nil {
		return fmt.Errorf("write eval %s: %w", eval.ID, err)
	}
	now := time.Now().UnixNano()
	if eval.CreateTime == 0 {
		eval.CreateTime = now
	}
	eval.ModifyTime = now
	_, _, err := w.srv.raftApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{
		Evals: []*structs.Evaluation{eval}, EvalToken: w.evalToken, UpdatedAt: now,
	})
	return err
}

// waitForIndex waits until the local state has applied index.
func (s *Server) waitForIndex(index uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		latest, err := s.State().LatestIndex()
		if err != nil {
			return err
		}
		if latest >= index {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for state index %d (at %d)", index, latest)
		}
		select {
		case <-s.shutdownCh:
			return fmt.Errorf("server shutting down")
		case <-time.After(5 * time.Millisecond):
		}
	}
}
