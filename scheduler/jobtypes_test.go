package scheduler

import (
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func TestServiceSched_LostAllocReplacedOnAnotherNode(t *testing.T) {
	h := NewHarness(t)
	n1, n2, n3 := namedNode("n1"), namedNode("n2"), namedNode("n3")
	job := smallJob(3)
	h.Process(register(t, h, job, n1, n2, n3))
	if got := placedOn(h.live(job.ID)); len(got) != 3 {
		t.Fatalf("3 instances on %d nodes, want one per node", len(got))
	}

	var lost *structs.Allocation
	for _, a := range h.live(job.ID) {
		if a.NodeID == n2.ID {
			lost = a
		}
	}
	if err := h.State.UpdateNodeStatus(h.NextIndex(), n2.ID, structs.NodeStatusDown, h.Now.UnixNano(), nil); err != nil {
		t.Fatal(err)
	}
	h.Process(reeval(t, h, job.ID))
	plan := h.LastPlan()

	s := stopsByID(plan)[lost.ID]
	if s == nil || s.ClientStatus != structs.AllocClientStatusLost || s.DesiredDescription != descLost {
		t.Fatalf("alloc on the down node: stop %+v, want lost", s)
	}
	if len(Stopped(plan)) != 1 || len(newAllocs(plan)) != 1 {
		t.Fatalf("stopped %d placed %d, want 1 and 1", len(Stopped(plan)), len(newAllocs(plan)))
	}
	r := byPrevious(plan)[lost.ID]
	if r == nil || r.Name != lost.Name || r.NodeID == n2.ID || r.RescheduleTracker != nil {
		t.Fatalf("replacement of the lost alloc: %+v", r)
	}
	live := h.live(job.ID)
	if len(live) != 3 {
		t.Fatalf("%d live allocs after replacement, want 3", len(live))
	}
	for _, a := range live {
		if a.NodeID == n2.ID {
			t.Fatalf("%s still live on the down node", a.Name)
		}
	}
	if e := h.LastEval(); e.Status != structs.EvalStatusComplete || len(e.FailedTGAllocs) != 0 {
		t.Fatalf("eval %s failures %v", e.Status, e.FailedTGAllocs)
	}
}

func TestServiceSched_DeletedNodeAllocsLost(t *testing.T) {
	h := NewHarness(t)
	n1, n2 := namedNode("n1"), namedNode("n2")
	job := smallJob(2)
	h.Process(register(t, h, job, n1, n2))
	if err := h.State.DeleteNode(h.NextIndex(), n1.ID); err != nil {
		t.Fatal(err)
	}
	h.Process(reeval(t, h, job.ID))
	live := h.live(job.ID)
	if len(live) != 2 {
		t.Fatalf("%d live allocs, want 2", len(live))
	}
	for _, a := range live {
		if a.NodeID != n2.ID {
			t.Fatalf("%s live on the deleted node", a.Name)
		}
	}
}

func TestServiceSched_CompletedServiceAllocIsReplaced(t *testing.T) {
	h := NewHarness(t)
	job := smallJob(1)
	h.Process(register(t, h, job, namedNode("n1")))
	a := h.live(job.ID)[0]
	h.clientUpdate(func(a *structs.Allocation) { a.ClientStatus = structs.AllocClientStatusComplete }, a)
	h.Process(reeval(t, h, job.ID))
	r := byPrevious(h.LastPlan())[a.ID]
	if r == nil || r.Name != a.Name {
		t.Fatalf("a service alloc that exited must be replaced: %+v", Placed(h.LastPlan()))
	}
}

func TestBatchSched_LostIncompleteReplacedCompletedNot(t *testing.T) {
	h := NewHarness(t)
	n1, n2 := namedNode("n1"), namedNode("n2")
	job := mock.BatchJob()
	job.TaskGroups[0].Count = 2
	job.TaskGroups[0].Networks = nil
	// Both instances on n1.
	job.Constraints = []*structs.Constraint{{LTarget: "${node.name}", Operand: "=", RTarget: "n1"}}
	h.Process(register(t, h, job, n1, n2))
	allocs := h.live(job.ID)
	if len(allocs) != 2 {
		t.Fatalf("placed %d", len(allocs))
	}
	done, running := allocs[0], allocs[1]
	h.clientUpdate(func(a *structs.Allocation) { a.ClientStatus = structs.AllocClientStatusComplete }, done)
	h.setRunning(false, running)

	// n1 goes down; the job may now run on n2.
	relaxed := job.Copy()
	relaxed.Constraints = nil
	if err := h.State.UpdateNodeStatus(h.NextIndex(), n1.ID, structs.NodeStatusDown, h.Now.UnixNano(), nil); err != nil {
		t.Fatal(err)
	}
	h.Process(register(t, h, relaxed))
	plan := h.LastPlan()
	placed := newAllocs(plan)
	if len(placed) != 1 || placed[0].PreviousAllocation != running.ID || placed[0].NodeID != n2.ID {
		t.Fatalf("want only the unfinished batch alloc replaced on n2, got %+v", placed)
	}
	if s := stopsByID(plan)[running.ID]; s == nil || s.ClientStatus != structs.AllocClientStatusLost {
		t.Fatalf("unfinished alloc on the down node not marked lost: %+v", s)
	}
	if _, stopped := stopsByID(plan)[done.ID]; stopped {
		t.Fatalf("completed batch alloc was touched")
	}
}

func TestBatchSched_FailedRescheduledPerPolicyWithDelay(t *testing.T) {
	h := NewHarness(t)
	job := mock.BatchJob()
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Attempts: 2, Interval: 3600e9, Delay: 10e9, DelayFunction: structs.DelayFunctionConstant}
	h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
	first := h.live(job.ID)[0]
	h.setFailed(first)

	// The delay has not passed: a follow-up waits for it.
	h.Process(reeval(t, h, job.ID))
	if len(h.CreateEvals) != 1 || h.CreateEvals[0].WaitUntil != h.Now.Add(10e9).UnixNano() {
		t.Fatalf("want a follow-up eval at failure+10s, got %+v", h.CreateEvals)
	}
	follow := h.CreateEvals[0]
	h.Now = h.Now.Add(10e9)
	h.Process(follow)
	second := byPrevious(h.LastPlan())[first.ID]
	if second == nil {
		t.Fatalf("follow-up did not reschedule the failed batch alloc")
	}

	// Attempts: 2 within the hour; the second reschedule is the last.
	h.setFailed(second)
	h.Now = h.Now.Add(10e9)
	h.Process(reeval(t, h, job.ID))
	third := byPrevious(h.LastPlan())[second.ID]
	if third == nil || len(third.RescheduleTracker.Events) != 2 {
		t.Fatalf("second reschedule: %+v", third)
	}
	h.setFailed(third)
	h.Now = h.Now.Add(10e9)
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("batch alloc rescheduled beyond its policy's 2 attempts")
	}
}

