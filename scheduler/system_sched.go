package scheduler

import (
	"fmt"
	"math/rand"
	"sort"
	"time"

	"github.com/droverhq/drover/structs"
)

// descNodeInfeasible stops a system allocation whose node no longer
// meets the job's constraints.
const descNodeInfeasible = "alloc's node no longer meets the job's constraints"

// SystemScheduler runs one allocation of each group of a system job on
// every eligible node that meets the job's constraints: new nodes get
// one, nodes that go away take theirs with them (nothing is placed
// elsewhere), failed ones are replaced on the same node, and a drained
// node's are stopped. Updates replace allocations on their node, all at
// once. Nodes filtered by constraints are not failures; nodes without
// room are, unless preemption (on by default for system jobs) makes
// room.
type SystemScheduler struct {
	cfg     Config
	state   State
	planner Planner

	eval *structs.Evaluation
	job  *structs.Job
	plan *structs.Plan
	ctx  *EvalContext
	rng  *rand.Rand

	failedTGAllocs map[string]*structs.AllocMetric
	queued         map[string]int
	preemptedJobs  map[structs.NamespacedID]*structs.Job
	counts         map[string]*structs.DesiredUpdates
	// quota tracks the namespace's quota as the plan grows (quota.go);
	// nil when the namespace has none.
	quota *quotaTracker
}

// NewSystemScheduler returns a scheduler for system jobs.
func NewSystemScheduler(cfg Config, state State, planner Planner) Scheduler {
	cfg.defaults()
	return &SystemScheduler{cfg: cfg, state: state, planner: planner}
}

// Process handles one evaluation.
func (s *SystemScheduler) Process(eval *structs.Evaluation) error {
	s.eval = eval
	s.rng = rand.New(rand.NewSource(structs.SeedFromID(eval.ID)))
	if refused, err := refuseOversizedJob(s.state, s.planner, eval); refused || err != nil {
		return err
	}
	return runAttempts(s.cfg, s.planner, eval, maxServiceScheduleAttempts, s.process, s.finish)
}

func (s *SystemScheduler) count(tg string) *structs.DesiredUpdates {
	c, ok := s.counts[tg]
	if !ok {
		c = &structs.DesiredUpdates{}
		s.counts[tg] = c
	}
	return c
}

func (s *SystemScheduler) process() (bool, error) {
	job, err := s.state.JobByID(nil, s.eval.Namespace, s.eval.JobID)
	if err != nil {
		return false, fmt.Errorf("read job %s: %w", s.eval.JobKey(), err)
	}
	s.job = job
	snapshotIndex, _ := s.state.LatestIndex()
	s.plan = &structs.Plan{EvalID: s.eval.ID, Priority: s.eval.Priority, Job: job, SnapshotIndex: snapshotIndex}
	s.ctx = NewEvalContext(s.state, s.plan, s.cfg.Logger, s.rng)
	s.failedTGAllocs, s.queued = nil, make(map[string]int)
	s.preemptedJobs = make(map[structs.NamespacedID]*structs.Job)
	s.counts = make(map[string]*structs.DesiredUpdates)

	allocs, err := s.state.AllocsByJob(nil, s.eval.Namespace, s.eval.JobID)
	if err != nil {
		return false, err
	}
	tainted, err := taintedNodes(s.state, allocs)
	if err != nil {
		return false, err
	}
	if job == nil || job.Stopped() {
		for _, a := range allocs {
			if !a.TerminalStatus() {
				s.stop(a, descJobStopped, tainted)
			}
		}
	} else if err := s.reconcile(allocs, tainted); err != nil {
		return false, err
	}
	s.plan.Annotations = planAnnotations(s.plan, s.counts)
	if s.plan.IsNoOp() && !s.cfg.Annotate {
		return true, nil
	}
	result, newState, err := s.planner.SubmitPlan(s.plan)
	if err != nil {
		return false, fmt.Errorf("submit plan: %w", err)
	}
	if newState != nil {
		s.state = newState
	}
	full, _, _ := result.FullCommit(s.plan)
	return full, nil
}

