package fsm

import (
	"fmt"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

func (f *FSM) applyJobRegister(buf []byte, index uint64) interface{} {
	var req structs.JobRegisterRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkJobRegister(&req); err != nil {
		return refusal{err}
	}
	// A job registered before namespaces existed is in the default
	// namespace (the leader always writes one now).
	req.Job.Namespace = structs.NamespaceOrDefault(req.Job.Namespace)
	st := f.State()
	// Checked here, in log order, as well as by the endpoint: a delete
	// of the namespace may commit between the two, and a job must not
	// live in a namespace that is gone.
	if ns, err := st.NamespaceByName(nil, req.Job.Namespace); err != nil {
		return err
	} else if ns == nil {
		return structs.NamespaceNotFoundError(req.Job.Namespace)
	}
	if req.EnforceIndex {
		// Checked here, in log order, so two registrations racing with
		// the same check index cannot both pass (the endpoint's check is
		// only a fast path).
		existing, err := st.JobByID(nil, req.Job.Namespace, req.Job.ID)
		if err != nil {
			return err
		}
		var current uint64
		if existing != nil {
			current = existing.JobModifyIndex
		}
		if current != req.JobModifyIndex {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf("job %q in namespace %q changed since the check index: expected job modify index %d, found %d", req.Job.ID, req.Job.Namespace, req.JobModifyIndex, current))
		}
	}
	// The leader stamps its VIP range; entries written before VIPs
	// existed have none and take the default. The store allocates the
	// job's new VIPs from it and refuses, here as on every server, a
	// range with no free address or a published port another service
	// uses (the endpoint checked both first).
	vipRange := req.ServiceVIPRange
	if vipRange == "" {
		vipRange = structs.DefaultServiceVIPRange
	}
	if err := st.RegisterJob(index, req.Job, req.SubmitTime, req.Eval, vipRange); err != nil {
		f.logger.Error("job register failed", "job", req.Job.ID, "error", err)
		return err
	}
	if req.Eval != nil {
		f.handleEvals(st, []*structs.Evaluation{req.Eval})
	}
	return nil
}

func (f *FSM) applyJobDeregister(buf []byte, index uint64) interface{} {
	var req structs.JobDeregisterRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	st := f.State()
	// The job is named by the request's namespace ("" in entries written
	// before namespaces existed: the default one).
	ns := req.RequestNamespace()
	if req.Purge {
		if err := st.DeleteJob(index, ns, req.JobID, req.Eval); err != nil {
			return err
		}
	} else {
		job, err := st.JobByID(nil, ns, req.JobID)
		if err != nil {
			return err
		}
		if job == nil {
			return fmt.Errorf("job %q in namespace %q: %w", req.JobID, ns, state.ErrNotFound)
		}
		stopped := job.Copy()
		stopped.Stop = true
		if err := st.UpsertJob(index, stopped, req.SubmitTime, req.Eval); err != nil {
			return err
		}
	}
	if req.Eval != nil {
		f.handleEvals(st, []*structs.Evaluation{req.Eval})
	}
	return nil
}

func (f *FSM) applyJobStability(buf []byte, index uint64) interface{} {
	var req structs.JobStabilityRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().UpdateJobStability(index, req.RequestNamespace(), req.JobID, req.JobVersion, req.Stable))
}
