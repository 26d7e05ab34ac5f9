package server

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

func putVar(s *Server, token, ns, path string, items map[string]string, cas *uint64) (*structs.VariableWriteResponse, error) {
	req := &structs.VariableUpsertRequest{Path: path, Items: items, CheckIndex: cas}
	req.Namespace, req.AuthToken = ns, token
	var resp structs.VariableWriteResponse
	err := s.RPC("Variable.Upsert", req, &resp)
	return &resp, err
}

func readVar(s *Server, token, ns, path string, stale bool) (*structs.VariableReadResponse, error) {
	req := &structs.VariableReadRequest{Path: path}
	req.Namespace, req.AuthToken, req.AllowStale = ns, token, stale
	var resp structs.VariableReadResponse
	err := s.RPC("Variable.Read", req, &resp)
	return &resp, err
}

func u64(n uint64) *uint64 { return &n }

func TestVariableEndpoint_WriteReadCASDelete(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	w, err := putVar(s, "", "", "app/config", map[string]string{"greeting": "hello"}, nil)
	if err != nil || w.Meta == nil || w.Conflict != nil {
		t.Fatalf("put: %+v %v", w, err)
	}
	r, err := readVar(s, "", "", "app/config", false)
	if err != nil || r.Data == nil || r.Data.Items["greeting"] != "hello" || r.Data.Namespace != "default" || r.Index != w.Meta.ModifyIndex {
		t.Fatalf("read: %+v %v", r, err)
	}
	// A stale CAS: a conflict with the current index, nothing changed.
	c, err := putVar(s, "", "", "app/config", map[string]string{"greeting": "bye"}, u64(w.Meta.ModifyIndex-1))
	if err != nil || c.Conflict == nil || c.Conflict.ModifyIndex != w.Meta.ModifyIndex || c.Meta != nil {
		t.Fatalf("stale cas: %+v %v", c, err)
	}
	// cas=0 on an existing variable conflicts too.
	if c, _ := putVar(s, "", "", "app/config", map[string]string{"x": "y"}, u64(0)); c.Conflict == nil {
		t.Fatal("cas=0 on an existing variable applied")
	}
	if r, _ := readVar(s, "", "", "app/config", false); r.Data.Items["greeting"] != "hello" {
		t.Fatalf("refused writes changed the variable: %v", r.Data.Items)
	}
	// The right CAS applies.
	if c, err := putVar(s, "", "", "app/config", map[string]string{"greeting": "bye"}, u64(w.Meta.ModifyIndex)); err != nil || c.Meta == nil {
		t.Fatalf("cas: %+v %v", c, err)
	}
	// Bad input is a 400 before anything is sealed.
	for name, items := range map[string]map[string]string{
		"no items":  {},
		"bad key":   {"a b": "x"},
		"too large": {"k": string(bytes.Repeat([]byte("x"), structs.MaxVariableSize+1))},
	} {
		if _, err := putVar(s, "", "", "app/x", items, nil); structs.ParseCodedError(err) == nil || structs.ParseCodedError(err).Code != structs.CodeInvalid {
			t.Errorf("%s: %v, want invalid_request", name, err)
		}
	}
	for _, p := range []string{"", "/abs", "a//b", "a/../b", "a/./b", "sp ace", string(bytes.Repeat([]byte("a"), 300))} {
		if _, err := putVar(s, "", "", p, map[string]string{"k": "v"}, nil); structs.ParseCodedError(err) == nil || structs.ParseCodedError(err).Code != structs.CodeInvalid {
			t.Errorf("path %q: %v, want invalid_request", p, err)
		}
	}
	if _, err := putVar(s, "", "nope", "app/x", map[string]string{"k": "v"}, nil); structs.ParseCodedError(err) == nil || structs.ParseCodedError(err).Code != structs.CodeNotFound {
		t.Errorf("write into a missing namespace: %v", err)
	}
	// Delete with a stale CAS refuses; then deletes.
	del := &structs.VariableDeleteRequest{Path: "app/config", CheckIndex: u64(1)}
	var dresp structs.VariableWriteResponse
	if err := s.RPC("Variable.Delete", del, &dresp); err != nil || dresp.Conflict == nil {
		t.Fatalf("stale delete: %+v %v", dresp, err)
	}
	del.CheckIndex = nil
	if err := s.RPC("Variable.Delete", del, &dresp); err != nil {
		t.Fatal(err)
	}
	if r, _ := readVar(s, "", "", "app/config", false); r.Data != nil {
		t.Fatal("deleted variable still reads")
	}
}