func TestSystemSched_OneAllocPerEligibleNode(t *testing.T) {
	h := NewHarness(t)
	ready1, ready2 := namedNode("ready1"), namedNode("ready2")
	ineligible := namedNode("ineligible", func(n *structs.Node) { n.SchedulingEligibility = structs.NodeSchedulingIneligible })
	draining := namedNode("draining", func(n *structs.Node) {
		n.SchedulingEligibility = structs.NodeSchedulingIneligible
		n.DrainStrategy = &structs.DrainStrategy{}
	})
	down := namedNode("down", func(n *structs.Node) { n.Status = structs.NodeStatusDown })
	initializing := namedNode("init", func(n *structs.Node) { n.Status = structs.NodeStatusInit })
	otherPool := namedNode("gpu-pool", func(n *structs.Node) { n.NodePool = "gpu" })
	otherDC := namedNode("dc2", func(n *structs.Node) { n.Datacenter = "dc2" })
	noDriver := namedNode("nodriver", func(n *structs.Node) { n.Drivers["containerd"].Healthy = false })

	job := sysJob()
	h.Process(register(t, h, job, ready1, ready2, ineligible, draining, down, initializing, otherPool, otherDC, noDriver))
	got := placedOn(h.live(job.ID))
	if len(got) != 2 || got[ready1.ID] != 1 || got[ready2.ID] != 1 {
		t.Fatalf("system allocs per node %v, want one on each of ready1 and ready2 only", got)
	}
	for _, a := range h.live(job.ID) {
		if a.Name != job.ID+".agent[0]" {
			t.Fatalf("system alloc name %q", a.Name)
		}
	}
	// A node filtered by the job (its driver) is not a failure.
	if e := h.LastEval(); len(e.FailedTGAllocs) != 0 || e.BlockedEval != "" {
		t.Fatalf("system eval reported failures %v", e.FailedTGAllocs)
	}

	// Re-evaluating changes nothing.
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("an unchanged system job submitted a plan")
	}

	// A node joins: only it gets an allocation.
	late := namedNode("late")
	h.addNodes(late)
	h.Process(reeval(t, h, job.ID))
	plan := h.LastPlan()
	if p := Placed(plan); len(p) != 1 || p[0].NodeID != late.ID || len(Stopped(plan)) != 0 {
		t.Fatalf("node join: placed %+v stopped %d, want one alloc on the new node", p, len(Stopped(plan)))
	}

	// ineligible becomes eligible: it gets one too.
	if err := h.State.UpdateNodeEligibility(h.NextIndex(), ineligible.ID, structs.NodeSchedulingEligible, nil); err != nil {
		t.Fatal(err)
	}
	h.Process(reeval(t, h, job.ID))
	if got := placedOn(h.live(job.ID)); len(got) != 4 || got[ineligible.ID] != 1 {
		t.Fatalf("after eligibility: %v", got)
	}
}

