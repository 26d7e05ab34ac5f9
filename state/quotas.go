package state

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Quota specs, and what each namespace's allocations use.
//
// Usage is a derived row per namespace (tableNamespaceUsage): the sum
// of structs.QuotaContribution over the namespace's allocations. Every
// allocation write goes through insertAllocTxn, which adds the new
// version's contribution and takes away the old one's; the restore adds
// each allocation as it loads. So reading a namespace's usage is one
// lookup, in the FSM as in the plan applier, whatever the number of
// allocations (a walk over 100,000 allocations per plan would cost the
// leader's one plan-applier goroutine milliseconds per plan). Like the
// lists by node and job, the rows are not in snapshots.

// tableNamespaceUsage holds one namespaceUsage row per namespace that
// has, or had, allocations.
const tableNamespaceUsage = "namespace_usage"

// namespaceUsage is the running sum of a namespace's allocations'
// contributions. Stored rows are never modified.
type namespaceUsage struct {
	Namespace string
	Used      structs.QuotaLimits
}

func quotasSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableQuotas,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			// namespace finds the quota spec that binds itself to a
			// namespace (its Namespace field).
			"namespace": {Name: "namespace", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Namespace"}},
		},
	}
}

func namespaceUsageSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableNamespaceUsage,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Namespace"}},
		},
	}
}

// countUsage records in w that an allocation changed from old to new
// (old nil for a new allocation): the difference of their contributions
// goes to their namespace's row when w is flushed.
func (w *allocSetWriter) countUsage(old, new *structs.Allocation) {
	if old != nil {
		if c := structs.QuotaContribution(old); !c.IsZero() {
			w.addUsage(structs.NamespaceOrDefault(old.Namespace), structs.QuotaLimits{}.Sub(c))
		}
	}
	if c := structs.QuotaContribution(new); !c.IsZero() {
		w.addUsage(structs.NamespaceOrDefault(new.Namespace), c)
	}
}

func (w *allocSetWriter) addUsage(ns string, delta structs.QuotaLimits) {
	if w.usage == nil {
		w.usage = make(map[string]structs.QuotaLimits)
	}
	w.usage[ns] = w.usage[ns].Add(delta)
}

// flushUsage writes the usage rows of the namespaces w counted.
func (w *allocSetWriter) flushUsage(txn *memdb.Txn) error {
	for ns, delta := range w.usage {
		if delta.IsZero() {
			continue
		}
		raw, err := txn.First(tableNamespaceUsage, "id", ns)
		if err != nil {
			return fmt.Errorf("%s lookup: %w", tableNamespaceUsage, err)
		}
		var used structs.QuotaLimits
		if raw != nil {
			used = raw.(*namespaceUsage).Used
		}
		if err := txn.Insert(tableNamespaceUsage, &namespaceUsage{Namespace: ns, Used: used.Add(delta)}); err != nil {
			return fmt.Errorf("%s insert: %w", tableNamespaceUsage, err)
		}
	}
	w.usage = nil
	return nil
}

// NamespaceUsage returns what the non-terminal allocations of namespace
// ns hold; with ws, it watches the namespace's row.
func (s *StateStore) NamespaceUsage(ws memdb.WatchSet, ns string) (structs.QuotaLimits, error) {
	raw, err := first(s.db.Txn(false), ws, tableNamespaceUsage, "id", structs.NamespaceOrDefault(ns))
	if err != nil || raw == nil {
		return structs.QuotaLimits{}, err
	}
	return raw.(*namespaceUsage).Used, nil
}

// UpsertQuotas creates or updates quota specs, keeping each existing
// spec's CreateIndex. All or nothing: it refuses (409, state unchanged)
// a spec whose Namespace is bound to another quota, by that namespace's
// Quota field or by another spec's Namespace field (see structs/quota.go
// for the binding rules).
func (s *StateStore) UpsertQuotas(index uint64, quotas []*structs.QuotaSpec) error {
	txn := s.writeTxn()
	defer txn.Abort()
	for _, q := range quotas {
		if q.Namespace != "" {
			if err := checkQuotaBindingTxn(txn, q); err != nil {
				return err
			}
		}
		raw, err := txn.First(TableQuotas, "id", q.Name)
		if err != nil {
			return fmt.Errorf("quota lookup: %w", err)
		}
		c := q.Copy()
		c.CreateIndex, c.ModifyIndex = index, index
		if raw != nil {
			c.CreateIndex = raw.(*structs.QuotaSpec).CreateIndex
		}
		if err := txn.Insert(TableQuotas, c); err != nil {
			return fmt.Errorf("insert quota %q: %w", q.Name, err)
		}
	}
	if err := setIndex(txn, index, TableQuotas); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// checkQuotaBindingTxn refuses q when its namespace is held to another
// quota.
func checkQuotaBindingTxn(txn *memdb.Txn, q *structs.QuotaSpec) error {
	raw, err := txn.First(TableNamespaces, "id", q.Namespace)
	if err != nil {
		return fmt.Errorf("namespace lookup: %w", err)
	}
	if raw != nil {
		if bound := raw.(*structs.Namespace).Quota; bound != "" && bound != q.Name {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf(
				"quota %q names namespace %q, which is bound to quota %q by its quota field; apply the namespace with -quota %s, or drop the quota's namespace attribute",
				q.Name, q.Namespace, bound, q.Name))
		}
	}
	others, err := collect[*structs.QuotaSpec](txn, nil, TableQuotas, "namespace", q.Namespace)
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Name != q.Name {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf(
				"quota %q names namespace %q, which quota %q already names; a namespace is held to one quota: change or delete %q first",
				q.Name, q.Namespace, o.Name, o.Name))
		}
	}
	return nil
}

