package server

import (
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Deployment is the RPC endpoint for deployments.
type Deployment struct {
	srv *Server
}

// GetDeployment reads one deployment.
func (d *Deployment) GetDeployment(args *structs.DeploymentSpecificRequest, reply *structs.SingleDeploymentResponse) error {
	if done, err := d.srv.forward("Deployment.GetDeployment", args, args, reply); done {
		return err
	}
	return d.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		dep, err := st.DeploymentByID(ws, args.DeploymentID)
		if err != nil {
			return err
		}
		reply.Deployment = dep
		if dep != nil {
			reply.Index = dep.ModifyIndex
			return nil
		}
		reply.Index, err = st.Index(state.TableDeployment)
		return err
	})
}

// List lists deployments, optionally by ID prefix.
func (d *Deployment) List(args *structs.DeploymentListRequest, reply *structs.DeploymentListResponse) error {
	if done, err := d.srv.forward("Deployment.List", args, args, reply); done {
		return err
	}
	return d.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		deps, err := st.DeploymentsByIDPrefix(ws, args.Prefix)
		if err != nil {
			return err
		}
		reply.Deployments = deps
		reply.Index, err = st.Index(state.TableDeployment)
		return err
	})
}

// Allocations lists the allocations a deployment placed.
func (d *Deployment) Allocations(args *structs.DeploymentSpecificRequest, reply *structs.JobAllocationsResponse) error {
	if done, err := d.srv.forward("Deployment.Allocations", args, args, reply); done {
		return err
	}
	return d.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		dep, err := st.DeploymentByID(ws, args.DeploymentID)
		if err != nil || dep == nil {
			return err
		}
		allocs, err := st.AllocsByJob(ws, dep.JobID)
		if err != nil {
			return err
		}
		reply.Allocations = nil
		for _, a := range allocs {
			if a.DeploymentID == dep.ID {
				reply.Allocations = append(reply.Allocations, a.Stub())
			}
		}
		reply.Index, err = maxIndex(st, state.TableAllocs, state.TableDeployment)
		return err
	})
}

// Promote promotes a deployment's canaries once they are healthy, so the
// rollout continues.
func (d *Deployment) Promote(args *structs.DeploymentPromoteRequest, reply *structs.DeploymentUpdateResponse) error {
	if done, err := d.srv.forward("Deployment.Promote", args, args, reply); done {
		return err
	}
	dep, err := d.srv.State().DeploymentByID(nil, args.DeploymentID)
	if err != nil {
		return err
	}
	if dep == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("deployment %q not found", args.DeploymentID))
	}
	if !dep.Active() {
		return structs.NewError(structs.CodeConflict, fmt.Sprintf("deployment %s is %s; only a running deployment can be promoted", dep.ID, dep.Status))
	}
	allocs, err := d.srv.State().AllocsByJob(nil, dep.JobID)
	if err != nil {
		return err
	}
	healthy := map[string]bool{}
	for _, a := range allocs {
		healthy[a.ID] = a.DeploymentStatus.IsHealthy()
	}
	groups := map[string]bool{}
	for _, g := range args.Groups {
		groups[g] = true
	}
	for name, tg := range dep.TaskGroups {
		if tg.DesiredCanaries == 0 || tg.Promoted || (!args.All && !groups[name]) {
			continue
		}
		ready := 0
		for _, id := range tg.PlacedCanaries {
			if healthy[id] {
				ready++
			}
		}
		if ready < tg.DesiredCanaries {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf("group %q has %d of %d canaries healthy; promote once all are", name, ready, tg.DesiredCanaries))
		}
	}
	now := time.Now().UnixNano()
	req := &structs.DeploymentPromoteRequest{DeploymentID: dep.ID, All: args.All, Groups: args.Groups, UpdatedAt: now,
		Eval: d.srv.deploymentEval(dep, now)}
	_, index, err := d.srv.raftApply(structs.DeploymentPromoteRequestType, req)
	if err != nil {
		return err
	}
	reply.EvalID = req.Eval.ID
	reply.DeploymentModifyIndex = index
	reply.Index = index
	return nil
}

