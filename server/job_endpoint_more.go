package server

import (
	"errors"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Revert registers an earlier version's spec as the job's next version.
func (j *Job) Revert(args *structs.JobRevertRequest, reply *structs.JobRegisterResponse) error {
	if done, err := j.srv.forward("Job.Revert", args, args, reply); done {
		return err
	}
	st := j.srv.State()
	current, err := st.JobByID(nil, args.JobID)
	if err != nil {
		return err
	}
	if current == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("job %q not found", args.JobID))
	}
	if args.EnforcePriorVersion != nil && current.Version != *args.EnforcePriorVersion {
		return structs.NewError(structs.CodeConflict, fmt.Sprintf("job %q is at version %d, not %d", args.JobID, current.Version, *args.EnforcePriorVersion))
	}
	if args.JobVersion == current.Version {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("job %q is already at version %d", args.JobID, current.Version))
	}
	target, err := st.JobByIDAndVersion(nil, args.JobID, args.JobVersion)
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
	return j.Register(&structs.JobRegisterRequest{Job: job}, reply)
}

// Stable marks a job version stable or not.
func (j *Job) Stable(args *structs.JobStabilityRequest, reply *structs.GenericResponse) error {
	if done, err := j.srv.forward("Job.Stable", args, args, reply); done {
		return err
	}
	v, err := j.srv.State().JobByIDAndVersion(nil, args.JobID, args.JobVersion)
	if err != nil {
		return err
	}
	if v == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("job %q has no kept version %d", args.JobID, args.JobVersion))
	}
	_, index, err := j.srv.raftApply(structs.JobStabilityRequestType, args)
	reply.Index = index
	return err
}

// Deployments lists a job's deployments, newest first.
func (j *Job) Deployments(args *structs.JobSpecificRequest, reply *structs.DeploymentListResponse) error {
	if done, err := j.srv.forward("Job.Deployments", args, args, reply); done {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		deps, err := st.DeploymentsByJobID(ws, args.JobID)
		if err != nil {
			return err
		}
		reply.Deployments = deps
		reply.Index, err = st.Index(state.TableDeployment)
		return err
	})
}

// LatestDeployment returns a job's newest deployment, nil if none.
func (j *Job) LatestDeployment(args *structs.JobSpecificRequest, reply *structs.SingleDeploymentResponse) error {
	if done, err := j.srv.forward("Job.LatestDeployment", args, args, reply); done {
		return err
	}
	return j.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		dep, err := st.LatestDeploymentByJobID(ws, args.JobID)
		if err != nil {
			return err
		}
		reply.Deployment = dep
		reply.Index, err = st.Index(state.TableDeployment)
		return err
	})
}

// UpdateDrain starts or stops a node drain. A drain makes the node
// ineligible at once; the leader's drainer then migrates its
// allocations, respecting each group's migrate max_parallel, and ends
// the drain when the node is empty (or at the deadline).
func (n *Node) UpdateDrain(args *structs.NodeUpdateDrainRequest, reply *structs.GenericResponse) error {
	if done, err := n.srv.forward("Node.UpdateDrain", args, args, reply); done {
		return err
	}
	node, err := n.srv.State().NodeByID(nil, args.NodeID)
	if err != nil {
		return err
	}
	if node == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("node %q not found", args.NodeID))
	}
	now := time.Now()
	req := &structs.NodeUpdateDrainRequest{NodeID: args.NodeID, MarkEligible: args.MarkEligible, UpdatedAt: now.UnixNano()}
	if args.DrainStrategy != nil {
		ds := args.DrainStrategy.Copy()
		ds.StartedAt = now.UnixNano()
		if ds.Deadline > 0 {
			ds.ForceDeadline = now.Add(ds.Deadline).UnixNano()
		} else if ds.Deadline < 0 {
			// A negative deadline forces every allocation off at once.
			ds.ForceDeadline = now.UnixNano()
		}
		req.DrainStrategy = ds
	}
	_, index, err := n.srv.raftApply(structs.NodeUpdateDrainRequestType, req)
	reply.Index = index
	if err == nil && args.DrainStrategy == nil && args.MarkEligible {
		n.srv.evalSystemJobsForNode(node.ID)
	}
	return err
}

