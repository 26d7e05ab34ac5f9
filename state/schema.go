package state

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Table names.
const (
	TableIndex      = "index"
	TableJobs       = "jobs"
	TableJobVersion = "job_version"
	TableNodes      = "nodes"
	TableAllocs     = "allocs"
	TableEvals      = "evals"
	TableDeployment = "deployment"
	TableSchedConf  = "scheduler_config"
	// ACL tables (acl.go).
	TableACLPolicies  = "acl_policies"
	TableACLTokens    = "acl_tokens"
	TableACLBootstrap = "acl_bootstrap"
	// TableNamespaces holds the namespaces (namespaces.go).
	TableNamespaces = "namespaces"
	// TableQuotas holds the quota specs (quotas.go).
	TableQuotas = "quotas"
)

// Tables lists every table, in the order snapshots write them.
var Tables = []string{TableIndex, TableJobs, TableJobVersion, TableNodes, TableAllocs, TableEvals, TableDeployment, TableSchedConf,
	TableACLPolicies, TableACLTokens, TableACLBootstrap, TableNamespaces, TableQuotas, TableServiceVIPs, TableClusterMeta,
	TableVariables, TableRootKeys}

// IndexEntry records the Raft index at which a table last changed.
type IndexEntry struct {
	Key   string
	Value uint64
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		TableIndex: {
			Name: TableIndex,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
		// Jobs, and everything looked up by job, are keyed by
		// (namespace, job ID): IDs repeat across namespaces. Every
		// object is written with its namespace set (the default one
		// when it names none), as a compound index skips objects with
		// an empty field.
		TableJobs: {
			Name: TableJobs,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: namespacedIndex("ID")},
			},
		},
		TableJobVersion: {
			Name: TableJobVersion,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Namespace"},
					&memdb.StringFieldIndex{Field: "ID"},
					&memdb.UintFieldIndex{Field: "Version"},
				}}},
			},
		},
		TableNodes: {
			Name: TableNodes,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
		TableAllocs: {
			Name: TableAllocs,
			Indexes: map[string]*memdb.IndexSchema{
				// Listing by node and by job goes through the derived
				// rows of alloc_sets.go, not indexes.
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
		tableNodeAllocs: allocSetSchema(tableNodeAllocs),
		tableJobAllocs:  allocSetSchema(tableJobAllocs),
		TableEvals: {
			Name: TableEvals,
			Indexes: map[string]*memdb.IndexSchema{
				"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"job": {Name: "job", Indexer: namespacedIndex("JobID")},
				// job_live holds only non-terminal evaluations, so that a
				// job's status needs one lookup, not a walk over every
				// evaluation the job ever had.
				"job_live": {Name: "job_live", AllowMissing: true, Indexer: &liveEvalJobIndex{*namespacedIndex("JobID")}},
			},
		},
		TableDeployment: {
			Name: TableDeployment,
			Indexes: map[string]*memdb.IndexSchema{
				"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"job": {Name: "job", Indexer: namespacedIndex("JobID")},
			},
		},
		TableSchedConf: {
			Name: TableSchedConf,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.ConditionalIndex{Conditional: func(interface{}) (bool, error) { return true, nil }}},
			},
		},
		TableACLPolicies:  aclPoliciesSchema(),
		TableACLTokens:    aclTokensSchema(),
		TableACLBootstrap: aclBootstrapSchema(),
		TableNamespaces:   namespacesSchema(),
		TableQuotas:       quotasSchema(),
		TableVariables:    variablesSchema(),
		TableRootKeys:     rootKeysSchema(),
		// Derived from the allocations (quotas.go); not in snapshots.
		tableNamespaceUsage: namespaceUsageSchema(),
		// Derived from the allocations and nodes (services.go); not in
		// snapshots.
		TableServiceInstances: serviceInstancesSchema(),
		// Allocated through Raft (service_vips.go); in snapshots.
		TableServiceVIPs: serviceVIPsSchema(),
		// Written once by the first leader (cluster_meta.go); in
		// snapshots.
		TableClusterMeta: clusterMetaSchema(),
	}}
}

func mustNewDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is a constant; failing here is a programming error.
		panic(fmt.Sprintf("state: invalid schema: %v", err))
	}
	return db
}

// namespacedIndex indexes objects by (Namespace, field): lookups pass
// both, and "<index>_prefix" lookups a namespace and an ID prefix.
func namespacedIndex(field string) *memdb.CompoundIndex {
	return &memdb.CompoundIndex{Indexes: []memdb.Indexer{
		&memdb.StringFieldIndex{Field: "Namespace"},
		&memdb.StringFieldIndex{Field: field},
	}}
}

// liveEvalJobIndex indexes non-terminal evaluations by (namespace, job);
// terminal ones are left out of the index.
type liveEvalJobIndex struct {
	memdb.CompoundIndex
}

// FromObject implements memdb.SingleIndexer.
func (i *liveEvalJobIndex) FromObject(obj interface{}) (bool, []byte, error) {
	if e, ok := obj.(*structs.Evaluation); !ok || e.TerminalStatus() {
		return false, nil, nil
	}
	return i.CompoundIndex.FromObject(obj)
}
