package server

import (
	"errors"
	"fmt"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/structs"
)

// A job's kept versions: going back to one (Revert) and marking one
// stable or not (Stable). The versions themselves are listed by
// Job.Versions.

// Revert registers an earlier version's spec as the job's next version.
func (j *Job) Revert(args *structs.JobRevertRequest, reply *structs.JobRegisterResponse) error {
	if done, err := j.srv.forward("Job.Revert", args, args, reply); done {
		return err
	}
	ns := args.RequestNamespace()
	if _, err := j.srv.authorizeNamespace(args.AuthToken, ns, acl.CapabilitySubmitJob); err != nil {
		return err
	}
	st := j.srv.State()
	current, err := st.JobByID(nil, ns, args.JobID)
	if err != nil {
		return err
	}
	if current == nil {
		return jobNotFound(ns, args.JobID)
	}
	if args.EnforcePriorVersion != nil && current.Version != *args.EnforcePriorVersion {
		return structs.NewError(structs.CodeConflict, fmt.Sprintf("job %q is at version %d, not %d", args.JobID, current.Version, *args.EnforcePriorVersion))
	}
	if args.JobVersion == current.Version {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("job %q is already at version %d", args.JobID, current.Version))
	}
	target, err := st.JobByIDAndVersion(nil, ns, args.JobID, args.JobVersion)
	if err != nil {
		return err
	}
	if target == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("job %q has no kept version %d (see `drover job history`)", args.JobID, args.JobVersion))
	}
	job := target.Copy()
	job.Stop = false
	// The version was admitted when it was registered, but the limits
	// (or the nodes) may have changed since; Register checks again, this
	// says which version was refused.
	job.Canonicalize()
	if err := j.srv.CheckJobLimits(job); err != nil {
		var verr *structs.ValidationError
		if errors.As(err, &verr) {
			// The code leads the message: net/rpc passes errors as
			// strings and the code is how the other end recovers it.
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("cannot revert job %q to version %d: %v", args.JobID, args.JobVersion, err))
		}
		return err
	}
	return j.Register(&structs.JobRegisterRequest{Job: job, WriteRequest: structs.WriteRequest{Namespace: ns, AuthToken: args.AuthToken}}, reply)
}

// Stable marks a job version stable or not.
func (j *Job) Stable(args *structs.JobStabilityRequest, reply *structs.GenericResponse) error {
	if done, err := j.srv.forward("Job.Stable", args, args, reply); done {
		return err
	}
	ns := args.RequestNamespace()
	if _, err := j.srv.authorizeNamespace(args.AuthToken, ns, acl.CapabilitySubmitJob); err != nil {
		return err
	}
	v, err := j.srv.State().JobByIDAndVersion(nil, ns, args.JobID, args.JobVersion)
	if err != nil {
		return err
	}
	if v == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("job %q in namespace %q has no kept version %d", args.JobID, ns, args.JobVersion))
	}
	// The entry names the namespace the FSM marks the version in.
	args.Namespace = ns
	_, index, err := j.srv.raftApply(structs.JobStabilityRequestType, args)
	reply.Index = index
	return err
}
