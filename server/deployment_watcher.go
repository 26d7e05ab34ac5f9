package server

import (
	"time"

	"github.com/droverhq/drover/structs"
)

// deploymentWatchInterval is how often the leader looks at running
// deployments.
const deploymentWatchInterval = 250 * time.Millisecond

// watchDeployments drives deployments on the leader. Clients report each
// allocation's health; the FSM counts healthy and unhealthy allocations
// per group and pushes the progress deadline on progress; the scheduler
// places the next batch when an evaluation (created with the health
// update) runs. What is left is decided here, from the state:
//   - an unhealthy allocation fails the deployment;
//   - a group without progress past its deadline fails it;
//   - a failed deployment with auto_revert registers the newest stable
//     earlier version again (failDeployment);
//   - canaries that are all healthy are promoted when auto_promote is set;
//   - a deployment whose groups are all healthy and promoted succeeds,
//     which marks its job version stable.
//
// Every decision is a Raft write with the leader's clock in it, so the
// state store stays deterministic.
func (s *Server) watchDeployments(stopCh <-chan struct{}) {
	ticker := time.NewTicker(deploymentWatchInterval)
	defer ticker.Stop()
	for {
		select {
		case <-stopCh:
			return
		case <-ticker.C:
		}
		deps, err := s.State().Deployments(nil)
		if err != nil {
			s.logger.Error("deployment watcher cannot read deployments", "error", err)
			continue
		}
		for _, d := range deps {
			if d.Active() {
				if err := s.watchDeployment(d); err != nil {
					s.logger.Warn("deployment watcher failed", "deployment_id", d.ID, "error", err)
				}
			}
		}
	}
}

func (s *Server) watchDeployment(d *structs.Deployment) error {
	allocs, err := s.State().AllocsByJob(nil, d.JobID)
	if err != nil {
		return err
	}
	unhealthy := false
	for _, a := range allocs {
		if a.DeploymentID == d.ID && a.DeploymentStatus.IsUnhealthy() {
			unhealthy = true
		}
	}
	if unhealthy {
		return s.failDeployment(d, structs.DeploymentDescFailedAllocations, nil)
	}
	now := time.Now()
	complete, needPromote, canAutoPromote := true, false, true
	for _, tg := range d.TaskGroups {
		groupDone := tg.HealthyAllocs >= tg.DesiredTotal
		if tg.DesiredCanaries > 0 && !tg.Promoted {
			needPromote = true
			groupDone = false
			healthy := 0
			for _, id := range tg.PlacedCanaries {
				for _, a := range allocs {
					if a.ID == id && a.DeploymentStatus.IsHealthy() {
						healthy++
					}
				}
			}
			if !tg.AutoPromote || healthy < tg.DesiredCanaries {
				canAutoPromote = false
			}
		}
		if !groupDone {
			complete = false
			if tg.RequireProgressBy > 0 && now.UnixNano() > tg.RequireProgressBy {
				return s.failDeployment(d, structs.DeploymentDescProgressDeadline, nil)
			}
		}
	}
	switch {
	case needPromote && canAutoPromote:
		req := &structs.DeploymentPromoteRequest{DeploymentID: d.ID, All: true, UpdatedAt: now.UnixNano(), Eval: s.deploymentEval(d, now.UnixNano())}
		_, _, err := s.raftApply(structs.DeploymentPromoteRequestType, req)
		return err
	case complete:
		req := &structs.DeploymentStatusUpdateRequest{
			DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: d.ID, Status: structs.DeploymentStatusSuccessful, StatusDescription: structs.DeploymentDescSuccessful},
			UpdatedAt:        now.UnixNano(),
		}
		_, _, err := s.raftApply(structs.DeploymentStatusUpdateRequestType, req)
		if err == nil {
			s.logger.Info("deployment successful", "deployment_id", d.ID, "job_id", d.JobID, "version", d.JobVersion)
		}
		return err
	}
	return nil
}
