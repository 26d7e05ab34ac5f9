package state

import (
	"fmt"
	"strings"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Variables and root keys. The store holds variables only sealed
// (structs.VariableEncrypted) and root keys only wrapped; what opens
// them is on the servers' disks (server/keyring). Check-and-set is
// decided here, in log order, so two writers racing on the same
// ModifyIndex cannot both win.

// Table names.
const (
	// TableVariables holds sealed variables by (namespace, path).
	TableVariables = "variables"
	// TableRootKeys holds wrapped root keys by key ID.
	TableRootKeys = "root_keys"
)

func variablesSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableVariables,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: namespacedIndex("Path")},
			// key_id finds what a root key still seals (re-encryption
			// after a rotation, the keyring list's counts).
			"key_id": {Name: "key_id", Indexer: &memdb.StringFieldIndex{Field: "KeyID"}},
		},
	}
}

func rootKeysSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableRootKeys,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "KeyID"}},
		},
	}
}

// VariableApply applies one variable write at index and says what
// happened. A CAS operation whose expectation does not hold changes
// nothing and returns Conflicted with the variable's metadata. A
// re-encryption applies only if the variable still has ModifyIndex CAS,
// and keeps its indexes and times.
func (s *StateStore) VariableApply(index uint64, req *structs.VariableApplyRequest) (*structs.VariableApplyResponse, error) {
	if req.Var == nil {
		return nil, fmt.Errorf("variable apply without a variable")
	}
	ns := structs.NamespaceOrDefault(req.Var.Namespace)
	txn := s.writeTxn()
	defer txn.Abort()
	raw, err := txn.First(TableVariables, "id", ns, req.Var.Path)
	if err != nil {
		return nil, fmt.Errorf("variable lookup: %w", err)
	}
	var cur *structs.VariableEncrypted
	if raw != nil {
		cur = raw.(*structs.VariableEncrypted)
	}
	out := &structs.VariableApplyResponse{Index: index}
	conflict := func() (*structs.VariableApplyResponse, error) {
		out.Conflicted = true
		if cur != nil {
			m := cur.VariableMetadata
			out.Conflict = &m
		}
		return out, nil
	}
	curIndex := uint64(0)
	if cur != nil {
		curIndex = cur.ModifyIndex
	}
	switch req.Op {
	case structs.VarOpSet, structs.VarOpCAS:
		if req.Op == structs.VarOpCAS && curIndex != req.CAS {
			return conflict()
		}
		if req.ReencryptOnly && (cur == nil || curIndex != req.CAS) {
			return conflict()
		}
		v := *req.Var
		v.Namespace = ns
		v.Data = append([]byte(nil), req.Var.Data...)
		if req.ReencryptOnly {
			v.VariableMetadata = cur.VariableMetadata
		} else {
			v.CreateIndex, v.ModifyIndex = index, index
			if cur != nil {
				v.CreateIndex, v.CreateTime = cur.CreateIndex, cur.CreateTime
			}
		}
		if err := txn.Insert(TableVariables, &v); err != nil {
			return nil, fmt.Errorf("insert variable %s/%s: %w", ns, v.Path, err)
		}
		m := v.VariableMetadata
		out.Meta = &m
	case structs.VarOpDelete, structs.VarOpDeleteCAS:
		if req.Op == structs.VarOpDeleteCAS && curIndex != req.CAS {
			return conflict()
		}
		if cur == nil {
			return out, nil
		}
		if err := txn.Delete(TableVariables, cur); err != nil {
			return nil, fmt.Errorf("delete variable %s/%s: %w", ns, cur.Path, err)
		}
	default:
		return nil, fmt.Errorf("unknown variable operation %q", req.Op)
	}
	if err := setIndex(txn, index, TableVariables); err != nil {
		return nil, err
	}
	s.commit(txn)
	return out, nil
}

// VariableByPath returns a sealed variable, nil if it does not exist.
func (s *StateStore) VariableByPath(ws memdb.WatchSet, ns, path string) (*structs.VariableEncrypted, error) {
	raw, err := first(s.db.Txn(false), ws, TableVariables, "id", structs.NamespaceOrDefault(ns), path)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.VariableEncrypted), nil
}

// VariablesByPrefix calls fn for the variables of namespace ns (every
// namespace for "*") whose path starts with prefix, by namespace and
// path, until fn returns false.
func (s *StateStore) VariablesByPrefix(ws memdb.WatchSet, ns, prefix string, fn func(*structs.VariableEncrypted) bool) error {
	txn := s.db.Txn(false)
	var (
		iter memdb.ResultIterator
		err  error
	)
	if ns == structs.AllNamespaces {
		iter, err = txn.Get(TableVariables, "id")
	} else {
		iter, err = txn.Get(TableVariables, "id_prefix", structs.NamespaceOrDefault(ns), prefix)
	}
	if err != nil {
		return fmt.Errorf("variables scan: %w", err)
	}
	watch(ws, iter.WatchCh())
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		v := raw.(*structs.VariableEncrypted)
		if ns == structs.AllNamespaces && !strings.HasPrefix(v.Path, prefix) {
			continue
		}
		if !fn(v) {
			return nil
		}
	}
	return nil
}

