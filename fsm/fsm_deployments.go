package fsm

import (
	"github.com/droverhq/drover/structs"
)

func (f *FSM) applyDeploymentStatusUpdate(buf []byte, index uint64) interface{} {
	var req structs.DeploymentStatusUpdateRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkDeploymentStatusUpdate(&req); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.UpdateDeploymentStatus(index, &req); err != nil {
		return err
	}
	if req.Eval != nil {
		f.handleEvals(st, []*structs.Evaluation{req.Eval})
	}
	return nil
}

func (f *FSM) applyDeploymentPromote(buf []byte, index uint64) interface{} {
	var req structs.DeploymentPromoteRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.PromoteDeployment(index, &req); err != nil {
		return err
	}
	if req.Eval != nil {
		f.handleEvals(st, []*structs.Evaluation{req.Eval})
	}
	return nil
}

// applyDeploymentAllocHealth sets allocations' health by decision of an
// operator or the deployment watcher (rather than their client).
func (f *FSM) applyDeploymentAllocHealth(buf []byte, index uint64) interface{} {
	var req structs.DeploymentAllocHealthRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	st := f.State()
	var updates []*structs.Allocation
	set := func(ids []string, healthy bool) {
		for _, id := range ids {
			a, err := st.AllocByID(nil, id)
			if err != nil || a == nil || a.DeploymentID != req.DeploymentID {
				continue
			}
			u := a.Copy()
			h := healthy
			u.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: &h, Timestamp: req.UpdatedAt, Canary: a.DeploymentStatus.IsCanary()}
			updates = append(updates, u)
		}
	}
	set(req.HealthyAllocationIDs, true)
	set(req.UnhealthyAllocationIDs, false)
	if len(updates) == 0 {
		return nil
	}
	return st.UpdateAllocsFromClient(index, updates, req.UpdatedAt, nil)
}

func (f *FSM) applyNodeUpdateDrain(buf []byte, index uint64) interface{} {
	var req structs.NodeUpdateDrainRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := f.State().UpdateNodeDrain(index, req.NodeID, req.DrainStrategy, req.MarkEligible, req.UpdatedAt); err != nil {
		return err
	}
	if req.DrainStrategy == nil && req.MarkEligible {
		f.blocked.Unblock(index)
	}
	return nil
}

func (f *FSM) applyNodeUpdateEligibility(buf []byte, index uint64) interface{} {
	var req structs.NodeUpdateEligibilityRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkNotNil("Evals", req.Evals); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.UpdateNodeEligibility(index, req.NodeID, req.Eligibility, req.Evals); err != nil {
		return err
	}
	f.handleEvals(st, req.Evals)
	if req.Eligibility == structs.NodeSchedulingEligible {
		f.blocked.Unblock(index)
	}
	return nil
}

func (f *FSM) applyAllocDesiredTransition(buf []byte, index uint64) interface{} {
	var req structs.AllocUpdateDesiredTransitionRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkDesiredTransition(&req); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.UpdateAllocsDesiredTransitions(index, req.Allocs, req.Evals); err != nil {
		return err
	}
	f.handleEvals(st, req.Evals)
	return nil
}

func (f *FSM) applyJobStability(buf []byte, index uint64) interface{} {
	var req structs.JobStabilityRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().UpdateJobStability(index, req.JobID, req.JobVersion, req.Stable))
}

func (f *FSM) applySchedulerConfig(buf []byte, index uint64) interface{} {
	var req structs.SchedulerSetConfigRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().SetSchedulerConfig(index, &req.Config))
}

// errOrNil keeps a nil error a nil interface in Apply's response.
func errOrNil(err error) interface{} {
	if err == nil {
		return nil
	}
	return err
}
