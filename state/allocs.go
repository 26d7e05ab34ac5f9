package state

import (
	"fmt"
	"sort"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// UpsertPlanResults commits a plan: placed (new or updated) allocations,
// stopped allocations, and evaluations created with the plan, in one
// transaction.
func (s *StateStore) UpsertPlanResults(index uint64, req *structs.ApplyPlanResultsRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	touched := make(map[string]struct{})
	if err := upsertPlanResultsTxn(txn, index, req, touched); err != nil {
		return err
	}
	s.commit(txn)
	s.allocWatch.notify(touched)
	return nil
}

// UpsertPlanResultsBatch commits several plans, in order, in one
// transaction at one index: if any fails, none is applied.
func (s *StateStore) UpsertPlanResultsBatch(index uint64, reqs []*structs.ApplyPlanResultsRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	touched := make(map[string]struct{})
	for i, req := range reqs {
		if err := upsertPlanResultsTxn(txn, index, req, touched); err != nil {
			return fmt.Errorf("plan %d of %d (eval %s): %w", i+1, len(reqs), req.EvalID, err)
		}
	}
	s.commit(txn)
	s.allocWatch.notify(touched)
	return nil
}

// upsertPlanResultsTxn applies one plan in txn and adds the nodes whose
// allocations it changed to touched.
func upsertPlanResultsTxn(txn *memdb.Txn, index uint64, req *structs.ApplyPlanResultsRequest, touched map[string]struct{}) error {
	jobs := make(map[structs.NamespacedID]struct{})
	var sets allocSetWriter

	// The deployment first: placements below count against it.
	if req.Deployment != nil {
		if err := upsertDeploymentTxn(txn, index, req.Deployment); err != nil {
			return err
		}
	}
	for _, u := range req.DeploymentUpdates {
		if err := updateDeploymentStatusTxn(txn, index, u, req.UpdatedAt, ""); err != nil {
			return err
		}
	}

	stops := append(append([]*structs.Allocation(nil), req.AllocsStopped...), req.AllocsPreempted...)
	for _, stop := range stops {
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
		if stop.PreemptedByAllocation != "" {
			a.PreemptedByAllocation = stop.PreemptedByAllocation
		}
		a.ModifyIndex, a.AllocModifyIndex = index, index
		a.ModifyTime = req.UpdatedAt
		if err := insertAllocTxn(txn, &sets, a); err != nil {
			return fmt.Errorf("stop alloc: %w", err)
		}
		jobs[a.JobKey()] = struct{}{}
		touched[a.NodeID] = struct{}{}
	}

	for _, alloc := range req.AllocsPlaced {
		raw, err := txn.First(TableAllocs, "id", alloc.ID)
		if err != nil {
			return fmt.Errorf("alloc lookup: %w", err)
		}
		// A shallow copy: the request's resources, metrics and task
		// states are kept as they are (the FSM decoded them for this
		// transaction alone, and stored objects are never modified).
		a := new(structs.Allocation)
		*a = *alloc
		if a.Job == nil {
			a.Job = req.Job
		}
		if a.Namespace == "" {
			// Placed before namespaces existed (an old log entry), or
			// by a scheduler that left it to the job: the job's.
			if a.Job != nil {
				a.Namespace = a.Job.Namespace
			}
			a.Namespace = structs.NamespaceOrDefault(a.Namespace)
		}
		if raw != nil {
			// An in-place update: the client's view is kept.
			existing := raw.(*structs.Allocation)
			a.CreateIndex = existing.CreateIndex
			a.CreateTime = existing.CreateTime
			a.ClientStatus = existing.ClientStatus
			a.ClientDescription = existing.ClientDescription
			a.TaskStates = existing.TaskStates
			a.Checks = existing.Checks
			if a.DeploymentStatus == nil {
				a.DeploymentStatus = existing.DeploymentStatus
			}
			if a.DeploymentID != "" && a.DeploymentID != existing.DeploymentID {
				// Moved into a new deployment by an in-place update: it
				// counts as placed there, and as healthy if marked so.
				if err := countPlacementTxn(txn, index, a, req.UpdatedAt); err != nil {
					return err
				}
				fresh := existing.Copy()
				fresh.DeploymentStatus = nil
				if err := countHealthTxn(txn, index, fresh, a, req.UpdatedAt); err != nil {
					return err
				}
			}
		} else {
			a.CreateIndex = index
			a.CreateTime = req.UpdatedAt
			if a.ClientStatus == "" {
				a.ClientStatus = structs.AllocClientStatusPending
			}
			if err := countPlacementTxn(txn, index, a, req.UpdatedAt); err != nil {
				return err
			}
		}
		a.ModifyIndex, a.AllocModifyIndex = index, index
		a.ModifyTime = req.UpdatedAt
		if err := insertAllocTxn(txn, &sets, a); err != nil {
			return fmt.Errorf("insert alloc: %w", err)
		}
		jobs[a.JobKey()] = struct{}{}
		touched[a.NodeID] = struct{}{}
		if a.PreviousAllocation != "" && raw == nil {
			if err := linkNextAllocTxn(txn, &sets, index, a.PreviousAllocation, a.ID); err != nil {
				return err
			}
		}
	}
	if err := finishAllocsTxn(txn, &sets, index); err != nil {
		return err
	}
	if err := upsertEvalsTxn(txn, index, req.Evals); err != nil {
		return err
	}
	for _, e := range req.Evals {
		jobs[e.JobKey()] = struct{}{}
	}
	return refreshJobStatusTxn(txn, index, jobs)
}

// linkNextAllocTxn records on prev that next replaced it.
func linkNextAllocTxn(txn *memdb.Txn, sets *allocSetWriter, index uint64, prevID, nextID string) error {
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
	if err := insertAllocTxn(txn, sets, prev); err != nil {
		return fmt.Errorf("link alloc: %w", err)
	}
	return nil
}

// UpdateAllocsFromClient records what clients report: client status,
// description, task states and service check results. Unknown allocations are skipped (they may
// have been garbage-collected). evals (created by the leader to
// reschedule failed allocations) are written in the same transaction.
func (s *StateStore) UpdateAllocsFromClient(index uint64, allocs []*structs.Allocation, updatedAt int64, evals []*structs.Evaluation) error {
	txn := s.writeTxn()
	defer txn.Abort()
	jobs := make(map[structs.NamespacedID]struct{})
	var sets allocSetWriter
	for _, update := range allocs {
		raw, err := txn.First(TableAllocs, "id", update.ID)
		if err != nil {
			return fmt.Errorf("alloc lookup: %w", err)
		}
		if raw == nil {
			continue
		}
		old := raw.(*structs.Allocation)
		// A shallow copy: what the client does not report (resources,
		// metrics, the job) is shared with the stored version, which
		// nothing modifies; what it reports is replaced whole.
		a := new(structs.Allocation)
		*a = *old
		a.ClientStatus = structs.ClientStatusAfterReport(old.ClientStatus, update.ClientStatus)
		if update.ClientDescription != old.ClientDescription {
			a.ClientDescription = update.ClientDescription
		}
		a.TaskStates = update.TaskStates
		// Checks, like task states, are reported whole (bounded by the
		// FSM's checkAllocClientUpdate).
		a.Checks = update.Checks
		if update.DeploymentStatus != nil && a.DeploymentID != "" {
			a.DeploymentStatus = update.DeploymentStatus.Copy()
			// Whether an allocation is a canary is the scheduler's to
			// say; the client reports health only.
			a.DeploymentStatus.Canary = old.DeploymentStatus.IsCanary()
			if err := countHealthTxn(txn, index, old, a, updatedAt); err != nil {
				return err
			}
		}
		a.ModifyIndex = index
		a.ModifyTime = updatedAt
		if update.FollowupEvalID != "" {
			a.FollowupEvalID = update.FollowupEvalID
		}
		if err := insertAllocTxn(txn, &sets, a); err != nil {
			return fmt.Errorf("update alloc: %w", err)
		}
		jobs[a.JobKey()] = struct{}{}
	}
	if err := finishAllocsTxn(txn, &sets, index); err != nil {
		return err
	}
	if err := upsertEvalsTxn(txn, index, evals); err != nil {
		return err
	}
	if err := refreshJobStatusTxn(txn, index, jobs); err != nil {
		return err
	}
	s.commit(txn)
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

// AllocsByIDPrefix returns the allocations of a namespace (of every
// namespace for structs.AllNamespaces) whose ID starts with prefix.
func (s *StateStore) AllocsByIDPrefix(ws memdb.WatchSet, namespace, prefix string) ([]*structs.Allocation, error) {
	all, err := collect[*structs.Allocation](s.db.Txn(false), ws, TableAllocs, "id_prefix", prefix)
	return inNamespace(all, namespace, func(a *structs.Allocation) string { return a.Namespace }), err
}

// inNamespace keeps, in place, the objects of list in namespace (all of
// them for structs.AllNamespaces).
func inNamespace[T any](list []T, namespace string, nsOf func(T) string) []T {
	if namespace == structs.AllNamespaces {
		return list
	}
	namespace = structs.NamespaceOrDefault(namespace)
	out := list[:0]
	for _, x := range list {
		if nsOf(x) == namespace {
			out = append(out, x)
		}
	}
	return out
}

// AllocsByNode returns every allocation on a node, terminal or not.
func (s *StateStore) AllocsByNode(ws memdb.WatchSet, nodeID string) ([]*structs.Allocation, error) {
	return allocsInSetTxn(s.db.Txn(false), ws, tableNodeAllocs, nodeID)
}

// AllocsByJob returns every allocation of job (namespace, jobID).
func (s *StateStore) AllocsByJob(ws memdb.WatchSet, namespace, jobID string) ([]*structs.Allocation, error) {
	return allocsInSetTxn(s.db.Txn(false), ws, tableJobAllocs, jobAllocsKey(namespace, jobID))
}

// AllocsByEval returns the allocations an evaluation placed.
//
// There is no allocs-by-eval index: it cost every server ~0.8 KB of radix
// tree per allocation (and a fourth index insert on every allocation
// write) for a query that only the evaluation API makes. The
// evaluation's job's allocations are filtered instead.
func (s *StateStore) AllocsByEval(ws memdb.WatchSet, evalID string) ([]*structs.Allocation, error) {
	txn := s.db.Txn(false)
	raw, err := txn.First(TableEvals, "id", evalID)
	if err != nil {
		return nil, fmt.Errorf("eval lookup: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	e := raw.(*structs.Evaluation)
	all, err := allocSetTxn(txn, ws, tableJobAllocs, jobAllocsKey(e.Namespace, e.JobID))
	if err != nil {
		return nil, err
	}
	var out []*structs.Allocation
	for _, a := range all {
		if a.EvalID == evalID {
			out = append(out, a)
		}
	}
	return out, nil
}

// Allocs returns every allocation.
func (s *StateStore) Allocs(ws memdb.WatchSet) ([]*structs.Allocation, error) {
	return collect[*structs.Allocation](s.db.Txn(false), ws, TableAllocs, "id")
}

// UpdateAllocsDesiredTransitions marks allocations for migration (drain)
// and writes the evaluations that will move them.
func (s *StateStore) UpdateAllocsDesiredTransitions(index uint64, transitions map[string]*structs.DesiredTransition, evals []*structs.Evaluation) error {
	txn := s.writeTxn()
	defer txn.Abort()
	ids := make([]string, 0, len(transitions))
	for id := range transitions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	touched := make(map[string]struct{})
	var sets allocSetWriter
	for _, id := range ids {
		raw, err := txn.First(TableAllocs, "id", id)
		if err != nil {
			return fmt.Errorf("alloc lookup: %w", err)
		}
		if raw == nil {
			continue
		}
		a := raw.(*structs.Allocation).Copy()
		a.DesiredTransition = *transitions[id]
		a.ModifyIndex = index
		a.AllocModifyIndex = index
		if err := insertAllocTxn(txn, &sets, a); err != nil {
			return fmt.Errorf("update alloc: %w", err)
		}
		touched[a.NodeID] = struct{}{}
	}
	if err := finishAllocsTxn(txn, &sets, index); err != nil {
		return err
	}
	if err := upsertEvalsTxn(txn, index, evals); err != nil {
		return err
	}
	s.commit(txn)
	s.allocWatch.notify(touched)
	return nil
}

// countPlacementTxn counts a new allocation against its deployment.
func countPlacementTxn(txn *memdb.Txn, index uint64, a *structs.Allocation, at int64) error {
	if a.DeploymentID == "" {
		return nil
	}
	d, err := deploymentTxn(txn, a.DeploymentID)
	if err != nil || d == nil {
		return err
	}
	tg := d.TaskGroups[a.TaskGroup]
	if tg == nil {
		return nil
	}
	tg.PlacedAllocs++
	kind := "allocation"
	if a.DeploymentStatus.IsCanary() {
		tg.PlacedCanaries = append(tg.PlacedCanaries, a.ID)
		kind = "canary"
	}
	msg := fmt.Sprintf("placed %s %s (%s): %d/%d placed in group %q", kind, short(a.ID), a.Name, tg.PlacedAllocs, tg.DesiredTotal, a.TaskGroup)
	if a.PreviousAllocation != "" {
		msg += fmt.Sprintf(", replacing %s", short(a.PreviousAllocation))
	}
	d.AddEvent(at, msg)
	return upsertDeploymentTxn(txn, index, d)
}

// countHealthTxn records a change of an allocation's deployment health:
// the deployment's counts move, and a healthy allocation is progress,
// which pushes the progress deadline out.
func countHealthTxn(txn *memdb.Txn, index uint64, old, updated *structs.Allocation, at int64) error {
	if updated.DeploymentID == "" || updated.DeploymentStatus == nil || updated.DeploymentStatus.Healthy == nil {
		return nil
	}
	if old.DeploymentStatus != nil && old.DeploymentStatus.Healthy != nil && *old.DeploymentStatus.Healthy == *updated.DeploymentStatus.Healthy {
		return nil
	}
	d, err := deploymentTxn(txn, updated.DeploymentID)
	if err != nil || d == nil {
		return err
	}
	tg := d.TaskGroups[updated.TaskGroup]
	if tg == nil {
		return nil
	}
	if old.DeploymentStatus.IsHealthy() {
		tg.HealthyAllocs--
	}
	if old.DeploymentStatus.IsUnhealthy() {
		tg.UnhealthyAllocs--
	}
	if *updated.DeploymentStatus.Healthy {
		tg.HealthyAllocs++
		if tg.ProgressDeadline > 0 {
			tg.RequireProgressBy = at + int64(tg.ProgressDeadline)
		}
		d.AddEvent(at, fmt.Sprintf("allocation %s (%s) healthy: %d/%d in group %q", short(updated.ID), updated.Name, tg.HealthyAllocs, tg.DesiredTotal, updated.TaskGroup))
	} else {
		tg.UnhealthyAllocs++
		d.AddEvent(at, fmt.Sprintf("allocation %s (%s) unhealthy in group %q", short(updated.ID), updated.Name, updated.TaskGroup))
	}
	return upsertDeploymentTxn(txn, index, d)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// finishAllocsTxn ends the allocation writes of a transaction: it writes
// the node and job rows of what insertAllocTxn recorded, derives the
// service instances of the allocations it wrote (services.go) and moves
// the allocs table's index.
func finishAllocsTxn(txn *memdb.Txn, sets *allocSetWriter, index uint64) error {
	if err := sets.flush(txn); err != nil {
		return err
	}
	if err := sets.flushServices(txn, index); err != nil {
		return err
	}
	return setIndex(txn, index, TableAllocs)
}

// insertAllocTxn writes an allocation version and records it for its
// node's and job's rows and its namespace's quota usage (written by
// finishAllocsTxn before commit). Every allocation write goes through
// here, so the usage rows stay exact.
func insertAllocTxn(txn *memdb.Txn, sets *allocSetWriter, a *structs.Allocation) error {
	raw, err := txn.First(TableAllocs, "id", a.ID)
	if err != nil {
		return fmt.Errorf("alloc lookup: %w", err)
	}
	if err := txn.Insert(TableAllocs, a); err != nil {
		return err
	}
	var old *structs.Allocation
	if raw != nil {
		old = raw.(*structs.Allocation)
	}
	sets.countUsage(old, a)
	sets.put(a)
	sets.putServices(old, a)
	return nil
}