func TestSystemSched_NodeDownStopsWithoutReplacement(t *testing.T) {
	h := NewHarness(t)
	n1, n2 := namedNode("n1"), namedNode("n2")
	job := sysJob()
	h.Process(register(t, h, job, n1, n2))
	if err := h.State.UpdateNodeStatus(h.NextIndex(), n1.ID, structs.NodeStatusDown, h.Now.UnixNano(), nil); err != nil {
		t.Fatal(err)
	}
	h.Process(reeval(t, h, job.ID))
	plan := h.LastPlan()
	if len(Placed(plan)) != 0 {
		t.Fatalf("a system alloc of a down node was placed elsewhere: %+v", Placed(plan))
	}
	s := Stopped(plan)
	if len(s) != 1 || s[0].NodeID != n1.ID || s[0].ClientStatus != structs.AllocClientStatusLost {
		t.Fatalf("stops %+v, want the down node's alloc lost", s)
	}
	if got := placedOn(h.live(job.ID)); len(got) != 1 || got[n2.ID] != 1 {
		t.Fatalf("live %v", got)
	}
}

func TestSystemSched_IneligibleNodeKeepsItsAlloc(t *testing.T) {
	// Marking a node ineligible stops new placements only; its running
	// system allocations stay until a drain migrates them.
	h := NewHarness(t)
	n1, n2 := namedNode("n1"), namedNode("n2")
	job := sysJob()
	h.Process(register(t, h, job, n1, n2))
	if err := h.State.UpdateNodeEligibility(h.NextIndex(), n1.ID, structs.NodeSchedulingIneligible, nil); err != nil {
		t.Fatal(err)
	}
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("ineligibility changed the system job: %+v", h.LastPlan())
	}
	if got := placedOn(h.live(job.ID)); len(got) != 2 {
		t.Fatalf("live %v", got)
	}
}

func TestSystemSched_FailedAllocReplacedOnSameNode(t *testing.T) {
	h := NewHarness(t)
	n1, n2 := namedNode("n1"), namedNode("n2")
	job := sysJob()
	h.Process(register(t, h, job, n1, n2))
	var onN1 *structs.Allocation
	for _, a := range h.live(job.ID) {
		if a.NodeID == n1.ID {
			onN1 = a
		}
	}
	h.setFailed(onN1)
	h.Process(reeval(t, h, job.ID))
	p := Placed(h.LastPlan())
	if len(p) != 1 || p[0].NodeID != n1.ID || p[0].PreviousAllocation != onN1.ID {
		t.Fatalf("replacement %+v, want one on n1 replacing the failed alloc", p)
	}
	if got := placedOn(h.live(job.ID)); got[n1.ID] != 1 || got[n2.ID] != 1 {
		t.Fatalf("live %v", got)
	}
}

func TestSystemSched_ConstraintChangeStopsInfeasibleNodes(t *testing.T) {
	h := NewHarness(t)
	a := namedNode("a", withMeta("role", "edge"))
	b := namedNode("b", withMeta("role", "core"))
	job := sysJob()
	h.Process(register(t, h, job, a, b))
	if n := len(h.live(job.ID)); n != 2 {
		t.Fatalf("placed %d", n)
	}
	v2 := job.Copy()
	v2.Constraints = []*structs.Constraint{{LTarget: "${meta.role}", Operand: "=", RTarget: "edge"}}
	h.Process(register(t, h, v2))
	plan := h.LastPlan()
	s := Stopped(plan)
	if len(s) != 1 || s[0].NodeID != b.ID || s[0].DesiredDescription != descNodeInfeasible {
		t.Fatalf("stops %+v, want b's alloc stopped as infeasible", s)
	}
	if p := Placed(plan); len(p) != 1 || p[0].NodeID != a.ID || p[0].CreateIndex == 0 {
		t.Fatalf("a's alloc should be updated in place: %+v", p)
	}
}

