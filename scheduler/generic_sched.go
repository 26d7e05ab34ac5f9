package scheduler

import (
	"fmt"
	"math/rand"
	"sort"
	"time"

	"github.com/droverhq/drover/structs"
)

// How many times a scheduler re-plans after the plan applier rejected
// part of its plan before giving up on the evaluation.
const (
	maxServiceScheduleAttempts = 5
	maxBatchScheduleAttempts   = 2
)

// failedEvalRetryWait is how long a follow-up waits after an evaluation
// ran out of plan attempts.
const failedEvalRetryWait = 5 * time.Second

// GenericScheduler schedules service and batch jobs.
type GenericScheduler struct {
	cfg     Config
	state   State
	planner Planner
	batch   bool

	eval *structs.Evaluation
	job  *structs.Job
	plan *structs.Plan
	ctx  *EvalContext
	rng  *rand.Rand

	// failedTGAllocs explains, per group, placements that failed in the
	// last attempt.
	failedTGAllocs map[string]*structs.AllocMetric
	queued         map[string]int
	// preemptedJobs are jobs some of whose allocations the last plan
	// evicted; they get evaluations to place them elsewhere.
	preemptedJobs map[structs.NamespacedID]*structs.Job
}

// NewServiceScheduler returns a scheduler for service jobs.
func NewServiceScheduler(cfg Config, state State, planner Planner) Scheduler {
	cfg.defaults()
	return &GenericScheduler{cfg: cfg, state: state, planner: planner}
}

// NewBatchScheduler returns a scheduler for batch jobs.
func NewBatchScheduler(cfg Config, state State, planner Planner) Scheduler {
	cfg.defaults()
	return &GenericScheduler{cfg: cfg, state: state, planner: planner, batch: true}
}

// Process handles one evaluation: plan, submit, re-plan on partial
// commit, then record the outcome (and a blocked evaluation if something
// could not be placed).
func (s *GenericScheduler) Process(eval *structs.Evaluation) error {
	s.eval = eval
	// One random source per evaluation, seeded from its ID: a replay of
	// the same eval against the same state makes the same choices.
	s.rng = rand.New(rand.NewSource(structs.SeedFromID(eval.ID)))
	limit := maxServiceScheduleAttempts
	if s.batch {
		limit = maxBatchScheduleAttempts
	}
	if refused, err := refuseOversizedJob(s.state, s.planner, eval); refused || err != nil {
		return err
	}
	return runAttempts(s.cfg, s.planner, eval, limit, s.process, s.finish)
}

// refuseOversizedJob fails the evaluation, without planning, when its
// job is over the hard limits of structs (more groups, tasks or count
// than any job may have). Admission and the FSM keep such jobs out of
// the state store; one that got in before they did would otherwise
// make every leader's scheduler allocate in proportion to its count,
// and run out of memory, again after every election.
func refuseOversizedJob(st State, planner Planner, eval *structs.Evaluation) (bool, error) {
	job, err := st.JobByID(nil, eval.Namespace, eval.JobID)
	if err != nil || job == nil || job.Stopped() {
		return false, nil // the scheduler handles these itself
	}
	why := ""
	if n := len(job.TaskGroups); n > structs.HardMaxGroupsPerJob {
		why = fmt.Sprintf("%d groups; the hard limit is %d", n, structs.HardMaxGroupsPerJob)
	}
	for _, tg := range job.TaskGroups {
		if why != "" {
			break
		}
		switch {
		case tg == nil:
			why = "a null group"
		case tg.Count > structs.HardMaxCountPerGroup:
			why = fmt.Sprintf("group %q has count %d; the hard limit is %d", tg.Name, tg.Count, structs.HardMaxCountPerGroup)
		case len(tg.Tasks) > structs.HardMaxTasksPerGroup:
			why = fmt.Sprintf("group %q has %d tasks; the hard limit is %d", tg.Name, len(tg.Tasks), structs.HardMaxTasksPerGroup)
		}
	}
	if why == "" {
		return false, nil
	}
	failed := eval.Copy()
	failed.Status = structs.EvalStatusFailed
	failed.StatusDescription = fmt.Sprintf("job %q is not scheduled: %s; stop it and register a smaller one", job.ID, why)
	return true, planner.UpdateEval(failed)
}

