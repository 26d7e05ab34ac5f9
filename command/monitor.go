package command

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/droverhq/drover/api"
)

// monitor follows a job's evaluation and allocations for `job run` and
// `job stop`, printing each change as a plain line.
type monitor struct {
	ui       *ui
	client   *api.Client
	jobID    string
	deadline time.Time
	// tty redraws the deployment table in place instead of printing
	// plain lines.
	tty bool
}

// pollWait is how long one blocking query waits.
const pollWait = 5 * time.Second

func (m *monitor) timeLeft() (time.Duration, error) {
	left := time.Until(m.deadline)
	if left <= 0 {
		return 0, withCode(ExitError, fmt.Errorf("timed out; the job keeps going: see `drover job status %s`", m.jobID))
	}
	if left > pollWait {
		left = pollWait
	}
	return left, nil
}

// run follows a registration: the evaluation, then the allocations
// until all run.
func (m *monitor) run(evalID string) error {
	eval, err := m.waitEval(evalID)
	if err != nil {
		return err
	}
	if eval.Status != "complete" {
		return withCode(ExitError, fmt.Errorf("evaluation %s finished with status %q: %s", short(eval.ID), eval.Status, eval.StatusDescription))
	}
	if len(eval.FailedTGAllocs) > 0 {
		m.ui.Printf("==> Evaluation %q finished with status \"complete\" but failed to place all allocations:\n", short(eval.ID))
		printPlacementFailures(m.ui, eval.FailedTGAllocs)
		if eval.BlockedEval != "" {
			m.ui.Printf("    Evaluation %q waits for more capacity to place the rest\n", short(eval.BlockedEval))
		}
		return withCode(ExitPlacementFailed, fmt.Errorf("%s", placementSummary(eval.FailedTGAllocs)))
	}
	m.ui.Printf("==> Evaluation %q finished with status \"complete\"\n", short(eval.ID))
	job, _, err := m.client.Jobs().Info(m.jobID, nil)
	if err != nil {
		return err
	}
	if !job.Stop {
		d, err := m.findDeployment(eval, job)
		if err != nil {
			return err
		}
		if d != nil {
			return m.watchDeployment(d.ID)
		}
	}
	return m.waitRunning()
}

