package scheduler

import (
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// jobWith returns a job of the type and priority, count allocations of
// cpu MHz and 256 MB each, without ports.
func jobWith(typ string, priority, count, cpu int) *structs.Job {
	j := smallJob(count)
	j.ID = mock.Name(typ)
	j.Name = j.ID
	j.Type = typ
	j.Priority = priority
	j.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: cpu, MemoryMB: 256}
	if typ != structs.JobTypeService {
		j.TaskGroups[0].ReschedulePolicy = nil
		j.TaskGroups[0].Update = nil
	}
	j.Canonicalize()
	return j
}

// fillNode places a job that uses the whole of a 1000 MHz node.
func fillNode(t *testing.T, h *Harness, priority int, sizes ...int) []*structs.Allocation {
	t.Helper()
	var out []*structs.Allocation
	for _, size := range sizes {
		j := jobWith(structs.JobTypeService, priority, 1, size)
		h.Process(register(t, h, j))
		out = append(out, h.live(j.ID)...)
	}
	return out
}

func TestPreemption_ServiceEnabledEvictsLowerPriority(t *testing.T) {
	h := NewHarness(t)
	node := namedNode("full", withResources(1000, 8192))
	h.addNodes(node)
	low := fillNode(t, h, 20, 500, 500)
	h.setPreemption(true, false, true)

	high := jobWith(structs.JobTypeService, 70, 1, 500)
	h.Process(register(t, h, high))
	plan := h.LastPlan()
	placed := Placed(plan)
	if len(placed) != 1 || placed[0].NodeID != node.ID {
		t.Fatalf("placed %+v", placed)
	}
	preempted := plan.NodePreemptions[node.ID]
	if len(preempted) != 1 {
		t.Fatalf("preempted %d allocs, want exactly 1 (one 500 MHz alloc frees enough)", len(preempted))
	}
	victim := preempted[0]
	if victim.JobID != low[0].JobID && victim.JobID != low[1].JobID {
		t.Fatalf("victim %s is not one of the low-priority allocs", victim.Name)
	}
	if victim.DesiredStatus != structs.AllocDesiredStatusEvict || victim.PreemptedByAllocation != placed[0].ID ||
		victim.DesiredDescription != "Preempted by allocation "+placed[0].ID {
		t.Fatalf("victim annotations: %s %q by %q", victim.DesiredStatus, victim.DesiredDescription, victim.PreemptedByAllocation)
	}
	if len(placed[0].PreemptedAllocations) != 1 || placed[0].PreemptedAllocations[0] != victim.ID {
		t.Fatalf("preemptor's PreemptedAllocations %v", placed[0].PreemptedAllocations)
	}
	if u := plan.Annotations.DesiredTGUpdates["web"]; u.Preemptions != 1 || u.Place != 1 {
		t.Fatalf("annotations %+v", u)
	}
	if stubs := plan.Annotations.PreemptedAllocs; len(stubs) != 1 || stubs[0].ID != victim.ID {
		t.Fatalf("preempted stubs %+v", stubs)
	}
	if s, ok := scoreOf(placed[0].Metrics, node.ID, "preemption"); !ok || s >= 0 {
		t.Fatalf("preemption score %f (recorded %t), want negative", s, ok)
	}

	// The store records the eviction.
	stored := h.alloc(victim.ID)
	if stored.DesiredStatus != structs.AllocDesiredStatusEvict || stored.PreemptedByAllocation != placed[0].ID {
		t.Fatalf("stored victim %s by %q", stored.DesiredStatus, stored.PreemptedByAllocation)
	}
	// The victim's job gets an evaluation to find it a new home.
	var pe *structs.Evaluation
	for _, e := range h.CreateEvals {
		if e.TriggeredBy == structs.EvalTriggerPreemption {
			if pe != nil {
				t.Fatalf("more than one preemption eval")
			}
			pe = e
		}
	}
	if pe == nil || pe.JobID != victim.JobID || pe.Priority != 20 || pe.Status != structs.EvalStatusPending {
		t.Fatalf("preemption eval %+v", pe)
	}
	h.Process(pe)
	if e := h.LastEval(); e.FailedTGAllocs["web"] == nil || e.BlockedEval == "" {
		t.Fatalf("the evicted job has nowhere to go and should block: %+v", e)
	}
	checkNoOvercommit(t, h)

	// Updating the preemptor in place is not a new preemption.
	v1 := high.Copy()
	v1.Meta = map[string]string{"changed": "yes"}
	h.Process(register(t, h, v1))
	if u := h.LastPlan().Annotations.DesiredTGUpdates["web"]; u.InPlaceUpdate != 1 || u.Preemptions != 0 {
		t.Fatalf("in-place update annotations %+v, want 1 in-place and no preemptions", u)
	}
	if n := len(h.LastPlan().NodePreemptions); n != 0 {
		t.Fatalf("in-place update preempted %d", n)
	}
}

