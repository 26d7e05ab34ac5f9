package server

import (
	"fmt"
	"time"

	"github.com/droverhq/drover/structs"
)

// An operator's say over a node: draining it and making it eligible or
// not. The leader's drainer (server/drainer) moves the allocations of a
// draining node.

// UpdateDrain starts or stops a node drain. A drain makes the node
// ineligible at once; the leader's drainer then migrates its
// allocations, respecting each group's migrate max_parallel, and ends
// the drain when the node is empty (or at the deadline).
func (n *Node) UpdateDrain(args *structs.NodeUpdateDrainRequest, reply *structs.GenericResponse) error {
	if done, err := n.srv.forward("Node.UpdateDrain", args, args, reply); done {
		return err
	}
	if err := n.srv.authorizeNode(args.AuthToken, true); err != nil {
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
	if err := n.srv.authorizeNode(args.AuthToken, true); err != nil {
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
