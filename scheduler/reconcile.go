package scheduler

import (
	"reflect"
	"sort"
	"strconv"
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
	descMigrated    = "alloc is being migrated"
	descCanary      = "alloc was replaced by a promoted canary"
)

// placement is one allocation to place.
type placement struct {
	tg    *structs.TaskGroup
	name  string
	index int
	// previous is the allocation this one replaces, if any.
	previous *structs.Allocation
	// stopsPrevious marks a replacement whose previous allocation the
	// reconciler stops only to make way for it (a migration, reschedule
	// or destructive update): if it cannot be placed, the previous one
	// keeps running. Lost allocations are stopped regardless.
	stopsPrevious bool
	// reschedule marks a replacement of a failed allocation, recorded in
	// the new allocation's reschedule tracker with delay.
	reschedule bool
	delay      time.Duration
	// canary marks a canary of a new job version.
	canary bool
}

// stop is one allocation to stop.
type stop struct {
	alloc        *structs.Allocation
	desc         string
	clientStatus string
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
	// counts is what happens to each group, for explanations and plans.
	counts map[string]*structs.DesiredUpdates
	// deployment is the deployment of the current job version: created
	// here (createDeployment) or found.
	deployment       *structs.Deployment
	createDeployment bool
	// deploymentUpdates cancel deployments of earlier versions.
	deploymentUpdates []*structs.DeploymentStatusUpdate
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
	// latest is the job's newest deployment, of any version.
	latest *structs.Deployment
	// nodeMeets reports whether an allocation's node meets the node
	// constraints of group tg as the job now has them; an allocation
	// updated to a version whose constraints its node fails is
	// replaced, not updated in place. nil: always.
	nodeMeets func(a *structs.Allocation, tg *structs.TaskGroup) bool
	result    *reconcileResult
}

func (r *reconciler) counts(tg string) *structs.DesiredUpdates {
	c, ok := r.result.counts[tg]
	if !ok {
		c = &structs.DesiredUpdates{}
		r.result.counts[tg] = c
	}
	return c
}

