package server

import (
	"fmt"
	"sort"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Node is the RPC endpoint for client nodes: registration, heartbeats,
// allocation watching and allocation status updates.
type Node struct {
	srv *Server
}

// Register registers a node or updates its fingerprint, and starts its
// heartbeat timer.
func (n *Node) Register(args *structs.NodeRegisterRequest, reply *structs.NodeUpdateResponse) error {
	if done, err := n.srv.forward("Node.Register", args, args, reply); done {
		return err
	}
	node := args.Node
	switch {
	case node == nil:
		return structs.NewError(structs.CodeInvalid, "missing node")
	case node.ID == "":
		return structs.NewError(structs.CodeInvalid, "node ID must be set")
	case node.SecretID == "":
		return structs.NewError(structs.CodeInvalid, "node secret ID must be set")
	case node.Name == "":
		return structs.NewError(structs.CodeInvalid, "node name must be set")
	case node.NodeResources == nil:
		return structs.NewError(structs.CodeInvalid, "node resources must be fingerprinted")
	}
	existing, err := n.srv.State().NodeByID(nil, node.ID)
	if err != nil {
		return err
	}
	if existing != nil {
		if _, err := n.srv.authNode(node.ID, node.SecretID); err != nil {
			return structs.NewError(structs.CodePermission, fmt.Sprintf("node %s is registered with a different secret ID", node.ID))
		}
	}
	node = node.Copy()
	// Drain and eligibility are the operator's to set, not the node's: a
	// re-registering node keeps what the operator chose, and a new node
	// starts eligible and not draining.
	node.DrainStrategy, node.SchedulingEligibility = nil, ""
	if existing != nil {
		node.DrainStrategy = existing.DrainStrategy
		node.SchedulingEligibility = existing.SchedulingEligibility
	}
	if node.Datacenter == "" {
		node.Datacenter = structs.DefaultDatacenter
	}
	if node.Status == "" {
		node.Status = structs.NodeStatusReady
	}
	node.CreateIndex, node.ModifyIndex = 0, 0

	req := &structs.NodeRegisterRequest{Node: node, UpdatedAt: time.Now().UnixNano()}
	// A new node, or one coming back, gets its system jobs.
	if node.Status == structs.NodeStatusReady && (existing == nil || existing.Status != structs.NodeStatusReady) {
		req.Evals = n.srv.systemJobEvals(node)
	}
	_, index, err := n.srv.raftApply(structs.NodeRegisterRequestType, req)
	if err != nil {
		return err
	}
	if node.TerminalStatus() {
		n.srv.heartbeats.Clear(node.ID)
	} else {
		reply.HeartbeatTTL = n.srv.heartbeats.Reset(node.ID)
	}
	n.srv.fillServerInfo(reply)
	reply.Index = index
	return nil
}

// UpdateStatus is the heartbeat: it resets the node's TTL and, only when
// the status changes, writes the new status through Raft.
func (n *Node) UpdateStatus(args *structs.NodeUpdateStatusRequest, reply *structs.NodeUpdateResponse) error {
	if done, err := n.srv.forward("Node.UpdateStatus", args, args, reply); done {
		return err
	}
	switch args.Status {
	case structs.NodeStatusInit, structs.NodeStatusReady, structs.NodeStatusDown:
	default:
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("unknown node status %q", args.Status))
	}
	node, err := n.srv.authNode(args.NodeID, args.SecretID)
	if err != nil {
		return err
	}
	n.srv.metrics.heartbeats.Inc()
	if node.Status != args.Status {
		if err := n.srv.updateNodeStatus(args.NodeID, args.Status); err != nil {
			return err
		}
	}
	if args.Status == structs.NodeStatusDown {
		n.srv.heartbeats.Clear(args.NodeID)
	} else {
		reply.HeartbeatTTL = n.srv.heartbeats.Reset(args.NodeID)
	}
	n.srv.fillServerInfo(reply)
	reply.Index, _ = n.srv.State().Index(state.TableNodes)
	return nil
}

// updateNodeStatus writes a node status change. A node going down gets
// an evaluation for every job with live allocations on it, so they are
// replaced elsewhere.
func (s *Server) updateNodeStatus(nodeID, status string) error {
	req := &structs.NodeUpdateStatusRequest{NodeID: nodeID, Status: status, UpdatedAt: time.Now().UnixNano()}
	if status == structs.NodeStatusReady {
		if node, _ := s.State().NodeByID(nil, nodeID); node != nil {
			req.Evals = s.systemJobEvals(node)
		}
	}
	if status == structs.NodeStatusDown {
		evals, err := s.evalsForNodeAllocs(nodeID, structs.EvalTriggerNodeDown)
		if err != nil {
			return err
		}
		req.Evals = evals
	}
	_, _, err := s.raftApply(structs.NodeUpdateStatusRequestType, req)
	return err
}