// DeleteQuotas deletes quota specs by name, all or nothing. It refuses
// (state unchanged) a quota that does not exist (404) or that a
// namespace's Quota field names (409, naming the namespace).
func (s *StateStore) DeleteQuotas(index uint64, names []string) error {
	txn := s.writeTxn()
	defer txn.Abort()
	namespaces, err := collect[*structs.Namespace](txn, nil, TableNamespaces, "id")
	if err != nil {
		return err
	}
	for _, name := range names {
		raw, err := txn.First(TableQuotas, "id", name)
		if err != nil {
			return fmt.Errorf("quota lookup: %w", err)
		}
		if raw == nil {
			return fmt.Errorf("quota %q: %w", name, ErrNotFound)
		}
		for _, ns := range namespaces {
			if ns.Quota == name {
				return structs.NewError(structs.CodeConflict, fmt.Sprintf(
					"quota %q is referenced by namespace %q; unbind it first with: drover namespace apply -quota \"\" %s", name, ns.Name, ns.Name))
			}
		}
		if err := txn.Delete(TableQuotas, raw); err != nil {
			return fmt.Errorf("delete quota %q: %w", name, err)
		}
	}
	if err := setIndex(txn, index, TableQuotas); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// QuotaByName returns a quota spec, nil if unknown.
func (s *StateStore) QuotaByName(ws memdb.WatchSet, name string) (*structs.QuotaSpec, error) {
	raw, err := first(s.db.Txn(false), ws, TableQuotas, "id", name)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.QuotaSpec), nil
}

// Quotas returns every quota spec, by name.
func (s *StateStore) Quotas(ws memdb.WatchSet) ([]*structs.QuotaSpec, error) {
	return collect[*structs.QuotaSpec](s.db.Txn(false), ws, TableQuotas, "id")
}

// QuotasByNamePrefix returns the quota specs whose name starts with
// prefix, by name.
func (s *StateStore) QuotasByNamePrefix(ws memdb.WatchSet, prefix string) ([]*structs.QuotaSpec, error) {
	return collect[*structs.QuotaSpec](s.db.Txn(false), ws, TableQuotas, "id_prefix", prefix)
}

// QuotaOfNamespace returns the quota spec namespace ns is held to, nil
// when none: the one its Quota field names (nil if that quota does not
// exist), else the one whose Namespace field names it.
func (s *StateStore) QuotaOfNamespace(ws memdb.WatchSet, ns string) (*structs.QuotaSpec, error) {
	txn := s.db.Txn(false)
	ns = structs.NamespaceOrDefault(ns)
	raw, err := first(txn, ws, TableNamespaces, "id", ns)
	if err != nil {
		return nil, err
	}
	if raw != nil {
		if name := raw.(*structs.Namespace).Quota; name != "" {
			q, err := first(txn, ws, TableQuotas, "id", name)
			if err != nil || q == nil {
				return nil, err
			}
			return q.(*structs.QuotaSpec), nil
		}
	}
	q, err := first(txn, ws, TableQuotas, "namespace", ns)
	if err != nil || q == nil {
		return nil, err
	}
	return q.(*structs.QuotaSpec), nil
}

// QuotaUsage returns quota name's limits and what its namespace uses,
// nil if the quota is unknown. The namespace is the one bound to it: a
// namespace whose Quota field names it, else the spec's own Namespace
// (Used is zero when neither binds it).
func (s *StateStore) QuotaUsage(ws memdb.WatchSet, name string) (*structs.QuotaUsage, error) {
	q, err := s.QuotaByName(ws, name)
	if err != nil || q == nil {
		return nil, err
	}
	out := &structs.QuotaUsage{Name: q.Name, Limits: q.Limits}
	namespaces, err := s.Namespaces(ws)
	if err != nil {
		return nil, err
	}
	for _, ns := range namespaces {
		if ns.Quota == name {
			out.Namespace = ns.Name
			break
		}
	}
	if out.Namespace == "" && q.Namespace != "" {
		// Bound by its own field, unless that namespace names another
		// quota (the namespace's field wins).
		if bound, err := s.QuotaOfNamespace(ws, q.Namespace); err == nil && bound != nil && bound.Name == name {
			out.Namespace = q.Namespace
		} else if err != nil {
			return nil, err
		}
	}
	if out.Namespace != "" {
		if out.Used, err = s.NamespaceUsage(ws, out.Namespace); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// QuotaRestore loads one quota spec.
func (r *Restore) QuotaRestore(q *structs.QuotaSpec) error {
	return r.insert(TableQuotas, q)
}
