package server

import (
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/server/deploymentwatcher"
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
	authz, err := d.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	return d.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		dep, err := st.DeploymentByID(ws, args.DeploymentID)
		if err != nil {
			return err
		}
		if dep != nil {
			if err := authz.authorizeObjectRead(dep.Namespace); err != nil {
				reply.Deployment = nil
				return err
			}
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
	authz, err := d.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	if err := authz.listNamespaceAllowed(args.ListNamespace()); err != nil {
		return err
	}
	return d.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		deps, err := st.DeploymentsByIDPrefix(ws, args.ListNamespace(), args.Prefix)
		if err != nil {
			return err
		}
		reply.Deployments = make([]*structs.Deployment, 0, len(deps))
		for _, dep := range deps {
			if authz.CanNamespace(dep.Namespace, acl.CapabilityListJobs) {
				reply.Deployments = append(reply.Deployments, dep)
			}
		}
		reply.Index, err = st.Index(state.TableDeployment)
		return err
	})
}

// Allocations lists the allocations a deployment placed.
func (d *Deployment) Allocations(args *structs.DeploymentSpecificRequest, reply *structs.JobAllocationsResponse) error {
	if done, err := d.srv.forward("Deployment.Allocations", args, args, reply); done {
		return err
	}
	authz, err := d.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	return d.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		dep, err := st.DeploymentByID(ws, args.DeploymentID)
		if err != nil || dep == nil {
			return err
		}
		if err := authz.authorizeObjectRead(dep.Namespace); err != nil {
			reply.Allocations = nil
			return err
		}
		allocs, err := st.AllocsByJob(ws, dep.Namespace, dep.JobID)
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
	authz, err := d.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	dep, err := d.srv.State().DeploymentByID(nil, args.DeploymentID)
	if err != nil {
		return err
	}
	if dep == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("deployment %q not found", args.DeploymentID))
	}
	if err := authz.Namespace(dep.Namespace, acl.CapabilitySubmitJob); err != nil {
		return err
	}
	if !dep.Active() {
		return structs.NewError(structs.CodeConflict, fmt.Sprintf("deployment %s is %s; only a running deployment can be promoted", dep.ID, dep.Status))
	}
	allocs, err := d.srv.State().AllocsByJob(nil, dep.Namespace, dep.JobID)
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
	authz, err := d.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	dep, err := d.srv.State().DeploymentByID(nil, args.DeploymentID)
	if err != nil {
		return err
	}
	if dep == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("deployment %q not found", args.DeploymentID))
	}
	if err := authz.Namespace(dep.Namespace, acl.CapabilitySubmitJob); err != nil {
		return err
	}
	if !dep.Active() {
		return structs.NewError(structs.CodeConflict, fmt.Sprintf("deployment %s is already %s", dep.ID, dep.Status))
	}
	f, err := deploymentwatcher.NewFailure(d.srv.State(), dep, structs.DeploymentDescFailedByUser)
	if err != nil {
		return err
	}
	return d.srv.failDeployment(f, reply)
}

// deploymentEval returns an evaluation that continues a deployment.
func (s *Server) deploymentEval(dep *structs.Deployment, now int64) *structs.Evaluation {
	e := s.newJobEval(nil, dep.JobKey(), structs.EvalTriggerDeploymentWatcher, "", now)
	e.DeploymentID = dep.ID
	return e
}

// failDeployment writes a deployment's failure, as
// deploymentwatcher.NewFailure decided it (for the leader's watcher or
// an operator): when it names a version to revert to, that version is
// registered again in the same write.
func (s *Server) failDeployment(f *deploymentwatcher.Failure, reply *structs.DeploymentUpdateResponse) error {
	dep := f.Deployment
	now := time.Now()
	req := &structs.DeploymentStatusUpdateRequest{
		DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: dep.ID, Status: structs.DeploymentStatusFailed, StatusDescription: f.Description},
		UpdatedAt:        now.UnixNano(),
		SubmitTime:       now.UnixNano(),
	}
	if target := f.RevertTo; target != nil {
		job := target.Copy()
		job.Stop = false
		req.Job = job
		req.Eval = s.newJobEval(target, dep.JobKey(), structs.EvalTriggerJobRevert, "", now.UnixNano())
	} else {
		// Re-evaluate anyway: allocations stuck mid-rollout are
		// reconciled against the failed deployment.
		req.Eval = s.deploymentEval(dep, now.UnixNano())
	}
	_, index, err := s.raftApply(structs.DeploymentStatusUpdateRequestType, req)
	if err != nil {
		return err
	}
	s.logger.Warn("deployment failed", "deployment_id", dep.ID, "namespace", dep.Namespace, "job_id", dep.JobID, "reason", req.DeploymentUpdate.StatusDescription)
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
