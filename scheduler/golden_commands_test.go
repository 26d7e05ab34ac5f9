package scheduler

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/droverhq/drover/structs"
)

// The scenario commands (testdata/README.md) and the evaluation runner.

func (s *scenario) command(args []string) {
	h := s.h
	switch args[0] {
	case "option":
		for _, o := range args[1:] {
			switch o {
			case "scores":
				s.scores = true
			case "nostate":
				s.nostate = true
			default:
				s.fatalf("unknown option %q", o)
			}
		}
	case "node":
		s.node(args[1:])
	case "state":
		s.renderState()
	case "register":
		job := s.job(args[1])
		e := s.newEval(job.ID, job.Type, job.Priority, structs.EvalTriggerJobRegister)
		if err := h.State.UpsertJob(h.NextIndex(), job, h.Now.UnixNano(), e); err != nil {
			s.fatalf("register: %v", err)
		}
		s.process(e.ID)
	case "stop":
		job := s.job(args[1]).Copy()
		job.Stop = true
		s.jobs[job.ID] = job
		e := s.newEval(job.ID, job.Type, job.Priority, structs.EvalTriggerJobDeregister)
		if err := h.State.UpsertJob(h.NextIndex(), job, h.Now.UnixNano(), e); err != nil {
			s.fatalf("stop: %v", err)
		}
		s.process(e.ID)
	case "eval":
		// eval <job> [trigger]
		job := s.storedJob(args[1])
		trigger := structs.EvalTriggerJobRegister
		if len(args) > 2 {
			trigger = args[2]
		}
		e := s.newEval(job.ID, job.Type, job.Priority, trigger)
		s.upsertEval(e)
		s.process(e.ID)
	case "node-status":
		// node-status <node> <status>: the leader's heartbeat timer;
		// every job with allocations there, and every system job, is
		// evaluated.
		if err := h.State.UpdateNodeStatus(h.NextIndex(), args[1], args[2], h.Now.UnixNano(), nil); err != nil {
			s.fatalf("node-status: %v", err)
		}
		s.evalNodeJobs(args[1], structs.EvalTriggerNodeUpdate)
	case "node-eligibility":
		if err := h.State.UpdateNodeEligibility(h.NextIndex(), args[1], args[2], nil); err != nil {
			s.fatalf("node-eligibility: %v", err)
		}
		s.evalNodeJobs(args[1], structs.EvalTriggerNodeUpdate)
	case "drain":
		if err := h.State.UpdateNodeDrain(h.NextIndex(), args[1], &structs.DrainStrategy{StartedAt: h.Now.UnixNano()}, false, h.Now.UnixNano()); err != nil {
			s.fatalf("drain: %v", err)
		}
		fmt.Fprintf(&s.out, "node %s draining (ineligible)\n", args[1])
	case "migrate":
		// migrate <node> <job> <n>: the drainer marks the first n live
		// allocations of the job on the node (by name) and evaluates
		// the job.
		var live []*structs.Allocation
		for _, a := range s.liveOn(args[1]) {
			if a.JobID == args[2] && !a.DesiredTransition.Migrate {
				live = append(live, a)
			}
		}
		n := s.atoi(args[3])
		if n < len(live) {
			live = live[:n]
		}
		var names []string
		for _, a := range live {
			names = append(names, a.Name)
		}
		fmt.Fprintf(&s.out, "marked for migration: %s\n", strings.Join(names, ", "))
		h.markMigrate(live...)
		jobs := map[string]bool{}
		for _, a := range live {
			if !jobs[a.JobID] {
				jobs[a.JobID] = true
				job := s.storedJob(a.JobID)
				e := s.newEval(job.ID, job.Type, job.Priority, structs.EvalTriggerNodeDrain)
				s.upsertEval(e)
				s.process(e.ID)
			}
		}
	case "client":
		// client <alloc name> <status> [healthy|unhealthy]
		a := s.allocNamed(args[1])
		h.clientUpdate(func(a *structs.Allocation) {
			a.ClientStatus = args[2]
			if args[2] == structs.AllocClientStatusFailed {
				a.TaskStates = map[string]*structs.TaskState{"server": {State: structs.TaskStateDead, Failed: true, FinishedAt: h.Now}}
			}
			if len(args) > 3 && a.DeploymentID != "" {
				healthy := args[3] == "healthy"
				ds := a.DeploymentStatus.Copy()
				if ds == nil {
					ds = &structs.AllocDeploymentStatus{}
				}
				ds.Healthy = &healthy
				a.DeploymentStatus = ds
			}
		}, a)
		fmt.Fprintf(&s.out, "%s on %s is %s\n", a.Name, a.NodeName, strings.Join(args[2:], " "))
	case "healthy":
		// healthy <job>: every live allocation runs and is healthy.
		live := h.live(args[1])
		h.setRunning(true, live...)
		fmt.Fprintf(&s.out, "%d allocations of %s running and healthy\n", len(live), args[1])
	case "deployment":
		// deployment <job> <status>: the deployment watcher's verdict.
		d := h.deployment(args[1])
		desc := map[string]string{
			structs.DeploymentStatusSuccessful: structs.DeploymentDescSuccessful,
			structs.DeploymentStatusFailed:     structs.DeploymentDescFailedAllocations,
		}[args[2]]
		if err := h.State.UpdateDeploymentStatus(h.NextIndex(), &structs.DeploymentStatusUpdateRequest{
			DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: d.ID, Status: args[2], StatusDescription: desc},
			UpdatedAt:        h.Now.UnixNano(),
		}); err != nil {
			s.fatalf("deployment: %v", err)
		}
		fmt.Fprintf(&s.out, "deployment of %s v%d is %s\n", args[1], d.JobVersion, args[2])
	case "promote":
		d := h.deployment(args[1])
		job := s.storedJob(args[1])
		e := s.newEval(job.ID, job.Type, job.Priority, structs.EvalTriggerDeploymentWatcher)
		if err := h.State.PromoteDeployment(h.NextIndex(), &structs.DeploymentPromoteRequest{DeploymentID: d.ID, All: true, Eval: e, UpdatedAt: h.Now.UnixNano()}); err != nil {
			s.fatalf("promote: %v", err)
		}
		fmt.Fprintf(&s.out, "deployment of %s v%d promoted\n", args[1], d.JobVersion)
		s.process(e.ID)
	case "auto-revert":
		// auto-revert <job>: the deployment watcher fails the running
		// deployment and registers the newest stable earlier version.
		d := h.deployment(args[1])
		versions, _ := h.State.JobVersionsByID(nil, "", args[1])
		var target *structs.Job
		for _, v := range versions {
			if v.Stable && v.Version < d.JobVersion {
				target = v
				break
			}
		}
		if target == nil {
			s.fatalf("no stable version to revert to")
		}
		e := s.newEval(target.ID, target.Type, target.Priority, structs.EvalTriggerJobRevert)
		revert := target.Copy()
		if err := h.State.UpdateDeploymentStatus(h.NextIndex(), &structs.DeploymentStatusUpdateRequest{
			DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: d.ID, Status: structs.DeploymentStatusFailed,
				StatusDescription: structs.DeploymentDescFailedAllocations + fmt.Sprintf(structs.DeploymentDescRollbackSuffix, target.Version)},
			Job: revert, Eval: e, UpdatedAt: h.Now.UnixNano(), SubmitTime: h.Now.UnixNano(),
		}); err != nil {
			s.fatalf("auto-revert: %v", err)
		}
		current := s.storedJob(args[1])
		fmt.Fprintf(&s.out, "deployment of %s v%d failed; v%d registered again as v%d\n", args[1], d.JobVersion, target.Version, current.Version)
		s.process(e.ID)
	case "preemption":
		var svc, batch, sys bool
		for _, t := range args[1:] {
			switch t {
			case "service":
				svc = true
			case "batch":
				batch = true
			case "system":
				sys = true
			case "none":
			default:
				s.fatalf("unknown job type %q", t)
			}
		}
		h.setPreemption(svc, batch, sys)
	case "time":
		h.Now = h.Now.Add(s.duration(strings.TrimPrefix(args[1], "+")))
		fmt.Fprintf(&s.out, "now %s\n", s.rel(h.Now.UnixNano()))
	case "run-evals":
		// run-evals [trigger]: process the evaluations the scheduler
		// created that are due (pending and past WaitUntil, or
		// blocked), oldest first.
		ran := 0
		for _, e := range h.CreateEvals {
			if s.handled[e.ID] || (len(args) > 1 && e.TriggeredBy != args[1]) {
				continue
			}
			if e.Status != structs.EvalStatusBlocked && e.WaitUntil > h.Now.UnixNano() {
				continue
			}
			s.handled[e.ID] = true
			ran++
			s.processCreated(e)
		}
		if ran == 0 {
			fmt.Fprintln(&s.out, "no evaluation is due")
		}
	default:
		s.fatalf("unknown command %q", args[0])
	}
}

