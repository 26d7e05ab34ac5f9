package scheduler

import (
	"testing"

	"github.com/droverhq/drover/structs"
)

// inNamespace returns a copy of job in namespace ns, with the same ID.
func inNamespace(job *structs.Job, ns string) *structs.Job {
	c := job.Copy()
	c.Namespace = ns
	return c
}

// liveIn returns the live allocations of job (ns, id).
func (h *Harness) liveIn(ns, id string) []*structs.Allocation {
	h.t.Helper()
	all, err := h.State.AllocsByJob(nil, ns, id)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*structs.Allocation
	for _, a := range all {
		if !a.TerminalStatus() {
			out = append(out, a)
		}
	}
	return out
}

// TestServiceSched_SameJobIDInTwoNamespaces: a job "web" in team-a is
// placed, updated and stopped without seeing the allocations of "web"
// in the default namespace: no stops, no anti-affinity against them,
// and the default job is untouched throughout.
func TestServiceSched_SameJobIDInTwoNamespaces(t *testing.T) {
	h := NewHarness(t)
	h.addNodes(namedNode("n1"), namedNode("n2"), namedNode("n3"))
	def := smallJob(3)
	h.Process(register(t, h, def))
	if n := len(h.liveIn(structs.DefaultNamespace, def.ID)); n != 3 {
		t.Fatalf("default job: %d live allocations, want 3", n)
	}

	teamA := inNamespace(def, "team-a")
	teamA.TaskGroups[0].Count = 2
	eval := register(t, h, teamA)
	h.Process(eval)
	plan := h.LastPlan()
	placed := Placed(plan)
	if len(placed) != 2 || len(Stopped(plan)) != 0 {
		t.Fatalf("team-a plan: %d placed, %d stopped; want 2 and 0", len(placed), len(Stopped(plan)))
	}
	for _, a := range placed {
		if a.Namespace != "team-a" || a.JobID != def.ID {
			t.Fatalf("placed %s in namespace %q of job %q", a.Name, a.Namespace, a.JobID)
		}
		// The default job's allocations, one on every node, are not
		// this job's: its first placement collides with none.
		if a.Name == structs.AllocName(def.ID, "web", 0) {
			if _, ok := scoreOf(a.Metrics, a.NodeID, structs.ScoreJobAntiAffinity); ok {
				t.Fatalf("the first team-a placement scored anti-affinity against the default job: %+v", a.Metrics.ScoreMetaData)
			}
		}
	}
	if e := h.LastEval(); e.Namespace != "team-a" || e.Status != structs.EvalStatusComplete {
		t.Fatalf("team-a eval %+v", e)
	}
	if n := len(h.liveIn(structs.DefaultNamespace, def.ID)); n != 3 {
		t.Fatalf("default job after team-a's placement: %d live, want 3", n)
	}

	// Re-evaluating the default job changes nothing: team-a's two are
	// not its own.
	plans := len(h.Plans)
	h.Process(reeval(t, h, def.ID))
	if len(h.Plans) != plans {
		plan := h.LastPlan()
		t.Fatalf("re-evaluating the default job planned %d placements and %d stops", len(Placed(plan)), len(Stopped(plan)))
	}

	// Stopping team-a's job stops its two and nothing else.
	stopped := inNamespace(teamA, "team-a")
	stopped.Stop = true
	h.Process(register(t, h, stopped))
	stops := Stopped(h.LastPlan())
	if len(stops) != 2 {
		t.Fatalf("stopping team-a's job stopped %d, want 2", len(stops))
	}
	for _, a := range stops {
		if h.alloc(a.ID).Namespace != "team-a" {
			t.Fatalf("stopping team-a's job stopped %s of namespace %q", a.Name, h.alloc(a.ID).Namespace)
		}
	}
	if n := len(h.liveIn(structs.DefaultNamespace, def.ID)); n != 3 {
		t.Fatalf("default job after team-a's stop: %d live, want 3", n)
	}
}

// TestServiceSched_DistinctHostsPerNamespace: distinct_hosts counts the
// job's own allocations, not those of a same-ID job elsewhere.
func TestServiceSched_DistinctHostsPerNamespace(t *testing.T) {
	h := NewHarness(t)
	h.addNodes(namedNode("n1"), namedNode("n2"), namedNode("n3"))
	def := smallJob(3)
	def.Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts}}
	h.Process(register(t, h, def))
	teamA := inNamespace(def, "team-a")
	h.Process(register(t, h, teamA))
	if e := h.LastEval(); len(e.FailedTGAllocs) != 0 {
		t.Fatalf("team-a's distinct_hosts job could not place: %+v", e.FailedTGAllocs["web"])
	}
	for _, ns := range []string{structs.DefaultNamespace, "team-a"} {
		nodes := map[string]bool{}
		for _, a := range h.liveIn(ns, def.ID) {
			nodes[a.NodeID] = true
		}
		if len(nodes) != 3 {
			t.Fatalf("namespace %s: allocations on %d distinct nodes, want 3", ns, len(nodes))
		}
	}
}

// TestPreemption_SameIDInAnotherNamespaceIsAnotherJob: a job never
// evicts itself, but a same-ID job of lower priority in another
// namespace is another job and may be evicted; its evaluation is in its
// own namespace.
func TestPreemption_SameIDInAnotherNamespaceIsAnotherJob(t *testing.T) {
	h := NewHarness(t)
	node := namedNode("full", withResources(1000, 8192))
	h.addNodes(node)
	low := jobWith(structs.JobTypeService, 20, 2, 500)
	h.Process(register(t, h, low))
	h.setPreemption(true, false, true)

	high := inNamespace(low, "team-a")
	high.Priority = 70
	high.TaskGroups[0].Count = 1
	h.Process(register(t, h, high))
	plan := h.LastPlan()
	if placed := Placed(plan); len(placed) != 1 || placed[0].Namespace != "team-a" {
		t.Fatalf("placed %+v", placed)
	}
	victims := plan.NodePreemptions[node.ID]
	if len(victims) != 1 || victims[0].JobID != low.ID || h.alloc(victims[0].ID).Namespace != structs.DefaultNamespace {
		t.Fatalf("victims %+v", victims)
	}
	var pe *structs.Evaluation
	for _, e := range h.CreateEvals {
		if e.TriggeredBy == structs.EvalTriggerPreemption {
			pe = e
		}
	}
	if pe == nil || pe.JobID != low.ID || pe.Namespace != structs.DefaultNamespace {
		t.Fatalf("preemption eval %+v; want one for the default namespace's job", pe)
	}
	checkNoOvercommit(t, h)
}
