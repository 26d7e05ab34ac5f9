package state

import (
	"errors"
	"testing"

	"github.com/droverhq/drover/structs"
)

func TestStateStore_ACLPolicyUpsertKeepsCreateIndex(t *testing.T) {
	s := NewStateStore()
	p := &structs.ACLPolicy{Name: "ci", Rules: `namespace "x" { policy = "read" }`}
	if err := s.UpsertACLPolicies(5, []*structs.ACLPolicy{p}); err != nil {
		t.Fatal(err)
	}
	changed := *p
	changed.Description = "now described"
	if err := s.UpsertACLPolicies(9, []*structs.ACLPolicy{&changed}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ACLPolicyByName(nil, "ci")
	if err != nil || got == nil {
		t.Fatal(got, err)
	}
	if got.CreateIndex != 5 || got.ModifyIndex != 9 || got.Description != "now described" {
		t.Fatalf("policy after update: %+v", got)
	}
	if p.CreateIndex != 0 {
		t.Fatal("the caller's policy was modified")
	}
	if idx, _ := s.Index(TableACLPolicies); idx != 9 {
		t.Fatalf("table index %d", idx)
	}
}

func TestStateStore_ACLTokenSecretHashIsUnique(t *testing.T) {
	s := NewStateStore()
	hash := structs.HashACLSecret("s")
	a := &structs.ACLToken{AccessorID: "a", SecretHash: hash, Type: structs.ACLTokenTypeManagement}
	if err := s.UpsertACLTokens(3, []*structs.ACLToken{a}); err != nil {
		t.Fatal(err)
	}
	b := &structs.ACLToken{AccessorID: "b", SecretHash: hash, Type: structs.ACLTokenTypeManagement}
	err := s.UpsertACLTokens(4, []*structs.ACLToken{b})
	if ce := structs.ParseCodedError(err); ce == nil || ce.Code != structs.CodeConflict {
		t.Fatalf("second token with the same hash: %v", err)
	}
	if got, _ := s.ACLTokenBySecretHash(nil, hash); got == nil || got.AccessorID != "a" {
		t.Fatalf("token by hash: %+v", got)
	}
	if got, _ := s.ACLTokenByAccessorID(nil, "b"); got != nil {
		t.Fatal("the refused token was stored")
	}
}

func TestStateStore_ACLBootstrapOnce(t *testing.T) {
	s := NewStateStore()
	tok := func(id string) *structs.ACLToken {
		return &structs.ACLToken{AccessorID: id, SecretHash: structs.HashACLSecret(id), Type: structs.ACLTokenTypeManagement}
	}
	if err := s.BootstrapACLToken(7, tok("one")); err != nil {
		t.Fatal(err)
	}
	err := s.BootstrapACLToken(8, tok("two"))
	var done *ACLBootstrappedError
	if !errors.As(err, &done) || done.Index != 7 || err.Error() != "ACL bootstrap already done at index 7" {
		t.Fatalf("second bootstrap: %v", err)
	}
	if idx, _ := s.ACLBootstrapIndex(nil); idx != 7 {
		t.Fatalf("bootstrap index %d", idx)
	}
	if got, _ := s.ACLTokenByAccessorID(nil, "two"); got != nil {
		t.Fatal("the second bootstrap stored its token")
	}
}

func TestStateStore_ACLDeletesAreAllOrNothing(t *testing.T) {
	s := NewStateStore()
	for i, id := range []string{"a", "b"} {
		tok := &structs.ACLToken{AccessorID: id, SecretHash: structs.HashACLSecret(id), Type: structs.ACLTokenTypeManagement}
		if err := s.UpsertACLTokens(uint64(i+1), []*structs.ACLToken{tok}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteACLTokens(3, []string{"a", "missing"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete with an unknown accessor: %v", err)
	}
	if tokens, _ := s.ACLTokens(nil); len(tokens) != 2 || tokens[0].AccessorID != "a" {
		t.Fatalf("tokens after a failed delete: %v", tokens)
	}
	if err := s.DeleteACLTokens(4, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ACLTokenBySecretHash(nil, structs.HashACLSecret("a")); got != nil {
		t.Fatal("deleted token found by hash")
	}
}