func (s *SystemScheduler) stop(a *structs.Allocation, desc string, tainted map[string]bool) {
	clientStatus := ""
	if tainted[a.NodeID] && !a.ClientTerminalStatus() {
		clientStatus = structs.AllocClientStatusLost
	}
	s.plan.AppendStoppedAlloc(a, desc, clientStatus)
	s.ctx.noteStop(a)
	s.quota.stopped(a)
	s.count(a.TaskGroup).Stop++
}

// reconcile brings each eligible node to exactly one allocation per
// group.
func (s *SystemScheduler) reconcile(allocs []*structs.Allocation, tainted map[string]bool) error {
	job := s.job
	nodes, byDC, err := readyNodes(s.state, job)
	if err != nil {
		return err
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	targeted := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		targeted[n.ID] = true
	}
	_, schedConfig, err := s.state.SchedulerConfig()
	if err != nil {
		return err
	}
	stack := NewGenericStack(s.ctx)
	stack.SetJob(job, schedConfig.PreemptionEnabled(job.Type))
	if s.quota, err = newQuotaTracker(s.state, job.Namespace, s.plan); err != nil {
		return fmt.Errorf("read quota: %w", err)
	}

	// Newest first, so duplicates keep the newest.
	sort.SliceStable(allocs, func(i, j int) bool { return allocs[i].CreateIndex > allocs[j].CreateIndex })
	for _, a := range allocs {
		if !a.TerminalStatus() && job.LookupTaskGroup(a.TaskGroup) == nil {
			s.stop(a, descNotNeeded, tainted)
		}
	}
	for _, tg := range job.TaskGroups {
		live := make(map[string]*structs.Allocation) // node ID -> allocation
		var replaceOnNode []*structs.Allocation
		for _, a := range allocs {
			if a.TaskGroup != tg.Name || a.ServerTerminalStatus() || a.NextAllocation != "" {
				continue
			}
			switch {
			case tainted[a.NodeID] && !a.ClientTerminalStatus():
				s.stop(a, descLost, tainted)
			case a.DesiredTransition.Migrate:
				s.stop(a, descMigrated, tainted)
				s.count(tg.Name).Migrate++
			case a.ClientTerminalStatus():
				replaceOnNode = append(replaceOnNode, a)
			case live[a.NodeID] != nil:
				s.stop(a, descDuplicate, tainted)
			default:
				live[a.NodeID] = a
			}
		}
		replaced := make(map[string]*structs.Allocation)
		for _, a := range replaceOnNode {
			if _, ok := replaced[a.NodeID]; !ok && live[a.NodeID] == nil {
				replaced[a.NodeID] = a
			}
		}
		// A ready node the job no longer targets (its datacenter or
		// pool was dropped) loses its allocation; one that is only not
		// ready (ineligible, initializing) keeps it until drained.
		for _, a := range allocs {
			if live[a.NodeID] != a || targeted[a.NodeID] {
				continue
			}
			if n := s.ctx.node(a.NodeID); n != nil && n.Ready() {
				s.stop(a, descNotNeeded, tainted)
			}
		}
		for _, node := range nodes {
			a := live[node.ID]
			stack.SetNodes([]*structs.Node{node})
			if fine, _ := s.feasible(stack, tg, node); !fine {
				if a != nil {
					s.stop(a, descNodeInfeasible, tainted)
				}
				continue
			}
			switch {
			case a == nil:
				s.place(stack, tg, node, replaced[node.ID], byDC)
			case a.Job != nil && a.Job.JobModifyIndex != job.JobModifyIndex && destructiveChange(a.Job.LookupTaskGroup(tg.Name), tg):
				s.plan.AppendStoppedAlloc(a, descUpdated, "")
				s.ctx.noteStop(a)
				s.quota.stopped(a)
				s.count(tg.Name).DestructiveUpdate++
				if !s.place(stack, tg, node, a, byDC) {
					// The new version does not fit: keep the old one.
					if s.ctx.takeBackStop(a) {
						s.quota.keptRunning(a)
					}
				}
			case a.Job != nil && a.Job.JobModifyIndex != job.JobModifyIndex:
				u := a.Copy()
				u.Job, u.JobVersion, u.EvalID = nil, job.Version, s.eval.ID
				s.plan.AppendAlloc(u)
				s.count(tg.Name).InPlaceUpdate++
			default:
				s.count(tg.Name).Ignore++
			}
		}
	}
	return nil
}

