package scheduler

import (
	"sort"

	"github.com/droverhq/drover/structs"
)

// preemptionPriorityDelta: an allocation may be evicted only by a job at
// least this much higher in priority, so near-equal jobs do not evict
// each other back and forth.
const preemptionPriorityDelta = 10

// findPreemptions returns a small set of lower-priority allocations on a
// node whose eviction makes room for ask, or nil. Candidates are the
// node's allocations of other jobs with priority at most priority-10,
// taken lowest priority first and, within a priority, biggest first;
// then any that turn out unnecessary are dropped again.
func findPreemptions(proposed []*structs.Allocation, capacity, used, ask structs.ComparableResources, job structs.NamespacedID, priority int) []*structs.Allocation {
	var cands []*structs.Allocation
	for _, a := range proposed {
		// The job never evicts itself; a job of the same ID in another
		// namespace is another job.
		if a.Job == nil || (a.JobID == job.ID && a.Namespace == job.Namespace) || a.Job.Priority > priority-preemptionPriorityDelta {
			continue
		}
		cands = append(cands, a)
	}
	if len(cands) == 0 {
		return nil
	}
	size := func(a *structs.Allocation) float64 {
		r := a.Usage()
		return float64(r.CPU)/float64(max64(capacity.CPU, 1)) + float64(r.MemoryMB)/float64(max64(capacity.MemoryMB, 1))
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].Job.Priority != cands[j].Job.Priority {
			return cands[i].Job.Priority < cands[j].Job.Priority
		}
		return size(cands[i]) > size(cands[j])
	})
	fits := func(remaining structs.ComparableResources) bool {
		total := remaining
		total.Add(ask)
		ok, _ := capacity.Superset(total)
		return ok
	}
	remaining := used
	var chosen []*structs.Allocation
	for _, c := range cands {
		if fits(remaining) {
			break
		}
		chosen = append(chosen, c)
		remaining.Subtract(c.Usage())
	}
	if !fits(remaining) {
		return nil
	}
	// Keep only the evictions that are needed, trying the last chosen
	// (highest priority) first.
	for i := len(chosen) - 1; i >= 0; i-- {
		trial := remaining
		trial.Add(chosen[i].Usage())
		if fits(trial) {
			remaining = trial
			chosen = append(chosen[:i], chosen[i+1:]...)
		}
	}
	return chosen
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
