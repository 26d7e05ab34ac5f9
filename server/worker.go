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

// Worker dequeues evaluations, runs the scheduler on a state snapshot
// at least as new as the evaluation, and acks or nacks the evaluation.
// It is the scheduler's Planner: plans go to the plan applier,
// evaluation updates through Raft, both stamped with the delivery
// token.
//
// Workers run on every server. On the leader they use the eval broker
// and plan queue in process. On a follower, the first
// Config.FollowerSchedulers of them take evaluations from the leader's
// broker over RPC (eval_worker_endpoint.go), wait until their own state
// reaches the index the leader gives with the evaluation, schedule
// against their own snapshot, and submit plans, evaluation writes, acks
// and nacks to the leader; the plan applier's re-check keeps capacity
// exact whoever planned. A follower that dies mid-evaluation loses
// nothing: the leader redelivers its evaluations when its restarted
// process calls again or gossip reports it failed or left
// (EvalBroker.Hold), and the broker's nack timeout covers the rest.
type Worker struct {
	srv    *Server
	id     int
	logger hclog.Logger

	// The evaluation being processed, its delivery token and, when it
	// came from another server's broker, that server's RPC address;
	// touched only by the worker's goroutine (the scheduler runs on it
	// too). Every write the scheduler makes is checked against them,
	// including writes of the blocked and follow-up evaluations it
	// creates.
	evalID    string
	evalToken string
	leader    string

	// indexWait bounds each wait for the local state to catch up
	// (indexWaitTimeout; tests shorten it).
	indexWait time.Duration

	// newScheduler builds the scheduler for an evaluation
	// (scheduler.NewScheduler; tests swap it).
	newScheduler func(typ string, cfg scheduler.Config, state scheduler.State, planner scheduler.Planner) (scheduler.Scheduler, error)
}

func newWorker(s *Server, id int) *Worker {
	return &Worker{srv: s, id: id, logger: s.logger.Named("worker").With("worker_id", id), newScheduler: scheduler.NewScheduler,
		indexWait: indexWaitTimeout}
}

// dequeueTimeout bounds each wait on the broker so the worker notices
// shutdown and leadership changes.
const dequeueTimeout = 500 * time.Millisecond

// remoteDequeueTimeout is a follower worker's long poll on the leader's
// broker: well under the RPC call timeout, short enough that the worker
// notices shutdown and leadership changes soon.
const remoteDequeueTimeout = 2 * time.Second

// Follower workers back off between failed calls to the leader (no
// leader known, RPC errors), doubling from the first to the last.
const (
	remoteBackoffMin = 100 * time.Millisecond
	remoteBackoffMax = 5 * time.Second
)

// indexWaitTimeout bounds how long a worker waits for the local state to
// catch up with an evaluation.
const indexWaitTimeout = 5 * time.Second

// schedulerTypes are the queues workers take evaluations from.
var schedulerTypes = []string{structs.JobTypeService, structs.JobTypeBatch, structs.JobTypeSystem}

// Where an evaluation came from, the label of the processed counter.
const (
	pathLocal = "local"
	pathRPC   = "rpc"
)

func (w *Worker) run() {
	backoff := remoteBackoffMin
	for {
		if w.srv.isShutdown() {
			return
		}
		if !w.srv.IsLeader() && w.id < w.srv.config.FollowerSchedulers {
			if w.runRemote() {
				backoff = remoteBackoffMin
				continue
			}
			if !w.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, remoteBackoffMax)
			continue
		}
		eval, token, err := w.srv.evalBroker.Dequeue(schedulerTypes, dequeueTimeout, w.srv.shutdownCh)
		if err != nil {
			if errors.Is(err, ErrBrokerDisabled) {
				// Not the leader (yet): wait and look again.
				if !w.sleep(dequeueTimeout) {
					return
				}
			}
			continue
		}
		if eval == nil {
			continue
		}
		w.process(eval, token, "", eval.ModifyIndex)
	}
}

// sleep waits d; false when the server shuts down meanwhile.
func (w *Worker) sleep(d time.Duration) bool {
	select {
	case <-w.srv.shutdownCh:
		return false
	case <-time.After(d):
		return true
	}
}

// runRemote makes one long poll on the leader's broker and processes
// what it delivers. It returns false when the worker should back off:
// no leader known (or this server is the one Raft names), or the call
// failed.
func (w *Worker) runRemote() bool {
	leader := w.srv.LeaderAddr()
	if leader == "" || leader == w.srv.config.RPCAdvertise.String() {
		return false
	}
	var resp structs.EvalDequeueResponse
	err := w.srv.peers.RPC(leader, "Eval.Dequeue", &structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: remoteDequeueTimeout,
		Server: w.srv.raftID, Instance: w.srv.instance}, &resp)
	if err != nil {
		w.logger.Debug("dequeue from the leader failed; backing off", "leader", leader, "error", err)
		return false
	}
	if resp.Eval == nil {
		return true
	}
	if w.srv.isShutdown() {
		// Hand it back now rather than after the nack timeout.
		_ = w.srv.peers.RPC(leader, "Eval.Nack", &structs.EvalAckRequest{EvalID: resp.Eval.ID, Token: resp.Token}, &structs.GenericResponse{})
		return true
	}
	w.process(resp.Eval, resp.Token, leader, resp.WaitIndex)
	return true
}

