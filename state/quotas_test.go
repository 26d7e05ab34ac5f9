package state

import (
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// TestStateStore_QuotaBinding: a namespace's Quota field wins over a
// spec's Namespace field, and usage is reported for the namespace that
// is actually bound.
func TestStateStore_QuotaBinding(t *testing.T) {
	s := NewStateStore()
	if err := s.UpsertNamespaces(10, []*structs.Namespace{{Name: "team-a"}, {Name: "team-b"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertQuotas(11, []*structs.QuotaSpec{
		{Name: "own", Namespace: "team-a", Limits: structs.QuotaLimits{MemoryMB: 100}},
		{Name: "chosen", Limits: structs.QuotaLimits{MemoryMB: 200}},
	}); err != nil {
		t.Fatal(err)
	}
	bound := func(ns string) string {
		t.Helper()
		q, err := s.QuotaOfNamespace(nil, ns)
		if err != nil {
			t.Fatal(err)
		}
		if q == nil {
			return ""
		}
		return q.Name
	}
	if got := bound("team-a"); got != "own" {
		t.Fatalf("team-a held to %q, want own (its spec names it)", got)
	}
	if got := bound("team-b"); got != "" {
		t.Fatalf("team-b held to %q, want none", got)
	}
	// The namespace's field wins.
	if err := s.UpsertNamespaces(12, []*structs.Namespace{{Name: "team-a", Quota: "chosen"}}); err != nil {
		t.Fatal(err)
	}
	if got := bound("team-a"); got != "chosen" {
		t.Fatalf("team-a held to %q, want chosen (its Quota field)", got)
	}

	node := mock.Node()
	job := mock.Job()
	job.Namespace = "team-a"
	a := mock.Alloc(job, node, 0)
	a.Namespace = "team-a"
	if err := s.UpsertPlanResults(13, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{a}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		quota, ns string
		used      int64
	}{{"chosen", "team-a", 256}, {"own", "", 0}} {
		u, err := s.QuotaUsage(nil, tc.quota)
		if err != nil || u == nil || u.Namespace != tc.ns || u.Used.MemoryMB != tc.used {
			t.Fatalf("usage of %s: %+v, %v; want namespace %q using %d MB", tc.quota, u, err, tc.ns, tc.used)
		}
	}
	if u, err := s.QuotaUsage(nil, "nope"); u != nil || err != nil {
		t.Fatalf("usage of an unknown quota: %+v, %v", u, err)
	}
}
