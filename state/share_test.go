package state

import (
	"testing"
	"unsafe"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func TestStateStore_ShareNodeStrings(t *testing.T) {
	s := NewStateStore()
	n1, n2 := mock.Node(), mock.Node()
	for i, n := range []*structs.Node{n1, n2} {
		if err := s.UpsertNode(uint64(i+1), n, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	stored1, _ := s.NodeByID(nil, n1.ID)
	stored2, _ := s.NodeByID(nil, n2.ID)
	// Copies, as the decoder makes them.
	own := func(v string) string { return string([]byte(v)) }
	a := &structs.Allocation{ID: "a", NodeID: own(n1.ID), NodeName: own(n1.Name), Metrics: &structs.AllocMetric{
		ScoreMetaData: []*structs.NodeScoreMeta{{NodeID: own(n1.ID)}, {NodeID: own(n2.ID)}, {NodeID: "gone"}},
	}}
	s.ShareNodeStrings([]*structs.Allocation{a})
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	if a.NodeID != n1.ID || !same(a.NodeID, stored1.ID) || !same(a.NodeName, stored1.Name) {
		t.Fatal("the allocation's node ID and name are not the stored node's")
	}
	m := a.Metrics.ScoreMetaData
	if !same(m[0].NodeID, stored1.ID) || !same(m[1].NodeID, stored2.ID) || m[1].NodeID != n2.ID || m[2].NodeID != "gone" {
		t.Fatalf("scored node IDs: %q %q %q", m[0].NodeID, m[1].NodeID, m[2].NodeID)
	}
}