// VariablesByKeyID returns up to limit variables sealed with root key
// keyID (all when limit <= 0).
func (s *StateStore) VariablesByKeyID(ws memdb.WatchSet, keyID string, limit int) ([]*structs.VariableEncrypted, error) {
	iter, err := s.db.Txn(false).Get(TableVariables, "key_id", keyID)
	if err != nil {
		return nil, fmt.Errorf("variables scan: %w", err)
	}
	watch(ws, iter.WatchCh())
	var out []*structs.VariableEncrypted
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		out = append(out, raw.(*structs.VariableEncrypted))
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// CountVariablesByKeyID counts the variables sealed with each root key.
func (s *StateStore) CountVariablesByKeyID() (map[string]int, error) {
	iter, err := s.db.Txn(false).Get(TableVariables, "id")
	if err != nil {
		return nil, fmt.Errorf("variables scan: %w", err)
	}
	out := map[string]int{}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		out[raw.(*structs.VariableEncrypted).KeyID]++
	}
	return out, nil
}

// UpsertRootKeys writes root keys, keeping each existing key's
// CreateIndex. At most one key may be active afterwards: a write that
// makes a key active must turn the previous active key inactive in the
// same request, else it is refused.
func (s *StateStore) UpsertRootKeys(index uint64, keys []*structs.RootKey) error {
	txn := s.writeTxn()
	defer txn.Abort()
	for _, k := range keys {
		if k.KeyID == "" || (k.State != structs.RootKeyActive && k.State != structs.RootKeyInactive) || len(k.Wrapped) == 0 {
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("invalid root key %q (state %q)", k.KeyID, k.State))
		}
		c := *k
		c.Wrapped = append([]byte(nil), k.Wrapped...)
		c.CreateIndex, c.ModifyIndex = index, index
		raw, err := txn.First(TableRootKeys, "id", k.KeyID)
		if err != nil {
			return fmt.Errorf("root key lookup: %w", err)
		}
		if raw != nil {
			c.CreateIndex = raw.(*structs.RootKey).CreateIndex
		}
		if err := txn.Insert(TableRootKeys, &c); err != nil {
			return fmt.Errorf("insert root key %q: %w", k.KeyID, err)
		}
	}
	all, err := collect[*structs.RootKey](txn, nil, TableRootKeys, "id")
	if err != nil {
		return err
	}
	active := 0
	for _, k := range all {
		if k.State == structs.RootKeyActive {
			active++
		}
	}
	if active > 1 {
		return structs.NewError(structs.CodeConflict, fmt.Sprintf("root key write would leave %d active keys; a rotation turns the old key inactive in the same write", active))
	}
	if err := setIndex(txn, index, TableRootKeys); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// DeleteRootKeys deletes root keys that no variable is sealed with and
// that are not active; it refuses (state unchanged) any other.
func (s *StateStore) DeleteRootKeys(index uint64, ids []string) error {
	txn := s.writeTxn()
	defer txn.Abort()
	for _, id := range ids {
		raw, err := txn.First(TableRootKeys, "id", id)
		if err != nil {
			return fmt.Errorf("root key lookup: %w", err)
		}
		if raw == nil {
			continue
		}
		if raw.(*structs.RootKey).State == structs.RootKeyActive {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf("root key %s is active; rotate first", id))
		}
		if used, err := txn.First(TableVariables, "key_id", id); err != nil {
			return fmt.Errorf("variables lookup: %w", err)
		} else if used != nil {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf("root key %s still seals variables (e.g. %s)", id, used.(*structs.VariableEncrypted).Path))
		}
		if err := txn.Delete(TableRootKeys, raw); err != nil {
			return fmt.Errorf("delete root key %q: %w", id, err)
		}
	}
	if err := setIndex(txn, index, TableRootKeys); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// RootKeys returns every root key, by key ID.
func (s *StateStore) RootKeys(ws memdb.WatchSet) ([]*structs.RootKey, error) {
	return collect[*structs.RootKey](s.db.Txn(false), ws, TableRootKeys, "id")
}

// RootKeyByID returns a root key, nil if unknown.
func (s *StateStore) RootKeyByID(ws memdb.WatchSet, id string) (*structs.RootKey, error) {
	raw, err := first(s.db.Txn(false), ws, TableRootKeys, "id", id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.RootKey), nil
}

// ActiveRootKey returns the active root key, nil before the keyring is
// initialized.
func (s *StateStore) ActiveRootKey(ws memdb.WatchSet) (*structs.RootKey, error) {
	keys, err := s.RootKeys(ws)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.State == structs.RootKeyActive {
			return k, nil
		}
	}
	return nil, nil
}

// VariableRestore loads one sealed variable.
func (r *Restore) VariableRestore(v *structs.VariableEncrypted) error {
	v.Namespace = structs.NamespaceOrDefault(v.Namespace)
	return r.insert(TableVariables, v)
}

// RootKeyRestore loads one wrapped root key.
func (r *Restore) RootKeyRestore(k *structs.RootKey) error {
	return r.insert(TableRootKeys, k)
}
