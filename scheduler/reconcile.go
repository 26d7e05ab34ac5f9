package scheduler

import (
	"reflect"
	"sort"
	"time"

	"github.com/droverhq/drover/structs"
)

// Descriptions recorded on allocations the scheduler stops.
const (
	descNotNeeded   = "alloc not needed due to job update"
	descJobStopped  = "alloc not needed as job is stopped"
	descLost        = "alloc is lost since its node is down"
	descRescheduled = "alloc was rescheduled because it failed"
	descUpdated     = "alloc is being updated due to job update"
	descDuplicate   = "alloc is a duplicate of another with the same name"
)

// placement is one allocation to place.
type placement struct {
	tg    *structs.TaskGroup
	name  string
	index int
	// previous is the allocation this one replaces, if any.
	previous *structs.Allocation
	// reschedule marks a replacement of a failed allocation, recorded in
	// the new allocation's reschedule tracker with delay.
	reschedule bool
	delay      time.Duration
}

// stop is one allocation to stop.
type stop struct {
	alloc        *structs.Allocation
	desc         string
	clientStatus string
}

// groupCounts counts the decisions per group, for `job plan` and the
// eval's explanation.
type groupCounts struct {
	Place, Stop, InPlace, Destructive, Ignore int
}

// reconcileResult is the difference between what the job wants and what
// runs.
type reconcileResult struct {
	place   []placement
	stop    []stop
	inplace []*structs.Allocation
	// followups are evaluations that will reschedule failed allocations
	// after their delay; delayed carries those allocations with
	// FollowupEvalID set.
	followups []*structs.Evaluation
	delayed   []*structs.Allocation
	counts    map[string]*groupCounts
}

// reconciler computes a reconcileResult. It only reads; the scheduler
// turns the result into a plan.
type reconciler struct {
	job     *structs.Job
	jobID   string
	eval    *structs.Evaluation
	batch   bool
	now     time.Time
	allocs  []*structs.Allocation
	tainted map[string]bool // node ID -> down or gone
	result  *reconcileResult
}

func (r *reconciler) counts(tg string) *groupCounts {
	c, ok := r.result.counts[tg]
	if !ok {
		c = &groupCounts{}
		r.result.counts[tg] = c
	}
	return c
}

// compute runs the reconciliation.
func (r *reconciler) compute() *reconcileResult {
	r.result = &reconcileResult{counts: make(map[string]*groupCounts)}
	byGroup := make(map[string][]*structs.Allocation)
	for _, a := range r.allocs {
		byGroup[a.TaskGroup] = append(byGroup[a.TaskGroup], a)
	}

	if r.job.Stopped() {
		r.stopAll(r.allocs, descJobStopped)
		return r.result
	}
	// Groups removed from the job stop entirely.
	groups := make([]string, 0, len(byGroup))
	for name := range byGroup {
		groups = append(groups, name)
	}
	sort.Strings(groups)
	for _, name := range groups {
		if r.job.LookupTaskGroup(name) == nil {
			r.stopAll(byGroup[name], descNotNeeded)
		}
	}
	for _, tg := range r.job.TaskGroups {
		r.computeGroup(tg, byGroup[tg.Name])
	}
	return r.result
}

func (r *reconciler) stopAll(allocs []*structs.Allocation, desc string) {
	for _, a := range allocs {
		if a.TerminalStatus() {
			continue
		}
		clientStatus := ""
		if r.tainted[a.NodeID] {
			clientStatus = structs.AllocClientStatusLost
		}
		r.result.stop = append(r.result.stop, stop{alloc: a, desc: desc, clientStatus: clientStatus})
		r.counts(a.TaskGroup).Stop++
	}
}

// computeGroup reconciles one group: instance indexes 0..Count-1 must
// each be held by one allocation that is running or pending, or by a
// finished one that should not run again (a completed batch allocation,
// a failed one waiting for or out of reschedules).
func (r *reconciler) computeGroup(tg *structs.TaskGroup, allocs []*structs.Allocation) {
	counts := r.counts(tg.Name)
	// Oldest first, so that duplicates keep the older allocation.
	sort.Slice(allocs, func(i, j int) bool {
		if allocs[i].CreateIndex != allocs[j].CreateIndex {
			return allocs[i].CreateIndex < allocs[j].CreateIndex
		}
		return allocs[i].ID < allocs[j].ID
	})
	held := make(map[int]bool)
	var live []*structs.Allocation

	for _, a := range allocs {
		if a.ServerTerminalStatus() || a.NextAllocation != "" {
			// Stopped by the scheduler, or already replaced.
			continue
		}
		idx := a.Index()
		switch {
		case r.tainted[a.NodeID] && !a.ClientTerminalStatus():
			r.result.stop = append(r.result.stop, stop{alloc: a, desc: descLost, clientStatus: structs.AllocClientStatusLost})
			counts.Stop++
			if idx >= 0 && idx < tg.Count && !held[idx] {
				r.placeAt(tg, idx, a, false, 0)
				held[idx] = true
			}
		case a.ClientStatus == structs.AllocClientStatusFailed:
			if idx < 0 || idx >= tg.Count || held[idx] {
				continue
			}
			held[idx] = true
			r.handleFailed(tg, a, idx)
		case a.ClientStatus == structs.AllocClientStatusComplete:
			// A batch allocation that completed holds its index for good;
			// a service allocation should not have exited and is replaced.
			if idx < 0 || idx >= tg.Count || held[idx] {
				continue
			}
			held[idx] = true
			if r.batch {
				counts.Ignore++
			} else {
				r.placeAt(tg, idx, a, false, 0)
			}
		case a.ClientStatus == structs.AllocClientStatusLost:
			// Lost but not yet stopped: stop it; a replacement is placed
			// for its index below.
			r.result.stop = append(r.result.stop, stop{alloc: a, desc: descLost})
			counts.Stop++
		default:
			live = append(live, a)
		}
	}

	for _, a := range live {
		idx := a.Index()
		switch {
		case idx < 0 || idx >= tg.Count:
			r.result.stop = append(r.result.stop, stop{alloc: a, desc: descNotNeeded})
			counts.Stop++
		case held[idx]:
			r.result.stop = append(r.result.stop, stop{alloc: a, desc: descDuplicate})
			counts.Stop++
		default:
			held[idx] = true
			r.handleLive(tg, a, idx)
		}
	}

	for idx := 0; idx < tg.Count; idx++ {
		if !held[idx] {
			r.placeAt(tg, idx, nil, false, 0)
		}
	}
}

