package state

import (
	"fmt"
	"sort"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// ACL policies, tokens and the bootstrap marker.
//
// Tokens are stored with the SHA-256 of their secret (SecretHash), never
// the secret; the unique "secret" index finds a token from a presented
// secret's hash. The bootstrap marker is one row recording the Raft
// index at which the cluster's first management token was made: while
// it exists, BootstrapACLToken refuses, so bootstrap happens once per
// cluster (it survives snapshots like any table).

// ACLBootstrapMarker records that ACLs were bootstrapped, and at which
// Raft index.
type ACLBootstrapMarker struct {
	BootstrapIndex uint64
}

func aclPoliciesSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableACLPolicies,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		},
	}
}

func aclTokensSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableACLTokens,
		Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "AccessorID"}},
			"secret": {Name: "secret", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "SecretHash"}},
		},
	}
}

func aclBootstrapSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableACLBootstrap,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.ConditionalIndex{Conditional: func(interface{}) (bool, error) { return true, nil }}},
		},
	}
}

// ACLBootstrappedError is returned by BootstrapACLToken once the cluster
// has been bootstrapped.
type ACLBootstrappedError struct {
	Index uint64
}

func (e *ACLBootstrappedError) Error() string {
	return fmt.Sprintf("ACL bootstrap already done at index %d", e.Index)
}

// UpsertACLPolicies creates or replaces policies, keeping each existing
// policy's CreateIndex.
func (s *StateStore) UpsertACLPolicies(index uint64, policies []*structs.ACLPolicy) error {
	txn := s.writeTxn()
	defer txn.Abort()
	for _, p := range policies {
		raw, err := txn.First(TableACLPolicies, "id", p.Name)
		if err != nil {
			return fmt.Errorf("acl policy lookup: %w", err)
		}
		c := *p
		c.CreateIndex, c.ModifyIndex = index, index
		if raw != nil {
			c.CreateIndex = raw.(*structs.ACLPolicy).CreateIndex
		}
		if err := txn.Insert(TableACLPolicies, &c); err != nil {
			return fmt.Errorf("insert acl policy %q: %w", p.Name, err)
		}
	}
	if err := setIndex(txn, index, TableACLPolicies); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// DeleteACLPolicies deletes policies by name; all or nothing: an unknown
// name fails the whole delete with ErrNotFound.
func (s *StateStore) DeleteACLPolicies(index uint64, names []string) error {
	txn := s.writeTxn()
	defer txn.Abort()
	for _, name := range names {
		raw, err := txn.First(TableACLPolicies, "id", name)
		if err != nil {
			return fmt.Errorf("acl policy lookup: %w", err)
		}
		if raw == nil {
			return fmt.Errorf("ACL policy %q: %w", name, ErrNotFound)
		}
		if err := txn.Delete(TableACLPolicies, raw); err != nil {
			return fmt.Errorf("delete acl policy %q: %w", name, err)
		}
	}
	if err := setIndex(txn, index, TableACLPolicies); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// ACLPolicyByName returns a policy, nil if unknown.
func (s *StateStore) ACLPolicyByName(ws memdb.WatchSet, name string) (*structs.ACLPolicy, error) {
	raw, err := first(s.db.Txn(false), ws, TableACLPolicies, "id", name)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.ACLPolicy), nil
}

// ACLPolicies returns every policy, by name.
func (s *StateStore) ACLPolicies(ws memdb.WatchSet) ([]*structs.ACLPolicy, error) {
	return collect[*structs.ACLPolicy](s.db.Txn(false), ws, TableACLPolicies, "id")
}

// UpsertACLTokens stores tokens (created by the leader, hashed). A token
// whose SecretHash another token already has is refused: the secret
// index is unique, and a hash collision between random secrets means
// something wrote a duplicate on purpose.
func (s *StateStore) UpsertACLTokens(index uint64, tokens []*structs.ACLToken) error {
	txn := s.writeTxn()
	defer txn.Abort()
	if err := upsertACLTokensTxn(txn, index, tokens); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

func upsertACLTokensTxn(txn *memdb.Txn, index uint64, tokens []*structs.ACLToken) error {
	for _, t := range tokens {
		other, err := txn.First(TableACLTokens, "secret", t.SecretHash)
		if err != nil {
			return fmt.Errorf("acl token lookup: %w", err)
		}
		if other != nil && other.(*structs.ACLToken).AccessorID != t.AccessorID {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf("ACL token %s: another token has the same secret", t.AccessorID))
		}
		raw, err := txn.First(TableACLTokens, "id", t.AccessorID)
		if err != nil {
			return fmt.Errorf("acl token lookup: %w", err)
		}
		c := t.Copy()
		c.CreateIndex, c.ModifyIndex = index, index
		if raw != nil {
			c.CreateIndex = raw.(*structs.ACLToken).CreateIndex
		}
		if err := txn.Insert(TableACLTokens, c); err != nil {
			return fmt.Errorf("insert acl token %s: %w", t.AccessorID, err)
		}
	}
	return setIndex(txn, index, TableACLTokens)
}

// DeleteACLTokens deletes tokens by accessor ID; all or nothing, like
// DeleteACLPolicies.
func (s *StateStore) DeleteACLTokens(index uint64, accessorIDs []string) error {
	txn := s.writeTxn()
	defer txn.Abort()
	for _, id := range accessorIDs {
		raw, err := txn.First(TableACLTokens, "id", id)
		if err != nil {
			return fmt.Errorf("acl token lookup: %w", err)
		}
		if raw == nil {
			return fmt.Errorf("ACL token %q: %w", id, ErrNotFound)
		}
		if err := txn.Delete(TableACLTokens, raw); err != nil {
			return fmt.Errorf("delete acl token %s: %w", id, err)
		}
	}
	if err := setIndex(txn, index, TableACLTokens); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// ACLTokenByAccessorID returns a token, nil if unknown.
func (s *StateStore) ACLTokenByAccessorID(ws memdb.WatchSet, id string) (*structs.ACLToken, error) {
	raw, err := first(s.db.Txn(false), ws, TableACLTokens, "id", id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.ACLToken), nil
}

// ACLTokenBySecretHash returns the token whose secret hashes to hash,
// nil if none.
func (s *StateStore) ACLTokenBySecretHash(ws memdb.WatchSet, hash string) (*structs.ACLToken, error) {
	raw, err := first(s.db.Txn(false), ws, TableACLTokens, "secret", hash)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.ACLToken), nil
}

// ACLTokens returns every token, oldest first.
func (s *StateStore) ACLTokens(ws memdb.WatchSet) ([]*structs.ACLToken, error) {
	out, err := collect[*structs.ACLToken](s.db.Txn(false), ws, TableACLTokens, "id")
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].CreateIndex != out[j].CreateIndex {
			return out[i].CreateIndex < out[j].CreateIndex
		}
		return out[i].AccessorID < out[j].AccessorID
	})
	return out, nil
}

