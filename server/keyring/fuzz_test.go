package keyring

import (
	"bytes"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// FuzzKeyringOpen feeds Open ciphertexts, namespaces and paths an
// attacker with write access to raft.db could plant: it must never
// panic, and must open only the exact ciphertext it sealed, at the
// namespace and path it was sealed for.
func FuzzKeyringOpen(f *testing.F) {
	k, err := New("", "")
	if err != nil {
		f.Fatal(err)
	}
	rk, err := k.NewRootKey("", structs.RootKeyActive, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	good, err := k.Seal(rk, "default", "app/config", map[string]string{"k": "v"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("default", "app/config", good)
	f.Add("default", "app/config", good[:10])
	f.Add("team-a", "app/config", good)
	f.Add("default", "x", []byte{})
	f.Fuzz(func(t *testing.T, ns, path string, data []byte) {
		v := &structs.VariableEncrypted{VariableMetadata: structs.VariableMetadata{Namespace: ns, Path: path}, KeyID: rk.KeyID, Data: data}
		items, err := k.Open(rk, v)
		if err != nil {
			return
		}
		if !bytes.Equal(data, good) || structs.NamespaceOrDefault(ns) != "default" || path != "app/config" {
			t.Fatalf("opened a ciphertext it did not seal for %q/%q: %v", ns, path, items)
		}
		if items["k"] != "v" {
			t.Fatalf("opened to %v", items)
		}
	})
}
