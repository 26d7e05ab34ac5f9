package state

import (
	"fmt"
	"sort"
	"strings"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// JobVersionsKept is how many versions of a job the store keeps.
const JobVersionsKept = 6

// UpsertJob registers or updates a job at index, in its namespace (the
// default one when it names none). An unchanged spec keeps its version
// and JobModifyIndex; a changed one gets the next version. submitTime
// (Unix nanos, stamped by the leader) is recorded on new versions.
// eval, when not nil, is written in the same transaction.
//
// UpsertJob allocates no service VIPs (RegisterJob does); it releases
// those no job declares any more (service_vips.go). A stop uses it.
func (s *StateStore) UpsertJob(index uint64, job *structs.Job, submitTime int64, eval *structs.Evaluation) error {
	return s.RegisterJob(index, job, submitTime, eval, "")
}

// RegisterJob is UpsertJob that also allocates the VIPs the job's
// services need from vipRange (a CIDR; "" allocates none). It refuses,
// writing nothing, a job whose published port another service uses or
// whose new VIPs do not fit in the range (CheckJobServices).
func (s *StateStore) RegisterJob(index uint64, job *structs.Job, submitTime int64, eval *structs.Evaluation, vipRange string) error {
	txn := s.writeTxn()
	defer txn.Abort()
	if err := checkPublishedPortsTxn(txn, job); err != nil {
		return err
	}
	stored, err := upsertJobTxn(txn, index, job, submitTime, vipRange)
	if err != nil {
		return err
	}
	if eval != nil {
		// The evaluation is for the version just written.
		e := eval.Copy()
		e.JobModifyIndex = stored.JobModifyIndex
		if e.Namespace == "" {
			e.Namespace = stored.Namespace
		}
		if err := upsertEvalsTxn(txn, index, []*structs.Evaluation{e}); err != nil {
			return err
		}
		if err := refreshJobStatusTxn(txn, index, map[structs.NamespacedID]struct{}{stored.Key(): {}}); err != nil {
			return err
		}
	}
	s.commit(txn)
	return nil
}

// upsertJobTxn writes job and syncs its service VIPs, allocating new
// ones from vipRange ("" allocates none).
func upsertJobTxn(txn *memdb.Txn, index uint64, job *structs.Job, submitTime int64, vipRange string) (*structs.Job, error) {
	job = job.Copy()
	job.Namespace = structs.NamespaceOrDefault(job.Namespace)
	raw, err := txn.First(TableJobs, "id", job.Namespace, job.ID)
	if err != nil {
		return nil, fmt.Errorf("job lookup: %w", err)
	}
	var previous *structs.Job
	if raw != nil {
		previous = raw.(*structs.Job)
	}
	if raw != nil {
		existing := raw.(*structs.Job)
		job.CreateIndex = existing.CreateIndex
		job.ModifyIndex = index
		if existing.SpecChanged(job) {
			job.Version = existing.Version + 1
			job.JobModifyIndex = index
			job.SubmitTime = submitTime
			// A new version is stable only once a deployment of it
			// succeeds, also when it is a copy of a stable one (revert).
			job.Stable = false
		} else {
			job.Version = existing.Version
			job.JobModifyIndex = existing.JobModifyIndex
			job.SubmitTime = existing.SubmitTime
			job.Stable = existing.Stable
		}
		job.Status = existing.Status
	} else {
		job.CreateIndex, job.ModifyIndex, job.JobModifyIndex = index, index, index
		job.Version = 0
		job.SubmitTime = submitTime
		job.Stable = false
	}
	if job.Status == "" {
		job.Status = structs.JobStatusPending
	}
	job.Status = jobStatusTxn(txn, job)
	if err := txn.Insert(TableJobs, job); err != nil {
		return nil, fmt.Errorf("insert job: %w", err)
	}
	if err := upsertJobVersionTxn(txn, job); err != nil {
		return nil, err
	}
	if err := syncServiceVIPsTxn(txn, index, job.Namespace, previous, job, vipRange); err != nil {
		return nil, err
	}
	return job, setIndex(txn, index, TableJobs, TableJobVersion)
}

// upsertJobVersionTxn records job as its version and trims old versions.
func upsertJobVersionTxn(txn *memdb.Txn, job *structs.Job) error {
	if err := txn.Insert(TableJobVersion, job); err != nil {
		return fmt.Errorf("insert job version: %w", err)
	}
	versions, err := collect[*structs.Job](txn, nil, TableJobVersion, "id_prefix", job.Namespace, job.ID)
	if err != nil {
		return err
	}
	// id_prefix matches other jobs whose ID starts with this one's.
	mine := versions[:0]
	for _, v := range versions {
		if v.ID == job.ID {
			mine = append(mine, v)
		}
	}
	if len(mine) <= JobVersionsKept {
		return nil
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Version > mine[j].Version })
	for _, old := range mine[JobVersionsKept:] {
		if err := txn.Delete(TableJobVersion, old); err != nil {
			return fmt.Errorf("trim job version: %w", err)
		}
	}
	return nil
}

