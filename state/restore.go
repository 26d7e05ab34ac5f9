package state

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Restore bulk-loads a fresh store from an FSM snapshot. Objects are
// inserted as they are, indexes included; only the allocation lists by
// node and job (alloc_sets.go), the quota usage and the service
// instances (services.go) are rebuilt.
//
// Jobs, job versions, allocations, evaluations and deployments without
// a namespace (from a snapshot written before namespaces existed) are
// put in the default namespace as they are loaded: that is the whole
// migration of such a snapshot, and every server does it alike.
type Restore struct {
	txn *memdb.Txn
	// sets rebuilds the allocation rows by node and job, which
	// snapshots do not carry.
	sets allocSetWriter
}

// Restore starts a restore into s, which must be a new, empty store.
func (s *StateStore) Restore() *Restore {
	return &Restore{txn: s.db.Txn(true)}
}

// Abort discards the restore.
func (r *Restore) Abort() { r.txn.Abort() }

// Commit makes the restored data visible.
func (r *Restore) Commit() error {
	if err := r.sets.flush(r.txn); err != nil {
		return fmt.Errorf("restore allocation lists: %w", err)
	}
	// After every node is in: instances carry their node's address.
	if err := r.sets.flushServices(r.txn, 0); err != nil {
		return fmt.Errorf("restore service instances: %w", err)
	}
	r.txn.Commit()
	return nil
}

// IndexRestore loads one table index entry.
func (r *Restore) IndexRestore(e *IndexEntry) error { return r.insert(TableIndex, e) }

// JobRestore loads one job.
func (r *Restore) JobRestore(j *structs.Job) error {
	j.Namespace = structs.NamespaceOrDefault(j.Namespace)
	return r.insert(TableJobs, j)
}

// JobVersionRestore loads one job version.
func (r *Restore) JobVersionRestore(j *structs.Job) error {
	j.Namespace = structs.NamespaceOrDefault(j.Namespace)
	return r.insert(TableJobVersion, j)
}

// NodeRestore loads one node.
func (r *Restore) NodeRestore(n *structs.Node) error { return r.insert(TableNodes, n) }

// AllocRestore loads one allocation.
func (r *Restore) AllocRestore(a *structs.Allocation) error {
	a.Namespace = structs.NamespaceOrDefault(a.Namespace)
	if a.Job != nil {
		a.Job.Namespace = structs.NamespaceOrDefault(a.Job.Namespace)
	}
	if err := r.insert(TableAllocs, a); err != nil {
		return err
	}
	r.sets.countUsage(nil, a)
	r.sets.put(a)
	r.sets.putServices(nil, a)
	return nil
}

// EvalRestore loads one evaluation.
func (r *Restore) EvalRestore(e *structs.Evaluation) error {
	e.Namespace = structs.NamespaceOrDefault(e.Namespace)
	return r.insert(TableEvals, e)
}

func (r *Restore) insert(table string, obj interface{}) error {
	if err := r.txn.Insert(table, obj); err != nil {
		return fmt.Errorf("restore %s: %w", table, err)
	}
	return nil
}

// JobVersions returns every kept job version, for snapshots.
func (s *StateStore) JobVersions(ws memdb.WatchSet) ([]*structs.Job, error) {
	return collect[*structs.Job](s.db.Txn(false), ws, TableJobVersion, "id")
}

// IndexEntries returns every table index entry, for snapshots.
func (s *StateStore) IndexEntries() ([]*IndexEntry, error) {
	return collect[*IndexEntry](s.db.Txn(false), nil, TableIndex, "id")
}

// DeploymentRestore loads one deployment.
func (r *Restore) DeploymentRestore(d *structs.Deployment) error {
	d.Namespace = structs.NamespaceOrDefault(d.Namespace)
	return r.insert(TableDeployment, d)
}

// SchedulerConfigRestore loads the scheduler configuration.
func (r *Restore) SchedulerConfigRestore(c *structs.SchedulerConfiguration) error {
	return r.insert(TableSchedConf, c)
}