// waitEval waits for an evaluation to finish, printing the allocations
// it created.
func (m *monitor) waitEval(evalID string) (*api.Evaluation, error) {
	m.ui.Printf("==> Monitoring evaluation %q\n", short(evalID))
	var index uint64
	lastStatus := ""
	for {
		wait, err := m.timeLeft()
		if err != nil {
			return nil, err
		}
		eval, meta, err := m.client.Evaluations().Info(evalID, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
		if err != nil {
			return nil, err
		}
		index = meta.LastIndex
		if lastStatus == "" {
			m.ui.Printf("    Evaluation triggered by job %q\n", eval.JobID)
		} else if eval.Status != lastStatus {
			m.ui.Printf("    Evaluation status changed: %q -> %q\n", lastStatus, eval.Status)
		}
		lastStatus = eval.Status
		switch eval.Status {
		case "complete", "failed", "canceled":
			allocs, _, err := m.client.Evaluations().Allocations(evalID, nil)
			if err == nil {
				sort.Slice(allocs, func(i, j int) bool { return allocs[i].Name < allocs[j].Name })
				for _, a := range allocs {
					m.ui.Printf("    Allocation %q created: node %q, group %q\n", short(a.ID), short(a.NodeID), a.TaskGroup)
				}
			}
			return eval, nil
		}
	}
}

// waitRunning waits until the job's current allocations run (batch:
// run or completed). A failed allocation ends the wait with its reason.
func (m *monitor) waitRunning() error {
	job, _, err := m.client.Jobs().Info(m.jobID, nil)
	if err != nil {
		return err
	}
	want := 0
	for _, tg := range job.TaskGroups {
		want += tg.Count
	}
	if want == 0 || job.Stop {
		m.ui.Printf("==> Job %q has no allocations to run\n", job.ID)
		return nil
	}
	var index uint64
	last := ""
	for {
		wait, err := m.timeLeft()
		if err != nil {
			return err
		}
		allocs, meta, err := m.client.Jobs().Allocations(m.jobID, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
		if err != nil {
			return err
		}
		index = meta.LastIndex
		var running, pending, done int
		for _, a := range allocs {
			if a.DesiredStatus != "run" || a.JobVersion != job.Version {
				continue
			}
			switch a.ClientStatus {
			case "running":
				running++
			case "pending":
				pending++
			case "complete":
				done++
			case "failed":
				return withCode(ExitError, fmt.Errorf("allocation %s (%s) failed: %s", short(a.ID), a.Name, allocFailure(a)))
			}
		}
		line := fmt.Sprintf("    Allocations: %d running, %d pending", running, pending)
		if job.Type == "batch" {
			line += fmt.Sprintf(", %d complete", done)
		}
		if line != last {
			m.ui.Printf("%s\n", line)
			last = line
		}
		ok := running == want
		switch job.Type {
		case "batch":
			ok = running+done == want
		case "system":
			// One allocation per eligible node, not Count per group:
			// every allocation of this version must run.
			if running+pending == 0 {
				m.ui.Printf("==> Job %q has no allocations to run\n", job.ID)
				return nil
			}
			want = running + pending
			ok = pending == 0
		}
		if ok {
			m.ui.Printf("==> All %d allocations of job %q are %s\n", want, job.ID, map[bool]string{true: "running or complete", false: "running"}[job.Type == "batch"])
			return nil
		}
	}
}

// waitStopped waits until every allocation of the job has stopped.
func (m *monitor) waitStopped() error {
	var index uint64
	last := -1
	for {
		wait, err := m.timeLeft()
		if err != nil {
			return err
		}
		allocs, meta, err := m.client.Jobs().Allocations(m.jobID, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
		if err != nil {
			if api.IsNotFound(err) {
				return nil
			}
			return err
		}
		index = meta.LastIndex
		live := 0
		for _, a := range allocs {
			switch a.ClientStatus {
			case "complete", "failed", "lost":
			default:
				live++
			}
		}
		if live != last {
			m.ui.Printf("    Allocations still running: %d\n", live)
			last = live
		}
		if live == 0 {
			m.ui.Printf("==> Job %q stopped\n", m.jobID)
			return nil
		}
	}
}

// allocFailure explains a failed allocation from its task events.
func allocFailure(a *api.Allocation) string {
	var reasons []string
	names := make([]string, 0, len(a.TaskStates))
	for n := range a.TaskStates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ts := a.TaskStates[n]
		if !ts.Failed || len(ts.Events) == 0 {
			continue
		}
		// The last event saying why it died.
		for i := len(ts.Events) - 1; i >= 0; i-- {
			e := ts.Events[i]
			if e.Type == "Driver Failure" || e.Type == "Terminated" || e.Type == "Setup Failure" {
				reasons = append(reasons, fmt.Sprintf("task %q: %s: %s", n, e.Type, e.Message))
				break
			}
		}
	}
	if len(reasons) == 0 {
		return a.ClientDescription
	}
	return strings.Join(reasons, "; ")
}

// printPlacementFailures explains, per group, why allocations could not
// be placed.
func printPlacementFailures(u *ui, failed map[string]*api.AllocMetric) {
	groups := make([]string, 0, len(failed))
	for g := range failed {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		m := failed[g]
		u.Printf("    Task Group %q (failed to place %d allocation(s)):\n", g, 1+m.CoalescedFailures)
		for _, line := range placementReasons(m) {
			u.Printf("      * %s\n", line)
		}
	}
}

// placementReasons lists why one group could not be placed.
func placementReasons(m *api.AllocMetric) []string {
	var out []string
	available := 0
	for _, n := range m.NodesAvailable {
		available += n
	}
	if m.NodesEvaluated == 0 {
		out = append(out, "No nodes were eligible for evaluation: no ready node in the job's datacenters")
	}
	for _, k := range sortedKeys(m.ConstraintFiltered) {
		out = append(out, fmt.Sprintf("Constraint %q filtered %d nodes", k, m.ConstraintFiltered[k]))
	}
	if m.NodesExhausted > 0 {
		out = append(out, fmt.Sprintf("Resources exhausted on %d nodes", m.NodesExhausted))
	}
	for _, k := range sortedKeys(m.ClassExhausted) {
		out = append(out, fmt.Sprintf("Class %q exhausted on %d nodes", k, m.ClassExhausted[k]))
	}
	for _, k := range sortedKeys(m.DimensionExhausted) {
		out = append(out, fmt.Sprintf("Dimension %q exhausted on %d nodes", k, m.DimensionExhausted[k]))
	}
	// A quota refusal happens before any node is searched, so the node
	// counts above are empty (or say "no nodes") and the quota is the
	// whole explanation.
	if len(m.QuotaExhausted) > 0 {
		out = append([]string(nil), m.QuotaExhausted...)
	}
	return out
}

// placementSummary is the one-line error of a placement failure, e.g.
// `group "web": 3 allocations not placed: memory exhausted on 1 node`.
func placementSummary(failed map[string]*api.AllocMetric) string {
	var parts []string
	groups := make([]string, 0, len(failed))
	for g := range failed {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		m := failed[g]
		var why []string
		for _, k := range sortedKeys(m.DimensionExhausted) {
			why = append(why, fmt.Sprintf("%s exhausted on %d node(s)", k, m.DimensionExhausted[k]))
		}
		for _, k := range sortedKeys(m.ConstraintFiltered) {
			why = append(why, fmt.Sprintf("%s on %d node(s)", k, m.ConstraintFiltered[k]))
		}
		if m.NodesEvaluated == 0 && len(m.QuotaExhausted) == 0 {
			why = append(why, "no ready nodes")
		}
		why = append(why, m.QuotaExhausted...)
		parts = append(parts, fmt.Sprintf("group %q: %d allocation(s) not placed: %s", g, 1+m.CoalescedFailures, strings.Join(why, ", ")))
	}
	return "placement failed: " + strings.Join(parts, "; ")
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