// DeleteJob purges job (namespace, jobID) and its versions. eval, when
// not nil, is written in the same transaction.
func (s *StateStore) DeleteJob(index uint64, namespace, jobID string, eval *structs.Evaluation) error {
	namespace = structs.NamespaceOrDefault(namespace)
	txn := s.writeTxn()
	defer txn.Abort()
	if eval != nil {
		if err := upsertEvalsTxn(txn, index, []*structs.Evaluation{eval}); err != nil {
			return err
		}
	}
	raw, err := txn.First(TableJobs, "id", namespace, jobID)
	if err != nil {
		return fmt.Errorf("job lookup: %w", err)
	}
	if raw == nil {
		return fmt.Errorf("job %q in namespace %q: %w", jobID, namespace, ErrNotFound)
	}
	if _, err := deleteJobTxn(txn, index, raw.(*structs.Job)); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// deleteJobTxn deletes job and every version of it, releases the
// service VIPs no other job declares, and returns how many versions it
// deleted.
func deleteJobTxn(txn *memdb.Txn, index uint64, job *structs.Job) (int, error) {
	if err := txn.Delete(TableJobs, job); err != nil {
		return 0, fmt.Errorf("delete job: %w", err)
	}
	if err := syncServiceVIPsTxn(txn, index, job.Namespace, job, nil, ""); err != nil {
		return 0, err
	}
	versions, err := jobVersionsTxn(txn, job.Namespace, job.ID)
	if err != nil {
		return 0, err
	}
	for _, v := range versions {
		if err := txn.Delete(TableJobVersion, v); err != nil {
			return 0, fmt.Errorf("delete job version: %w", err)
		}
	}
	return len(versions), setIndex(txn, index, TableJobs, TableJobVersion)
}

// jobVersionsTxn returns the kept versions of job (namespace, jobID),
// in version order.
func jobVersionsTxn(txn *memdb.Txn, namespace, jobID string) ([]*structs.Job, error) {
	all, err := collect[*structs.Job](txn, nil, TableJobVersion, "id_prefix", namespace, jobID)
	if err != nil {
		return nil, err
	}
	// id_prefix matches other jobs whose ID starts with this one's.
	mine := all[:0]
	for _, v := range all {
		if v.ID == jobID {
			mine = append(mine, v)
		}
	}
	return mine, nil
}

// JobByID returns job (namespace, id), or nil ("" is the default
// namespace).
func (s *StateStore) JobByID(ws memdb.WatchSet, namespace, id string) (*structs.Job, error) {
	raw, err := first(s.db.Txn(false), ws, TableJobs, "id", structs.NamespaceOrDefault(namespace), id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.Job), nil
}

// Jobs returns every job of every namespace, sorted by namespace and
// ID.
func (s *StateStore) Jobs(ws memdb.WatchSet) ([]*structs.Job, error) {
	return collect[*structs.Job](s.db.Txn(false), ws, TableJobs, "id")
}

// JobsByNamespace returns the jobs of a namespace (every namespace's
// for structs.AllNamespaces), sorted by namespace and ID.
func (s *StateStore) JobsByNamespace(ws memdb.WatchSet, namespace string) ([]*structs.Job, error) {
	return s.JobsByIDPrefix(ws, namespace, "")
}

// JobsByIDPrefix returns the jobs of a namespace (every namespace's for
// structs.AllNamespaces) whose ID starts with prefix.
func (s *StateStore) JobsByIDPrefix(ws memdb.WatchSet, namespace, prefix string) ([]*structs.Job, error) {
	txn := s.db.Txn(false)
	if namespace != structs.AllNamespaces {
		return collect[*structs.Job](txn, ws, TableJobs, "id_prefix", structs.NamespaceOrDefault(namespace), prefix)
	}
	all, err := collect[*structs.Job](txn, ws, TableJobs, "id")
	if err != nil || prefix == "" {
		return all, err
	}
	out := all[:0]
	for _, j := range all {
		if strings.HasPrefix(j.ID, prefix) {
			out = append(out, j)
		}
	}
	return out, nil
}

// JobVersionsByID returns the kept versions of job (namespace, id),
// newest first.
func (s *StateStore) JobVersionsByID(ws memdb.WatchSet, namespace, id string) ([]*structs.Job, error) {
	all, err := collect[*structs.Job](s.db.Txn(false), ws, TableJobVersion, "id_prefix", structs.NamespaceOrDefault(namespace), id)
	if err != nil {
		return nil, err
	}
	var out []*structs.Job
	for _, j := range all {
		if j.ID == id {
			out = append(out, j)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, nil
}

// JobByIDAndVersion returns one kept version of job (namespace, id), or
// nil.
func (s *StateStore) JobByIDAndVersion(ws memdb.WatchSet, namespace, id string, version uint64) (*structs.Job, error) {
	raw, err := first(s.db.Txn(false), ws, TableJobVersion, "id", structs.NamespaceOrDefault(namespace), id, version)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.Job), nil
}

// jobStatusTxn derives a job's status from its allocations and
// evaluations:
//   - running: some allocation is not terminal;
//   - dead: the job is stopped, or everything it had has finished;
//   - pending: it waits for an evaluation or has never had anything.
func jobStatusTxn(txn *memdb.Txn, job *structs.Job) string {
	// This runs for every write that touches a job, and a job
	// accumulates thousands of terminal evaluations: live ones are found
	// through their own index (job_live), in one lookup. Allocations
	// are read from the job's row, stopping at the first live one.
	seen := false
	if allocs, err := allocSetTxn(txn, nil, tableJobAllocs, jobAllocsKey(job.Namespace, job.ID)); err == nil {
		for _, a := range allocs {
			seen = true
			if !a.TerminalStatus() {
				return structs.JobStatusRunning
			}
		}
	}
	if job.Stop {
		return structs.JobStatusDead
	}
	if raw, err := txn.First(TableEvals, "job_live", job.Namespace, job.ID); err == nil && raw != nil {
		return structs.JobStatusPending
	}
	if !seen {
		if raw, err := txn.First(TableEvals, "job", job.Namespace, job.ID); err == nil && raw != nil {
			seen = true
		}
	}
	if seen {
		return structs.JobStatusDead
	}
	return structs.JobStatusPending
}

// refreshJobStatusTxn recomputes the status of each job and writes the
// jobs whose status changed.
func refreshJobStatusTxn(txn *memdb.Txn, index uint64, jobIDs map[structs.NamespacedID]struct{}) error {
	ids := make([]structs.NamespacedID, 0, len(jobIDs))
	for id := range jobIDs {
		ids = append(ids, id)
	}
	// Sorted so that the write order, and so the resulting state, does
	// not depend on map iteration order.
	sort.Slice(ids, func(i, j int) bool { return ids[i].Less(ids[j]) })
	changed := false
	for _, id := range ids {
		raw, err := txn.First(TableJobs, "id", id.Namespace, id.ID)
		if err != nil {
			return fmt.Errorf("job lookup: %w", err)
		}
		if raw == nil {
			continue
		}
		job := raw.(*structs.Job)
		status := jobStatusTxn(txn, job)
		if status == job.Status {
			continue
		}
		n := job.Copy()
		n.Status = status
		n.ModifyIndex = index
		if err := txn.Insert(TableJobs, n); err != nil {
			return fmt.Errorf("update job status: %w", err)
		}
		changed = true
	}
	if changed {
		return setIndex(txn, index, TableJobs)
	}
	return nil
}

// setJobStabilityTxn marks one version of a job stable (or not), in the
// versions table and, for the current version, the jobs table.
func setJobStabilityTxn(txn *memdb.Txn, index uint64, namespace, jobID string, version uint64, stable bool) error {
	namespace = structs.NamespaceOrDefault(namespace)
	raw, err := txn.First(TableJobVersion, "id", namespace, jobID, version)
	if err != nil {
		return fmt.Errorf("job version lookup: %w", err)
	}
	if raw != nil {
		v := raw.(*structs.Job).Copy()
		v.Stable = stable
		if err := txn.Insert(TableJobVersion, v); err != nil {
			return fmt.Errorf("update job version: %w", err)
		}
	}
	raw, err = txn.First(TableJobs, "id", namespace, jobID)
	if err != nil {
		return fmt.Errorf("job lookup: %w", err)
	}
	if raw != nil && raw.(*structs.Job).Version == version {
		j := raw.(*structs.Job).Copy()
		j.Stable = stable
		j.ModifyIndex = index
		if err := txn.Insert(TableJobs, j); err != nil {
			return fmt.Errorf("update job: %w", err)
		}
	}
	return setIndex(txn, index, TableJobs, TableJobVersion)
}

// UpdateJobStability marks a version of job (namespace, jobID) stable or
// not.
func (s *StateStore) UpdateJobStability(index uint64, namespace, jobID string, version uint64, stable bool) error {
	txn := s.writeTxn()
	defer txn.Abort()
	if err := setJobStabilityTxn(txn, index, namespace, jobID, version, stable); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}