// Fail fails a running deployment, reverting the job when the
// deployment asks for it.
func (d *Deployment) Fail(args *structs.DeploymentFailRequest, reply *structs.DeploymentUpdateResponse) error {
	if done, err := d.srv.forward("Deployment.Fail", args, args, reply); done {
		return err
	}
	dep, err := d.srv.State().DeploymentByID(nil, args.DeploymentID)
	if err != nil {
		return err
	}
	if dep == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("deployment %q not found", args.DeploymentID))
	}
	if !dep.Active() {
		return structs.NewError(structs.CodeConflict, fmt.Sprintf("deployment %s is already %s", dep.ID, dep.Status))
	}
	return d.srv.failDeployment(dep, structs.DeploymentDescFailedByUser, reply)
}

// deploymentEval returns an evaluation that continues a deployment.
func (s *Server) deploymentEval(dep *structs.Deployment, now int64) *structs.Evaluation {
	e := s.newJobEval(nil, dep.JobID, structs.EvalTriggerDeploymentWatcher, "", now)
	e.DeploymentID = dep.ID
	return e
}

// failDeployment marks a deployment failed. When a group asks for
// auto-revert and the job has an earlier stable version whose spec
// differs, that version is registered again in the same write.
func (s *Server) failDeployment(dep *structs.Deployment, desc string, reply *structs.DeploymentUpdateResponse) error {
	now := time.Now()
	req := &structs.DeploymentStatusUpdateRequest{
		DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: dep.ID, Status: structs.DeploymentStatusFailed, StatusDescription: desc},
		UpdatedAt:        now.UnixNano(),
		SubmitTime:       now.UnixNano(),
	}
	revert := false
	for _, tg := range dep.TaskGroups {
		revert = revert || tg.AutoRevert
	}
	if revert {
		target, err := s.revertTarget(dep)
		if err != nil {
			return err
		}
		if target != nil {
			job := target.Copy()
			job.Stop = false
			req.Job = job
			req.DeploymentUpdate.StatusDescription += fmt.Sprintf(structs.DeploymentDescRollbackSuffix, target.Version)
			e := s.newJobEval(target, dep.JobID, structs.EvalTriggerJobRevert, "", now.UnixNano())
			req.Eval = e
		} else {
			req.DeploymentUpdate.StatusDescription += structs.DeploymentDescNoRollbackTargetFmt
		}
	}
	if req.Eval == nil {
		// Re-evaluate anyway: allocations stuck mid-rollout are
		// reconciled against the failed deployment.
		req.Eval = s.deploymentEval(dep, now.UnixNano())
	}
	_, index, err := s.raftApply(structs.DeploymentStatusUpdateRequestType, req)
	if err != nil {
		return err
	}
	s.logger.Warn("deployment failed", "deployment_id", dep.ID, "job_id", dep.JobID, "reason", req.DeploymentUpdate.StatusDescription)
	if reply != nil {
		reply.EvalID = req.Eval.ID
		reply.DeploymentModifyIndex = index
		reply.Index = index
		if req.Job != nil {
			v := req.Job.Version
			reply.RevertedJobVersion = &v
		}
	}
	return nil
}

// revertTarget returns the newest stable version of the deployment's job
// older than the deployed version, whose spec differs from the current
// job, or nil.
func (s *Server) revertTarget(dep *structs.Deployment) (*structs.Job, error) {
	st := s.State()
	current, err := st.JobByID(nil, dep.JobID)
	if err != nil || current == nil {
		return nil, err
	}
	versions, err := st.JobVersionsByID(nil, dep.JobID)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		if v.Version < dep.JobVersion && v.Stable && current.SpecChanged(v) {
			return v, nil
		}
	}
	return nil, nil
}
