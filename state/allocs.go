package state

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// UpsertPlanResults commits a plan: placed (new or updated) allocations,
// stopped allocations, and evaluations created with the plan, in one
// transaction.
func (s *StateStore) UpsertPlanResults(index uint64, req *structs.ApplyPlanResultsRequest) error {
	txn := s.db.Txn(true)
	defer txn.Abort()
	jobs := make(map[string]struct{})

	for _, stop := range req.AllocsStopped {
		raw, err := txn.First(TableAllocs, "id", stop.ID)
		if err != nil {
			return fmt.Errorf("alloc lookup: %w", err)
		}
		if raw == nil {
			// Stopping an allocation that no longer exists is a no-op.
			continue
		}
		a := raw.(*structs.Allocation).Copy()
		a.DesiredStatus = stop.DesiredStatus
		a.DesiredDescription = stop.DesiredDescription
		if stop.ClientStatus != "" {
			a.ClientStatus = stop.ClientStatus
		}
		a.ModifyIndex, a.AllocModifyIndex = index, index
		a.ModifyTime = req.UpdatedAt
		if err := txn.Insert(TableAllocs, a); err != nil {
			return fmt.Errorf("stop alloc: %w", err)
		}
		jobs[a.JobID] = struct{}{}
	}

	for _, alloc := range req.AllocsPlaced {
		raw, err := txn.First(TableAllocs, "id", alloc.ID)
		if err != nil {
			return fmt.Errorf("alloc lookup: %w", err)
		}
		a := alloc.Copy()
		if a.Job == nil {
			a.Job = req.Job
		}
		if raw != nil {
			// An in-place update: the client's view is kept.
			existing := raw.(*structs.Allocation)
			a.CreateIndex = existing.CreateIndex
			a.CreateTime = existing.CreateTime
			a.ClientStatus = existing.ClientStatus
			a.ClientDescription = existing.ClientDescription
			a.TaskStates = existing.TaskStates
		} else {
			a.CreateIndex = index
			a.CreateTime = req.UpdatedAt
			if a.ClientStatus == "" {
				a.ClientStatus = structs.AllocClientStatusPending
			}
		}
		a.ModifyIndex, a.AllocModifyIndex = index, index
		a.ModifyTime = req.UpdatedAt
		if err := txn.Insert(TableAllocs, a); err != nil {
			return fmt.Errorf("insert alloc: %w", err)
		}
		jobs[a.JobID] = struct{}{}
		if a.PreviousAllocation != "" && raw == nil {
			if err := linkNextAllocTxn(txn, index, a.PreviousAllocation, a.ID); err != nil {
				return err
			}
		}
	}
	if err := setIndex(txn, index, TableAllocs); err != nil {
		return err
	}
	if err := upsertEvalsTxn(txn, index, req.Evals); err != nil {
		return err
	}
	for _, e := range req.Evals {
		jobs[e.JobID] = struct{}{}
	}
	if err := refreshJobStatusTxn(txn, index, jobs); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// linkNextAllocTxn records on prev that next replaced it.
func linkNextAllocTxn(txn *memdb.Txn, index uint64, prevID, nextID string) error {
	raw, err := txn.First(TableAllocs, "id", prevID)
	if err != nil {
		return fmt.Errorf("alloc lookup: %w", err)
	}
	if raw == nil {
		return nil
	}
	prev := raw.(*structs.Allocation).Copy()
	prev.NextAllocation = nextID
	prev.ModifyIndex = index
	if err := txn.Insert(TableAllocs, prev); err != nil {
		return fmt.Errorf("link alloc: %w", err)
	}
	return nil
}

// UpdateAllocsFromClient records what clients report: client status,
// description and task states. Unknown allocations are skipped (they may
// have been garbage-collected). evals (created by the leader to
// reschedule failed allocations) are written in the same transaction.
func (s *StateStore) UpdateAllocsFromClient(index uint64, allocs []*structs.Allocation, updatedAt int64, evals []*structs.Evaluation) error {
	txn := s.db.Txn(true)
	defer txn.Abort()
	jobs := make(map[string]struct{})
	for _, update := range allocs {
		raw, err := txn.First(TableAllocs, "id", update.ID)
		if err != nil {
			return fmt.Errorf("alloc lookup: %w", err)
		}
		if raw == nil {
			continue
		}
		a := raw.(*structs.Allocation).Copy()
		// A lost allocation stays lost: the server already replaced it.
		if a.ClientStatus != structs.AllocClientStatusLost || update.ClientStatus == structs.AllocClientStatusComplete {
			a.ClientStatus = update.ClientStatus
		}
		a.ClientDescription = update.ClientDescription
		a.TaskStates = update.TaskStates
		a.ModifyIndex = index
		a.ModifyTime = updatedAt
		if update.FollowupEvalID != "" {
			a.FollowupEvalID = update.FollowupEvalID
		}
		if err := txn.Insert(TableAllocs, a); err != nil {
			return fmt.Errorf("update alloc: %w", err)
		}
		jobs[a.JobID] = struct{}{}
	}
	if err := setIndex(txn, index, TableAllocs); err != nil {
		return err
	}
	if err := upsertEvalsTxn(txn, index, evals); err != nil {
		return err
	}
	if err := refreshJobStatusTxn(txn, index, jobs); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// AllocByID returns the allocation, or nil.
func (s *StateStore) AllocByID(ws memdb.WatchSet, id string) (*structs.Allocation, error) {
	raw, err := first(s.db.Txn(false), ws, TableAllocs, "id", id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.Allocation), nil
}

// AllocsByIDPrefix returns the allocations whose ID starts with prefix.
func (s *StateStore) AllocsByIDPrefix(ws memdb.WatchSet, prefix string) ([]*structs.Allocation, error) {
	return collect[*structs.Allocation](s.db.Txn(false), ws, TableAllocs, "id_prefix", prefix)
}

// AllocsByNode returns every allocation on a node, terminal or not.
func (s *StateStore) AllocsByNode(ws memdb.WatchSet, nodeID string) ([]*structs.Allocation, error) {
	return collect[*structs.Allocation](s.db.Txn(false), ws, TableAllocs, "node", nodeID)
}

// AllocsByJob returns every allocation of a job.
func (s *StateStore) AllocsByJob(ws memdb.WatchSet, jobID string) ([]*structs.Allocation, error) {
	return collect[*structs.Allocation](s.db.Txn(false), ws, TableAllocs, "job", jobID)
}

// AllocsByEval returns the allocations an evaluation placed.
func (s *StateStore) AllocsByEval(ws memdb.WatchSet, evalID string) ([]*structs.Allocation, error) {
	return collect[*structs.Allocation](s.db.Txn(false), ws, TableAllocs, "eval", evalID)
}

// Allocs returns every allocation.
func (s *StateStore) Allocs(ws memdb.WatchSet) ([]*structs.Allocation, error) {
	return collect[*structs.Allocation](s.db.Txn(false), ws, TableAllocs, "id")
}
