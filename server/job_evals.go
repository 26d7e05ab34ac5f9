package server

import (
	"sort"
	"time"

	"github.com/droverhq/drover/structs"
)

// The evaluations the server creates for jobs outside Job.Register:
// when a node becomes ready or eligible (its system jobs), when it goes
// down (every job with allocations on it), and for the drainer and
// deployments.

// evalsForNodeAllocs returns one evaluation per job with live
// allocations on the node.
func (s *Server) evalsForNodeAllocs(nodeID, trigger string) ([]*structs.Evaluation, error) {
	st := s.State()
	allocs, err := st.AllocsByNode(nil, nodeID)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixNano()
	seen := make(map[structs.NamespacedID]bool)
	var evals []*structs.Evaluation
	for _, a := range allocs {
		if a.TerminalStatus() || seen[a.JobKey()] {
			continue
		}
		seen[a.JobKey()] = true
		evals = append(evals, s.newJobEval(a.Job, a.JobKey(), trigger, nodeID, now))
	}
	sort.Slice(evals, func(i, j int) bool { return evals[i].JobKey().Less(evals[j].JobKey()) })
	return evals, nil
}

// newJobEval returns a pending evaluation for job key (namespace and
// ID); job may be nil (the allocation's job pointer), then defaults are
// used.
func (s *Server) newJobEval(job *structs.Job, key structs.NamespacedID, trigger, nodeID string, now int64) *structs.Evaluation {
	e := &structs.Evaluation{
		ID:          structs.GenerateUUID(),
		Priority:    structs.DefaultJobPriority,
		Type:        structs.JobTypeService,
		TriggeredBy: trigger,
		JobID:       key.ID,
		Namespace:   key.Namespace,
		NodeID:      nodeID,
		Status:      structs.EvalStatusPending,
		CreateTime:  now,
		ModifyTime:  now,
	}
	if current, _ := s.State().JobByID(nil, key.Namespace, key.ID); current != nil {
		job = current
	}
	if job != nil {
		e.Priority, e.Type = job.Priority, job.Type
	}
	return e
}

// systemJobEvals returns an evaluation per system job, of every
// namespace, that may run on the node, so a node that becomes ready or
// eligible gets them.
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
		e := s.newJobEval(j, j.Key(), structs.EvalTriggerNodeUpdate, node.ID, now)
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
