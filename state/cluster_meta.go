package state

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// TableClusterMeta holds the cluster's one structs.ClusterMeta row,
// once the first leader wrote it. It is in snapshots (from FSM snapshot
// version 5) and in Hash, so the servers of a cluster are compared on
// it too.
const TableClusterMeta = "cluster_meta"

func clusterMetaSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableClusterMeta,
		Indexes: map[string]*memdb.IndexSchema{
			// One row: every object has the same (empty) key.
			"id": {Name: "id", Unique: true, Indexer: &memdb.ConditionalIndex{Conditional: func(interface{}) (bool, error) { return true, nil }}},
		},
	}
}

// ClusterMeta returns the cluster's metadata, or nil before the first
// leader wrote it.
func (s *StateStore) ClusterMeta() (*structs.ClusterMeta, error) {
	raw, err := s.db.Txn(false).First(TableClusterMeta, "id")
	if err != nil {
		return nil, fmt.Errorf("cluster meta lookup: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*structs.ClusterMeta), nil
}

// CreateClusterMeta stores meta at index unless the cluster has its
// metadata already, in which case nothing changes and the stored one
// is kept: the first writer wins, on every server alike.
func (s *StateStore) CreateClusterMeta(index uint64, meta *structs.ClusterMeta) error {
	txn := s.db.Txn(true)
	defer txn.Abort()
	existing, err := txn.First(TableClusterMeta, "id")
	if err != nil {
		return fmt.Errorf("cluster meta lookup: %w", err)
	}
	if existing != nil {
		return nil
	}
	m := *meta
	m.CreateIndex = index
	if err := txn.Insert(TableClusterMeta, &m); err != nil {
		return fmt.Errorf("insert cluster meta: %w", err)
	}
	if err := setIndex(txn, index, TableClusterMeta); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// ClusterMetaRestore loads the cluster's metadata.
func (r *Restore) ClusterMetaRestore(m *structs.ClusterMeta) error {
	return r.insert(TableClusterMeta, m)
}

// RowCounts returns the number of rows of every table in Tables.
func (s *StateStore) RowCounts() (map[string]int, error) {
	return s.countRows(Tables)
}

// countRows counts the rows of tables in one read transaction.
func (s *StateStore) countRows(tables []string) (map[string]int, error) {
	txn := s.db.Txn(false)
	out := make(map[string]int, len(tables))
	for _, table := range tables {
		iter, err := txn.Get(table, "id")
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", table, err)
		}
		n := 0
		for raw := iter.Next(); raw != nil; raw = iter.Next() {
			n++
		}
		out[table] = n
	}
	return out, nil
}

// holdsClusterData lists the tables whose rows make a cluster one that
// holds data; see HoldsClusterData.
var holdsClusterData = []string{TableJobs, TableJobVersion, TableNodes, TableAllocs, TableEvals, TableDeployment, TableQuotas, TableServiceVIPs, TableVariables}

// HoldsClusterData reports whether the store holds anything a cluster
// is used for: jobs (or their versions), nodes, allocations,
// evaluations, deployments, quotas, service VIPs, variables (not the
// root key every new leader creates), or a namespace besides
// the default one. A cluster that holds none of them is a new one: a
// snapshot restore there needs no -force, whichever cluster the
// snapshot came from. ACL policies and tokens are not counted: a new
// cluster with ACLs on has to be bootstrapped for a token that may
// restore at all.
func (s *StateStore) HoldsClusterData() (bool, error) {
	counts, err := s.RowCounts()
	if err != nil {
		return false, err
	}
	for _, table := range holdsClusterData {
		if counts[table] > 0 {
			return true, nil
		}
	}
	namespaces, err := s.Namespaces(nil)
	if err != nil {
		return false, err
	}
	for _, ns := range namespaces {
		if ns.Name != structs.DefaultNamespace {
			return true, nil
		}
	}
	return false, nil
}
