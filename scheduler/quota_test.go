package scheduler

import (
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
)

// withQuota creates namespace ns held to a quota of memMB.
func (h *Harness) withQuota(ns string, memMB int64) {
	h.t.Helper()
	if err := h.State.UpsertNamespaces(h.NextIndex(), []*structs.Namespace{{Name: ns}}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.State.UpsertQuotas(h.NextIndex(), []*structs.QuotaSpec{{Name: ns, Namespace: ns, Limits: structs.QuotaLimits{MemoryMB: memMB}}}); err != nil {
		h.t.Fatal(err)
	}
}

// TestServiceSched_QuotaExplainsAndBlocks: placements past the
// namespace's quota fail with the quota's explanation, and the
// evaluation blocks; a raised quota lets the blocked evaluation place
// the rest.
func TestServiceSched_QuotaExplainsAndBlocks(t *testing.T) {
	h := NewHarness(t)
	h.addNodes(namedNode("n1"), namedNode("n2"))
	h.withQuota("team-a", 1024)
	job := inNamespace(smallJob(6), "team-a") // 6 x 256 MB

	h.Process(register(t, h, job))
	if n := len(h.liveIn("team-a", job.ID)); n != 4 {
		t.Fatalf("%d allocations placed, want 4 (1024 MB / 256 MB)", n)
	}
	e := h.LastEval()
	m := e.FailedTGAllocs["web"]
	if m == nil || len(m.QuotaExhausted) != 1 {
		t.Fatalf("failed group metrics %+v, want a quota explanation", m)
	}
	if want := `quota "team-a" exhausted: memory 1024/1024 MB`; !strings.HasPrefix(m.QuotaExhausted[0], want) {
		t.Fatalf("explanation %q, want prefix %q", m.QuotaExhausted[0], want)
	}
	if m.CoalescedFailures != 1 || e.QueuedAllocations["web"] != 2 {
		t.Fatalf("coalesced %d, queued %d; want 1 and 2", m.CoalescedFailures, e.QueuedAllocations["web"])
	}
	if e.BlockedEval == "" {
		t.Fatal("no blocked evaluation for the placements over the quota")
	}
	blocked, _ := h.State.EvalByID(nil, e.BlockedEval)
	if blocked == nil || blocked.Status != structs.EvalStatusBlocked {
		t.Fatalf("blocked eval %+v", blocked)
	}

	// The quota is raised: the blocked evaluation places the rest.
	if err := h.State.UpsertQuotas(h.NextIndex(), []*structs.QuotaSpec{{Name: "team-a", Namespace: "team-a", Limits: structs.QuotaLimits{MemoryMB: 2048}}}); err != nil {
		t.Fatal(err)
	}
	h.Process(blocked)
	if n := len(h.liveIn("team-a", job.ID)); n != 6 {
		t.Fatalf("%d allocations after raising the quota, want 6", n)
	}
	if e := h.LastEval(); len(e.FailedTGAllocs) != 0 {
		t.Fatalf("failures after raising the quota: %+v", e.FailedTGAllocs)
	}
}

// TestServiceSched_QuotaAskAboveLimit: an allocation that alone asks for
// more than the quota is never placed, and the explanation says what it
// asks for.
func TestServiceSched_QuotaAskAboveLimit(t *testing.T) {
	h := NewHarness(t)
	h.addNodes(namedNode("n1"))
	h.withQuota("team-a", 1024)
	job := inNamespace(smallJob(1), "team-a")
	job.TaskGroups[0].Tasks[0].Resources.MemoryMB = 2048
	h.Process(register(t, h, job))
	if n := len(h.liveIn("team-a", job.ID)); n != 0 {
		t.Fatalf("%d allocations placed over the quota", n)
	}
	m := h.LastEval().FailedTGAllocs["web"]
	want := `quota "team-a" exhausted: memory 0/1024 MB (an allocation of group "web" asks for 500 MHz, 2048 MB)`
	if m == nil || len(m.QuotaExhausted) != 1 || m.QuotaExhausted[0] != want {
		t.Fatalf("failed group metrics %+v, want %q", m, want)
	}
	// Other namespaces are not held to it.
	other := smallJob(1)
	other.TaskGroups[0].Tasks[0].Resources.MemoryMB = 2048
	h.Process(register(t, h, other))
	if n := len(h.live(other.ID)); n != 1 {
		t.Fatalf("the default namespace's job: %d placed, want 1", n)
	}
}

// TestSystemSched_QuotaLimitsNodes: a system job in a namespace held to
// two allocations' worth of memory runs on two of three nodes, and
// explains the third.
func TestSystemSched_QuotaLimitsNodes(t *testing.T) {
	h := NewHarness(t)
	h.addNodes(namedNode("n1"), namedNode("n2"), namedNode("n3"))
	h.withQuota("team-a", 600)
	job := inNamespace(sysJob(), "team-a")
	job.TaskGroups[0].Tasks[0].Resources.MemoryMB = 256
	h.Process(register(t, h, job))
	if n := len(h.liveIn("team-a", job.ID)); n != 2 {
		t.Fatalf("%d allocations placed, want 2 (600 MB / 256 MB)", n)
	}
	m := h.LastEval().FailedTGAllocs[job.TaskGroups[0].Name]
	if want := `quota "team-a" exhausted: memory 512/600 MB`; m == nil || len(m.QuotaExhausted) != 1 || !strings.HasPrefix(m.QuotaExhausted[0], want) {
		t.Fatalf("failed group metrics %+v, want %q", m, want)
	}
}
