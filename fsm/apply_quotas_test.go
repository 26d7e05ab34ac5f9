package fsm

import (
	"strings"
	"testing"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// populateQuotas writes two quota specs: "small", which team-a names by
// its Quota field (populateNamespaces), and "everyone", bound to the
// default namespace by its own Namespace field.
func populateQuotas(h *harness) {
	h.mustApply(structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{
		{Name: "small", Description: "team A", Limits: structs.QuotaLimits{CPU: 4000, MemoryMB: 4096, Allocations: 10}},
		{Name: "everyone", Namespace: structs.DefaultNamespace, Limits: structs.QuotaLimits{MemoryMB: 1 << 20}},
	}})
}

func TestFSM_QuotaUpsertAndDelete(t *testing.T) {
	h := newHarness(t)
	h.mustApply(structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{
		{Name: "team-a", Quota: "small"}, {Name: "team-b"},
	}})
	h.mustApply(structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "small", Limits: structs.QuotaLimits{MemoryMB: 1024}}}})
	created := h.index
	if n := len(h.rec.unblocked); n == 0 || h.rec.unblocked[n-1] != h.index {
		t.Fatalf("a quota upsert did not unblock blocked evaluations: %v", h.rec.unblocked)
	}
	h.mustApply(structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "small", Limits: structs.QuotaLimits{MemoryMB: 2048}}}})
	q, err := h.fsm.State().QuotaByName(nil, "small")
	if err != nil || q == nil || q.Limits.MemoryMB != 2048 || q.CreateIndex != created || q.ModifyIndex != h.index {
		t.Fatalf("quota after two upserts: %+v, %v", q, err)
	}
	if bound, _ := h.fsm.State().QuotaOfNamespace(nil, "team-a"); bound == nil || bound.Name != "small" {
		t.Fatalf("team-a is held to %+v, want small", bound)
	}
	h.mustApply(structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "b", Namespace: "team-b"}}})

	cases := []struct {
		name   string
		typ    structs.MessageType
		msg    interface{}
		code   string
		substr string
	}{
		{"bind a namespace bound to another quota", structs.QuotaUpsertRequestType,
			&structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "other", Namespace: "team-a"}}},
			structs.CodeConflict, `which is bound to quota "small" by its quota field`},
		{"bind a namespace another spec names", structs.QuotaUpsertRequestType,
			&structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "other", Namespace: "team-b"}}},
			structs.CodeConflict, `which quota "b" already names`},
		{"delete a quota a namespace names", structs.QuotaDeleteRequestType,
			&structs.QuotaDeleteRequest{Names: []string{"small"}},
			structs.CodeConflict, `quota "small" is referenced by namespace "team-a"`},
		{"delete an unknown quota", structs.QuotaDeleteRequestType,
			&structs.QuotaDeleteRequest{Names: []string{"b", "nope"}},
			"", `quota "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := hashOf(t, h.fsm)
			resp := h.apply(tc.typ, tc.msg)
			err, _ := resp.(error)
			if err == nil || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("got %v, want an error containing %q", resp, tc.substr)
			}
			if tc.code != "" {
				if ce := structs.ParseCodedError(err); ce == nil || ce.Code != tc.code {
					t.Fatalf("got %v, want code %s", err, tc.code)
				}
			}
			if hashOf(t, h.fsm) != before {
				t.Fatal("the refused write changed the state")
			}
		})
	}
	// The binding quota itself may be re-applied naming its namespace.
	h.mustApply(structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "small", Namespace: "team-a"}}})
	h.mustApply(structs.QuotaDeleteRequestType, &structs.QuotaDeleteRequest{Names: []string{"b"}})
	if q, _ := h.fsm.State().QuotaByName(nil, "b"); q != nil {
		t.Fatalf("quota b survived its delete: %+v", q)
	}
}

func TestFSM_QuotaRefusesMalformed(t *testing.T) {
	cases := []struct {
		name string
		typ  structs.MessageType
		msg  interface{}
	}{
		{"upsert nothing", structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{}},
		{"upsert null", structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{nil}}},
		{"upsert bad name", structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "a/b"}}}},
		{"upsert negative limit", structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "a", Limits: structs.QuotaLimits{MemoryMB: -1}}}}},
		{"upsert huge limit", structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "a", Limits: structs.QuotaLimits{CPU: 1 << 62}}}}},
		{"upsert bad namespace", structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "a", Namespace: "*"}}}},
		{"upsert twice", structs.QuotaUpsertRequestType, &structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{{Name: "a"}, {Name: "a"}}}},
		{"delete nothing", structs.QuotaDeleteRequestType, &structs.QuotaDeleteRequest{}},
		{"delete bad name", structs.QuotaDeleteRequestType, &structs.QuotaDeleteRequest{Names: []string{""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			populate(h)
			before := hashOf(t, h.fsm)
			assertRefused(t, h, h.apply(tc.typ, tc.msg), before)
		})
	}
}

// TestFSM_NamespaceUsageFollowsAllocations: the per-namespace usage the
// plan applier reads is kept by every allocation write, and rebuilt by
// a restore.
func TestFSM_NamespaceUsageFollowsAllocations(t *testing.T) {
	h := newHarness(t)
	h.mustApply(structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-a"}}})
	node := mock.Node()
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node, UpdatedAt: 1})
	job := mock.Job()
	job.Namespace = "team-a"
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, SubmitTime: 2})
	var allocs []*structs.Allocation
	for i := 0; i < 3; i++ {
		a := mock.Alloc(job, node, i)
		a.Namespace = "team-a"
		a.Job = nil
		allocs = append(allocs, a)
	}
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: allocs, UpdatedAt: 3})
	want := func(t *testing.T, st *state.StateStore, w structs.QuotaLimits) {
		t.Helper()
		got, err := st.NamespaceUsage(nil, "team-a")
		if err != nil || got != w {
			t.Fatalf("usage of team-a: %+v (%v), want %+v", got, err, w)
		}
		if d, _ := st.NamespaceUsage(nil, structs.DefaultNamespace); !d.IsZero() {
			t.Fatalf("usage of default: %+v, want none", d)
		}
	}
	want(t, h.fsm.State(), structs.QuotaLimits{CPU: 1500, MemoryMB: 768, Allocations: 3})

	// A stop, a client failure and an in-place update of another.
	stop := allocs[0].Copy()
	stop.DesiredStatus = structs.AllocDesiredStatusStop
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job, AllocsStopped: []*structs.Allocation{stop}, UpdatedAt: 4})
	failed := allocs[1].Copy()
	failed.ClientStatus = structs.AllocClientStatusFailed
	h.mustApply(structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{Alloc: []*structs.Allocation{failed}, UpdatedAt: 5})
	want(t, h.fsm.State(), structs.QuotaLimits{CPU: 500, MemoryMB: 256, Allocations: 1})
	bigger := allocs[2].Copy()
	bigger.AllocatedResources.Tasks["server"].Memory.MemoryMB = 1000
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{bigger}, UpdatedAt: 6})
	want(t, h.fsm.State(), structs.QuotaLimits{CPU: 500, MemoryMB: 1000, Allocations: 1})

	snap, err := h.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	restored := New(Config{})
	if err := restored.Restore(ioNopCloser{&sink.Buffer}); err != nil {
		t.Fatal(err)
	}
	want(t, restored.State(), structs.QuotaLimits{CPU: 500, MemoryMB: 1000, Allocations: 1})
}
