package scheduler

import (
	"fmt"
	"sort"
	"strings"

	"github.com/droverhq/drover/structs"
)

// Rendering of plans, evaluation outcomes and cluster state for the
// golden scenarios: sorted, and free of IDs, so that the output only
// depends on the scenario.

// renderPlan prints one plan.
func (s *scenario) renderPlan(p *structs.Plan, before map[string]*structs.Allocation) {
	var lines []string
	for _, a := range Placed(p) {
		old := before[a.ID]
		switch {
		case old == nil:
			tags := ""
			if a.DeploymentStatus.IsCanary() {
				tags += " canary"
			}
			if a.PreviousAllocation != "" {
				prev := before[a.PreviousAllocation]
				tags += fmt.Sprintf(" replacing %s on %s", prev.Name, prev.NodeName)
			}
			if t := a.RescheduleTracker; t != nil {
				last := t.Events[len(t.Events)-1]
				tags += fmt.Sprintf(" (reschedule %d, delay %s)", len(t.Events), last.Delay)
			}
			if len(a.PreemptedAllocations) > 0 {
				tags += fmt.Sprintf(" evicting %d", len(a.PreemptedAllocations))
			}
			line := fmt.Sprintf("place  %s v%d on %s%s", a.Name, a.JobVersion, a.NodeName, tags)
			if s.scores {
				// Kept under its placement by the sort below.
				line += "\n      " + scoreLine(a)
			}
			lines = append(lines, line)
		case a.FollowupEvalID != old.FollowupEvalID:
			lines = append(lines, fmt.Sprintf("annotate %s on %s: rescheduled by eval %d", a.Name, a.NodeName, s.evalNumOf(a.FollowupEvalID)))
		default:
			tags := ""
			if a.DeploymentID != old.DeploymentID && a.DeploymentID != "" {
				tags = " (joins the deployment"
				if a.DeploymentStatus.IsHealthy() {
					tags += ", healthy"
				}
				tags += ")"
			}
			lines = append(lines, fmt.Sprintf("update %s on %s in place: v%d -> v%d%s", a.Name, a.NodeName, old.JobVersion, a.JobVersion, tags))
		}
	}
	for _, a := range Stopped(p) {
		tag := ""
		if a.ClientStatus == structs.AllocClientStatusLost {
			tag = " [lost]"
		}
		lines = append(lines, fmt.Sprintf("stop   %s v%d on %s: %s%s", a.Name, a.JobVersion, a.NodeName, a.DesiredDescription, tag))
	}
	for _, list := range p.NodePreemptions {
		for _, a := range list {
			by := a.PreemptedByAllocation
			for _, placed := range Placed(p) {
				if placed.ID == by {
					by = placed.Name
				}
			}
			lines = append(lines, fmt.Sprintf("evict  %s (priority %d) on %s for %s", a.Name, before[a.ID].Job.Priority, a.NodeName, by))
		}
	}
	sort.Strings(lines)
	fmt.Fprintln(&s.out, "  plan:")
	for _, l := range lines {
		fmt.Fprintln(&s.out, "    "+l)
	}
	if d := p.Deployment; d != nil {
		fmt.Fprintf(&s.out, "    deployment for v%d created: %s (%s)\n", d.JobVersion, d.Status, d.StatusDescription)
		for _, g := range sortedKeys(d.TaskGroups) {
			st := d.TaskGroups[g]
			fmt.Fprintf(&s.out, "      group %s: desired total %d, desired canaries %d\n", g, st.DesiredTotal, st.DesiredCanaries)
		}
	}
	for _, u := range p.DeploymentUpdates {
		d, _ := s.h.State.DeploymentByID(nil, u.DeploymentID)
		fmt.Fprintf(&s.out, "    deployment for v%d: %s (%s)\n", d.JobVersion, u.Status, u.StatusDescription)
	}
	if p.Annotations != nil {
		for _, g := range sortedKeys(p.Annotations.DesiredTGUpdates) {
			fmt.Fprintf(&s.out, "    group %s: %s\n", g, desiredUpdates(p.Annotations.DesiredTGUpdates[g]))
		}
	}
}

func (s *scenario) evalNumOf(id string) int {
	if n, ok := s.evalNum[id]; ok {
		return n
	}
	return -1
}