func (s *scenario) job(id string) *structs.Job {
	j, ok := s.jobs[id]
	if !ok {
		s.fatalf("job %q is not defined", id)
	}
	return j
}

func (s *scenario) storedJob(id string) *structs.Job {
	j, err := s.h.State.JobByID(nil, "", id)
	if err != nil || j == nil {
		s.fatalf("job %q is not registered", id)
	}
	return j
}

// newEval returns a pending evaluation with an ID derived from the
// scenario, so that the scheduler's random choices repeat.
func (s *scenario) newEval(jobID, typ string, priority int, trigger string) *structs.Evaluation {
	s.nextNum++
	id := fmt.Sprintf("%s-eval-%04d", strings.TrimSuffix(filepath.Base(s.file), ".txt"), s.nextNum)
	s.evalNum[id] = s.nextNum
	return &structs.Evaluation{ID: id, Priority: priority, Type: typ, TriggeredBy: trigger, JobID: jobID, Status: structs.EvalStatusPending}
}

func (s *scenario) upsertEval(e *structs.Evaluation) {
	if err := s.h.State.UpsertEvals(s.h.NextIndex(), []*structs.Evaluation{e}); err != nil {
		s.fatalf("upsert eval: %v", err)
	}
}

// processCreated processes an evaluation the scheduler created. Its
// random ID would make the placement random, so a copy with a scenario
// ID stands in for it (the original is marked complete).
func (s *scenario) processCreated(e *structs.Evaluation) {
	n := s.evalNum[e.ID]
	orig := e.Copy()
	orig.Status = structs.EvalStatusComplete
	s.upsertEval(orig)
	id := fmt.Sprintf("%s-created-%04d", strings.TrimSuffix(filepath.Base(s.file), ".txt"), n)
	c := e.Copy()
	c.ID = id
	s.evalNum[id] = n
	s.upsertEval(c)
	s.process(id)
}

