package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

func TestKeyring_SealOpenAndBindings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keyring")
	k, err := New(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	rk, err := k.NewRootKey("", structs.RootKeyActive, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	items := map[string]string{"password": "hunter2-plaintext"}
	data, err := k.Seal(rk, "default", "app/db", items)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("hunter2")) || bytes.Contains(data, []byte("password")) {
		t.Fatal("ciphertext holds plaintext")
	}
	v := &structs.VariableEncrypted{VariableMetadata: structs.VariableMetadata{Namespace: "default", Path: "app/db"}, KeyID: rk.KeyID, Data: data}
	got, err := k.Open(rk, v)
	if err != nil || got["password"] != "hunter2-plaintext" {
		t.Fatalf("open: %v %v", got, err)
	}
	// Moved to another path or namespace: refuses.
	moved := *v
	moved.Path = "app/other"
	if _, err := k.Open(rk, &moved); err == nil {
		t.Fatal("a variable moved to another path opened")
	}
	moved = *v
	moved.Namespace = "team-b"
	if _, err := k.Open(rk, &moved); err == nil {
		t.Fatal("a variable moved to another namespace opened")
	}
	// Tampered ciphertext.
	bad := *v
	bad.Data = bytes.Clone(data)
	bad.Data[len(bad.Data)-1] ^= 1
	if _, err := k.Open(rk, &bad); err == nil {
		t.Fatal("tampered ciphertext opened")
	}
	// The KEK is on disk, 0600, and the wrapped key is not the key.
	files, _ := filepath.Glob(filepath.Join(dir, "*.kek"))
	if len(files) != 1 {
		t.Fatalf("KEK files: %v", files)
	}
	fi, _ := os.Stat(files[0])
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file mode %v", fi.Mode())
	}
	if filepath.Base(files[0]) != rk.KEKID+".kek" {
		t.Fatalf("KEK file %s for KEK %s", files[0], rk.KEKID)
	}
}

func TestKeyring_AnotherServerNeedsTheKEK(t *testing.T) {
	dirA := filepath.Join(t.TempDir(), "a")
	a, err := New(dirA, "")
	if err != nil {
		t.Fatal(err)
	}
	rk, err := a.NewRootKey("", structs.RootKeyActive, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := a.Seal(rk, "default", "p", map[string]string{"k": "v"})
	v := &structs.VariableEncrypted{VariableMetadata: structs.VariableMetadata{Namespace: "default", Path: "p"}, KeyID: rk.KeyID, Data: data}

	dirB := filepath.Join(t.TempDir(), "b")
	b, err := New(dirB, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Open(rk, v)
	var missing *MissingKEKError
	if !errors.As(err, &missing) || missing.KEKID != rk.KEKID {
		t.Fatalf("open without the KEK: %v", err)
	}
	// Another KEK of the same size does not open it either.
	if _, err := b.NewRootKey("", structs.RootKeyActive, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(rk, v); !errors.As(err, &missing) {
		t.Fatalf("open with another KEK: %v", err)
	}
	// The operator copies the file in: it opens without a restart.
	raw, _ := os.ReadFile(filepath.Join(dirA, rk.KEKID+".kek"))
	if err := os.WriteFile(filepath.Join(dirB, rk.KEKID+".kek"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Open(rk, v); err != nil || got["k"] != "v" {
		t.Fatalf("open after copying the KEK: %v %v", got, err)
	}
	// Replication path: AddKEK on a third keyring.
	c, _ := New("", "")
	if _, err := c.AddKEK(a.KEK(rk.KEKID)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(rk, v); err != nil {
		t.Fatalf("open after AddKEK: %v", err)
	}
	if _, err := c.AddKEK([]byte("short")); err == nil {
		t.Fatal("AddKEK took a 5-byte key")
	}
}

func TestKeyring_RefusesBadKEKFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.kek"), []byte("not hex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, ""); err == nil {
		t.Fatal("a garbage KEK file loaded")
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("a"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New("", big); err == nil {
		t.Fatal("a 4 KiB keyring_file loaded")
	}
}