func TestSystemSched_DatacenterRemovedStopsAllocs(t *testing.T) {
	// A system job that no longer targets a datacenter (or node pool)
	// must stop its allocations there, not leave them running forever.
	h := NewHarness(t)
	a := namedNode("a")
	b := namedNode("b", func(n *structs.Node) { n.Datacenter = "dc2" })
	job := sysJob()
	job.Datacenters = []string{"dc1", "dc2"}
	h.Process(register(t, h, job, a, b))
	if n := len(h.live(job.ID)); n != 2 {
		t.Fatalf("placed %d, want 2", n)
	}
	v2 := job.Copy()
	v2.Datacenters = []string{"dc1"}
	h.Process(register(t, h, v2))
	if got := placedOn(h.live(job.ID)); len(got) != 1 || got[a.ID] != 1 {
		t.Fatalf("live allocs per node %v, want only a's", got)
	}
	for _, s := range Stopped(h.LastPlan()) {
		if s.NodeID != b.ID {
			t.Fatalf("stopped %s on %s", s.Name, s.NodeName)
		}
	}
}

func TestSystemSched_DestructiveUpdateOnSameNode(t *testing.T) {
	h := NewHarness(t)
	n1, n2 := namedNode("n1"), namedNode("n2")
	job := sysJob()
	h.Process(register(t, h, job, n1, n2))
	old := map[string]string{}
	for _, a := range h.live(job.ID) {
		old[a.ID] = a.NodeID
	}
	v2 := job.Copy()
	v2.TaskGroups[0].Tasks[0].Env = map[string]string{"V": "2"}
	h.Process(register(t, h, v2))
	plan := h.LastPlan()
	if len(Stopped(plan)) != 2 || len(newAllocs(plan)) != 2 {
		t.Fatalf("stopped %d placed %d, want 2 and 2", len(Stopped(plan)), len(newAllocs(plan)))
	}
	for _, a := range newAllocs(plan) {
		if node, ok := old[a.PreviousAllocation]; !ok || node != a.NodeID || a.JobVersion != 1 {
			t.Fatalf("replacement %s on %s replaces %q", a.Name, a.NodeName, a.PreviousAllocation)
		}
	}
}

func TestSystemSched_NoRoomIsAFailure(t *testing.T) {
	h := NewHarness(t)
	small := namedNode("small", withResources(50, 8192))
	big := namedNode("big")
	job := sysJob()
	h.Process(register(t, h, job, small, big))
	if got := placedOn(h.live(job.ID)); len(got) != 1 || got[big.ID] != 1 {
		t.Fatalf("live %v", got)
	}
	e := h.LastEval()
	m := e.FailedTGAllocs["agent"]
	if m == nil || m.DimensionExhausted["cpu"] != 1 || e.QueuedAllocations["agent"] != 1 || e.BlockedEval == "" {
		t.Fatalf("failure %+v queued %v blocked %q", m, e.QueuedAllocations, e.BlockedEval)
	}
}

func TestSystemSched_StoppedJobStopsEverything(t *testing.T) {
	h := NewHarness(t)
	job := sysJob()
	h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
	stopped := job.Copy()
	stopped.Stop = true
	h.Process(register(t, h, stopped))
	if s := Stopped(h.LastPlan()); len(s) != 2 || s[0].DesiredDescription != descJobStopped {
		t.Fatalf("stops %+v", s)
	}
	if n := len(h.live(job.ID)); n != 0 {
		t.Fatalf("%d live after stop", n)
	}
}

func TestSystemSched_UpdateThatDoesNotFitKeepsOldAlloc(t *testing.T) {
	h := NewHarness(t)
	small := namedNode("small", withResources(4000, 1024))
	big := namedNode("big")
	job := sysJob()
	h.Process(register(t, h, job, small, big))
	v1 := job.Copy()
	v1.TaskGroups[0].Tasks[0].Resources.MemoryMB = 2048 // more than small has
	h.Process(register(t, h, v1))
	live := h.live(job.ID)
	if len(live) != 2 {
		t.Fatalf("%d live allocs, want 2: the old one must keep running where the new one does not fit", len(live))
	}
	for _, a := range live {
		want := uint64(1)
		if a.NodeID == small.ID {
			want = 0
		}
		if a.JobVersion != want {
			t.Fatalf("%s on %s runs v%d, want v%d", a.Name, a.NodeName, a.JobVersion, want)
		}
	}
	e := h.LastEval()
	if m := e.FailedTGAllocs["agent"]; m == nil || m.DimensionExhausted["memory"] != 1 || e.BlockedEval == "" {
		t.Fatalf("failure %+v blocked %q", e.FailedTGAllocs, e.BlockedEval)
	}
}
