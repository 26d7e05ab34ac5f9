package server

import (
	"sort"
	"time"

	"github.com/droverhq/drover/structs"
)

// drainInterval is how often the leader advances drains.
const drainInterval = 500 * time.Millisecond

// drainNodes advances every node drain on the leader. A draining node is
// already ineligible; here its allocations are marked to migrate, a few
// at a time: per group, at most the group's migrate max_parallel are in
// flight (marked and not yet stopped, or replaced by an allocation that
// does not run yet). System allocations go last, unless the drain ignores
// them. At the deadline everything left is marked at once. A node with
// nothing left to move ends its drain and stays ineligible.
func (s *Server) drainNodes(stopCh <-chan struct{}) {
	ticker := time.NewTicker(drainInterval)
	defer ticker.Stop()
	for {
		select {
		case <-stopCh:
			return
		case <-ticker.C:
		}
		nodes, err := s.State().Nodes(nil)
		if err != nil {
			continue
		}
		for _, n := range nodes {
			if n.DrainStrategy == nil {
				continue
			}
			if err := s.drainNode(n); err != nil {
				s.logger.Warn("drain step failed", "node_id", n.ID, "error", err)
			}
		}
	}
}

type groupKey struct{ job, group string }

func (s *Server) drainNode(n *structs.Node) error {
	st := s.State()
	allocs, err := st.AllocsByNode(nil, n.ID)
	if err != nil {
		return err
	}
	ds := n.DrainStrategy
	now := time.Now()
	force := ds.ForceDeadline > 0 && now.UnixNano() >= ds.ForceDeadline

	var other, system []*structs.Allocation
	inFlight := map[groupKey]int{}
	for _, a := range allocs {
		key := groupKey{a.JobID, a.TaskGroup}
		if a.DesiredTransition.Migrate {
			if !a.TerminalStatus() {
				inFlight[key]++
			} else if a.NextAllocation != "" {
				if next, _ := st.AllocByID(nil, a.NextAllocation); next != nil && next.ClientStatus == structs.AllocClientStatusPending {
					inFlight[key]++
				}
			}
			continue
		}
		if a.TerminalStatus() {
			continue
		}
		if a.Job != nil && a.Job.Type == structs.JobTypeSystem {
			system = append(system, a)
		} else {
			other = append(other, a)
		}
	}

	var mark []*structs.Allocation
	if force {
		mark = append(mark, other...)
		if !ds.IgnoreSystemJobs {
			mark = append(mark, system...)
		}
	} else {
		sort.Slice(other, func(i, j int) bool { return other[i].Name < other[j].Name })
		for _, a := range other {
			key := groupKey{a.JobID, a.TaskGroup}
			limit := 1
			if a.Job != nil {
				if tg := a.Job.LookupTaskGroup(a.TaskGroup); tg != nil {
					limit = tg.MigrateMaxParallel()
				}
			}
			if inFlight[key] < limit {
				inFlight[key]++
				mark = append(mark, a)
			}
		}
		if len(other) == 0 && len(inFlight) == 0 && !ds.IgnoreSystemJobs {
			mark = append(mark, system...)
		}
	}

	if len(mark) > 0 {
		req := &structs.AllocUpdateDesiredTransitionRequest{Allocs: make(map[string]*structs.DesiredTransition)}
		jobs := map[string]bool{}
		for _, a := range mark {
			req.Allocs[a.ID] = &structs.DesiredTransition{Migrate: true}
			if !jobs[a.JobID] {
				jobs[a.JobID] = true
				req.Evals = append(req.Evals, s.newJobEval(a.Job, a.JobID, structs.EvalTriggerNodeDrain, n.ID, now.UnixNano()))
			}
		}
		s.logger.Info("draining: migrating allocations", "node_id", n.ID, "count", len(mark), "forced", force)
		_, _, err := s.raftApply(structs.AllocUpdateDesiredTransitionRequestType, req)
		return err
	}

	remaining := len(other) + len(inFlight)
	if !ds.IgnoreSystemJobs {
		remaining += len(system)
	}
	if remaining > 0 {
		return nil
	}
	s.logger.Info("drain complete; the node stays ineligible", "node_id", n.ID)
	_, _, err = s.raftApply(structs.NodeUpdateDrainRequestType, &structs.NodeUpdateDrainRequest{NodeID: n.ID, UpdatedAt: now.UnixNano()})
	return err
}