// runAttempts runs process until it reports done, up to limit times,
// then finish; after limit partial commits it fails the evaluation with
// a delayed follow-up, so a busy cluster does not lose the work.
func runAttempts(cfg Config, planner Planner, eval *structs.Evaluation, limit int, process func() (bool, error), finish func() error) error {
	var lastErr error
	for attempt := 0; attempt < limit; attempt++ {
		done, err := process()
		if err != nil {
			return err
		}
		if done {
			return finish()
		}
		lastErr = fmt.Errorf("plan partially committed after %d attempts", attempt+1)
	}
	follow := eval.CreateFailedFollowUpEval(cfg.Now(), failedEvalRetryWait)
	if err := planner.CreateEval(follow); err != nil {
		return err
	}
	failed := eval.Copy()
	failed.Status = structs.EvalStatusFailed
	failed.StatusDescription = fmt.Sprintf("maximum attempts reached (%d): %v", limit, lastErr)
	failed.NextEval = follow.ID
	return planner.UpdateEval(failed)
}

// process makes one planning attempt. It returns done=false when the
// plan was only partly committed and must be re-planned.
func (s *GenericScheduler) process() (bool, error) {
	job, err := s.state.JobByID(nil, s.eval.Namespace, s.eval.JobID)
	if err != nil {
		return false, fmt.Errorf("read job %s: %w", s.eval.JobKey(), err)
	}
	s.job = job
	snapshotIndex, _ := s.state.LatestIndex()
	s.plan = &structs.Plan{
		EvalID:        s.eval.ID,
		Priority:      s.eval.Priority,
		Job:           job,
		SnapshotIndex: snapshotIndex,
	}
	s.ctx = NewEvalContext(s.state, s.plan, s.cfg.Logger, s.rng)
	s.failedTGAllocs = nil
	s.queued = make(map[string]int)
	s.preemptedJobs = make(map[structs.NamespacedID]*structs.Job)

	result, err := s.reconcile()
	if err != nil {
		return false, err
	}
	s.plan.DeploymentUpdates = result.deploymentUpdates
	if result.createDeployment {
		s.plan.Deployment = result.deployment
	}
	// Placements join the current version's deployment while it runs.
	var deploymentID string
	if d := result.deployment; d != nil && d.Active() {
		deploymentID = d.ID
	}
	for _, st := range result.stop {
		s.plan.AppendStoppedAlloc(st.alloc, st.desc, st.clientStatus)
	}
	for _, a := range result.inplace {
		if tg := job.LookupTaskGroup(a.TaskGroup); deploymentID != "" && tg != nil && tg.Update.Rolling() && a.DeploymentID != deploymentID {
			// Already running: it counts as healthy in the new deployment.
			a.DeploymentID = deploymentID
			if a.ClientStatus == structs.AllocClientStatusRunning {
				healthy := true
				a.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: &healthy, Timestamp: s.cfg.Now().UnixNano()}
			} else {
				a.DeploymentStatus = nil
			}
		}
		s.plan.AppendAlloc(a)
	}
	for _, e := range result.followups {
		if err := s.planner.CreateEval(e); err != nil {
			return false, err
		}
	}
	for _, a := range result.delayed {
		a.Job = nil
		s.plan.AppendAlloc(a)
	}
	if err := s.computePlacements(result.place, deploymentID); err != nil {
		return false, err
	}
	s.plan.Annotations = s.annotations(result.counts)

	if s.plan.IsNoOp() && !s.cfg.Annotate {
		return true, nil
	}
	planResult, newState, err := s.planner.SubmitPlan(s.plan)
	if err != nil {
		return false, fmt.Errorf("submit plan: %w", err)
	}
	if newState != nil {
		s.state = newState
	}
	full, expected, actual := planResult.FullCommit(s.plan)
	if !full {
		s.cfg.Logger.Debug("plan partially committed, re-planning", "eval_id", s.eval.ID, "expected", expected, "committed", actual)
		return false, nil
	}
	return true, nil
}