// fillServerInfo tells a client where the leader and servers are.
func (s *Server) fillServerInfo(reply *structs.NodeUpdateResponse) {
	reply.LeaderRPCAddr = s.LeaderAddr()
	reply.Servers = s.serverAddrs()
}

// serverAddrs lists the RPC addresses of the Raft voters.
func (s *Server) serverAddrs() []string {
	future := s.raft.GetConfiguration()
	if future.Error() != nil {
		return nil
	}
	var out []string
	for _, srv := range future.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			out = append(out, string(srv.Address))
		}
	}
	sort.Strings(out)
	return out
}

// GetNode reads one node.
func (n *Node) GetNode(args *structs.NodeSpecificRequest, reply *structs.SingleNodeResponse) error {
	if done, err := n.srv.forward("Node.GetNode", args, args, reply); done {
		return err
	}
	if err := n.srv.authorizeNode(args.AuthToken, false); err != nil {
		return err
	}
	return n.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		node, err := st.NodeByID(ws, args.NodeID)
		if err != nil {
			return err
		}
		// The node's secret is never returned by a read.
		reply.Node = withoutSecret(node)
		if node != nil {
			reply.Index = node.ModifyIndex
			return nil
		}
		reply.Index, err = st.Index(state.TableNodes)
		return err
	})
}

// List lists nodes, optionally by ID prefix.
func (n *Node) List(args *structs.NodeListRequest, reply *structs.NodeListResponse) error {
	if done, err := n.srv.forward("Node.List", args, args, reply); done {
		return err
	}
	if err := n.srv.authorizeNode(args.AuthToken, false); err != nil {
		return err
	}
	return n.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		nodes, err := st.NodesByIDPrefix(ws, args.Prefix)
		if err != nil {
			return err
		}
		reply.Nodes = make([]*structs.NodeListStub, 0, len(nodes))
		for _, node := range nodes {
			reply.Nodes = append(reply.Nodes, node.Stub())
		}
		reply.Index, err = st.Index(state.TableNodes)
		return err
	})
}

// GetAllocs lists a node's allocations.
func (n *Node) GetAllocs(args *structs.NodeSpecificRequest, reply *structs.NodeAllocsResponse) error {
	if done, err := n.srv.forward("Node.GetAllocs", args, args, reply); done {
		return err
	}
	authz, err := n.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	if err := authz.NodeRead(); err != nil {
		return err
	}
	return n.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		// Woken only by changes to this node's allocations, not by
		// memdb's watch on the index, which fires for neighbours too.
		ws.Add(st.AllocsChangedCh(args.NodeID))
		allocs, err := st.AllocsByNode(nil, args.NodeID)
		if err != nil {
			return err
		}
		reply.Allocs = make([]*structs.AllocListStub, 0, len(allocs))
		for _, a := range allocs {
			// node:read shows the node, not other namespaces' jobs.
			if authz.CanNamespace(a.Namespace, acl.CapabilityReadJob) {
				reply.Allocs = append(reply.Allocs, a.Stub())
			}
		}
		reply.Index, err = st.Index(state.TableAllocs)
		return err
	})
}

// GetClientAllocs is the client's blocking watch: it maps each of the
// node's allocation IDs to its AllocModifyIndex, and returns when the
// server changed any of them (placed, updated or stopped one).
func (n *Node) GetClientAllocs(args *structs.NodeSpecificRequest, reply *structs.NodeClientAllocsResponse) error {
	if done, err := n.srv.forward("Node.GetClientAllocs", args, args, reply); done {
		return err
	}
	if _, err := n.srv.authNode(args.NodeID, args.SecretID); err != nil {
		return err
	}
	return n.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		// Woken only by changes to this node's allocations, not by
		// memdb's watch on the index, which fires for neighbours too.
		ws.Add(st.AllocsChangedCh(args.NodeID))
		allocs, err := st.AllocsByNode(nil, args.NodeID)
		if err != nil {
			return err
		}
		reply.Allocs = make(map[string]uint64, len(allocs))
		var newest uint64
		for _, a := range allocs {
			reply.Allocs[a.ID] = a.AllocModifyIndex
			// The server's changes only (placement, update, stop), not
			// the client's own status reports: those would wake the
			// watch just to tell the client what it said.
			newest = max(newest, a.AllocModifyIndex)
		}
		// Never older than the last deletion of allocations by the
		// garbage collector: a client holding an allocation this answer
		// lacks then knows it was deleted, not that this server has yet
		// to apply it (client/protocol.go's pullAndApply).
		gcIndex, err := st.AllocsGCIndex()
		if err != nil {
			return err
		}
		reply.Index = max(newest, gcIndex)
		return nil
	})
}