func desiredUpdates(u *structs.DesiredUpdates) string {
	var parts []string
	add := func(name string, n int) {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	add("place", u.Place)
	add("stop", u.Stop)
	add("migrate", u.Migrate)
	add("in-place", u.InPlaceUpdate)
	add("destructive", u.DestructiveUpdate)
	add("canary", u.Canary)
	add("preempt", u.Preemptions)
	add("ignore", u.Ignore)
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// scoreLine renders the chosen node's score components.
func scoreLine(a *structs.Allocation) string {
	for _, m := range a.Metrics.ScoreMetaData {
		if m.NodeID != a.NodeID {
			continue
		}
		sorted := append(structs.ScoreComponents(nil), m.Scores...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
		var parts []string
		for _, c := range sorted {
			parts = append(parts, fmt.Sprintf("%s %.3f", c.Name, c.Score))
		}
		return fmt.Sprintf("score %.3f = mean(%s)", m.NormScore, strings.Join(parts, ", "))
	}
	return "no score recorded for the chosen node"
}

func (s *scenario) renderFailure(group string, m *structs.AllocMetric, queued int) {
	fmt.Fprintf(&s.out, "  group %s: %d unplaced; %d nodes evaluated", group, queued, m.NodesEvaluated)
	if m.NodesFiltered > 0 {
		fmt.Fprintf(&s.out, ", %d filtered (%s)", m.NodesFiltered, counts(m.ConstraintFiltered))
	}
	if m.NodesExhausted > 0 {
		fmt.Fprintf(&s.out, ", %d exhausted (%s)", m.NodesExhausted, counts(m.DimensionExhausted))
	}
	fmt.Fprintf(&s.out, "; available per datacenter: %s\n", counts(m.NodesAvailable))
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, "; ")
}

// renderState prints the live allocations per node and the
// deployments that changed.
func (s *scenario) renderState() {
	nodes, _ := s.h.State.Nodes(nil)
	fmt.Fprintln(&s.out, "  state:")
	for _, n := range nodes {
		var allocs []string
		// Allocations the scheduler wants running, including finished
		// ones it keeps (a completed batch allocation, a failed one
		// waiting for its reschedule).
		all, _ := s.h.State.AllocsByNode(nil, n.ID)
		sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
		for _, a := range all {
			if a.ServerTerminalStatus() || a.ClientStatus == structs.AllocClientStatusLost || a.NextAllocation != "" {
				continue
			}
			tag := a.ClientStatus
			if a.DeploymentStatus.IsCanary() {
				tag += ", canary"
			}
			if a.DeploymentStatus.IsHealthy() {
				tag += ", healthy"
			}
			if a.DesiredTransition.Migrate {
				tag += ", migrating"
			}
			allocs = append(allocs, fmt.Sprintf("%s v%d (%s)", a.Name, a.JobVersion, tag))
		}
		status := n.Status
		if n.SchedulingEligibility == structs.NodeSchedulingIneligible {
			status += ", ineligible"
		}
		if n.DrainStrategy != nil {
			status += ", draining"
		}
		list := strings.Join(allocs, ", ")
		if list == "" {
			list = "-"
		}
		fmt.Fprintf(&s.out, "    %s [%s]: %s\n", n.Name, status, list)
	}
	deps, _ := s.h.State.Deployments(nil)
	sort.Slice(deps, func(i, j int) bool {
		if deps[i].JobID != deps[j].JobID {
			return deps[i].JobID < deps[j].JobID
		}
		return deps[i].CreateIndex < deps[j].CreateIndex
	})
	for _, d := range deps {
		if !d.Active() {
			continue
		}
		var groups []string
		for _, g := range sortedKeys(d.TaskGroups) {
			st := d.TaskGroups[g]
			desc := fmt.Sprintf("%s placed %d/%d healthy %d", g, st.PlacedAllocs, st.DesiredTotal, st.HealthyAllocs)
			if st.DesiredCanaries > 0 {
				desc += fmt.Sprintf(" canaries %d/%d", len(st.PlacedCanaries), st.DesiredCanaries)
				if st.Promoted {
					desc += " promoted"
				}
			}
			groups = append(groups, desc)
		}
		fmt.Fprintf(&s.out, "    deployment %s v%d %s: %s\n", d.JobID, d.JobVersion, d.Status, strings.Join(groups, "; "))
	}
}