// annotations records, per group, what the plan does.
func (s *GenericScheduler) annotations(counts map[string]*structs.DesiredUpdates) *structs.PlanAnnotations {
	return planAnnotations(s.plan, counts)
}

// planAnnotations adds the plan's preemptions to the per-group counts.
// They are counted from the plan's evictions, by the group of the
// allocation each one makes room for: an in-place update carries the
// PreemptedAllocations of its original placement, which this plan does
// not evict again.
func planAnnotations(plan *structs.Plan, counts map[string]*structs.DesiredUpdates) *structs.PlanAnnotations {
	a := &structs.PlanAnnotations{DesiredTGUpdates: counts}
	group := make(map[string]string)
	for _, list := range plan.NodeAllocation {
		for _, placed := range list {
			if len(placed.PreemptedAllocations) > 0 {
				group[placed.ID] = placed.TaskGroup
			}
		}
	}
	for _, list := range plan.NodePreemptions {
		for _, p := range list {
			a.PreemptedAllocs = append(a.PreemptedAllocs, p.Stub())
			if u := counts[group[p.PreemptedByAllocation]]; u != nil {
				u.Preemptions++
			}
		}
	}
	sort.Slice(a.PreemptedAllocs, func(i, j int) bool { return a.PreemptedAllocs[i].ID < a.PreemptedAllocs[j].ID })
	return a
}

// reconcile compares the job with its allocations.
func (s *GenericScheduler) reconcile() (*reconcileResult, error) {
	ns := structs.NamespaceOrDefault(s.eval.Namespace)
	allocs, err := s.state.AllocsByJob(nil, ns, s.eval.JobID)
	if err != nil {
		return nil, fmt.Errorf("read allocations: %w", err)
	}
	tainted, err := taintedNodes(s.state, allocs)
	if err != nil {
		return nil, err
	}
	job := s.job
	if job == nil {
		// Purged: everything stops.
		job = &structs.Job{ID: s.eval.JobID, Namespace: ns, Stop: true}
	}
	latest, err := s.state.LatestDeploymentByJobID(nil, ns, s.eval.JobID)
	if err != nil {
		return nil, fmt.Errorf("read deployment: %w", err)
	}
	r := &reconciler{
		job: job, jobID: s.eval.JobID, eval: s.eval, batch: s.batch,
		now: s.cfg.Now(), allocs: allocs, tainted: tainted, latest: latest,
		nodeMeets: s.nodeMeets,
	}
	return r.compute(), nil
}

// nodeMeets reports whether the allocation's node is still in the job's
// datacenters and node pool and meets the job's, the group's and its
// tasks' node constraints (distinct_hosts and distinct_property aside).
func (s *GenericScheduler) nodeMeets(a *structs.Allocation, tg *structs.TaskGroup) bool {
	node := s.ctx.node(a.NodeID)
	if node == nil {
		return true // gone: handled as lost
	}
	if !inDatacenters(s.job, node) || !inPool(s.job, node) {
		return false
	}
	cs := append(append([]*structs.Constraint(nil), s.job.Constraints...), tg.Constraints...)
	for _, t := range tg.Tasks {
		cs = append(cs, t.Constraints...)
	}
	c := &ConstraintChecker{ctx: s.ctx}
	c.SetConstraints(cs)
	ok, _ := c.Feasible(node)
	return ok
}

// taintedNodes maps the nodes of allocs to whether they are down or gone.
func taintedNodes(state State, allocs []*structs.Allocation) (map[string]bool, error) {
	tainted := make(map[string]bool)
	for _, a := range allocs {
		if _, seen := tainted[a.NodeID]; seen {
			continue
		}
		node, err := state.NodeByID(nil, a.NodeID)
		if err != nil {
			return nil, fmt.Errorf("read node: %w", err)
		}
		tainted[a.NodeID] = node == nil || node.TerminalStatus()
	}
	return tainted, nil
}