// UpdateEligibility makes a node eligible or ineligible for new
// allocations. Eligible nodes get their system jobs' allocations.
func (n *Node) UpdateEligibility(args *structs.NodeUpdateEligibilityRequest, reply *structs.GenericResponse) error {
	if done, err := n.srv.forward("Node.UpdateEligibility", args, args, reply); done {
		return err
	}
	switch args.Eligibility {
	case structs.NodeSchedulingEligible, structs.NodeSchedulingIneligible:
	default:
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("eligibility %q: use %q or %q", args.Eligibility, structs.NodeSchedulingEligible, structs.NodeSchedulingIneligible))
	}
	node, err := n.srv.State().NodeByID(nil, args.NodeID)
	if err != nil {
		return err
	}
	if node == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("node %q not found", args.NodeID))
	}
	req := &structs.NodeUpdateEligibilityRequest{NodeID: args.NodeID, Eligibility: args.Eligibility, UpdatedAt: time.Now().UnixNano()}
	if args.Eligibility == structs.NodeSchedulingEligible {
		req.Evals = n.srv.systemJobEvals(node)
	}
	_, index, err := n.srv.raftApply(structs.NodeUpdateEligibilityRequestType, req)
	reply.Index = index
	return err
}

// systemJobEvals returns an evaluation per system job that may run on
// the node, so a node that becomes ready or eligible gets them.
func (s *Server) systemJobEvals(node *structs.Node) []*structs.Evaluation {
	jobs, err := s.State().Jobs(nil)
	if err != nil {
		return nil
	}
	now := time.Now().UnixNano()
	var out []*structs.Evaluation
	for _, j := range jobs {
		if j.Type != structs.JobTypeSystem || j.Stop {
			continue
		}
		inDC := false
		for _, dc := range j.Datacenters {
			inDC = inDC || dc == node.Datacenter || dc == "*"
		}
		if !inDC {
			continue
		}
		e := s.newJobEval(j, j.ID, structs.EvalTriggerNodeUpdate, node.ID, now)
		out = append(out, e)
	}
	return out
}

// evalSystemJobsForNode writes evaluations for the system jobs of a
// node.
func (s *Server) evalSystemJobsForNode(nodeID string) {
	node, err := s.State().NodeByID(nil, nodeID)
	if err != nil || node == nil {
		return
	}
	evals := s.systemJobEvals(node)
	if len(evals) == 0 {
		return
	}
	if _, _, err := s.raftApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: evals, UpdatedAt: time.Now().UnixNano()}); err != nil {
		s.logger.Warn("failed to create system job evaluations", "node_id", nodeID, "error", err)
	}
}

// SchedulerGetConfiguration returns the scheduler configuration.
func (o *Operator) SchedulerGetConfiguration(args *structs.GenericRequest, reply *structs.SchedulerConfigResponse) error {
	if done, err := o.srv.forward("Operator.SchedulerGetConfiguration", args, args, reply); done {
		return err
	}
	return o.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		idx, cfg, err := st.SchedulerConfig()
		if err != nil {
			return err
		}
		reply.Config = cfg
		reply.Index = idx
		return nil
	})
}

// SchedulerSetConfiguration replaces the scheduler configuration.
func (o *Operator) SchedulerSetConfiguration(args *structs.SchedulerSetConfigRequest, reply *structs.GenericResponse) error {
	if done, err := o.srv.forward("Operator.SchedulerSetConfiguration", args, args, reply); done {
		return err
	}
	_, index, err := o.srv.raftApply(structs.SchedulerConfigRequestType, args)
	reply.Index = index
	return err
}