func (r *reconciler) placeAt(tg *structs.TaskGroup, idx int, prev *structs.Allocation, reschedule bool, delay time.Duration) {
	r.result.place = append(r.result.place, placement{
		tg: tg, name: structs.AllocName(r.jobID, tg.Name, idx), index: idx,
		previous: prev, reschedule: reschedule, delay: delay,
	})
	r.counts(tg.Name).Place++
}

// handleFailed applies the reschedule policy to a failed allocation.
func (r *reconciler) handleFailed(tg *structs.TaskGroup, a *structs.Allocation, idx int) {
	decision, at, delay := decideReschedule(a, tg.ReschedulePolicy, r.now)
	if decision == rescheduleLater && a.FollowupEvalID == r.eval.ID {
		// This is the follow-up evaluation created for this allocation:
		// its WaitUntil was the reschedule time, so the delay is served
		// even if clocks or rounding say a moment remains.
		decision = rescheduleNow
	}
	switch decision {
	case rescheduleNow:
		r.result.stop = append(r.result.stop, stop{alloc: a, desc: descRescheduled})
		r.counts(tg.Name).Stop++
		r.placeAt(tg, idx, a, true, delay)
	case rescheduleLater:
		if a.FollowupEvalID != "" {
			// Its follow-up evaluation already waits.
			r.counts(tg.Name).Ignore++
			return
		}
		follow := &structs.Evaluation{
			ID:             structs.GenerateUUID(),
			Priority:       r.eval.Priority,
			Type:           r.eval.Type,
			TriggeredBy:    structs.EvalTriggerRescheduling,
			JobID:          r.jobID,
			JobModifyIndex: r.job.JobModifyIndex,
			Status:         structs.EvalStatusPending,
			WaitUntil:      at.UnixNano(),
			PreviousEval:   r.eval.ID,
		}
		r.result.followups = append(r.result.followups, follow)
		updated := a.Copy()
		updated.FollowupEvalID = follow.ID
		r.result.delayed = append(r.result.delayed, updated)
		r.counts(tg.Name).Ignore++
	default:
		r.counts(tg.Name).Ignore++
	}
}

// handleLive keeps, updates in place, or replaces a running allocation
// depending on how the job changed since it was placed.
func (r *reconciler) handleLive(tg *structs.TaskGroup, a *structs.Allocation, idx int) {
	if a.Job == nil || a.Job.JobModifyIndex == r.job.JobModifyIndex {
		r.counts(tg.Name).Ignore++
		return
	}
	if destructiveChange(a.Job.LookupTaskGroup(tg.Name), tg) {
		r.result.stop = append(r.result.stop, stop{alloc: a, desc: descUpdated})
		r.counts(tg.Name).Destructive++
		r.result.place = append(r.result.place, placement{
			tg: tg, name: a.Name, index: idx, previous: a,
		})
		return
	}
	updated := a.Copy()
	updated.Job = nil // the plan carries the job
	updated.JobVersion = r.job.Version
	updated.EvalID = r.eval.ID
	r.result.inplace = append(r.result.inplace, updated)
	r.counts(tg.Name).InPlace++
}

// destructiveChange reports whether moving an allocation from group old
// to group new needs new containers: anything about the tasks or ports
// changed, other than the kill timeout. Count, restart and reschedule
// policies and meta of the group update in place.
func destructiveChange(old, new *structs.TaskGroup) bool {
	if old == nil || new == nil {
		return true
	}
	if !reflect.DeepEqual(old.Networks, new.Networks) || len(old.Tasks) != len(new.Tasks) {
		return true
	}
	for i := range old.Tasks {
		a, b := old.Tasks[i].Copy(), new.Tasks[i].Copy()
		a.KillTimeout, b.KillTimeout = 0, 0
		if !reflect.DeepEqual(a, b) {
			return true
		}
	}
	return false
}