// computePlacements selects a node for each placement and adds the new
// allocations to the plan.
func (s *GenericScheduler) computePlacements(places []placement, deploymentID string) error {
	if len(places) == 0 {
		return nil
	}
	nodes, byDC, err := readyNodes(s.state, s.job)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	_, schedConfig, err := s.state.SchedulerConfig()
	if err != nil {
		return err
	}
	stack := NewGenericStack(s.ctx)
	stack.SetJob(s.job, schedConfig.PreemptionEnabled(s.job.Type))
	stack.SetNodes(nodes)
	quota, err := newQuotaTracker(s.state, s.job.Namespace, s.plan)
	if err != nil {
		return fmt.Errorf("read quota: %w", err)
	}

	sort.SliceStable(places, func(i, j int) bool {
		if places[i].tg.Name != places[j].tg.Name {
			return places[i].tg.Name < places[j].tg.Name
		}
		return places[i].index < places[j].index
	})
	now := s.cfg.Now()
	for _, p := range places {
		// Once a group failed to place, the rest of it fails the same
		// way; count them instead of searching again.
		if m, failed := s.failedTGAllocs[p.tg.Name]; failed {
			m.CoalescedFailures++
			s.queued[p.tg.Name]++
			s.keepPrevious(p, quota)
			continue
		}
		s.ctx.ResetMetrics()
		if why := quota.exceeded(p.tg); why != "" {
			// Over the namespace's quota: no node search, the group
			// waits (blocked) for allocations to stop or the quota to
			// be raised.
			metrics := s.ctx.Metrics()
			metrics.NodesAvailable = byDC
			metrics.QuotaExhausted = []string{why}
			if s.failedTGAllocs == nil {
				s.failedTGAllocs = make(map[string]*structs.AllocMetric)
			}
			s.failedTGAllocs[p.tg.Name] = metrics
			s.queued[p.tg.Name]++
			s.keepPrevious(p, quota)
			continue
		}
		start := time.Now()
		option := stack.Select(p.tg, selectOptions(p))
		metrics := s.ctx.Metrics()
		metrics.NodesAvailable = byDC
		metrics.AllocationTime = time.Since(start)
		if option == nil {
			if s.failedTGAllocs == nil {
				s.failedTGAllocs = make(map[string]*structs.AllocMetric)
			}
			s.failedTGAllocs[p.tg.Name] = metrics
			s.queued[p.tg.Name]++
			s.keepPrevious(p, quota)
			continue
		}
		alloc := s.newAlloc(p, option, metrics, now)
		if deploymentID != "" && p.tg.Update.Rolling() {
			alloc.DeploymentID = deploymentID
			if p.canary {
				alloc.DeploymentStatus = &structs.AllocDeploymentStatus{Canary: true}
			}
		}
		s.preempt(alloc, option)
		s.plan.AppendAlloc(alloc)
		quota.placed(alloc)
		s.ctx.notePlacement(p.tg.Name, option.Node)
	}
	return nil
}

// keepPrevious takes back the stop of the allocation a failed placement
// was to replace, so that a migration, reschedule or destructive update
// with nowhere to go leaves it running (or, failed, waiting for the next
// evaluation with its reschedule history) instead of stopping it for
// nothing.
func (s *GenericScheduler) keepPrevious(p placement, quota *quotaTracker) {
	if p.previous != nil && p.stopsPrevious && s.ctx.takeBackStop(p.previous) {
		quota.keptRunning(p.previous)
	}
}

// selectOptions penalizes the nodes a rescheduled allocation failed on.
func selectOptions(p placement) *SelectOptions {
	if !p.reschedule || p.previous == nil {
		return nil
	}
	nodes := map[string]bool{p.previous.NodeID: true}
	if t := p.previous.RescheduleTracker; t != nil {
		for _, e := range t.Events {
			nodes[e.PrevNodeID] = true
		}
	}
	return &SelectOptions{PenaltyNodes: nodes}
}