func TestPreemption_DisabledForTheJobType(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		service, batch, system   bool
		jobType                  string
		wantPreempt, wantDefault bool
	}{
		{name: "service disabled by default", jobType: structs.JobTypeService, wantDefault: true},
		{name: "batch disabled by default", jobType: structs.JobTypeBatch, wantDefault: true},
		{name: "system enabled by default", jobType: structs.JobTypeSystem, wantDefault: true, wantPreempt: true},
		{name: "batch enabled", jobType: structs.JobTypeBatch, batch: true, wantPreempt: true},
		{name: "system disabled", jobType: structs.JobTypeSystem, service: true, batch: true},
		{name: "service enabled only for batch", jobType: structs.JobTypeService, batch: true, system: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHarness(t)
			node := namedNode("full", withResources(1000, 8192))
			h.addNodes(node)
			fillNode(t, h, 20, 1000)
			if !tc.wantDefault {
				h.setPreemption(tc.service, tc.batch, tc.system)
			}
			job := jobWith(tc.jobType, 80, 1, 300)
			h.Process(register(t, h, job))
			e := h.LastEval()
			if !tc.wantPreempt {
				if n := len(h.live(job.ID)); n != 0 {
					t.Fatalf("placed %d with preemption disabled", n)
				}
				if m := e.FailedTGAllocs["web"]; m == nil || m.DimensionExhausted["cpu"] != 1 {
					t.Fatalf("failure %+v, want cpu exhausted", e.FailedTGAllocs)
				}
				return
			}
			if n := len(h.live(job.ID)); n != 1 {
				t.Fatalf("placed %d with preemption enabled", n)
			}
			if n := len(h.LastPlan().NodePreemptions[node.ID]); n != 1 {
				t.Fatalf("preempted %d", n)
			}
			checkNoOvercommit(t, h)
		})
	}
}

func TestPreemption_RequiresPriorityDelta(t *testing.T) {
	for _, tc := range []struct {
		priority int
		preempt  bool
	}{{29, false}, {30, true}} {
		h := NewHarness(t)
		h.addNodes(namedNode("full", withResources(1000, 8192)))
		fillNode(t, h, 20, 1000)
		h.setPreemption(true, true, true)
		job := jobWith(structs.JobTypeService, tc.priority, 1, 300)
		h.Process(register(t, h, job))
		if got := len(h.live(job.ID)) == 1; got != tc.preempt {
			t.Fatalf("priority %d over 20: placed %t, want %t", tc.priority, got, tc.preempt)
		}
	}
}

func TestPreemption_PrefersRoomOverEviction(t *testing.T) {
	h := NewHarness(t)
	full := namedNode("full", withResources(1000, 8192))
	h.addNodes(full)
	fillNode(t, h, 20, 1000)
	free := namedNode("free", withResources(1000, 8192))
	h.addNodes(free)
	h.setPreemption(true, true, true)
	job := jobWith(structs.JobTypeService, 90, 1, 300)
	h.Process(register(t, h, job))
	p := Placed(h.LastPlan())
	if len(p) != 1 || p[0].NodeID != free.ID || len(h.LastPlan().NodePreemptions) != 0 {
		t.Fatalf("placed %+v with %d preemptions; a node with room beats evicting", p, len(h.LastPlan().NodePreemptions))
	}
}

