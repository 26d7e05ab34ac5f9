package state

import (
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// quotaBenchStore holds 100,000 allocations in namespace team-a, placed
// 1,000 per plan as the plan applier commits them.
func quotaBenchStore(b *testing.B) *StateStore {
	b.Helper()
	s := NewStateStore()
	if err := s.UpsertNamespaces(1, []*structs.Namespace{{Name: "team-a"}}); err != nil {
		b.Fatal(err)
	}
	job := mock.Job()
	job.Namespace = "team-a"
	node := mock.Node()
	index := uint64(2)
	for p := 0; p < 100; p++ {
		req := &structs.ApplyPlanResultsRequest{Job: job}
		for i := 0; i < 1000; i++ {
			a := mock.Alloc(job, node, i)
			a.Namespace, a.Job, a.TaskStates = "team-a", nil, nil
			req.AllocsPlaced = append(req.AllocsPlaced, a)
		}
		if err := s.UpsertPlanResults(index, req); err != nil {
			b.Fatal(err)
		}
		index++
	}
	return s
}

// BenchmarkNamespaceUsage_100kAllocs is what the plan applier pays per
// namespace per plan: one lookup of the running sum.
func BenchmarkNamespaceUsage_100kAllocs(b *testing.B) {
	s := quotaBenchStore(b)
	snap := s.Snapshot()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u, err := snap.NamespaceUsage(nil, "team-a")
		if err != nil || u.Allocations != 100_000 {
			b.Fatalf("%+v %v", u, err)
		}
	}
}

// BenchmarkNamespaceUsage_OnDemand100k is the alternative that was not
// taken: summing the namespace's allocations on every plan.
func BenchmarkNamespaceUsage_OnDemand100k(b *testing.B) {
	s := quotaBenchStore(b)
	snap := s.Snapshot()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		all, err := snap.Allocs(nil)
		if err != nil {
			b.Fatal(err)
		}
		var u structs.QuotaLimits
		for _, a := range all {
			if a.Namespace == "team-a" {
				u = u.Add(structs.QuotaContribution(a))
			}
		}
		if u.Allocations != 100_000 {
			b.Fatalf("%+v", u)
		}
	}
}

// BenchmarkUpsertPlanResults_1000 is the write path that keeps the
// running sum: a plan of 1,000 placements onto a store of 100,000.
func BenchmarkUpsertPlanResults_1000(b *testing.B) {
	s := quotaBenchStore(b)
	job := mock.Job()
	job.Namespace = "team-a"
	node := mock.Node()
	index := uint64(1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		req := &structs.ApplyPlanResultsRequest{Job: job}
		for j := 0; j < 1000; j++ {
			a := mock.Alloc(job, node, j)
			a.Namespace, a.Job, a.TaskStates = "team-a", nil, nil
			req.AllocsPlaced = append(req.AllocsPlaced, a)
		}
		b.StartTimer()
		if err := s.UpsertPlanResults(index, req); err != nil {
			b.Fatal(err)
		}
		index++
	}
}