// compute runs the reconciliation.
func (r *reconciler) compute() *reconcileResult {
	r.result = &reconcileResult{counts: make(map[string]*structs.DesiredUpdates)}
	r.reconcileDeployment()

	byGroup := make(map[string][]*structs.Allocation)
	for _, a := range r.allocs {
		byGroup[a.TaskGroup] = append(byGroup[a.TaskGroup], a)
	}
	if r.job.Stopped() {
		r.stopAll(r.allocs, descJobStopped)
		return r.result
	}
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

// reconcileDeployment cancels a running deployment of an earlier job
// version (or of a stopped job) and finds the current version's.
func (r *reconciler) reconcileDeployment() {
	d := r.latest
	if d == nil {
		return
	}
	current := d.JobModifyIndex == r.job.JobModifyIndex && !r.job.Stopped()
	if d.Active() && !current {
		desc := structs.DeploymentDescNewerJob
		if r.job.Stopped() {
			desc = structs.DeploymentDescStopped
		}
		r.result.deploymentUpdates = append(r.result.deploymentUpdates, &structs.DeploymentStatusUpdate{
			DeploymentID: d.ID, Status: structs.DeploymentStatusCancelled, StatusDescription: desc,
		})
	}
	if current {
		r.result.deployment = d
	}
}

// ensureDeployment returns the current version's deployment state for a
// rolling group, creating the deployment if there is none.
func (r *reconciler) ensureDeployment(tg *structs.TaskGroup) *structs.DeploymentState {
	d := r.result.deployment
	if d == nil {
		d = &structs.Deployment{
			ID:                structs.GenerateUUID(),
			JobID:             r.jobID,
			Namespace:         r.job.Namespace,
			JobVersion:        r.job.Version,
			JobModifyIndex:    r.job.JobModifyIndex,
			JobCreateIndex:    r.job.CreateIndex,
			TaskGroups:        make(map[string]*structs.DeploymentState),
			Status:            structs.DeploymentStatusRunning,
			StatusDescription: structs.DeploymentDescRunning,
			EvalPriority:      r.job.Priority,
			CreateTime:        r.now.UnixNano(),
			ModifyTime:        r.now.UnixNano(),
		}
		d.AddEvent(r.now.UnixNano(), "deployment created for job version "+itoa(int(r.job.Version)))
		r.result.deployment = d
		r.result.createDeployment = true
	}
	st, ok := d.TaskGroups[tg.Name]
	if !ok {
		u := tg.Update
		st = &structs.DeploymentState{
			AutoRevert:       u.AutoRevert,
			AutoPromote:      u.AutoPromote,
			ProgressDeadline: u.ProgressDeadline,
			DesiredTotal:     tg.Count,
		}
		if u.ProgressDeadline > 0 {
			st.RequireProgressBy = r.now.Add(u.ProgressDeadline).UnixNano()
		}
		if r.result.createDeployment {
			d.TaskGroups[tg.Name] = st
		}
	}
	return st
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

// isCurrent reports whether an allocation runs the job's current spec.
func (r *reconciler) isCurrent(a *structs.Allocation) bool {
	return a.Job != nil && a.Job.JobModifyIndex == r.job.JobModifyIndex
}

// computeGroup reconciles one group: instance indexes 0..Count-1 must
// each be held by one allocation that is running or pending, or by a
// finished one that should not run again (a completed batch allocation,
// a failed one waiting for or out of reschedules). Canaries of an
// unpromoted deployment stand beside the allocations they will replace.
func (r *reconciler) computeGroup(tg *structs.TaskGroup, allocs []*structs.Allocation) {
	counts := r.counts(tg.Name)
	rolling := tg.Update.Rolling()
	var dstate *structs.DeploymentState
	if d := r.result.deployment; d != nil {
		dstate = d.TaskGroups[tg.Name]
	}
	promoted := dstate == nil || dstate.DesiredCanaries == 0 || dstate.Promoted

	// Current-version allocations first, then the newest, so that when
	// two hold one index (a promoted canary and the allocation it
	// replaces) the current one wins.
	sort.SliceStable(allocs, func(i, j int) bool {
		ci, cj := r.isCurrent(allocs[i]), r.isCurrent(allocs[j])
		if ci != cj {
			return ci
		}
		if allocs[i].CreateIndex != allocs[j].CreateIndex {
			return allocs[i].CreateIndex > allocs[j].CreateIndex
		}
		return allocs[i].ID < allocs[j].ID
	})
	held := make(map[int]bool)
	var live, canaries []*structs.Allocation

	for _, a := range allocs {
		if a.ServerTerminalStatus() || a.NextAllocation != "" {
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
			r.result.stop = append(r.result.stop, stop{alloc: a, desc: descLost})
			counts.Stop++
		case a.DesiredTransition.Migrate:
			// Draining: stop here, place the replacement elsewhere.
			r.result.stop = append(r.result.stop, stop{alloc: a, desc: descMigrated})
			counts.Migrate++
			if idx >= 0 && idx < tg.Count && !held[idx] {
				held[idx] = true
				r.result.place = append(r.result.place, placement{tg: tg, name: a.Name, index: idx, previous: a, stopsPrevious: true})
			}
		case !promoted && a.DeploymentStatus.IsCanary() && r.result.deployment != nil && a.DeploymentID == r.result.deployment.ID:
			canaries = append(canaries, a)
			counts.Ignore++
		default:
			live = append(live, a)
		}
	}

	var destructive []*structs.Allocation
	for _, a := range live {
		idx := a.Index()
		switch {
		case idx < 0 || idx >= tg.Count:
			r.result.stop = append(r.result.stop, stop{alloc: a, desc: descNotNeeded})
			counts.Stop++
		case held[idx]:
			desc := descDuplicate
			if !r.isCurrent(a) {
				desc = descCanary
			}
			r.result.stop = append(r.result.stop, stop{alloc: a, desc: desc})
			counts.Stop++
		default:
			held[idx] = true
			switch {
			case r.isCurrent(a) || a.Job == nil:
				counts.Ignore++
			case destructiveChange(a.Job.LookupTaskGroup(tg.Name), tg),
				r.nodeMeets != nil && !r.nodeMeets(a, tg):
				destructive = append(destructive, a)
			default:
				r.inplace(tg, a)
			}
		}
	}

	sort.Slice(destructive, func(i, j int) bool { return destructive[i].Index() < destructive[j].Index() })
	switch {
	case len(destructive) == 0:
	case !rolling:
		for _, a := range destructive {
			r.replace(tg, a)
		}
	default:
		st := r.ensureDeployment(tg)
		if tg.Update.Canary > 0 && !st.Promoted {
			// Canaries first: placed beside the old allocations, which stay
			// until the canaries are promoted.
			want := tg.Update.Canary
			if want > tg.Count {
				want = tg.Count
			}
			if r.result.createDeployment {
				// Only a deployment created here is ours to change.
				st.DesiredCanaries = want
			}
			if r.result.createDeployment && want > 0 {
				r.result.deployment.StatusDescription = structs.DeploymentDescRunningNeedsPromote
			}
			for i := len(canaries); i < want && i < len(destructive); i++ {
				a := destructive[i]
				r.result.place = append(r.result.place, placement{tg: tg, name: a.Name, index: a.Index(), canary: true})
				counts.Canary++
			}
			counts.Ignore += len(destructive)
			break
		}
		limit := tg.Update.MaxParallel - r.inFlight(tg)
		if d := r.result.deployment; d != nil && !d.Active() && !r.result.createDeployment {
			// A failed or cancelled rollout replaces nothing more.
			limit = 0
		}
		for i, a := range destructive {
			if i < limit {
				r.replace(tg, a)
			} else {
				counts.Ignore++
			}
		}
	}

	placedBefore := counts.Place
	for idx := 0; idx < tg.Count; idx++ {
		if !held[idx] {
			r.placeAt(tg, idx, nil, false, 0)
		}
	}
	if rolling && (counts.Place > placedBefore || counts.Canary > 0 || counts.DestructiveUpdate > 0 || counts.InPlaceUpdate > 0) {
		r.ensureDeployment(tg)
	}
}

// inFlight counts the group's allocations in the current deployment that
// run but are not yet healthy: a rollout replaces at most max_parallel
// minus these at a time.
func (r *reconciler) inFlight(tg *structs.TaskGroup) int {
	d := r.result.deployment
	if d == nil {
		return 0
	}
	n := 0
	for _, a := range r.allocs {
		if a.DeploymentID != d.ID || a.TaskGroup != tg.Name || a.ServerTerminalStatus() || a.NextAllocation != "" {
			continue
		}
		if a.DeploymentStatus.IsUnhealthy() {
			// An unhealthy placement stops the rollout: the deployment
			// is about to fail.
			return tg.Update.MaxParallel
		}
		if a.DeploymentStatus.IsHealthy() {
			continue
		}
		// Placed and not yet healthy, including one that failed on its
		// client before its health was reported and was not replaced:
		// it holds its slot.
		n++
	}
	return n
}

func (r *reconciler) replace(tg *structs.TaskGroup, a *structs.Allocation) {
	r.result.stop = append(r.result.stop, stop{alloc: a, desc: descUpdated})
	r.counts(tg.Name).DestructiveUpdate++
	r.result.place = append(r.result.place, placement{tg: tg, name: a.Name, index: a.Index(), previous: a, stopsPrevious: true})
}

func (r *reconciler) inplace(tg *structs.TaskGroup, a *structs.Allocation) {
	updated := a.Copy()
	updated.Job = nil // the plan carries the job
	updated.JobVersion = r.job.Version
	updated.EvalID = r.eval.ID
	r.result.inplace = append(r.result.inplace, updated)
	r.counts(tg.Name).InPlaceUpdate++
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
		r.result.place[len(r.result.place)-1].stopsPrevious = true
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
			Namespace:      r.job.Namespace,
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

// destructiveChange reports whether moving an allocation from group old
// to group new needs new containers: anything about the tasks or ports
// changed, other than the kill timeout. Count, restart, reschedule,
// update and placement policies and meta of the group update in place
// (as long as the node still meets the constraints; see nodeMeets).
func destructiveChange(old, new *structs.TaskGroup) bool {
	if old == nil || new == nil {
		return true
	}
	if !reflect.DeepEqual(old.Networks, new.Networks) || len(old.Tasks) != len(new.Tasks) {
		return true
	}
	if servicesChecksChanged(old.Services, new.Services) {
		return true
	}
	for i := range old.Tasks {
		a, b := old.Tasks[i].Copy(), new.Tasks[i].Copy()
		a.KillTimeout, b.KillTimeout = 0, 0
		a.Constraints, b.Constraints = nil, nil
		a.Affinities, b.Affinities = nil, nil
		if !reflect.DeepEqual(a, b) {
			return true
		}
	}
	return false
}

// servicesChecksChanged reports a change of a group's services that the
// running allocations cannot take in place: the set of services, their
// ports or their checks (the client runs the checks an allocation
// started with). Tags, the vip block, published_port and
// shutdown_delay are read from the allocation's job version by the
// servers and the proxies, so they change in place.
func servicesChecksChanged(old, new []*structs.Service) bool {
	if len(old) != len(new) {
		return true
	}
	for i := range old {
		a, b := old[i], new[i]
		if a == nil || b == nil {
			if a != b {
				return true
			}
			continue
		}
		if a.Name != b.Name || a.PortLabel != b.PortLabel || a.TaskName != b.TaskName || !reflect.DeepEqual(a.Checks, b.Checks) {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