// process runs the scheduler for one evaluation, delivered by the
// broker at leader ("" for this server's own), once the local state
// reached waitIndex, and acks or nacks it.
func (w *Worker) process(eval *structs.Evaluation, token, leader string, waitIndex uint64) {
	w.evalID, w.evalToken, w.leader = eval.ID, token, leader
	defer func() { w.evalID, w.evalToken, w.leader = "", "", "" }()
	if err := w.srv.waitForIndex(waitIndex, w.indexWait); err != nil {
		w.logger.Error("state is behind the evaluation", "eval_id", eval.ID, "error", err)
		w.nack(eval.ID)
		return
	}
	err := w.schedule(eval)
	if err != nil {
		w.logger.Error("failed to process evaluation", "eval_id", eval.ID, "job_id", eval.JobID, "error", err)
		w.nack(eval.ID)
		return
	}
	if err := w.ack(eval.ID); err != nil {
		w.logger.Warn("failed to ack evaluation", "eval_id", eval.ID, "error", err)
		return
	}
	path := pathLocal
	if leader != "" {
		path = pathRPC
	}
	w.srv.metrics.evalsProcessed.WithLabelValues(path).Inc()
}

func (w *Worker) ack(evalID string) error {
	if w.leader == "" {
		return w.srv.evalBroker.Ack(evalID, w.evalToken)
	}
	return w.srv.peers.RPC(w.leader, "Eval.Ack", &structs.EvalAckRequest{EvalID: evalID, Token: w.evalToken}, &structs.GenericResponse{})
}

// nack hands the evaluation back for redelivery; if that fails (the
// leader is gone or the delivery already timed out) the broker's nack
// timeout, or a new leader's rebuilt broker, redelivers it.
func (w *Worker) nack(evalID string) {
	var err error
	if w.leader == "" {
		err = w.srv.evalBroker.Nack(evalID, w.evalToken)
	} else {
		err = w.srv.peers.RPC(w.leader, "Eval.Nack", &structs.EvalAckRequest{EvalID: evalID, Token: w.evalToken}, &structs.GenericResponse{})
	}
	if err != nil {
		w.logger.Debug("failed to nack evaluation", "eval_id", evalID, "error", err)
	}
}

// schedule runs the scheduler for eval. A panic in the scheduler (a bug,
// or a job no check foresaw) fails this evaluation instead of the
// server: it is logged with its stack and returned as an error, so the
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
	var result *structs.PlanResult
	if w.leader == "" {
		future, err := w.srv.planQueue.Enqueue(plan)
		if err != nil {
			return nil, nil, err
		}
		if result, err = future.Wait(w.srv.shutdownCh); err != nil {
			return nil, nil, err
		}
	} else {
		weight := planWeight(plan, w.srv.remotePlanWindow)
		if err := w.srv.remotePlans.Acquire(w.srv.shutdownCtx, weight); err != nil {
			return nil, nil, fmt.Errorf("submit plan to the leader: %w", err)
		}
		var resp structs.PlanSubmitResponse
		err := w.srv.peers.RPC(w.leader, "Plan.Submit", &structs.PlanSubmitRequest{Plan: plan}, &resp)
		w.srv.remotePlans.Release(weight)
		if err != nil {
			return nil, nil, fmt.Errorf("submit plan to the leader: %w", err)
		}
		if resp.Result == nil {
			return nil, nil, fmt.Errorf("submit plan to the leader: no result")
		}
		result = resp.Result
	}
	// Let the next snapshot see what was just committed, and refresh
	// when the applier rejected part of the plan. On a follower this
	// waits for replication; if the state does not catch up in time the
	// error fails the evaluation, which is nacked.
	wait := result.AllocIndex
	if result.RefreshIndex > wait {
		wait = result.RefreshIndex
	}
	if wait > 0 {
		if err := w.srv.waitForIndex(wait, w.indexWait); err != nil {
			return nil, nil, err
		}
	}
	if result.RefreshIndex != 0 {
		return result, w.srv.State().Snapshot(), nil
	}
	return result, nil, nil
}

// remotePlanWindow bounds the allocations (placed, updated, stopped or
// preempted) of one follower's plans that are at the leader at once:
// a plan that would pass it waits on the follower until earlier ones
// are answered (one plan is always let through, however large). The
// leader applies plans one batch at a time while up to 64 workers per
// server produce them; unbounded, a follower's big plans all waited in
// the leader's queue, decoded, with the connection buffers that carried
// them: in the memory scenario (plans of 1,000 placements) 55 MB of
// requests and 28 MB of buffers on the leader alone, and a leader RSS
// of 0.84–1.03 GiB at the end against 0.82–0.84 GiB with the window
// (bench/README.md). Waiting on the follower costs nothing in
// throughput while the leader has a window's worth of each follower to
// apply; small plans (the placement scenario's) never wait.
const remotePlanWindow = 2048

// planWeight is what plan counts against a window of window
// allocations.
func planWeight(plan *structs.Plan, window int64) int64 {
	n := 0
	for _, allocs := range plan.NodeAllocation {
		n += len(allocs)
	}
	for _, allocs := range plan.NodeUpdate {
		n += len(allocs)
	}
	for _, allocs := range plan.NodePreemptions {
		n += len(allocs)
	}
	return max(1, min(int64(n), window))
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
	if w.leader == "" {
		if _, err := w.srv.writeWorkerEval(w.evalID, w.evalToken, eval); err != nil {
			return fmt.Errorf("write eval %s: %w", eval.ID, err)
		}
		return nil
	}
	err := w.srv.peers.RPC(w.leader, "Eval.WorkerUpdate", &structs.EvalWorkerUpdateRequest{EvalID: w.evalID, Token: w.evalToken, Eval: eval}, &structs.GenericResponse{})
	if err != nil {
		return fmt.Errorf("write eval %s through the leader: %w", eval.ID, err)
	}
	return nil
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