// newAlloc builds the allocation for a placement on the chosen node.
func (s *GenericScheduler) newAlloc(p placement, option *RankedNode, metrics *structs.AllocMetric, now time.Time) *structs.Allocation {
	tasks := make(map[string]*structs.AllocatedTaskResources, len(option.TaskResources))
	for k, v := range option.TaskResources {
		tv := *v
		tasks[k] = &tv
	}
	alloc := &structs.Allocation{
		ID:                 structs.GenerateUUID(),
		EvalID:             s.eval.ID,
		Name:               p.name,
		NodeID:             option.Node.ID,
		NodeName:           option.Node.Name,
		JobID:              s.job.ID,
		Namespace:          s.job.Namespace,
		JobVersion:         s.job.Version,
		TaskGroup:          p.tg.Name,
		AllocatedResources: &structs.AllocatedResources{Tasks: tasks, Shared: structs.AllocatedSharedResources{Ports: option.Ports}},
		DesiredStatus:      structs.AllocDesiredStatusRun,
		ClientStatus:       structs.AllocClientStatusPending,
		Metrics:            metrics,
	}
	if p.previous != nil {
		alloc.PreviousAllocation = p.previous.ID
		if p.reschedule {
			var events []*structs.RescheduleEvent
			if p.previous.RescheduleTracker != nil {
				events = append(events, p.previous.RescheduleTracker.Events...)
			}
			events = append(events, &structs.RescheduleEvent{
				RescheduleTime: now.UnixNano(),
				PrevAllocID:    p.previous.ID,
				PrevNodeID:     p.previous.NodeID,
				Delay:          p.delay,
			})
			alloc.RescheduleTracker = &structs.RescheduleTracker{Events: events}
		}
	}
	return alloc
}

// preempt records the evictions a placement needs.
func (s *GenericScheduler) preempt(alloc *structs.Allocation, option *RankedNode) {
	for _, victim := range option.Preempted {
		s.plan.AppendPreemptedAlloc(victim, alloc.ID)
		alloc.PreemptedAllocations = append(alloc.PreemptedAllocations, victim.ID)
		if victim.Job != nil {
			s.preemptedJobs[victim.JobKey()] = victim.Job
		}
	}
}

// finish records the evaluation's outcome.
func (s *GenericScheduler) finish() error {
	if err := createPreemptionEvals(s.planner, s.preemptedJobs, s.eval); err != nil {
		return err
	}
	eval := s.eval.Copy()
	eval.FailedTGAllocs = s.failedTGAllocs
	eval.QueuedAllocations = s.queued
	eval.SnapshotIndex = s.plan.SnapshotIndex
	if s.plan.Deployment != nil {
		eval.DeploymentID = s.plan.Deployment.ID
	}

	return completeEval(s.planner, s.eval, eval)
}

// completeEval records an evaluation's outcome: eval (a copy of orig with
// the results filled in) completes, after a blocked evaluation is
// created for what could not be placed. A blocked evaluation being
// re-processed that still cannot place goes back to waiting instead of
// spawning another.
func completeEval(planner Planner, orig, eval *structs.Evaluation) error {
	if len(eval.FailedTGAllocs) > 0 {
		if orig.Status == structs.EvalStatusBlocked {
			return planner.ReblockEval(eval)
		}
		blocked := orig.CreateBlockedEval(eval.FailedTGAllocs)
		// The blocked tracker compares this with later capacity changes.
		blocked.SnapshotIndex = eval.SnapshotIndex
		if err := planner.CreateEval(blocked); err != nil {
			return err
		}
		eval.BlockedEval = blocked.ID
	}
	eval.Status = structs.EvalStatusComplete
	eval.StatusDescription = ""
	return planner.UpdateEval(eval)
}

// createPreemptionEvals gives each job that lost allocations to
// preemption an evaluation, so they are placed elsewhere if they can.
func createPreemptionEvals(planner Planner, jobs map[structs.NamespacedID]*structs.Job, by *structs.Evaluation) error {
	ids := make([]structs.NamespacedID, 0, len(jobs))
	for id := range jobs {
		ids = append(ids, id)
	}
	// In key order: the evaluations' IDs come from the eval-seeded
	// source, so a replay creates them alike.
	sort.Slice(ids, func(i, j int) bool { return ids[i].Less(ids[j]) })
	for _, id := range ids {
		j := jobs[id]
		e := &structs.Evaluation{
			ID: structs.GenerateUUID(), Priority: j.Priority, Type: j.Type,
			TriggeredBy: structs.EvalTriggerPreemption, JobID: id.ID, Namespace: id.Namespace, Status: structs.EvalStatusPending,
			PreviousEval: by.ID,
		}
		if err := planner.CreateEval(e); err != nil {
			return err
		}
	}
	return nil
}
