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

	var lastErr error
	for attempt := 0; attempt < limit; attempt++ {
		done, err := s.process()
		if err != nil {
			return err
		}
		if done {
			return s.finish()
		}
		lastErr = fmt.Errorf("plan partially committed after %d attempts", attempt+1)
	}
	// Out of attempts: fail this evaluation and retry later with a fresh
	// one, so a busy cluster does not lose the work.
	follow := eval.CreateFailedFollowUpEval(s.cfg.Now(), failedEvalRetryWait)
	if err := s.planner.CreateEval(follow); err != nil {
		return err
	}
	failed := eval.Copy()
	failed.Status = structs.EvalStatusFailed
	failed.StatusDescription = fmt.Sprintf("maximum attempts reached (%d): %v", limit, lastErr)
	failed.NextEval = follow.ID
	return s.planner.UpdateEval(failed)
}

// process makes one planning attempt. It returns done=false when the
// plan was only partly committed and must be re-planned.
func (s *GenericScheduler) process() (bool, error) {
	job, err := s.state.JobByID(nil, s.eval.JobID)
	if err != nil {
		return false, fmt.Errorf("read job %q: %w", s.eval.JobID, err)
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

	result, err := s.reconcile()
	if err != nil {
		return false, err
	}
	for _, st := range result.stop {
		s.plan.AppendStoppedAlloc(st.alloc, st.desc, st.clientStatus)
	}
	for _, a := range result.inplace {
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
	if err := s.computePlacements(result.place); err != nil {
		return false, err
	}

	if s.plan.IsNoOp() {
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

// reconcile compares the job with its allocations.
func (s *GenericScheduler) reconcile() (*reconcileResult, error) {
	allocs, err := s.state.AllocsByJob(nil, s.eval.JobID)
	if err != nil {
		return nil, fmt.Errorf("read allocations: %w", err)
	}
	tainted := make(map[string]bool)
	for _, a := range allocs {
		if _, seen := tainted[a.NodeID]; seen {
			continue
		}
		node, err := s.state.NodeByID(nil, a.NodeID)
		if err != nil {
			return nil, fmt.Errorf("read node: %w", err)
		}
		tainted[a.NodeID] = node == nil || node.TerminalStatus()
	}
	job := s.job
	if job == nil {
		// Purged: everything stops.
		job = &structs.Job{ID: s.eval.JobID, Stop: true}
	}
	r := &reconciler{
		job: job, jobID: s.eval.JobID, eval: s.eval, batch: s.batch,
		now: s.cfg.Now(), allocs: allocs, tainted: tainted,
	}
	return r.compute(), nil
}

// computePlacements selects a node for each placement and adds the new
// allocations to the plan.
func (s *GenericScheduler) computePlacements(places []placement) error {
	if len(places) == 0 {
		return nil
	}
	nodes, byDC, err := readyNodes(s.state, s.job.Datacenters)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	stack := NewGenericStack(s.ctx)
	stack.SetNodes(nodes)

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
			continue
		}
		s.ctx.ResetMetrics()
		start := time.Now()
		option := stack.Select(p.tg)
		metrics := s.ctx.Metrics()
		metrics.NodesAvailable = byDC
		metrics.AllocationTime = time.Since(start)
		if option == nil {
			if s.failedTGAllocs == nil {
				s.failedTGAllocs = make(map[string]*structs.AllocMetric)
			}
			s.failedTGAllocs[p.tg.Name] = metrics
			s.queued[p.tg.Name]++
			continue
		}
		alloc := &structs.Allocation{
			ID:                 structs.GenerateUUID(),
			EvalID:             s.eval.ID,
			Name:               p.name,
			NodeID:             option.Node.ID,
			NodeName:           option.Node.Name,
			JobID:              s.job.ID,
			JobVersion:         s.job.Version,
			TaskGroup:          p.tg.Name,
			AllocatedResources: &structs.AllocatedResources{Tasks: option.TaskResources, Shared: structs.AllocatedSharedResources{Ports: option.Ports}},
			DesiredStatus:      structs.AllocDesiredStatusRun,
			ClientStatus:       structs.AllocClientStatusPending,
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
		s.plan.AppendAlloc(alloc)
	}
	return nil
}

// finish records the evaluation's outcome.
func (s *GenericScheduler) finish() error {
	eval := s.eval.Copy()
	eval.FailedTGAllocs = s.failedTGAllocs
	eval.QueuedAllocations = s.queued
	eval.SnapshotIndex = s.plan.SnapshotIndex

	if len(s.failedTGAllocs) > 0 {
		// A blocked evaluation being re-processed that still cannot
		// place goes back to waiting, rather than spawning another.
		if s.eval.Status == structs.EvalStatusBlocked {
			return s.planner.ReblockEval(eval)
		}
		blocked := s.eval.CreateBlockedEval(s.failedTGAllocs)
		// The blocked tracker compares this with later capacity changes.
		blocked.SnapshotIndex = s.plan.SnapshotIndex
		if err := s.planner.CreateEval(blocked); err != nil {
			return err
		}
		eval.BlockedEval = blocked.ID
	}
	eval.Status = structs.EvalStatusComplete
	eval.StatusDescription = ""
	return s.planner.UpdateEval(eval)
}
