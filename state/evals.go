package state

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// UpsertEvals writes evaluations and refreshes their jobs' statuses.
func (s *StateStore) UpsertEvals(index uint64, evals []*structs.Evaluation) error {
	txn := s.writeTxn()
	defer txn.Abort()
	if err := upsertEvalsTxn(txn, index, evals); err != nil {
		return err
	}
	jobs := make(map[structs.NamespacedID]struct{})
	for _, e := range evals {
		jobs[e.JobKey()] = struct{}{}
	}
	if err := refreshJobStatusTxn(txn, index, jobs); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

func upsertEvalsTxn(txn *memdb.Txn, index uint64, evals []*structs.Evaluation) error {
	if len(evals) == 0 {
		return nil
	}
	for _, e := range evals {
		raw, err := txn.First(TableEvals, "id", e.ID)
		if err != nil {
			return fmt.Errorf("eval lookup: %w", err)
		}
		n := e.Copy()
		// An evaluation written before namespaces existed is about a
		// job of the default namespace.
		n.Namespace = structs.NamespaceOrDefault(n.Namespace)
		if raw != nil {
			existing := raw.(*structs.Evaluation)
			n.CreateIndex = existing.CreateIndex
			if n.CreateTime == 0 {
				n.CreateTime = existing.CreateTime
			}
		} else {
			n.CreateIndex = index
		}
		n.ModifyIndex = index
		if err := txn.Insert(TableEvals, n); err != nil {
			return fmt.Errorf("insert eval: %w", err)
		}
	}
	return setIndex(txn, index, TableEvals)
}

// EvalByID returns the evaluation, or nil.
func (s *StateStore) EvalByID(ws memdb.WatchSet, id string) (*structs.Evaluation, error) {
	raw, err := first(s.db.Txn(false), ws, TableEvals, "id", id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.Evaluation), nil
}

// EvalsByIDPrefix returns the evaluations of a namespace (of every
// namespace for structs.AllNamespaces) whose ID starts with prefix.
func (s *StateStore) EvalsByIDPrefix(ws memdb.WatchSet, namespace, prefix string) ([]*structs.Evaluation, error) {
	all, err := collect[*structs.Evaluation](s.db.Txn(false), ws, TableEvals, "id_prefix", prefix)
	return inNamespace(all, namespace, func(e *structs.Evaluation) string { return e.Namespace }), err
}

// EvalsByJob returns the evaluations of job (namespace, jobID).
func (s *StateStore) EvalsByJob(ws memdb.WatchSet, namespace, jobID string) ([]*structs.Evaluation, error) {
	return collect[*structs.Evaluation](s.db.Txn(false), ws, TableEvals, "job", structs.NamespaceOrDefault(namespace), jobID)
}

// Evals returns every evaluation.
func (s *StateStore) Evals(ws memdb.WatchSet) ([]*structs.Evaluation, error) {
	return collect[*structs.Evaluation](s.db.Txn(false), ws, TableEvals, "id")
}
