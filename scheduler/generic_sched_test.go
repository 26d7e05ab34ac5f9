package scheduler

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// register writes nodes and a job with its eval into the harness state
// and returns the eval.
func register(t *testing.T, h *Harness, job *structs.Job, nodes ...*structs.Node) *structs.Evaluation {
	t.Helper()
	for _, n := range nodes {
		if err := h.State.UpsertNode(h.NextIndex(), n, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	eval := mock.Eval(job)
	eval.Namespace = job.Namespace
	if err := h.State.UpsertJob(h.NextIndex(), job, 0, eval); err != nil {
		t.Fatal(err)
	}
	stored, _ := h.State.JobByID(nil, job.Namespace, job.ID)
	eval.JobModifyIndex = stored.JobModifyIndex
	return eval
}

// reeval returns a new pending evaluation for job.
func reeval(t *testing.T, h *Harness, jobID string) *structs.Evaluation {
	t.Helper()
	job, _ := h.State.JobByID(nil, "", jobID)
	if job == nil {
		return &structs.Evaluation{ID: structs.GenerateUUID(), Type: structs.JobTypeService, JobID: jobID, Status: structs.EvalStatusPending, Priority: 50}
	}
	e := mock.Eval(job)
	if err := h.State.UpsertEvals(h.NextIndex(), []*structs.Evaluation{e}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestServiceSched_PlacesCount(t *testing.T) {
	h := NewHarness(t)
	job := mock.Job()
	nodes := []*structs.Node{mock.Node(), mock.Node(), mock.Node()}
	eval := register(t, h, job, nodes...)
	h.Process(eval)

	placed := Placed(h.LastPlan())
	if len(placed) != 3 {
		t.Fatalf("placed %d allocations, want 3", len(placed))
	}
	names := make([]string, 0, 3)
	for _, a := range placed {
		names = append(names, a.Name)
		res := a.AllocatedResources.Tasks["server"]
		if res == nil || res.Cpu.CpuShares != 500 || res.Memory.MemoryMB != 256 {
			t.Fatalf("%s: allocated resources %+v", a.Name, res)
		}
		if a.DesiredStatus != structs.AllocDesiredStatusRun || a.ClientStatus != structs.AllocClientStatusPending || a.EvalID != eval.ID {
			t.Fatalf("%s: statuses %s/%s eval %s", a.Name, a.DesiredStatus, a.ClientStatus, a.EvalID)
		}
	}
	sort.Strings(names)
	want := []string{job.ID + ".web[0]", job.ID + ".web[1]", job.ID + ".web[2]"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	e := h.LastEval()
	if e.Status != structs.EvalStatusComplete || len(e.FailedTGAllocs) != 0 {
		t.Fatalf("eval %s, failures %v", e.Status, e.FailedTGAllocs)
	}

	// Processing again changes nothing.
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("a second evaluation of an unchanged job submitted a plan")
	}
}

func TestServiceSched_BinPackPrefersFullerNode(t *testing.T) {
	h := NewHarness(t)
	busy, idle := mock.Node(), mock.Node()
	// busy already runs an allocation using half its memory.
	other := mock.Job()
	existing := mock.Alloc(other, busy, 0)
	existing.AllocatedResources.Tasks["server"].Memory.MemoryMB = 4096
	existing.AllocatedResources.Tasks["server"].Cpu.CpuShares = 2000
	if err := h.State.UpsertJob(h.NextIndex(), other, 0, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*structs.Node{busy, idle} {
		if err := h.State.UpsertNode(h.NextIndex(), n, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.State.UpsertPlanResults(h.NextIndex(), &structs.ApplyPlanResultsRequest{Job: other, AllocsPlaced: []*structs.Allocation{existing}}); err != nil {
		t.Fatal(err)
	}

	// Different jobs pack onto the fuller node (a job's own instances
	// spread, see TestServiceSched_JobAntiAffinitySpreadsInstances).
	for i := 0; i < 4; i++ {
		job := mock.Job()
		job.TaskGroups[0].Count = 1
		h.Process(register(t, h, job))
		for _, a := range Placed(h.LastPlan()) {
			if a.NodeID != busy.ID {
				t.Fatalf("job %d placed on the idle node; bin-packing must prefer the fuller node", i)
			}
		}
	}

	// Once the fuller node is full, the rest goes to the other node:
	// busy had 2000 MHz / 4096 MB left minus 4x(500, 256) = 0 MHz left.
	more := mock.Job()
	more.TaskGroups[0].Count = 1
	h.Process(register(t, h, more))
	for _, a := range Placed(h.LastPlan()) {
		if a.NodeID != idle.ID {
			t.Fatalf("%s placed on the full node", a.Name)
		}
	}
}

func TestServiceSched_JobAntiAffinitySpreadsInstances(t *testing.T) {
	h := NewHarness(t)
	nodes := []*structs.Node{mock.Node(), mock.Node(), mock.Node()}
	job := mock.Job()
	job.TaskGroups[0].Count = 3
	h.Process(register(t, h, job, nodes...))
	per := map[string]int{}
	for _, a := range Placed(h.LastPlan()) {
		per[a.NodeID]++
		if a.Metrics == nil || len(a.Metrics.ScoreMetaData) == 0 {
			t.Fatalf("%s has no placement explanation", a.Name)
		}
	}
	if len(per) != 3 {
		t.Fatalf("3 instances on %d nodes; anti-affinity should spread them", len(per))
	}
}

func TestBinPackScore_Ordering(t *testing.T) {
	capacity := structs.ComparableResources{CPU: 1000, MemoryMB: 1000}
	empty := binPackScore(capacity, structs.ComparableResources{})
	half := binPackScore(capacity, structs.ComparableResources{CPU: 500, MemoryMB: 500})
	full := binPackScore(capacity, capacity)
	if !(empty < half && half < full) {
		t.Fatalf("scores not increasing with utilisation: empty %f half %f full %f", empty, half, full)
	}
	if empty != 0 || full != 1 {
		t.Fatalf("score range: empty %f full %f, want 0 and 1", empty, full)
	}
}

func TestServiceSched_PortAssignment(t *testing.T) {
	t.Run("dynamic ports in range and unique per node", func(t *testing.T) {
		h := NewHarness(t)
		node := mock.Node()
		// A range of 5 ports, 2 already taken by another allocation.
		node.NodeResources.MinDynamicPort, node.NodeResources.MaxDynamicPort = 25000, 25004
		other := mock.Job()
		taken := mock.Alloc(other, node, 0)
		taken.AllocatedResources.Shared.Ports = []structs.AllocatedPortMapping{{Label: "a", Value: 25000}, {Label: "b", Value: 25003}}
		if err := h.State.UpsertNode(h.NextIndex(), node, 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := h.State.UpsertPlanResults(h.NextIndex(), &structs.ApplyPlanResultsRequest{Job: other, AllocsPlaced: []*structs.Allocation{taken}}); err != nil {
			t.Fatal(err)
		}
		job := mock.Job()
		job.TaskGroups[0].Count = 4
		eval := register(t, h, job)
		h.Process(eval)

		placed := Placed(h.LastPlan())
		if len(placed) != 3 {
			t.Fatalf("placed %d, want 3 (only 3 ports free)", len(placed))
		}
		seen := map[int]bool{25000: true, 25003: true}
		for _, a := range placed {
			ports := a.AllocatedResources.Shared.Ports
			if len(ports) != 1 || ports[0].Label != "http" || ports[0].HostIP != "127.0.0.1" {
				t.Fatalf("ports %+v", ports)
			}
			p := ports[0].Value
			if p < 25000 || p > 25004 || seen[p] {
				t.Fatalf("port %d reused or out of range", p)
			}
			seen[p] = true
		}
		m := h.LastEval().FailedTGAllocs["web"]
		if m == nil || m.DimensionExhausted["ports"] != 1 {
			t.Fatalf("fourth allocation should fail on ports: %+v", m)
		}
	})

	t.Run("static port conflict moves to another node", func(t *testing.T) {
		h := NewHarness(t)
		a, b := mock.Node(), mock.Node()
		job := mock.Job()
		job.TaskGroups[0].Count = 2
		job.TaskGroups[0].Networks[0].DynamicPorts = nil
		job.TaskGroups[0].Networks[0].ReservedPorts = []structs.Port{{Label: "http", Value: 8080}}
		h.Process(register(t, h, job, a, b))
		placed := Placed(h.LastPlan())
		if len(placed) != 2 || placed[0].NodeID == placed[1].NodeID {
			t.Fatalf("two allocations with the same static port must land on different nodes")
		}
		for _, al := range placed {
			if al.AllocatedResources.Shared.Ports[0].Value != 8080 {
				t.Fatalf("static port not granted: %+v", al.AllocatedResources.Shared.Ports)
			}
		}
	})
}

func TestServiceSched_ExhaustedCreatesBlockedEval(t *testing.T) {
	h := NewHarness(t)
	node := mock.Node() // 4000 MHz, 8192 MB
	job := mock.Job()
	job.TaskGroups[0].Count = 5
	job.TaskGroups[0].Tasks[0].Resources.MemoryMB = 3000
	h.Process(register(t, h, job, node))

	placed := Placed(h.LastPlan())
	if len(placed) != 2 {
		t.Fatalf("placed %d, want 2 (8192 MB / 3000 MB)", len(placed))
	}
	e := h.LastEval()
	m := e.FailedTGAllocs["web"]
	if m == nil || m.DimensionExhausted["memory"] != 1 || m.NodesExhausted != 1 || m.CoalescedFailures != 2 {
		t.Fatalf("failure metrics %+v", m)
	}
	if e.QueuedAllocations["web"] != 3 || e.BlockedEval == "" {
		t.Fatalf("queued %v blocked eval %q", e.QueuedAllocations, e.BlockedEval)
	}
	if len(h.CreateEvals) != 1 || h.CreateEvals[0].Status != structs.EvalStatusBlocked {
		t.Fatalf("want one blocked eval created, got %+v", h.CreateEvals)
	}

	// Nothing committed exceeds the node.
	allocs, _ := h.State.AllocsByNode(nil, node.ID)
	if fit, dim, _ := structs.AllocsFit(node, allocs); !fit {
		t.Fatalf("node over capacity in %s", dim)
	}

	// Re-processing the blocked eval while still full re-blocks it.
	blocked := h.CreateEvals[0]
	h.Process(blocked)
	if len(h.Reblocked) != 1 || len(h.CreateEvals) != 1 {
		t.Fatalf("a still-blocked eval must be re-blocked, not duplicated: reblocked %d created %d", len(h.Reblocked), len(h.CreateEvals))
	}
}

func TestServiceSched_MissingDriverFiltered(t *testing.T) {
	h := NewHarness(t)
	node := mock.Node()
	delete(node.Drivers, "containerd")
	h.Process(register(t, h, mock.Job(), node))
	m := h.LastEval().FailedTGAllocs["web"]
	if m == nil || m.NodesFiltered != 1 || m.ConstraintFiltered[`missing driver "containerd"`] != 1 {
		t.Fatalf("failure metrics %+v", m)
	}
}

// A detected but unhealthy driver (containerd down) is named as such.
func TestServiceSched_UnhealthyDriverFiltered(t *testing.T) {
	h := NewHarness(t)
	node := mock.Node()
	node.Drivers["containerd"].Healthy = false
	h.Process(register(t, h, mock.Job(), node))
	m := h.LastEval().FailedTGAllocs["web"]
	if m == nil || m.NodesFiltered != 1 || m.ConstraintFiltered[`driver "containerd" unhealthy`] != 1 {
		t.Fatalf("failure metrics %+v", m)
	}
}

func TestServiceSched_ReplacesFailedAndLost(t *testing.T) {
	h := NewHarness(t)
	n1, n2 := mock.Node(), mock.Node()
	job := mock.Job()
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Unlimited: true, DelayFunction: structs.DelayFunctionConstant}
	h.Process(register(t, h, job, n1, n2))
	placed := Placed(h.LastPlan())

	// One allocation fails; the node of another goes down.
	failed := placed[0].Copy()
	failed.ClientStatus = structs.AllocClientStatusFailed
	if err := h.State.UpdateAllocsFromClient(h.NextIndex(), []*structs.Allocation{failed}, h.Now.UnixNano(), nil); err != nil {
		t.Fatal(err)
	}
	var onDown *structs.Allocation
	for _, a := range placed[1:] {
		if a.NodeID != failed.NodeID {
			onDown = a
		}
	}
	downNode := n1.ID
	if onDown != nil {
		downNode = onDown.NodeID
	} else {
		// All on one node: take the failed alloc's node down too.
		onDown = placed[1]
		downNode = onDown.NodeID
	}
	if err := h.State.UpdateNodeStatus(h.NextIndex(), downNode, structs.NodeStatusDown, 0, nil); err != nil {
		t.Fatal(err)
	}

	h.Process(reeval(t, h, job.ID))
	plan := h.LastPlan()
	stops := map[string]*structs.Allocation{}
	for _, s := range Stopped(plan) {
		stops[s.ID] = s
	}
	if s := stops[failed.ID]; s == nil || s.DesiredDescription != descRescheduled {
		t.Fatalf("failed alloc not stopped as rescheduled: %+v", s)
	}
	if s := stops[onDown.ID]; s == nil || s.ClientStatus != structs.AllocClientStatusLost {
		t.Fatalf("alloc on down node not marked lost: %+v", s)
	}
	replacements := map[string]*structs.Allocation{}
	for _, a := range Placed(plan) {
		replacements[a.PreviousAllocation] = a
		if a.NodeID == downNode {
			t.Fatalf("replacement placed on the down node")
		}
	}
	r := replacements[failed.ID]
	if r == nil || r.Name != failed.Name || r.RescheduleTracker == nil || len(r.RescheduleTracker.Events) != 1 {
		t.Fatalf("failed alloc replacement: %+v", r)
	}
	if l := replacements[onDown.ID]; l == nil || l.Name != onDown.Name || l.RescheduleTracker != nil {
		t.Fatalf("lost alloc replacement: %+v", l)
	}
}

func TestServiceSched_RescheduleLaterCreatesFollowup(t *testing.T) {
	h := NewHarness(t)
	job := mock.Job()
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Unlimited: true, Delay: 30 * time.Second, DelayFunction: structs.DelayFunctionConstant}
	h.Process(register(t, h, job, mock.Node()))
	alloc := Placed(h.LastPlan())[0].Copy()
	alloc.ClientStatus = structs.AllocClientStatusFailed
	failedAt := h.Now.Add(-10 * time.Second)
	alloc.TaskStates = map[string]*structs.TaskState{"server": {State: structs.TaskStateDead, Failed: true, FinishedAt: failedAt}}
	// The server stamps the update later than the failure itself.
	if err := h.State.UpdateAllocsFromClient(h.NextIndex(), []*structs.Allocation{alloc}, h.Now.UnixNano(), nil); err != nil {
		t.Fatal(err)
	}

	h.Process(reeval(t, h, job.ID))
	if len(h.CreateEvals) != 1 {
		t.Fatalf("want one follow-up eval, got %d", len(h.CreateEvals))
	}
	follow := h.CreateEvals[0]
	if want := failedAt.Add(30 * time.Second).UnixNano(); follow.WaitUntil != want || follow.TriggeredBy != structs.EvalTriggerRescheduling {
		t.Fatalf("follow-up waits until %d (want %d), trigger %s", follow.WaitUntil, want, follow.TriggeredBy)
	}
	if p := Placed(h.LastPlan()); len(p) != 1 || p[0].FollowupEvalID != follow.ID || p[0].ID != alloc.ID {
		t.Fatalf("failed alloc should be annotated with its follow-up eval: %+v", p)
	}

	// Processing another evaluation before the delay neither replaces
	// the alloc nor creates a second follow-up.
	h.Process(reeval(t, h, job.ID))
	if len(h.CreateEvals) != 1 || len(Placed(h.LastPlan())) != 1 || Placed(h.LastPlan())[0].PreviousAllocation != "" {
		t.Fatalf("early evaluation acted on the failed alloc: %d follow-ups", len(h.CreateEvals))
	}
	// When the follow-up runs at exactly its WaitUntil, the alloc is
	// replaced, even though the plan that annotated the alloc committed
	// after the failure.
	h.Now = time.Unix(0, follow.WaitUntil)
	h.Process(follow)
	repl := Placed(h.LastPlan())
	if len(repl) != 1 || repl[0].PreviousAllocation != alloc.ID {
		t.Fatalf("follow-up did not replace the failed alloc: %+v", repl)
	}
	if ev := repl[0].RescheduleTracker.Events; len(ev) != 1 || ev[0].Delay != 30*time.Second {
		t.Fatalf("reschedule tracker %+v", repl[0].RescheduleTracker)
	}
}

func TestBatchSched_CompleteNotRerunFailedRescheduledOnce(t *testing.T) {
	h := NewHarness(t)
	job := mock.BatchJob() // count 2, reschedule: 1 attempt in 24h, delay 5s
	h.Process(register(t, h, job, mock.Node()))
	placed := Placed(h.LastPlan())
	done, failed := placed[0].Copy(), placed[1].Copy()
	done.ClientStatus = structs.AllocClientStatusComplete
	failed.ClientStatus = structs.AllocClientStatusFailed
	failedAt := h.Now.Add(-time.Minute)
	if err := h.State.UpdateAllocsFromClient(h.NextIndex(), []*structs.Allocation{done, failed}, failedAt.UnixNano(), nil); err != nil {
		t.Fatal(err)
	}
	h.Process(reeval(t, h, job.ID))
	repl := Placed(h.LastPlan())
	if len(repl) != 1 || repl[0].PreviousAllocation != failed.ID {
		t.Fatalf("want only the failed alloc replaced, got %d placements", len(repl))
	}

	// The replacement fails too: the policy's one attempt is used up.
	again := repl[0].Copy()
	again.ClientStatus = structs.AllocClientStatusFailed
	if err := h.State.UpdateAllocsFromClient(h.NextIndex(), []*structs.Allocation{again}, failedAt.UnixNano(), nil); err != nil {
		t.Fatal(err)
	}
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("a batch alloc out of reschedule attempts was replaced again")
	}
	j, _ := h.State.JobByID(nil, "", job.ID)
	if j.Status != structs.JobStatusDead {
		t.Fatalf("batch job with everything finished: status %s", j.Status)
	}
}

func TestServiceSched_ScaleDownAndStop(t *testing.T) {
	h := NewHarness(t)
	job := mock.Job()
	job.TaskGroups[0].Count = 4
	h.Process(register(t, h, job, mock.Node(), mock.Node()))

	smaller := job.Copy()
	smaller.TaskGroups[0].Count = 2
	h.Process(register(t, h, smaller))
	plan := h.LastPlan()
	var stopped []string
	for _, a := range Stopped(plan) {
		stopped = append(stopped, a.Name)
	}
	sort.Strings(stopped)
	if want := []string{job.ID + ".web[2]", job.ID + ".web[3]"}; !reflect.DeepEqual(stopped, want) {
		t.Fatalf("stopped %v, want %v", stopped, want)
	}
	// Count changed only: the others are updated in place.
	if p := Placed(plan); len(p) != 2 || p[0].JobVersion != 1 {
		t.Fatalf("in-place updates %+v", p)
	}

	stoppedJob := smaller.Copy()
	stoppedJob.Stop = true
	h.Process(register(t, h, stoppedJob))
	if s := Stopped(h.LastPlan()); len(s) != 2 || s[0].DesiredDescription != descJobStopped {
		t.Fatalf("job stop stopped %d allocs", len(s))
	}
}

func TestServiceSched_DestructiveUpdate(t *testing.T) {
	h := NewHarness(t)
	job := mock.Job()
	job.TaskGroups[0].Count = 2
	h.Process(register(t, h, job, mock.Node()))
	old := Placed(h.LastPlan())

	v2 := job.Copy()
	v2.TaskGroups[0].Tasks[0].Env["GREETING"] = "changed"
	h.Process(register(t, h, v2))
	plan := h.LastPlan()
	if len(Stopped(plan)) != 2 || len(Placed(plan)) != 2 {
		t.Fatalf("env change: stopped %d placed %d, want 2 and 2", len(Stopped(plan)), len(Placed(plan)))
	}
	prev := map[string]bool{old[0].ID: true, old[1].ID: true}
	for _, a := range Placed(plan) {
		if !prev[a.PreviousAllocation] || a.JobVersion != 1 {
			t.Fatalf("replacement %+v", a)
		}
	}
}

func TestServiceSched_RePlansAfterRejectedPlan(t *testing.T) {
	h := NewHarness(t)
	h.RejectPlans = 1
	h.Process(register(t, h, mock.Job(), mock.Node()))
	if len(h.Plans) != 2 {
		t.Fatalf("submitted %d plans, want a rejected one and a retry", len(h.Plans))
	}
	allocs, _ := h.State.Allocs(nil)
	if len(allocs) != 3 {
		t.Fatalf("committed %d allocs after re-plan, want 3", len(allocs))
	}
}

func TestServiceSched_GivesUpAfterMaxAttempts(t *testing.T) {
	h := NewHarness(t)
	h.RejectPlans = maxServiceScheduleAttempts
	h.Process(register(t, h, mock.Job(), mock.Node()))
	e := h.LastEval()
	if e.Status != structs.EvalStatusFailed || e.NextEval == "" {
		t.Fatalf("eval %s next %q", e.Status, e.NextEval)
	}
	if len(h.CreateEvals) != 1 || h.CreateEvals[0].WaitUntil == 0 {
		t.Fatalf("want a delayed follow-up eval, got %+v", h.CreateEvals)
	}
}

func TestServiceSched_Deterministic(t *testing.T) {
	// The same eval against the same state picks the same nodes and
	// ports.
	var runs [2][]string
	nodes := []*structs.Node{mock.Node(), mock.Node(), mock.Node(), mock.Node()}
	job := mock.Job()
	job.TaskGroups[0].Count = 6
	eval := mock.Eval(job)
	for i := range runs {
		h := NewHarness(t)
		for _, n := range nodes {
			if err := h.State.UpsertNode(h.NextIndex(), n, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.State.UpsertJob(h.NextIndex(), job, 0, eval); err != nil {
			t.Fatal(err)
		}
		h.Process(eval)
		for _, a := range Placed(h.LastPlan()) {
			runs[i] = append(runs[i], fmt.Sprintf("%s@%s:%d", a.Name, a.NodeID, a.AllocatedResources.Shared.Ports[0].Value))
		}
		sort.Strings(runs[i])
	}
	if !reflect.DeepEqual(runs[0], runs[1]) {
		t.Fatalf("placements differ between replays:\n%v\n%v", runs[0], runs[1])
	}
}

func TestServiceSched_PurgedJobStopsEverything(t *testing.T) {
	h := NewHarness(t)
	job := mock.Job()
	h.Process(register(t, h, job, mock.Node()))
	if err := h.State.DeleteJob(h.NextIndex(), job.Namespace, job.ID, nil); err != nil {
		t.Fatal(err)
	}
	h.Process(reeval(t, h, job.ID))
	if s := Stopped(h.LastPlan()); len(s) != 3 {
		t.Fatalf("stopped %d, want 3", len(s))
	}
}
