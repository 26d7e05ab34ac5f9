package state

import (
	"testing"

	"github.com/droverhq/drover/structs"
)

func sealed(path, key string, data string) *structs.VariableEncrypted {
	return &structs.VariableEncrypted{VariableMetadata: structs.VariableMetadata{Namespace: "default", Path: path}, KeyID: key, Data: []byte(data)}
}

func TestVariables_CheckAndSetInLogOrder(t *testing.T) {
	s := NewStateStore()
	apply := func(index uint64, req *structs.VariableApplyRequest) *structs.VariableApplyResponse {
		t.Helper()
		r, err := s.VariableApply(index, req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// CAS 0 creates only when missing.
	if r := apply(10, &structs.VariableApplyRequest{Op: structs.VarOpCAS, CAS: 0, Var: sealed("app/config", "k1", "a")}); r.Conflicted || r.Meta.ModifyIndex != 10 {
		t.Fatalf("create with cas=0: %#v", r)
	}
	if r := apply(11, &structs.VariableApplyRequest{Op: structs.VarOpCAS, CAS: 0, Var: sealed("app/config", "k1", "b")}); !r.Conflicted || r.Conflict.ModifyIndex != 10 {
		t.Fatalf("second create with cas=0 must conflict naming index 10: %#v", r)
	}
	// A stale CAS changes nothing.
	if r := apply(12, &structs.VariableApplyRequest{Op: structs.VarOpCAS, CAS: 9, Var: sealed("app/config", "k1", "c")}); !r.Conflicted {
		t.Fatalf("stale cas applied: %#v", r)
	}
	v, _ := s.VariableByPath(nil, "default", "app/config")
	if string(v.Data) != "a" || v.ModifyIndex != 10 {
		t.Fatalf("after refused writes: %q at %d", v.Data, v.ModifyIndex)
	}
	// The right CAS applies and keeps CreateIndex.
	if r := apply(13, &structs.VariableApplyRequest{Op: structs.VarOpCAS, CAS: 10, Var: sealed("app/config", "k1", "d")}); r.Conflicted || r.Meta.CreateIndex != 10 || r.Meta.ModifyIndex != 13 {
		t.Fatalf("cas=10: %#v", r.Meta)
	}
	// Re-encryption keeps the metadata, and loses to a newer write.
	if r := apply(14, &structs.VariableApplyRequest{Op: structs.VarOpSet, ReencryptOnly: true, CAS: 13, Var: sealed("app/config", "k2", "e")}); r.Conflicted || r.Meta.ModifyIndex != 13 {
		t.Fatalf("re-encrypt: %#v", r)
	}
	v, _ = s.VariableByPath(nil, "default", "app/config")
	if string(v.Data) != "e" || v.KeyID != "k2" {
		t.Fatalf("after re-encryption: %q key %s", v.Data, v.KeyID)
	}
	// A user's write lands between the leader's read and its
	// re-encryption: the re-encryption loses.
	apply(15, &structs.VariableApplyRequest{Op: structs.VarOpSet, Var: sealed("app/config", "k2", "user")})
	if r := apply(16, &structs.VariableApplyRequest{Op: structs.VarOpSet, ReencryptOnly: true, CAS: 13, Var: sealed("app/config", "k2", "stale")}); !r.Conflicted {
		t.Fatal("a re-encryption that lost the race applied")
	}
	v, _ = s.VariableByPath(nil, "default", "app/config")
	if string(v.Data) != "user" || v.ModifyIndex != 15 {
		t.Fatalf("after the lost re-encryption: %q at %d", v.Data, v.ModifyIndex)
	}
	// Delete with a stale CAS refuses; with the right one deletes.
	if r := apply(16, &structs.VariableApplyRequest{Op: structs.VarOpDeleteCAS, CAS: 13, Var: sealed("app/config", "", "")}); !r.Conflicted {
		t.Fatal("stale delete-cas applied")
	}
	if r := apply(17, &structs.VariableApplyRequest{Op: structs.VarOpDeleteCAS, CAS: 15, Var: sealed("app/config", "", "")}); r.Conflicted {
		t.Fatal("delete-cas with the right index conflicted")
	}
	if v, _ := s.VariableByPath(nil, "default", "app/config"); v != nil {
		t.Fatal("deleted variable still there")
	}
	if idx, _ := s.Index(TableVariables); idx != 17 {
		t.Fatalf("table index %d, want 17", idx)
	}
}

func TestVariables_PrefixListAndNamespaceDelete(t *testing.T) {
	s := NewStateStore()
	if err := s.UpsertNamespaces(1, []*structs.Namespace{{Name: "team-a"}}); err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"app/a", "app/b", "apple", "db/x"} {
		v := sealed(p, "k", "x")
		if _, err := s.VariableApply(uint64(10+i), &structs.VariableApplyRequest{Op: structs.VarOpSet, Var: v}); err != nil {
			t.Fatal(err)
		}
	}
	v := sealed("app/a", "k", "x")
	v.Namespace = "team-a"
	if _, err := s.VariableApply(20, &structs.VariableApplyRequest{Op: structs.VarOpSet, Var: v}); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = s.VariablesByPrefix(nil, "default", "app/", func(v *structs.VariableEncrypted) bool { got = append(got, v.Path); return true })
	if len(got) != 2 || got[0] != "app/a" || got[1] != "app/b" {
		t.Fatalf("prefix app/: %v", got)
	}
	got = nil
	_ = s.VariablesByPrefix(nil, structs.AllNamespaces, "app/a", func(v *structs.VariableEncrypted) bool { got = append(got, v.Namespace+"/"+v.Path); return true })
	if len(got) != 2 {
		t.Fatalf("all namespaces, prefix app/a: %v", got)
	}
	if err := s.DeleteNamespaces(21, []string{"team-a"}); err == nil {
		t.Fatal("a namespace holding variables was deleted")
	}
}

func TestRootKeys_OneActive(t *testing.T) {
	s := NewStateStore()
	k := func(id, st string) *structs.RootKey {
		return &structs.RootKey{KeyID: id, State: st, KEKID: "kek", Wrapped: []byte("w")}
	}
	if err := s.UpsertRootKeys(1, []*structs.RootKey{k("a", structs.RootKeyActive)}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertRootKeys(2, []*structs.RootKey{k("b", structs.RootKeyActive)}); err == nil {
		t.Fatal("a second active key was accepted")
	}
	if err := s.UpsertRootKeys(3, []*structs.RootKey{k("a", structs.RootKeyInactive), k("b", structs.RootKeyActive)}); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.ActiveRootKey(nil); a == nil || a.KeyID != "b" {
		t.Fatalf("active key %v", a)
	}
	if _, err := s.VariableApply(4, &structs.VariableApplyRequest{Op: structs.VarOpSet, Var: sealed("p", "a", "x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRootKeys(5, []string{"a"}); err == nil {
		t.Fatal("a key that still seals a variable was deleted")
	}
	if err := s.DeleteRootKeys(6, []string{"b"}); err == nil {
		t.Fatal("the active key was deleted")
	}
	if err := s.UpsertRootKeys(7, []*structs.RootKey{{KeyID: "c", State: structs.RootKeyInactive}}); err == nil {
		t.Fatal("a key without wrapped material was accepted")
	}
}
