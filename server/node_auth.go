package server

import (
	"crypto/subtle"
	"fmt"

	"github.com/droverhq/drover/structs"
)

// Node identity.
//
// A client node proves who it is with the secret ID it registered with
// (a random UUID kept in its data dir). Every client RPC that writes or
// reads the node's own work carries it, and may only touch that node and
// the allocations placed on it: a node cannot heartbeat for another,
// mark another node's allocation failed to pull its work elsewhere, or
// read another node's job specs (Kubernetes' NodeRestriction). The
// secret is never returned by a read and never written to the log
// beyond the node's own row.

// maxClientUpdateDescription bounds a client-reported description.
const maxClientUpdateDescription = 1024

// maxClientTaskStates bounds the task states one allocation update
// carries; an allocation has at most as many tasks as its group.
const maxClientTaskStates = 256

// maxClientTaskEvents bounds the events one task state carries.
const maxClientTaskEvents = 64

// Bounds on the service check results one allocation update carries:
// at most every check of every service of a group, each with a short
// output (clients cut it to 512 bytes).
const (
	maxClientChecks      = structs.MaxServicesPerGroup * structs.MaxChecksPerService
	maxClientCheckKey    = 256
	maxClientCheckOutput = 1024
)

// authNode returns the registered node whose secret is secretID, or a
// coded error: not found (unknown node) or permission denied (wrong or
// missing secret). The comparison takes constant time.
func (s *Server) authNode(nodeID, secretID string) (*structs.Node, error) {
	if nodeID == "" {
		return nil, structs.NewError(structs.CodeInvalid, "node ID must be set")
	}
	node, err := s.State().NodeByID(nil, nodeID)
	if err != nil {
		return nil, err
	}
	if node == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("node %s is not registered", nodeID))
	}
	if secretID == "" || subtle.ConstantTimeCompare([]byte(node.SecretID), []byte(secretID)) != 1 {
		return nil, structs.NewError(structs.CodePermission, fmt.Sprintf("node %s: secret ID does not match", nodeID))
	}
	return node, nil
}

// withoutSecret returns node as a reader may see it: a copy without the
// secret ID (the stored node is shared and must not change).
func withoutSecret(node *structs.Node) *structs.Node {
	if node == nil || node.SecretID == "" {
		return node
	}
	c := new(structs.Node)
	*c = *node
	c.SecretID = ""
	return c
}

// clientAllocUpdate keeps of a client's allocation report only what a
// client may say about its own allocation: status, description, task
// states and deployment health. Everything else (desired status,
// follow-up evaluations, resources, the job) is the servers' to set.
func clientAllocUpdate(u *structs.Allocation) (*structs.Allocation, error) {
	switch u.ClientStatus {
	case structs.AllocClientStatusPending, structs.AllocClientStatusRunning,
		structs.AllocClientStatusComplete, structs.AllocClientStatusFailed,
		// A client may echo the lost status the servers gave it; the
		// state store keeps a lost allocation lost.
		structs.AllocClientStatusLost:
	default:
		return nil, structs.NewError(structs.CodeInvalid, fmt.Sprintf("allocation %s: client status %q is not an allocation status (pending, running, complete, failed)", u.ID, u.ClientStatus))
	}
	if len(u.ClientDescription) > maxClientUpdateDescription {
		return nil, structs.NewError(structs.CodeInvalid, fmt.Sprintf("allocation %s: client description is %d bytes, over %d", u.ID, len(u.ClientDescription), maxClientUpdateDescription))
	}
	if len(u.TaskStates) > maxClientTaskStates {
		return nil, structs.NewError(structs.CodeInvalid, fmt.Sprintf("allocation %s: %d task states, over %d", u.ID, len(u.TaskStates), maxClientTaskStates))
	}
	for name, ts := range u.TaskStates {
		if ts != nil && len(ts.Events) > maxClientTaskEvents {
			return nil, structs.NewError(structs.CodeInvalid, fmt.Sprintf("allocation %s: task %q carries %d events, over %d", u.ID, name, len(ts.Events), maxClientTaskEvents))
		}
	}
	if len(u.Checks) > maxClientChecks {
		return nil, structs.NewError(structs.CodeInvalid, fmt.Sprintf("allocation %s: %d check results, over %d", u.ID, len(u.Checks), maxClientChecks))
	}
	for key, c := range u.Checks {
		if c == nil {
			continue
		}
		switch c.Status {
		case structs.ServiceStatusPassing, structs.ServiceStatusWarning, structs.ServiceStatusCritical:
		default:
			return nil, structs.NewError(structs.CodeInvalid, fmt.Sprintf("allocation %s: check %q status %q is not passing, warning or critical", u.ID, key, c.Status))
		}
		if len(key) > maxClientCheckKey || len(c.Output) > maxClientCheckOutput {
			return nil, structs.NewError(structs.CodeInvalid, fmt.Sprintf("allocation %s: check %.64q: key over %d bytes or output over %d bytes", u.ID, key, maxClientCheckKey, maxClientCheckOutput))
		}
	}
	out := &structs.Allocation{
		ID:                u.ID,
		NodeID:            u.NodeID,
		ClientStatus:      u.ClientStatus,
		ClientDescription: u.ClientDescription,
		TaskStates:        u.TaskStates,
		Checks:            u.Checks,
	}
	if ds := u.DeploymentStatus; ds != nil {
		out.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: ds.Healthy, Timestamp: ds.Timestamp}
	}
	return out, nil
}
