package state

import (
	"fmt"
	"strings"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Namespaces.
//
// The default namespace always exists: every new store (the FSM's, and
// each one a snapshot is restored into) starts with it, at index 1, the
// same on every server, and it cannot be deleted. Its description and
// meta may be changed like any namespace's.

// defaultNamespaceDescription is the default namespace's description
// until an operator changes it.
const defaultNamespaceDescription = "Default shared namespace"

func namespacesSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableNamespaces,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		},
	}
}

// insertDefaultNamespace writes the default namespace into a new store.
// The table's index is left unset: the row is part of every store, not
// a change that happened at some Raft index.
func insertDefaultNamespace(db *memdb.MemDB) {
	txn := db.Txn(true)
	defer txn.Abort()
	ns := &structs.Namespace{Name: structs.DefaultNamespace, Description: defaultNamespaceDescription, CreateIndex: 1, ModifyIndex: 1}
	if err := txn.Insert(TableNamespaces, ns); err != nil {
		// The schema and the row are constants.
		panic(fmt.Sprintf("state: insert the default namespace: %v", err))
	}
	txn.Commit()
}

// UpsertNamespaces creates or updates namespaces, keeping each existing
// namespace's CreateIndex.
func (s *StateStore) UpsertNamespaces(index uint64, namespaces []*structs.Namespace) error {
	txn := s.writeTxn()
	defer txn.Abort()
	for _, ns := range namespaces {
		raw, err := txn.First(TableNamespaces, "id", ns.Name)
		if err != nil {
			return fmt.Errorf("namespace lookup: %w", err)
		}
		c := ns.Copy()
		c.CreateIndex, c.ModifyIndex = index, index
		if raw != nil {
			c.CreateIndex = raw.(*structs.Namespace).CreateIndex
		}
		if err := txn.Insert(TableNamespaces, c); err != nil {
			return fmt.Errorf("insert namespace %q: %w", ns.Name, err)
		}
	}
	if err := setIndex(txn, index, TableNamespaces); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// DeleteNamespaces deletes namespaces by name, all or nothing. It
// refuses (state unchanged) to delete the default namespace (400), a
// namespace that does not exist (404) or one that still holds jobs
// (409, naming how many: stopped jobs count until they are purged, so
// no job is left in a namespace that is gone).
func (s *StateStore) DeleteNamespaces(index uint64, names []string) error {
	txn := s.writeTxn()
	defer txn.Abort()
	for _, name := range names {
		if name == structs.DefaultNamespace {
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("the %q namespace cannot be deleted: it holds every job that names no namespace", structs.DefaultNamespace))
		}
		raw, err := txn.First(TableNamespaces, "id", name)
		if err != nil {
			return fmt.Errorf("namespace lookup: %w", err)
		}
		if raw == nil {
			return fmt.Errorf("namespace %q: %w", name, ErrNotFound)
		}
		jobs, err := collect[*structs.Job](txn, nil, TableJobs, "id_prefix", name, "")
		if err != nil {
			return err
		}
		if n := len(jobs); n > 0 {
			return structs.NewError(structs.CodeConflict, namespaceHasJobs(name, jobs))
		}
		if v, err := txn.First(TableVariables, "id_prefix", name, ""); err != nil {
			return fmt.Errorf("variables lookup: %w", err)
		} else if v != nil {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf(
				"namespace %q still holds variables (e.g. %s); purge them first: drover var list -namespace %s", name, v.(*structs.VariableEncrypted).Path, name))
		}
		if err := txn.Delete(TableNamespaces, raw); err != nil {
			return fmt.Errorf("delete namespace %q: %w", name, err)
		}
	}
	if err := setIndex(txn, index, TableNamespaces); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// namespaceHasJobs says why a namespace with jobs cannot be deleted and
// what to do about it, naming a few of the jobs.
func namespaceHasJobs(name string, jobs []*structs.Job) string {
	noun := "jobs"
	if len(jobs) == 1 {
		noun = "job"
	}
	ids := make([]string, 0, 3)
	for _, j := range jobs {
		if len(ids) == cap(ids) {
			ids = append(ids, "...")
			break
		}
		ids = append(ids, j.ID)
	}
	return fmt.Sprintf("namespace %q has %d %s (%s); purge them first with drover job stop -purge -namespace %s JOB",
		name, len(jobs), noun, strings.Join(ids, ", "), name)
}

// NamespaceByName returns a namespace, nil if unknown.
func (s *StateStore) NamespaceByName(ws memdb.WatchSet, name string) (*structs.Namespace, error) {
	raw, err := first(s.db.Txn(false), ws, TableNamespaces, "id", name)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.Namespace), nil
}

// Namespaces returns every namespace, by name.
func (s *StateStore) Namespaces(ws memdb.WatchSet) ([]*structs.Namespace, error) {
	return collect[*structs.Namespace](s.db.Txn(false), ws, TableNamespaces, "id")
}

// NamespacesByNamePrefix returns the namespaces whose name starts with
// prefix, by name.
func (s *StateStore) NamespacesByNamePrefix(ws memdb.WatchSet, prefix string) ([]*structs.Namespace, error) {
	return collect[*structs.Namespace](s.db.Txn(false), ws, TableNamespaces, "id_prefix", prefix)
}

// NamespaceRestore loads one namespace.
func (r *Restore) NamespaceRestore(ns *structs.Namespace) error {
	return r.insert(TableNamespaces, ns)
}
