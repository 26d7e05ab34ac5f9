package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// TestVariables_EncryptedAtRestReplicatedAndCAS runs three servers with
// mTLS (the KEK travels between them only over it): a variable written
// with `drover var put` reads on every server; its plaintext is in no
// file of any server's data directory (raft.db, Raft snapshots, the
// agent's log), and the KEK is only in the keyring directories; a stale
// -cas is refused with nothing changed; eight concurrent CAS writers
// through three different servers lose no update (counted).
func TestVariables_EncryptedAtRestReplicatedAndCAS(t *testing.T) {
	m := newSecureMaterial(t, 3, 0)
	h := startServersSecure(t, 3, nil, nil, m)
	s := h.servers[0]
	rnd := make([]byte, 12)
	_, _ = rand.Read(rnd)
	secret := "e2e-plaintext-" + hex.EncodeToString(rnd)

	r := s.cli("var", "put", "app/config", "greeting=hello", "password="+secret)
	if r.code != 0 || !strings.Contains(r.stdout, `Created variable "app/config"`) {
		t.Fatalf("var put: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = s.cli("var", "get", "-item", "password", "app/config")
	if r.code != 0 || strings.TrimSpace(r.stdout) != secret {
		t.Fatalf("var get -item: %d %q %s", r.code, r.stdout, r.stderr)
	}
	// Every server decrypts on its own (stale reads): the KEK reached
	// the followers.
	for _, srv := range h.servers {
		srv := srv
		testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
			v, _, err := srv.api.Variables().Read("app/config", &api.QueryOptions{AllowStale: true})
			if err != nil {
				return false, nil
			}
			return v.Items["password"] == secret, nil
		})
		keks, _ := filepath.Glob(filepath.Join(srv.dataDir, "keyring", "*.kek"))
		if len(keks) != 1 {
			t.Fatalf("server %s keyring files: %v", srv.name, keks)
		}
	}

	// A stale check-and-set: refused, nothing changed.
	r = s.cli("var", "put", "-cas", "1", "app/config", "greeting=bye")
	if r.code == 0 || !strings.Contains(r.stderr, "check-and-set failed") {
		t.Fatalf("stale -cas: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r = s.cli("var", "get", "-item", "greeting", "app/config"); strings.TrimSpace(r.stdout) != "hello" {
		t.Fatalf("after the refused write: %q", r.stdout)
	}

	// Eight writers, each through one of the three servers, increment a
	// counter by read-modify-write with ?cas=.
	if _, _, err := s.api.Variables().Put("counter", map[string]string{"n": "0"}, new(uint64)); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		c := h.servers[i%len(h.servers)].api
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				v, _, err := c.Variables().Read("counter", nil)
				if err != nil {
					errs <- err
					return
				}
				n, _ := strconv.Atoi(v.Items["n"])
				idx := v.ModifyIndex
				if _, _, err := c.Variables().Put("counter", map[string]string{"n": strconv.Itoa(n + 1)}, &idx); err != nil {
					if api.IsConflict(err) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					errs <- err
					return
				}
				done++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, _, err := s.api.Variables().Read("counter", nil)
	if err != nil || v.Items["n"] != strconv.Itoa(writers*each) {
		t.Fatalf("counter %v after %d acknowledged increments (%d conflicts): %v", v, writers*each, conflicts, err)
	}
	t.Logf("%d increments through 3 servers, %d CAS conflicts retried", writers*each, conflicts)

	// A snapshot of the cluster: no plaintext in it, nor (now that a
	// Raft snapshot was taken on the leader) on any server's disk.
	snapFile := filepath.Join(t.TempDir(), "cluster.snap")
	if r := s.cli("operator", "snapshot", "save", snapFile); r.code != 0 {
		t.Fatalf("snapshot save: %s", r)
	}
	if b, err := os.ReadFile(snapFile); err != nil || bytes.Contains(b, []byte(secret)) || len(b) < 1024 {
		t.Fatalf("snapshot file: %d bytes, holds the plaintext: %v (%v)", len(b), bytes.Contains(b, []byte(secret)), err)
	}
	for _, srv := range h.servers {
		assertNoPlaintext(t, srv.dataDir, secret)
	}
	raftSnaps := 0
	for _, srv := range h.servers {
		m, _ := filepath.Glob(filepath.Join(srv.dataDir, "raft", "snapshots", "*", "state.bin"))
		raftSnaps += len(m)
	}
	if raftSnaps == 0 {
		t.Fatal("no Raft snapshot on any server: the scan did not cover one")
	}

	// Restored into a fresh cluster, which lacks the key-encryption key:
	// reads fail naming the missing key; with the KEK file copied in,
	// they succeed (no restart).
	dst := startServers(t, 3, nil, nil)
	dl := dst.waitLeader(nil)
	var rr result
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		rr = dl.cli("operator", "snapshot", "restore", snapFile)
		return rr.code == 0, fmt.Errorf("restore: %s", rr)
	})
	var gr result
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		gr = dst.servers[0].cli("var", "get", "-item", "password", "app/config")
		return gr.code != 0 && strings.Contains(gr.stderr, "key-encryption key"), fmt.Errorf("var get: %s", gr)
	})
	t.Logf("read without the KEK: %s", strings.TrimSpace(gr.stderr))
	if !strings.Contains(gr.stderr, "which this server does not have") || !strings.Contains(gr.stderr, "copy") {
		t.Fatalf("the refusal does not say what to do: %s", gr.stderr)
	}
	keks, _ := filepath.Glob(filepath.Join(s.dataDir, "keyring", "*.kek"))
	kek, err := os.ReadFile(keks[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range dst.servers {
		if err := os.WriteFile(filepath.Join(srv.dataDir, "keyring", filepath.Base(keks[0])), kek, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		gr = dst.servers[0].cli("var", "get", "-item", "password", "app/config")
		return gr.code == 0 && strings.TrimSpace(gr.stdout) == secret, fmt.Errorf("var get with the KEK: %s", gr)
	})
}

// assertNoPlaintext walks dir and fails on any file holding secret; it
// also checks that it looked at a raft.db.
func assertNoPlaintext(t *testing.T, dir, secret string) {
	t.Helper()
	sawRaft := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if d.Name() == "raft.db" {
			sawRaft = true
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the plaintext of a variable", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawRaft {
		t.Fatalf("no raft.db under %s: the scan looked in the wrong place", dir)
	}
}