func TestPreemption_LowestPriorityAndFewestVictims(t *testing.T) {
	h := NewHarness(t)
	node := namedNode("full", withResources(1000, 8192))
	h.addNodes(node)
	// Priorities 40 (400 MHz), 20 (300), 20 (300): a 300 MHz placement
	// at priority 70 needs one eviction, of a priority-20 allocation.
	mid := fillNode(t, h, 40, 400)
	lows := fillNode(t, h, 20, 300, 300)
	h.setPreemption(true, true, true)
	job := jobWith(structs.JobTypeService, 70, 1, 300)
	h.Process(register(t, h, job))
	pre := h.LastPlan().NodePreemptions[node.ID]
	if len(pre) != 1 {
		t.Fatalf("preempted %d, want 1", len(pre))
	}
	if pre[0].ID == mid[0].ID || (pre[0].ID != lows[0].ID && pre[0].ID != lows[1].ID) {
		t.Fatalf("evicted %s; want a priority-20 allocation", pre[0].Name)
	}

	// A 700 MHz placement needs 700 freed: the two priority-20 ones
	// (600) are not enough alone, so the priority-40 one goes too, and
	// then one of the priority-20 ones is no longer needed.
	h2 := NewHarness(t)
	node2 := namedNode("full", withResources(1000, 8192))
	h2.addNodes(node2)
	mid2 := fillNode(t, h2, 40, 400)
	fillNode(t, h2, 20, 300, 300)
	h2.setPreemption(true, true, true)
	big := jobWith(structs.JobTypeService, 70, 1, 700)
	h2.Process(register(t, h2, big))
	pre = h2.LastPlan().NodePreemptions[node2.ID]
	if len(pre) != 2 {
		t.Fatalf("preempted %d for 700 MHz, want 2", len(pre))
	}
	hasMid := pre[0].ID == mid2[0].ID || pre[1].ID == mid2[0].ID
	if !hasMid {
		t.Fatalf("evicted %s and %s; the 400 MHz one is needed", pre[0].Name, pre[1].Name)
	}
	checkNoOvercommit(t, h2)
}

func TestPreemption_NeverOwnJob(t *testing.T) {
	h := NewHarness(t)
	h.addNodes(namedNode("n", withResources(1000, 8192)))
	h.setPreemption(true, true, true)
	job := jobWith(structs.JobTypeService, 90, 3, 500)
	h.Process(register(t, h, job))
	if n := len(h.live(job.ID)); n != 2 || len(h.LastPlan().NodePreemptions) != 0 {
		t.Fatalf("placed %d, preemptions %d; a job must not evict itself", n, len(h.LastPlan().NodePreemptions))
	}
}

func TestPreemption_SystemJobOnFullNode(t *testing.T) {
	h := NewHarness(t)
	full := namedNode("full", withResources(1000, 8192))
	roomy := namedNode("roomy")
	h.addNodes(full)
	fillNode(t, h, 50, 1000)
	h.addNodes(roomy)
	job := sysJob() // priority 80, preemption on by default for system jobs
	h.Process(register(t, h, job))
	if got := placedOn(h.live(job.ID)); got[full.ID] != 1 || got[roomy.ID] != 1 {
		t.Fatalf("system allocs per node %v, want one on each", got)
	}
	plan := h.LastPlan()
	if pre := plan.NodePreemptions[full.ID]; len(pre) != 1 || !strings.HasPrefix(pre[0].DesiredDescription, "Preempted by allocation ") {
		t.Fatalf("preemptions %+v", plan.NodePreemptions)
	}
	if len(plan.NodePreemptions[roomy.ID]) != 0 {
		t.Fatalf("evicted on the node with room")
	}
	if u := plan.Annotations.DesiredTGUpdates["agent"]; u.Preemptions != 1 || u.Place != 2 {
		t.Fatalf("annotations %+v", u)
	}
	checkNoOvercommit(t, h)
}

// checkNoOvercommit fails if any node's live allocations in the store
// exceed its capacity or share a port.
func checkNoOvercommit(t *testing.T, h *Harness) {
	t.Helper()
	nodes, err := h.State.Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		all, _ := h.State.AllocsByNode(nil, n.ID)
		var live []*structs.Allocation
		for _, a := range all {
			if !a.TerminalStatus() {
				live = append(live, a)
			}
		}
		if fit, dim, used := structs.AllocsFit(n, live); !fit {
			t.Fatalf("node %s over-committed in %s: %+v of %+v", n.Name, dim, used, n.CheckedCapacity())
		}
	}
}
