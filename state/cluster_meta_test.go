package state

import (
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func TestStateStore_ClusterMetaCreatedOnce(t *testing.T) {
	s := NewStateStore()
	if m, err := s.ClusterMeta(); err != nil || m != nil {
		t.Fatalf("a new store has cluster meta %+v (%v)", m, err)
	}
	first := &structs.ClusterMeta{ClusterID: structs.GenerateUUID(), CreateTime: 1}
	if err := s.CreateClusterMeta(7, first); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClusterMeta(9, &structs.ClusterMeta{ClusterID: structs.GenerateUUID(), CreateTime: 2}); err != nil {
		t.Fatal(err)
	}
	m, _ := s.ClusterMeta()
	if m == nil || m.ClusterID != first.ClusterID || m.CreateIndex != 7 {
		t.Fatalf("cluster meta %+v, want the first one at index 7", m)
	}
	if idx, _ := s.Index(TableClusterMeta); idx != 7 {
		t.Fatalf("table index %d, want 7", idx)
	}
	counts, err := s.RowCounts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[TableClusterMeta] != 1 || counts[TableNamespaces] != 1 || counts[TableJobs] != 0 {
		t.Fatalf("row counts %v", counts)
	}
}

func TestStateStore_HoldsClusterData(t *testing.T) {
	cases := []struct {
		name  string
		write func(s *StateStore) error
		holds bool
	}{
		{"new store", func(*StateStore) error { return nil }, false},
		{"cluster ID only", func(s *StateStore) error {
			return s.CreateClusterMeta(1, &structs.ClusterMeta{ClusterID: structs.GenerateUUID()})
		}, false},
		{"ACL token only", func(s *StateStore) error {
			return s.UpsertACLTokens(1, []*structs.ACLToken{{AccessorID: structs.GenerateUUID(), SecretHash: structs.HashACLSecret("x"), Type: structs.ACLTokenTypeManagement}})
		}, false},
		{"a node", func(s *StateStore) error { return s.UpsertNode(1, mock.Node(), 1, nil) }, true},
		{"a job", func(s *StateStore) error { return s.UpsertJob(1, mock.Job(), 1, nil) }, true},
		{"a namespace", func(s *StateStore) error {
			return s.UpsertNamespaces(1, []*structs.Namespace{{Name: "prod"}})
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStateStore()
			if err := tc.write(s); err != nil {
				t.Fatal(err)
			}
			holds, err := s.HoldsClusterData()
			if err != nil {
				t.Fatal(err)
			}
			if holds != tc.holds {
				t.Fatalf("HoldsClusterData = %v, want %v", holds, tc.holds)
			}
		})
	}
}