// UpdateAlloc records allocation status reported by a client. A
// transition to failed or complete of an allocation the scheduler still
// wants running creates an evaluation for its job, so the scheduler can
// replace or reschedule it.
func (n *Node) UpdateAlloc(args *structs.AllocUpdateRequest, reply *structs.GenericResponse) error {
	if done, err := n.srv.forward("Node.UpdateAlloc", args, args, reply); done {
		return err
	}
	if len(args.Alloc) == 0 {
		return structs.NewError(structs.CodeInvalid, "no allocations to update")
	}
	if _, err := n.srv.authNode(args.NodeID, args.SecretID); err != nil {
		return err
	}
	st := n.srv.State()
	// Check the whole batch before writing any of it: a node may report
	// only on allocations placed on it, and only what a client may say.
	updates := make([]*structs.Allocation, 0, len(args.Alloc))
	// stored[i] is the stored version of updates[i] (nil: none), read
	// once for both loops.
	stored := make([]*structs.Allocation, 0, len(args.Alloc))
	for _, u := range args.Alloc {
		if u == nil {
			return structs.NewError(structs.CodeInvalid, "allocation update is empty")
		}
		existing, err := st.AllocByID(nil, u.ID)
		if err != nil {
			return err
		}
		if existing != nil && existing.NodeID != args.NodeID {
			return structs.NewError(structs.CodePermission, fmt.Sprintf("node %s may not update allocation %s: it is placed on node %s", args.NodeID, u.ID, existing.NodeID))
		}
		clean, err := clientAllocUpdate(u)
		if err != nil {
			return err
		}
		clean.NodeID = args.NodeID
		updates = append(updates, clean)
		stored = append(stored, existing)
	}
	args.Alloc = updates
	now := time.Now().UnixNano()
	seen := make(map[structs.NamespacedID]bool)
	// cause marks the allocations whose reports call for an evaluation.
	cause := make(map[string]bool)
	var evals []*structs.Evaluation
	for i, update := range args.Alloc {
		existing := stored[i]
		if existing == nil {
			continue
		}
		becameTerminal := update.ClientTerminalStatus() && existing.ClientStatus != update.ClientStatus
		failed := becameTerminal && existing.DesiredStatus == structs.AllocDesiredStatusRun
		// A deployment allocation's health decided: the rollout may go on.
		healthDecided := existing.DeploymentID != "" && update.DeploymentStatus != nil && update.DeploymentStatus.Healthy != nil &&
			(existing.DeploymentStatus == nil || existing.DeploymentStatus.Healthy == nil || *existing.DeploymentStatus.Healthy != *update.DeploymentStatus.Healthy)
		if !failed && !healthDecided {
			continue
		}
		cause[update.ID] = true
		if seen[existing.JobKey()] {
			continue
		}
		seen[existing.JobKey()] = true
		if failed {
			evals = append(evals, n.srv.newJobEval(existing.Job, existing.JobKey(), structs.EvalTriggerRetryFailed, "", now))
			continue
		}
		e := n.srv.newJobEval(existing.Job, existing.JobKey(), structs.EvalTriggerDeploymentWatcher, "", now)
		e.DeploymentID = existing.DeploymentID
		evals = append(evals, e)
	}
	n.srv.metrics.allocUpdates.Add(float64(len(args.Alloc)))
	n.srv.metrics.allocUpdateBatch.Inc()

	// The reports go to the batcher, which coalesces the calls of a
	// short window into Raft entries. The reports that caused an
	// evaluation go in one entry with the evaluations, so an evaluation
	// never runs before what caused it is in the state, nor is lost if
	// a later entry fails and the client retries (the retry finds the
	// status already changed and creates none). Only the last report of
	// each allocation in a call is kept: reordering must not put an
	// older report after a newer one.
	last := make(map[string]int, len(args.Alloc))
	for i, a := range args.Alloc {
		last[a.ID] = i
	}
	var caused, rest []*structs.Allocation
	for i, a := range args.Alloc {
		if last[a.ID] != i {
			continue
		}
		if cause[a.ID] {
			caused = append(caused, a)
		} else {
			rest = append(rest, a)
		}
	}
	index, err := n.srv.allocUpdates.submit(caused, evals, rest)
	if err != nil {
		return err
	}
	if index == 0 {
		// Every report was unchanged: nothing was written.
		index, _ = st.LatestIndex()
	}
	reply.Index = index
	return nil
}

// maxAllocUpdatesPerEntry bounds the client updates one Raft entry
// carries. The state store applies an entry in one transaction, and a
// transaction that changes more than a few thousand index nodes
// (go-immutable-radix tracks 8,192 watch channels) falls back to
// comparing the whole allocation table before and after to find whom to
// wake: at 100,000 allocations that cost more than the updates.
const maxAllocUpdatesPerEntry = 512
