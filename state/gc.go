package state

import (
	"fmt"
	"sort"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Garbage collection: deleting what the leader's collector chose.
//
// GCBatch applies one structs.GCBatchRequest in one transaction. The
// leader chose the rows by their age; here each one is checked again
// against the state, with the structs predicates the leader used
// (structs.AllocCollectable, GCJobDone, NodeCollectable) and nothing
// else (no clock), and a row that is gone or no longer collectable is
// skipped. Rows named under a job that is not theirs are skipped too,
// so an entry cannot reach another job's rows by naming them.
//
// What a deletion takes with it: an allocation leaves its node's and
// job's rows (alloc_sets.go), its quota usage (quotas.go) and its
// service instances (services.go); a job its versions and the service
// VIPs no other job declares (service_vips.go); a node the address of
// its allocations' instances. Jobs that keep living have their status
// recomputed, as every write of their evaluations or allocations does.

// IndexAllocsGC is the key, in the index table, of the Raft index at
// which allocations were last deleted by the garbage collector. The
// answer of Node.GetClientAllocs is never older than it, so a client
// that holds an allocation missing from an answer knows the server
// applied its deletion (client/protocol.go), also after a restart of
// either.
const IndexAllocsGC = "allocs_gc"

// GCBatch deletes, at index, what req names and is still collectable,
// and reports what it deleted and what it skipped.
func (s *StateStore) GCBatch(index uint64, req *structs.GCBatchRequest) (*structs.GCBatchResult, error) {
	if len(req.Nodes) > 0 {
		s.detachNodeViews()
	}
	txn := s.writeTxn()
	defer txn.Abort()
	g := &gcTxn{txn: txn, index: index, res: &structs.GCBatchResult{}, touched: make(map[string]struct{}), refresh: make(map[structs.NamespacedID]struct{})}
	for _, j := range req.Jobs {
		if err := g.job(j); err != nil {
			return nil, err
		}
	}
	if err := g.sets.flush(txn); err != nil {
		return nil, err
	}
	for _, id := range req.Nodes {
		if err := g.node(id); err != nil {
			return nil, err
		}
	}
	if err := g.finish(); err != nil {
		return nil, err
	}
	// The event stream sees each deletion (JobDeleted,
	// AllocationDeleted, ...; events.go).
	s.commit(txn)
	s.allocWatch.notify(g.touched)
	return g.res, nil
}

// gcTxn is one GCBatch transaction.
type gcTxn struct {
	txn   *memdb.Txn
	index uint64
	res   *structs.GCBatchResult
	sets  allocSetWriter
	// touched are the nodes whose allocations were deleted (their
	// clients' watches wake); refresh the jobs whose rows were deleted.
	touched map[string]struct{}
	refresh map[structs.NamespacedID]struct{}
	// instances is set when a service instance was deleted.
	instances bool
}

// job deletes the rows of one job group.
func (g *gcTxn) job(req *structs.GCJobRequest) error {
	ns := structs.NamespaceOrDefault(req.Namespace)
	key := structs.NewNamespacedID(ns, req.JobID)
	var job *structs.Job
	raw, err := g.txn.First(TableJobs, "id", ns, req.JobID)
	if err != nil {
		return fmt.Errorf("job lookup: %w", err)
	}
	if raw != nil {
		job = raw.(*structs.Job)
	}
	evals, err := collect[*structs.Evaluation](g.txn, nil, TableEvals, "job", ns, req.JobID)
	if err != nil {
		return err
	}
	deployments, err := collect[*structs.Deployment](g.txn, nil, TableDeployment, "job", ns, req.JobID)
	if err != nil {
		return err
	}
	// going: the job is collected with its rows, which are then no
	// longer anything the scheduler reads.
	going := false
	if req.Purge && job != nil {
		allocs, err := allocSetTxn(g.txn, nil, tableJobAllocs, jobAllocsKey(ns, req.JobID))
		if err != nil {
			return err
		}
		going = structs.GCJobDone(job, evals, allocs, deployments)
	}
	live := job != nil && !job.Stop && !going
	mine := func(objNS, objJob string) bool { return structs.NamespaceOrDefault(objNS) == ns && objJob == req.JobID }
	deleted := g.res.Deleted.Total()

	for _, id := range req.Evals {
		raw, err := g.txn.First(TableEvals, "id", id)
		if err != nil {
			return fmt.Errorf("eval lookup: %w", err)
		}
		e, _ := raw.(*structs.Evaluation)
		if e == nil || !mine(e.Namespace, e.JobID) || !e.TerminalStatus() {
			g.res.Skipped.Evals++
			continue
		}
		if err := g.txn.Delete(TableEvals, e); err != nil {
			return fmt.Errorf("delete eval: %w", err)
		}
		g.res.Deleted.Evals++
	}

	for _, id := range req.Allocs {
		raw, err := g.txn.First(TableAllocs, "id", id)
		if err != nil {
			return fmt.Errorf("alloc lookup: %w", err)
		}
		a, _ := raw.(*structs.Allocation)
		if a == nil || !mine(a.Namespace, a.JobID) || !structs.AllocCollectable(a, live) {
			g.res.Skipped.Allocs++
			continue
		}
		if err := g.deleteAlloc(a); err != nil {
			return err
		}
	}

	// A live job keeps its newest deployment: the scheduler reads it to
	// continue (or not restart) the rollout of the current version.
	var latest *structs.Deployment
	for _, d := range deployments {
		if latest == nil || d.CreateIndex > latest.CreateIndex {
			latest = d
		}
	}
	for _, id := range req.Deployments {
		raw, err := g.txn.First(TableDeployment, "id", id)
		if err != nil {
			return fmt.Errorf("deployment lookup: %w", err)
		}
		d, _ := raw.(*structs.Deployment)
		if d == nil || !mine(d.Namespace, d.JobID) || d.Active() || (live && d == latest) {
			g.res.Skipped.Deployments++
			continue
		}
		if err := g.txn.Delete(TableDeployment, d); err != nil {
			return fmt.Errorf("delete deployment: %w", err)
		}
		g.res.Deleted.Deployments++
	}

	for _, v := range req.Versions {
		raw, err := g.txn.First(TableJobVersion, "id", ns, req.JobID, v)
		if err != nil {
			return fmt.Errorf("job version lookup: %w", err)
		}
		if raw == nil || (job != nil && job.Version == v) {
			g.res.Skipped.JobVersions++
			continue
		}
		if err := g.txn.Delete(TableJobVersion, raw); err != nil {
			return fmt.Errorf("delete job version: %w", err)
		}
		g.res.Deleted.JobVersions++
	}

	if req.Purge {
		done, err := g.purge(job, going)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
	if job != nil && g.res.Deleted.Total() > deleted {
		g.refresh[key] = struct{}{}
	}
	return nil
}

// purge deletes the job itself when it is done and nothing of it is
// left; it reports whether it did. A job with rows left is neither
// deleted nor skipped: a later entry of the same collection names them
// (see structs.GCJobRequest.Purge).
func (g *gcTxn) purge(job *structs.Job, going bool) (bool, error) {
	if job == nil || !going {
		g.res.Skipped.Jobs++
		return false, nil
	}
	// The job's rows as this transaction left them.
	if err := g.sets.flush(g.txn); err != nil {
		return false, err
	}
	allocs, err := allocSetTxn(g.txn, nil, tableJobAllocs, jobAllocsKey(job.Namespace, job.ID))
	if err != nil {
		return false, err
	}
	left := len(allocs) > 0
	for _, table := range []string{TableEvals, TableDeployment} {
		if left {
			break
		}
		raw, err := g.txn.First(table, "job", job.Namespace, job.ID)
		if err != nil {
			return false, fmt.Errorf("%s lookup: %w", table, err)
		}
		left = raw != nil
	}
	if left {
		return false, nil
	}
	versions, err := deleteJobTxn(g.txn, g.index, job)
	if err != nil {
		return false, err
	}
	g.res.Deleted.Jobs++
	g.res.Deleted.JobVersions += versions
	return true, nil
}

// deleteAlloc deletes an allocation and its derived rows.
func (g *gcTxn) deleteAlloc(a *structs.Allocation) error {
	if err := g.txn.Delete(TableAllocs, a); err != nil {
		return fmt.Errorf("delete alloc: %w", err)
	}
	g.sets.countUsage(a, nil)
	g.sets.remove(a)
	insts, err := collect[*structs.ServiceInstance](g.txn, nil, TableServiceInstances, "alloc", a.ID)
	if err != nil {
		return err
	}
	for _, inst := range insts {
		if err := g.txn.Delete(TableServiceInstances, inst); err != nil {
			return fmt.Errorf("%s delete: %w", TableServiceInstances, err)
		}
		g.instances = true
	}
	g.touched[a.NodeID] = struct{}{}
	g.res.Deleted.Allocs++
	return nil
}

// node deletes a down node none of whose allocations runs.
func (g *gcTxn) node(id string) error {
	raw, err := g.txn.First(TableNodes, "id", id)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	if raw == nil {
		g.res.Skipped.Nodes++
		return nil
	}
	allocs, err := allocSetTxn(g.txn, nil, tableNodeAllocs, id)
	if err != nil {
		return err
	}
	if !structs.NodeCollectable(raw.(*structs.Node), allocs) {
		g.res.Skipped.Nodes++
		return nil
	}
	if err := g.txn.Delete(TableNodes, raw); err != nil {
		return fmt.Errorf("delete node: %w", err)
	}
	// Instances of its allocations, should any have one, lose the
	// address, as with a deregistration.
	if err := refreshNodeInstancesTxn(g.txn, g.index, id, ""); err != nil {
		return err
	}
	g.res.Deleted.Nodes++
	return nil
}

// finish moves the indexes of the tables the transaction changed and
// recomputes the status of the jobs that keep living.
func (g *gcTxn) finish() error {
	d := g.res.Deleted
	var tables []string
	if d.Evals > 0 {
		tables = append(tables, TableEvals)
	}
	if d.Allocs > 0 {
		tables = append(tables, TableAllocs, IndexAllocsGC)
	}
	if d.Deployments > 0 {
		tables = append(tables, TableDeployment)
	}
	if d.Jobs > 0 || d.JobVersions > 0 {
		tables = append(tables, TableJobs, TableJobVersion)
	}
	if d.Nodes > 0 {
		tables = append(tables, TableNodes)
	}
	if g.instances {
		tables = append(tables, TableServiceInstances)
	}
	if err := setIndex(g.txn, g.index, tables...); err != nil {
		return err
	}
	return refreshJobStatusTxn(g.txn, g.index, g.refresh)
}

// AllocsGCIndex returns the Raft index at which the garbage collector
// last deleted allocations (IndexAllocsGC), 0 if it never did.
func (s *StateStore) AllocsGCIndex() (uint64, error) {
	return s.Index(IndexAllocsGC)
}

// AllRowCounts returns the number of rows of every table of the schema,
// the derived ones (which RowCounts leaves out) included: what the
// garbage collector keeps bounded.
func (s *StateStore) AllRowCounts() (map[string]int, error) {
	names := make([]string, 0, len(s.db.DBSchema().Tables))
	for name := range s.db.DBSchema().Tables {
		names = append(names, name)
	}
	sort.Strings(names)
	return s.countRows(names)
}
