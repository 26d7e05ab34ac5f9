package scheduler

import (
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// drain starts a drain of node: it becomes ineligible.
func (h *Harness) drain(node *structs.Node) {
	h.t.Helper()
	if err := h.State.UpdateNodeDrain(h.NextIndex(), node.ID, &structs.DrainStrategy{StartedAt: h.Now.UnixNano()}, false, h.Now.UnixNano()); err != nil {
		h.t.Fatal(err)
	}
}

// drainEval returns a node-drain evaluation for the job.
func drainEval(t *testing.T, h *Harness, jobID string, node *structs.Node) *structs.Evaluation {
	t.Helper()
	e := reeval(t, h, jobID)
	e.TriggeredBy = structs.EvalTriggerNodeDrain
	e.NodeID = node.ID
	return e
}

// onNode returns the live allocations of the job on node.
func (h *Harness) onNode(jobID string, node *structs.Node) []*structs.Allocation {
	var out []*structs.Allocation
	for _, a := range h.live(jobID) {
		if a.NodeID == node.ID {
			out = append(out, a)
		}
	}
	return out
}

// TestDrain_MigratesMarkedAllocsInBatches drains a node running five
// allocations of a group with migrate max_parallel 2. The leader's
// drainer marks at most max_parallel at a time (server/drainer/drainer.go); the
// scheduler must move exactly the marked ones, off the draining node,
// and leave the rest running there.
func TestDrain_MigratesMarkedAllocsInBatches(t *testing.T) {
	h := NewHarness(t)
	draining := namedNode("draining")
	job := smallJob(5)
	job.TaskGroups[0].Migrate = &structs.MigrateStrategy{MaxParallel: 2}
	h.Process(register(t, h, job, draining))
	if n := len(h.onNode(job.ID, draining)); n != 5 {
		t.Fatalf("%d on the node, want 5", n)
	}
	h.addNodes(namedNode("a"), namedNode("b"))
	h.drain(draining)

	// Ineligibility alone moves nothing.
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("unmarked allocations on a draining node were moved: %+v", Stopped(h.LastPlan()))
	}

	limit := job.TaskGroups[0].MigrateMaxParallel()
	for remaining := 5; remaining > 0; {
		batch := h.onNode(job.ID, draining)
		if len(batch) > limit {
			batch = batch[:limit]
		}
		h.markMigrate(batch...)
		h.Process(drainEval(t, h, job.ID, draining))
		plan := h.LastPlan()
		stops := stopsByID(plan)
		if len(stops) != len(batch) {
			t.Fatalf("stopped %d, want the %d marked", len(stops), len(batch))
		}
		repl := byPrevious(plan)
		for _, a := range batch {
			if s := stops[a.ID]; s == nil || s.DesiredDescription != descMigrated {
				t.Fatalf("marked %s: stop %+v", a.Name, s)
			}
			r := repl[a.ID]
			if r == nil || r.Name != a.Name || r.NodeID == draining.ID {
				t.Fatalf("replacement of %s: %+v", a.Name, r)
			}
		}
		if u := plan.Annotations.DesiredTGUpdates["web"]; u.Migrate != len(batch) || u.Place != 0 {
			t.Fatalf("annotations %+v, want %d migrations", u, len(batch))
		}
		remaining -= len(batch)
		if n := len(h.onNode(job.ID, draining)); n != remaining {
			t.Fatalf("%d left on the draining node, want %d", n, remaining)
		}
		if n := len(h.live(job.ID)); n != 5 {
			t.Fatalf("%d live allocs during the drain, want 5", n)
		}
		h.setRunning(false, newAllocs(plan)...)
	}
}

func TestDrain_SystemAllocStoppedNotReplaced(t *testing.T) {
	h := NewHarness(t)
	n1, n2 := namedNode("n1"), namedNode("n2")
	job := sysJob()
	h.Process(register(t, h, job, n1, n2))
	h.drain(n1)
	h.markMigrate(h.onNode(job.ID, n1)...)
	h.Process(drainEval(t, h, job.ID, n1))
	plan := h.LastPlan()
	if s := Stopped(plan); len(s) != 1 || s[0].NodeID != n1.ID || s[0].DesiredDescription != descMigrated {
		t.Fatalf("stops %+v", s)
	}
	if len(Placed(plan)) != 0 {
		t.Fatalf("system alloc replaced: %+v", Placed(plan))
	}
	if u := plan.Annotations.DesiredTGUpdates["agent"]; u.Migrate != 1 {
		t.Fatalf("annotations %+v", u)
	}
}

func TestDrain_FinishedBatchAllocNotMigrated(t *testing.T) {
	h := NewHarness(t)
	n1 := namedNode("n1")
	job := mock.BatchJob()
	job.TaskGroups[0].Count = 1
	h.Process(register(t, h, job, n1))
	a := h.live(job.ID)[0]
	h.clientUpdate(func(a *structs.Allocation) { a.ClientStatus = structs.AllocClientStatusComplete }, a)
	h.addNodes(namedNode("n2"))
	h.drain(n1)
	h.markMigrate(a)
	plans := len(h.Plans)
	h.Process(drainEval(t, h, job.ID, n1))
	if len(h.Plans) != plans {
		t.Fatalf("a completed batch alloc was migrated: %+v", Placed(h.LastPlan()))
	}
}

func TestDrain_NoRoomElsewhereKeepsAllocRunning(t *testing.T) {
	h := NewHarness(t)
	n1 := namedNode("n1")
	job := smallJob(1)
	h.Process(register(t, h, job, n1))
	h.drain(n1)
	a := h.live(job.ID)[0]
	h.markMigrate(a)
	h.Process(drainEval(t, h, job.ID, n1))
	// Nowhere to go: the alloc keeps running (still marked, so the
	// drain waits for it) and the replacement waits in a blocked eval.
	e := h.LastEval()
	if e.QueuedAllocations["web"] != 1 || e.BlockedEval == "" || e.FailedTGAllocs["web"] == nil {
		t.Fatalf("queued %v blocked %q failures %v", e.QueuedAllocations, e.BlockedEval, e.FailedTGAllocs)
	}
	if m := e.FailedTGAllocs["web"]; m.NodesEvaluated != 0 || m.NodesAvailable["dc1"] != 0 {
		t.Fatalf("failure metrics %+v: no node is available", m)
	}
	if got := h.alloc(a.ID); got.TerminalStatus() || !got.DesiredTransition.Migrate {
		t.Fatalf("alloc stopped without a replacement: %s/%s", got.DesiredStatus, got.ClientStatus)
	}

	// A node joins: the blocked eval moves it.
	n2 := namedNode("n2")
	h.addNodes(n2)
	blocked, _ := h.State.EvalByID(nil, e.BlockedEval)
	h.Process(blocked)
	if r := byPrevious(h.LastPlan())[a.ID]; r == nil || r.NodeID != n2.ID {
		t.Fatalf("blocked eval did not migrate the alloc: %+v", Placed(h.LastPlan()))
	}
	if !h.alloc(a.ID).TerminalStatus() {
		t.Fatalf("migrated alloc not stopped")
	}
}