// feasible runs the node through the stack's feasibility checks only.
func (s *SystemScheduler) feasible(stack *GenericStack, tg *structs.TaskGroup, node *structs.Node) (bool, string) {
	stack.setTaskGroup(tg)
	for _, c := range []FeasibilityChecker{stack.drivers, stack.constraints} {
		if ok, reason := c.Feasible(node); !ok {
			return false, reason
		}
	}
	return true, ""
}

// place places one allocation of tg on node, and reports whether it did.
func (s *SystemScheduler) place(stack *GenericStack, tg *structs.TaskGroup, node *structs.Node, prev *structs.Allocation, byDC map[string]int) bool {
	s.ctx.ResetMetrics()
	if why := s.quota.exceeded(tg); why != "" {
		// Over the namespace's quota: the node is not searched.
		if m, ok := s.failedTGAllocs[tg.Name]; ok {
			m.CoalescedFailures++
			if len(m.QuotaExhausted) == 0 {
				m.QuotaExhausted = []string{why}
			}
		} else {
			if s.failedTGAllocs == nil {
				s.failedTGAllocs = make(map[string]*structs.AllocMetric)
			}
			metrics := s.ctx.Metrics()
			metrics.NodesAvailable = byDC
			metrics.QuotaExhausted = []string{why}
			s.failedTGAllocs[tg.Name] = metrics
		}
		s.queued[tg.Name]++
		return false
	}
	start := time.Now()
	option := stack.Select(tg, nil)
	metrics := s.ctx.Metrics()
	metrics.NodesAvailable = byDC
	metrics.AllocationTime = time.Since(start)
	if option == nil && metrics.NodesFiltered > 0 {
		// distinct_hosts or distinct_property rules the node out: like
		// a node the job's constraints filter, it is not a failure.
		return false
	}
	if option == nil {
		if m, ok := s.failedTGAllocs[tg.Name]; ok {
			m.CoalescedFailures++
			m.NodesEvaluated += metrics.NodesEvaluated
			m.NodesExhausted += metrics.NodesExhausted
			for k, v := range metrics.DimensionExhausted {
				if m.DimensionExhausted == nil {
					m.DimensionExhausted = make(map[string]int)
				}
				m.DimensionExhausted[k] += v
			}
		} else {
			if s.failedTGAllocs == nil {
				s.failedTGAllocs = make(map[string]*structs.AllocMetric)
			}
			s.failedTGAllocs[tg.Name] = metrics
		}
		s.queued[tg.Name]++
		return false
	}
	g := &GenericScheduler{eval: s.eval, job: s.job, plan: s.plan, preemptedJobs: s.preemptedJobs}
	p := placement{tg: tg, name: structs.AllocName(s.job.ID, tg.Name, 0), previous: prev}
	alloc := g.newAlloc(p, option, metrics, s.cfg.Now())
	g.preempt(alloc, option)
	s.plan.AppendAlloc(alloc)
	s.quota.placed(alloc)
	// distinct_property counts this placement for the nodes after it.
	s.ctx.notePlacement(tg.Name, option.Node)
	s.count(tg.Name).Place++
	return true
}

func (s *SystemScheduler) finish() error {
	if err := createPreemptionEvals(s.planner, s.preemptedJobs, s.eval); err != nil {
		return err
	}
	eval := s.eval.Copy()
	eval.FailedTGAllocs = s.failedTGAllocs
	eval.QueuedAllocations = s.queued
	eval.SnapshotIndex = s.plan.SnapshotIndex
	return completeEval(s.planner, s.eval, eval)
}