// ACLBootstrapIndex returns the Raft index at which ACLs were
// bootstrapped, 0 if they were not.
func (s *StateStore) ACLBootstrapIndex(ws memdb.WatchSet) (uint64, error) {
	raw, err := first(s.db.Txn(false), ws, TableACLBootstrap, "id")
	if err != nil || raw == nil {
		return 0, err
	}
	return raw.(*ACLBootstrapMarker).BootstrapIndex, nil
}

// BootstrapACLToken stores the first management token and the bootstrap
// marker in one transaction, or returns *ACLBootstrappedError if the
// marker exists. Checked here, in log order, so that two bootstrap
// requests racing through the leader make one token, not two.
func (s *StateStore) BootstrapACLToken(index uint64, token *structs.ACLToken) error {
	txn := s.writeTxn()
	defer txn.Abort()
	raw, err := txn.First(TableACLBootstrap, "id")
	if err != nil {
		return fmt.Errorf("acl bootstrap lookup: %w", err)
	}
	if raw != nil {
		return &ACLBootstrappedError{Index: raw.(*ACLBootstrapMarker).BootstrapIndex}
	}
	if err := upsertACLTokensTxn(txn, index, []*structs.ACLToken{token}); err != nil {
		return err
	}
	if err := txn.Insert(TableACLBootstrap, &ACLBootstrapMarker{BootstrapIndex: index}); err != nil {
		return fmt.Errorf("insert acl bootstrap marker: %w", err)
	}
	if err := setIndex(txn, index, TableACLBootstrap); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// ACLBootstrapMarkers returns the bootstrap marker (none or one), for
// snapshots.
func (s *StateStore) ACLBootstrapMarkers() ([]*ACLBootstrapMarker, error) {
	return collect[*ACLBootstrapMarker](s.db.Txn(false), nil, TableACLBootstrap, "id")
}

// ACLPolicyRestore loads one policy.
func (r *Restore) ACLPolicyRestore(p *structs.ACLPolicy) error { return r.insert(TableACLPolicies, p) }

// ACLTokenRestore loads one token.
func (r *Restore) ACLTokenRestore(t *structs.ACLToken) error { return r.insert(TableACLTokens, t) }

// ACLBootstrapRestore loads the bootstrap marker.
func (r *Restore) ACLBootstrapRestore(m *ACLBootstrapMarker) error {
	return r.insert(TableACLBootstrap, m)
}
