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
