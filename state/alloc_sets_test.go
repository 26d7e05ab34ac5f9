package state

import (
	"sort"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// placeN commits n new allocations of job, round-robin over nodes.
func placeN(t *testing.T, s *StateStore, index uint64, job *structs.Job, nodes []*structs.Node, n int) []*structs.Allocation {
	t.Helper()
	req := &structs.ApplyPlanResultsRequest{Job: job, UpdatedAt: 1}
	for i := 0; i < n; i++ {
		a := mock.Alloc(job, nodes[i%len(nodes)], i)
		a.Job = nil
		req.AllocsPlaced = append(req.AllocsPlaced, a)
	}
	if err := s.UpsertPlanResults(index, req); err != nil {
		t.Fatal(err)
	}
	return req.AllocsPlaced
}

func ids(allocs []*structs.Allocation) []string {
	out := make([]string, len(allocs))
	for i, a := range allocs {
		out[i] = a.ID
	}
	return out
}

func TestAllocSets_ListByNodeAndJobInIDOrder(t *testing.T) {
	s := NewStateStore()
	n1, n2 := mock.Node(), mock.Node()
	job, other := mock.Job(), mock.Job()
	first := placeN(t, s, 10, job, []*structs.Node{n1, n2}, 6)
	second := placeN(t, s, 11, job, []*structs.Node{n1}, 3)
	placeN(t, s, 12, other, []*structs.Node{n2}, 2)

	var want []string
	for _, a := range append(append([]*structs.Allocation(nil), first...), second...) {
		want = append(want, a.ID)
	}
	sort.Strings(want)
	got, err := s.AllocsByJob(nil, job.Namespace, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(got); len(g) != 9 || !sort.StringsAreSorted(g) || g[0] != want[0] || g[8] != want[8] {
		t.Fatalf("job allocations %v, want %v", g, want)
	}
	onN1, _ := s.AllocsByNode(nil, n1.ID)
	onN2, _ := s.AllocsByNode(nil, n2.ID)
	if len(onN1) != 6 || len(onN2) != 5 || !sort.StringsAreSorted(ids(onN1)) {
		t.Fatalf("node allocations: %d on n1 (want 6), %d on n2 (want 5)", len(onN1), len(onN2))
	}
	// A client report changes the allocation, not the lists; the lists
	// return the current version.
	upd := &structs.Allocation{ID: first[0].ID, ClientStatus: structs.AllocClientStatusFailed}
	if err := s.UpdateAllocsFromClient(13, []*structs.Allocation{upd}, 2, nil); err != nil {
		t.Fatal(err)
	}
	onN1, _ = s.AllocsByNode(nil, n1.ID)
	for _, a := range onN1 {
		if a.ID == first[0].ID && a.ClientStatus != structs.AllocClientStatusFailed {
			t.Fatalf("listed a stale version: %s", a.ClientStatus)
		}
	}
	if none, _ := s.AllocsByNode(nil, "no-such-node"); len(none) != 0 {
		t.Fatal("allocations listed for an unknown node")
	}
}

func TestAllocSets_BlockingReadsWakeOnAllocationChange(t *testing.T) {
	for _, n := range []int{3, 200} {
		s := NewStateStore()
		node := mock.Node()
		job := mock.Job()
		placed := placeN(t, s, 10, job, []*structs.Node{node}, n)
		for _, list := range []func(memdb.WatchSet) error{
			func(ws memdb.WatchSet) error { _, err := s.AllocsByJob(ws, job.Namespace, job.ID); return err },
			func(ws memdb.WatchSet) error { _, err := s.AllocsByNode(ws, node.ID); return err },
		} {
			ws := memdb.NewWatchSet()
			if err := list(ws); err != nil {
				t.Fatal(err)
			}
			idx, _ := s.LatestIndex()
			upd := &structs.Allocation{ID: placed[n-1].ID, ClientStatus: structs.AllocClientStatusRunning}
			if err := s.UpdateAllocsFromClient(idx+1, []*structs.Allocation{upd}, 2, nil); err != nil {
				t.Fatal(err)
			}
			if timedOut := ws.Watch(time.After(2 * time.Second)); timedOut {
				t.Fatalf("%d allocations: a blocking read was not woken by a client update", n)
			}
		}
		// A new placement wakes it too.
		ws := memdb.NewWatchSet()
		if _, err := s.AllocsByJob(ws, job.Namespace, job.ID); err != nil {
			t.Fatal(err)
		}
		idx, _ := s.LatestIndex()
		placeN(t, s, idx+1, job, []*structs.Node{node}, 1)
		if timedOut := ws.Watch(time.After(2 * time.Second)); timedOut {
			t.Fatalf("%d allocations: a blocking read was not woken by a new allocation", n)
		}
	}
}