// Eight writers increment one counter with read-modify-write under CAS:
// no increment is lost, and every conflict was a real one.
func TestVariableEndpoint_ConcurrentCASLosesNoUpdate(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	if _, err := putVar(s, "", "", "counter", map[string]string{"n": "0"}, u64(0)); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				r, err := readVar(s, "", "", "counter", false)
				if err != nil {
					errs <- err
					return
				}
				n, _ := strconv.Atoi(r.Data.Items["n"])
				w, err := putVar(s, "", "", "counter", map[string]string{"n": strconv.Itoa(n + 1)}, u64(r.Data.ModifyIndex))
				if err != nil {
					errs <- err
					return
				}
				if w.Conflict != nil {
					mu.Lock()
					conflicts++
					mu.Unlock()
					continue
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
	r, _ := readVar(s, "", "", "counter", false)
	if r.Data.Items["n"] != strconv.Itoa(writers*each) {
		t.Fatalf("counter is %s after %d increments (%d conflicts): updates were lost", r.Data.Items["n"], writers*each, conflicts)
	}
	t.Logf("%d increments, %d CAS conflicts retried", writers*each, conflicts)
}

func TestVariableEndpoint_ACLPathRules(t *testing.T) {
	s := aclServer(t)
	mgmt := bootstrapACL(t, s)
	if _, err := putVar(s, mgmt, "", "app/config", map[string]string{"k": "v"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := putVar(s, mgmt, "", "db/password", map[string]string{"k": "secret"}, nil); err != nil {
		t.Fatal(err)
	}
	upsertPolicy(t, s, mgmt, "app-reader", `namespace "default" {
  variables {
    path "app/*" { capabilities = ["read", "list"] }
  }
}`)
	reader := createToken(t, s, mgmt, &structs.ACLTokenCreateRequest{Name: "app-reader", Policies: []string{"app-reader"}}).SecretID
	if r, err := readVar(s, reader, "", "app/config", false); err != nil || r.Data == nil {
		t.Fatalf("reader reads app/config: %v", err)
	}
	_, err := readVar(s, reader, "", "db/password", false)
	wantCoded(t, err, structs.CodePermission, `token "app-reader" lacks capability variables read on path "db/password" in namespace "default"`)
	_, err = putVar(s, reader, "", "app/config", map[string]string{"k": "w"}, nil)
	wantCoded(t, err, structs.CodePermission, `token "app-reader" lacks capability variables write on path "app/config"`)
	var dresp structs.VariableWriteResponse
	del := &structs.VariableDeleteRequest{Path: "app/config"}
	del.AuthToken = reader
	wantCoded(t, s.RPC("Variable.Delete", del, &dresp), structs.CodePermission, `token "app-reader" lacks capability variables destroy`)
	// List shows only what the token may list.
	list := &structs.VariableListRequest{}
	list.AuthToken = reader
	var lresp structs.VariableListResponse
	if err := s.RPC("Variable.List", list, &lresp); err != nil || len(lresp.Variables) != 1 || lresp.Variables[0].Path != "app/config" {
		t.Fatalf("reader's list: %+v %v", lresp.Variables, err)
	}
	// Anonymous: nothing.
	_, err = readVar(s, "", "", "app/config", false)
	wantCoded(t, err, structs.CodePermission, `token "anonymous" lacks capability variables read`)
	list.AuthToken = ""
	wantCoded(t, s.RPC("Variable.List", list, &lresp), structs.CodePermission, `token "anonymous" lacks capability variables list`)
	// The keyring: operator:read to list, operator:write to rotate.
	kl := &structs.KeyringListRequest{}
	kl.AuthToken = reader
	wantCoded(t, s.RPC("Keyring.List", kl, &structs.KeyringListResponse{}), structs.CodePermission, `token "app-reader" lacks operator:read`)
	kr := &structs.KeyringRotateRequest{}
	kr.AuthToken = reader
	wantCoded(t, s.RPC("Keyring.Rotate", kr, &structs.KeyringRotateResponse{}), structs.CodePermission, `token "app-reader" lacks operator:write`)
}

func TestVariableEndpoint_NodeReadsOnlyForItsAllocations(t *testing.T) {
	w := newServiceWorld(t, true, "default", "team-a")
	if _, err := putVar(w.s, w.mgmt, "team-a", "app/config", map[string]string{"k": "v"}, nil); err != nil {
		t.Fatal(err)
	}
	other := mock.Node()
	registerNode(t, w.s, other)
	read := func(nodeID, secret, allocID, ns string) error {
		req := &structs.VariableReadRequest{Path: "app/config", AllocID: allocID, NodeID: nodeID, SecretID: secret}
		req.Namespace = ns
		var resp structs.VariableReadResponse
		err := w.s.RPC("Variable.Read", req, &resp)
		if err == nil && (resp.Data == nil || resp.Data.Items["k"] != "v") {
			return fmt.Errorf("read without the items: %+v", resp.Data)
		}
		return err
	}
	alloc := w.allocs["team-a"][0]
	if err := read(w.node.ID, w.node.SecretID, alloc.ID, "team-a"); err != nil {
		t.Fatalf("the node of the allocation: %v", err)
	}
	wantCoded(t, read(w.node.ID, "wrong-secret", alloc.ID, "team-a"), structs.CodePermission, "")
	wantCoded(t, read(other.ID, other.SecretID, alloc.ID, "team-a"), structs.CodePermission, "permission denied: allocation")
	// An allocation in default does not open team-a.
	wantCoded(t, read(w.node.ID, w.node.SecretID, w.allocs["default"][0].ID, "team-a"), structs.CodePermission, "permission denied: allocation")
	wantCoded(t, read(w.node.ID, w.node.SecretID, "no-such-alloc", "team-a"), structs.CodePermission, "permission denied: allocation")
}

// Nothing under the data dir (raft.db, snapshots) holds an item's
// plaintext; the KEK is only in the keyring directory.
func TestVariableEndpoint_NoPlaintextOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0; c.DataDir = dir })
	secret := "correct-horse-battery-staple-4f1d"
	if _, err := putVar(s, "", "", "app/db", map[string]string{"password": secret}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := putVar(s, "", "", "app/db2", map[string]string{"password": secret}, nil); err != nil {
		t.Fatal(err)
	}
	keys, _ := s.State().RootKeys(nil)
	kek := s.keyring.KEK(keys[0].KEKID)
	var scanned int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the plaintext", path)
		}
		if filepath.Base(filepath.Dir(path)) != "keyring" && bytes.Contains(b, kek) {
			t.Errorf("%s holds the key-encryption key", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if scanned < 3 || len(snaps) == 0 {
		t.Fatalf("scanned %d files, %d snapshots: the test looked in the wrong place", scanned, len(snaps))
	}
	// The ciphertext is there (the scan looks at the right bytes).
	enc, _ := s.State().VariableByPath(nil, "default", "app/db")
	found := false
	for _, p := range snaps {
		b, _ := os.ReadFile(p)
		found = found || bytes.Contains(b, enc.Data[len(enc.Data)-16:])
	}
	if !found {
		t.Fatal("the snapshot does not hold the variable's ciphertext either: wrong files scanned")
	}
}

func TestCluster_KeyringReplicatesAndSurvivesLeaderLoss(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.servers...)
	if _, err := putVar(leader, "", "", "app/config", map[string]string{"greeting": "hello"}, nil); err != nil {
		t.Fatal(err)
	}
	keys, _ := leader.State().RootKeys(nil)
	kekID := keys[0].KEKID
	for _, s := range c.others(leader) {
		s := s
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return s.keyring.HasKEK(kekID), nil })
		r, err := readVar(s, "", "", "app/config", true)
		if err != nil || r.Data == nil || r.Data.Items["greeting"] != "hello" {
			t.Fatalf("stale read on %s: %+v %v", c.name(s), r, err)
		}
	}
	_ = leader.Shutdown()
	next := c.waitLeader(c.others(leader)...)
	if _, err := putVar(next, "", "", "app/config", map[string]string{"greeting": "bye"}, nil); err != nil {
		t.Fatalf("write on the new leader: %v", err)
	}
	var rot structs.KeyringRotateResponse
	if err := next.RPC("Keyring.Rotate", &structs.KeyringRotateRequest{}, &rot); err != nil {
		t.Fatal(err)
	}
	// The background re-encryption moves the variable to the new key.
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		v, err := next.State().VariableByPath(nil, "default", "app/config")
		return err == nil && v != nil && v.KeyID == rot.Key.KeyID, err
	})
	for _, s := range c.others(leader) {
		r, err := readVar(s, "", "", "app/config", true)
		if err != nil || r.Data.Items["greeting"] != "bye" {
			t.Fatalf("read after rotation on %s: %+v %v", c.name(s), r, err)
		}
	}
}

// TestJobPlan_WarnsAboutMissingVariables: a template reading a variable
// that does not exist is a plan warning naming the path; once the
// variable exists, no warning.
func TestJobPlan_WarnsAboutMissingVariables(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	job := mock.Job()
	job.TaskGroups[0].Tasks[0].Templates = []*structs.Template{{
		EmbeddedTmpl: `{{ with var "app/config" }}{{ .greeting }}{{ end }}`,
		DestPath:     "local/index.html", ChangeMode: structs.TemplateChangeRestart, Perms: "0644",
	}}
	plan := func() string {
		t.Helper()
		var resp structs.JobPlanResponse
		if err := s.RPC("Job.Plan", &structs.JobPlanRequest{Job: job}, &resp); err != nil {
			t.Fatal(err)
		}
		return resp.Warnings
	}
	if w := plan(); !strings.Contains(w, `reads variable "app/config", which does not exist in namespace "default"`) {
		t.Fatalf("warnings: %q", w)
	}
	if _, err := putVar(s, "", "", "app/config", map[string]string{"greeting": "hi"}, nil); err != nil {
		t.Fatal(err)
	}
	if w := plan(); w != "" {
		t.Fatalf("warnings with the variable present: %q", w)
	}
}