// evalNodeJobs evaluates every job with a live allocation on the node,
// and every system job, as the leader does on a node update.
func (s *scenario) evalNodeJobs(nodeID, trigger string) {
	ids := map[string]bool{}
	allocs, _ := s.h.State.AllocsByNode(nil, nodeID)
	for _, a := range allocs {
		if !a.TerminalStatus() {
			ids[a.JobID] = true
		}
	}
	jobs, _ := s.h.State.Jobs(nil)
	for _, j := range jobs {
		if j.Type == structs.JobTypeSystem {
			ids[j.ID] = true
		}
	}
	fmt.Fprintf(&s.out, "node %s updated\n", nodeID)
	for _, id := range sortedKeys(ids) {
		job := s.storedJob(id)
		e := s.newEval(job.ID, job.Type, job.Priority, trigger)
		e.NodeID = nodeID
		s.upsertEval(e)
		s.process(e.ID)
	}
}

// liveOn returns the live allocations on a node, by name.
func (s *scenario) liveOn(nodeID string) []*structs.Allocation {
	all, _ := s.h.State.AllocsByNode(nil, nodeID)
	var out []*structs.Allocation
	for _, a := range all {
		if !a.TerminalStatus() {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// allocNamed returns the newest allocation with the name.
func (s *scenario) allocNamed(name string) *structs.Allocation {
	jobID, _, _ := strings.Cut(name, ".")
	all, _ := s.h.State.AllocsByJob(nil, "", jobID)
	var best *structs.Allocation
	for _, a := range all {
		if a.Name == name && (best == nil || a.CreateIndex > best.CreateIndex) {
			best = a
		}
	}
	if best == nil {
		s.fatalf("no allocation named %s", name)
	}
	return best
}

// rel renders a Unix-nanosecond time relative to the scenario's start.
func (s *scenario) rel(ns int64) string {
	return "+" + time.Duration(ns-s.t0.UnixNano()).String()
}

// process runs the stored evaluation and renders what it did.
func (s *scenario) process(evalID string) {
	h := s.h
	e, err := h.State.EvalByID(nil, evalID)
	if err != nil || e == nil {
		s.fatalf("eval %s not stored", evalID)
	}
	before := map[string]*structs.Allocation{}
	all, _ := h.State.Allocs(nil)
	for _, a := range all {
		before[a.ID] = a
	}
	plans, reblocked, created := len(h.Plans), len(h.Reblocked), len(h.CreateEvals)
	job, _ := h.State.JobByID(nil, e.Namespace, e.JobID)
	version := "purged"
	if job != nil {
		version = fmt.Sprintf("v%d", job.Version)
	}
	fmt.Fprintf(&s.out, "eval %d (%s) of %s %s:\n", s.evalNum[evalID], e.TriggeredBy, e.JobID, version)
	h.Process(e)

	for _, c := range h.CreateEvals[created:] {
		s.nextNum++
		s.evalNum[c.ID] = s.nextNum
	}
	for _, p := range h.Plans[plans:] {
		s.renderPlan(p, before)
	}
	if len(h.Plans) == plans {
		fmt.Fprintln(&s.out, "  no changes")
	}
	for _, c := range h.CreateEvals[created:] {
		switch {
		case c.Status == structs.EvalStatusBlocked:
			fmt.Fprintf(&s.out, "  created eval %d: blocked until capacity frees up\n", s.evalNum[c.ID])
		case c.WaitUntil != 0:
			fmt.Fprintf(&s.out, "  created eval %d (%s) of %s, due at %s\n", s.evalNum[c.ID], c.TriggeredBy, c.JobID, s.rel(c.WaitUntil))
		default:
			fmt.Fprintf(&s.out, "  created eval %d (%s) of %s\n", s.evalNum[c.ID], c.TriggeredBy, c.JobID)
		}
	}
	var outcome *structs.Evaluation
	if len(h.Reblocked) > reblocked {
		outcome = h.Reblocked[len(h.Reblocked)-1]
		fmt.Fprintln(&s.out, "  still blocked")
	} else {
		outcome = h.LastEval()
		fmt.Fprintf(&s.out, "  eval %s\n", outcome.Status)
	}
	for _, g := range sortedKeys(outcome.FailedTGAllocs) {
		s.renderFailure(g, outcome.FailedTGAllocs[g], outcome.QueuedAllocations[g])
	}
	if !s.nostate {
		s.renderState()
	}
}
