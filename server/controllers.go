package server

import (
	"time"

	"github.com/droverhq/drover/server/deploymentwatcher"
	"github.com/droverhq/drover/server/drainer"
	"github.com/droverhq/drover/server/gc"
	"github.com/droverhq/drover/server/heartbeat"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// The leader's controllers live in their own packages (heartbeat,
// drainer, deploymentwatcher, gc). Each reads the state through a read-only
// view it defines, which the state store and its snapshots satisfy, and
// writes through a narrow Raft interface it defines, which the adapters
// below implement over raftApply. None of them sees the Server.
var (
	_ heartbeat.State         = (*state.StateStore)(nil)
	_ drainer.State           = (*state.Snapshot)(nil)
	_ deploymentwatcher.State = (*state.Snapshot)(nil)
	_ gc.State                = (*state.Snapshot)(nil)

	_ heartbeat.Raft         = heartbeatRaft{}
	_ drainer.Raft           = drainRaft{}
	_ deploymentwatcher.Raft = deploymentRaft{}
	_ gc.Raft                = gcRaft{}
)

// setupControllers builds the controllers; establishLeadership starts
// them and revokeLeadership stops them.
func (s *Server) setupControllers() {
	s.heartbeats = heartbeat.New(heartbeat.Config{
		MinTTL:       s.config.MinHeartbeatTTL,
		Grace:        s.config.HeartbeatGrace,
		MaxPerSecond: s.config.MaxHeartbeatsPerSecond,
		Logger:       s.logger,
	}, heartbeatRaft{s})
	// The drainer and the watcher decide from a snapshot per pass: one
	// consistent view, and the current store even after a snapshot
	// restore replaced it.
	s.drainer = drainer.New(drainer.Config{
		State:  func() drainer.State { return s.State().Snapshot() },
		Raft:   drainRaft{s},
		Logger: s.logger,
	})
	s.deployments = deploymentwatcher.New(deploymentwatcher.Config{
		State:  func() deploymentwatcher.State { return s.State().Snapshot() },
		Raft:   deploymentRaft{s},
		Logger: s.logger,
	})
	s.gc = gc.New(gc.Config{
		State:    func() gc.State { return s.State().Snapshot() },
		Raft:     gcRaft{s},
		Logger:   s.logger.Named("gc"),
		Settings: s.config.GC,
	})
}

// heartbeatRaft writes what the heartbeat timers decide.
type heartbeatRaft struct{ s *Server }

// UpdateNodeStatus marks a node whose TTL ran out down, with the
// evaluations that replace its allocations.
func (r heartbeatRaft) UpdateNodeStatus(nodeID, status string) error {
	if err := r.s.updateNodeStatus(nodeID, status); err != nil {
		return err
	}
	if status == structs.NodeStatusDown {
		r.s.metrics.nodesDown.Inc()
	}
	return nil
}

// drainRaft writes what the drainer decides.
type drainRaft struct{ s *Server }

// MigrateAllocs marks allocations to migrate, with one evaluation per
// job, in one entry: the scheduler then places their replacements.
func (r drainRaft) MigrateAllocs(nodeID string, allocs []*structs.Allocation) error {
	now := time.Now().UnixNano()
	req := &structs.AllocUpdateDesiredTransitionRequest{Allocs: make(map[string]*structs.DesiredTransition, len(allocs))}
	jobs := map[structs.NamespacedID]bool{}
	for _, a := range allocs {
		req.Allocs[a.ID] = &structs.DesiredTransition{Migrate: true}
		if !jobs[a.JobKey()] {
			jobs[a.JobKey()] = true
			req.Evals = append(req.Evals, r.s.newJobEval(a.Job, a.JobKey(), structs.EvalTriggerNodeDrain, nodeID, now))
		}
	}
	_, _, err := r.s.raftApply(structs.AllocUpdateDesiredTransitionRequestType, req)
	return err
}

// CompleteDrain ends a drain; without MarkEligible the node stays
// ineligible.
func (r drainRaft) CompleteDrain(nodeID string) error {
	_, _, err := r.s.raftApply(structs.NodeUpdateDrainRequestType, &structs.NodeUpdateDrainRequest{NodeID: nodeID, UpdatedAt: time.Now().UnixNano()})
	return err
}

// deploymentRaft writes what the deployment watcher decides.
type deploymentRaft struct{ s *Server }

// PromoteCanaries promotes every group's canaries, with the evaluation
// that places the rest of the rollout.
func (r deploymentRaft) PromoteCanaries(d *structs.Deployment) error {
	now := time.Now().UnixNano()
	req := &structs.DeploymentPromoteRequest{DeploymentID: d.ID, All: true, UpdatedAt: now, Eval: r.s.deploymentEval(d, now)}
	_, _, err := r.s.raftApply(structs.DeploymentPromoteRequestType, req)
	return err
}

// MarkSuccessful ends a deployment whose groups are all healthy.
func (r deploymentRaft) MarkSuccessful(d *structs.Deployment) error {
	req := &structs.DeploymentStatusUpdateRequest{
		DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: d.ID, Status: structs.DeploymentStatusSuccessful, StatusDescription: structs.DeploymentDescSuccessful},
		UpdatedAt:        time.Now().UnixNano(),
	}
	_, _, err := r.s.raftApply(structs.DeploymentStatusUpdateRequestType, req)
	return err
}

// MarkFailed fails a deployment, reverting the job when f says so.
func (r deploymentRaft) MarkFailed(f *deploymentwatcher.Failure) error {
	return r.s.failDeployment(f, nil)
}

// gcRaft writes what the garbage collector chose.
type gcRaft struct{ s *Server }

// CollectBatch writes one GCBatch entry and returns what the FSM
// deleted and skipped.
func (r gcRaft) CollectBatch(req *structs.GCBatchRequest) (*structs.GCBatchResult, uint64, error) {
	if err := r.s.checkWrites(structs.GCBatchRequestType); err != nil {
		return nil, 0, err
	}
	resp, index, err := r.s.raftApply(structs.GCBatchRequestType, req)
	if err != nil {
		return nil, index, err
	}
	res, _ := resp.(*structs.GCBatchResult)
	if res != nil {
		r.s.metrics.countGC(res)
	}
	return res, index, nil
}
