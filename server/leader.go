package server

import (
	"time"

	"github.com/droverhq/drover/structs"
)

// monitorLeadership starts the leader loops when this server gains
// leadership and stops them when it loses it.
func (s *Server) monitorLeadership() {
	for {
		select {
		case isLeader := <-s.leaderNotifyCh:
			if isLeader {
				s.establishLeadership()
			} else {
				s.revokeLeadership()
			}
		case <-s.shutdownCh:
			return
		}
	}
}

// barrierRetry is how long to wait between failed barriers.
const barrierRetry = 100 * time.Millisecond

// establishLeadership starts the leader-only components. It first waits
// for a Raft barrier, so the state store holds every committed entry,
// then rebuilds the eval broker and blocked evals from the state store,
// starts the plan applier and the reapers, and arms heartbeat timers.
func (s *Server) establishLeadership() {
	s.leaderLock.Lock()
	defer s.leaderLock.Unlock()
	if s.leaderStopCh != nil {
		return
	}
	stopCh := make(chan struct{})
	s.leaderStopCh = stopCh

	for {
		if err := s.raft.Barrier(raftApplyTimeout).Error(); err == nil {
			break
		} else if !s.IsLeader() || s.isShutdown() {
			s.logger.Warn("lost leadership before the barrier completed", "error", err)
			close(stopCh)
			s.leaderStopCh = nil
			return
		}
		time.Sleep(barrierRetry)
	}

	s.consistentReadReady.Store(true)
	s.planQueue.SetEnabled(true)
	s.evalBroker.SetEnabled(true)
	s.blockedEvals.SetEnabled(true)
	if err := s.restoreEvals(); err != nil {
		s.logger.Error("failed to restore evaluations", "error", err)
	}
	if err := s.heartbeats.Initialize(s.State()); err != nil {
		s.logger.Error("failed to start heartbeat timers", "error", err)
	}
	for _, loop := range []func(<-chan struct{}){s.planApply, s.reapFailedEvals, s.reapCanceledEvals, s.reconcileMembers, s.deployments.Run, s.drainer.Run,
		s.gc.Run, s.ensureClusterID, s.scheduledSnapshots, s.keyringLeader} {
		loop := loop
		s.leaderWG.Add(1)
		s.goFunc(func() {
			defer s.leaderWG.Done()
			loop(stopCh)
		})
	}
	s.metrics.leadershipsEstablished.Inc()
	s.logger.Info("established leadership", "nodes", s.heartbeats.Count(), "evals", s.evalBroker.Stats().String())
}

// revokeLeadership stops the leader-only components.
func (s *Server) revokeLeadership() {
	s.leaderLock.Lock()
	defer s.leaderLock.Unlock()
	if s.leaderStopCh == nil {
		return
	}
	s.consistentReadReady.Store(false)
	close(s.leaderStopCh)
	s.leaderStopCh = nil
	s.evalBroker.SetEnabled(false)
	s.blockedEvals.SetEnabled(false)
	s.planQueue.SetEnabled(false)
	s.heartbeats.ClearAll()
	// Wait for the loops: Raft fails their in-flight writes once this
	// server no longer leads, so they end promptly.
	done := make(chan struct{})
	go func() {
		s.leaderWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(raftApplyTimeout):
		s.logger.Error("leader loops did not stop in time")
	}
	s.logger.Info("revoked leadership")
}

// restoreEvals fills the broker and blocked evals from the state store.
func (s *Server) restoreEvals() error {
	evals, err := s.State().Evals(nil)
	if err != nil {
		return err
	}
	for _, e := range evals {
		switch {
		case e.ShouldEnqueue():
			s.evalBroker.Enqueue(e)
		case e.ShouldBlock():
			s.blockedEvals.Block(e)
		}
	}
	return nil
}

// failedEvalFollowupWait is how long the follow-up of an evaluation that
// failed its delivery limit waits.
const failedEvalFollowupWait = 30 * time.Second

// reapFailedEvals marks evaluations that exhausted their delivery limit
// as failed and creates delayed follow-ups, so work is retried later
// instead of lost.
func (s *Server) reapFailedEvals(stopCh <-chan struct{}) {
	for {
		eval, token, err := s.evalBroker.Dequeue([]string{FailedQueue}, 0, stopCh)
		if err != nil || eval == nil {
			select {
			case <-stopCh:
				return
			default:
				continue
			}
		}
		follow := eval.CreateFailedFollowUpEval(time.Now(), failedEvalFollowupWait)
		failed := eval.Copy()
		failed.Status = structs.EvalStatusFailed
		failed.StatusDescription = "evaluation reached its delivery limit"
		failed.NextEval = follow.ID
		now := time.Now().UnixNano()
		follow.CreateTime, follow.ModifyTime, failed.ModifyTime = now, now, now
		if _, _, err := s.raftApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{
			Evals: []*structs.Evaluation{failed, follow}, UpdatedAt: now,
		}); err != nil {
			s.logger.Error("failed to mark evaluation failed", "eval_id", eval.ID, "error", err)
			_ = s.evalBroker.Nack(eval.ID, token)
			continue
		}
		_ = s.evalBroker.Ack(eval.ID, token)
	}
}

// cancelInterval is how often superseded evaluations are marked canceled.
const cancelInterval = time.Second

// reapCanceledEvals marks superseded evaluations canceled in batches.
func (s *Server) reapCanceledEvals(stopCh <-chan struct{}) {
	ticker := time.NewTicker(cancelInterval)
	defer ticker.Stop()
	for {
		select {
		case <-stopCh:
			return
		case <-ticker.C:
		}
		evals := append(s.evalBroker.Cancelable(200), s.blockedEvals.Superseded(200)...)
		if len(evals) == 0 {
			continue
		}
		now := time.Now().UnixNano()
		update := make([]*structs.Evaluation, len(evals))
		for i, e := range evals {
			c := e.Copy()
			c.Status = structs.EvalStatusCanceled
			c.StatusDescription = "superseded by a newer evaluation of the job"
			c.ModifyTime = now
			update[i] = c
		}
		if _, _, err := s.raftApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: update, UpdatedAt: now}); err != nil {
			s.logger.Warn("failed to cancel superseded evaluations", "count", len(update), "error", err)
		}
	}
}
