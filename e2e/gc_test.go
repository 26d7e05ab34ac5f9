package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// gcJob is a count-2 job with an update block (so registering it
// starts a deployment) whose tasks sleep until stopped.
func gcJob(id, image string) string {
	return fmt.Sprintf(`job %q {
  group "g" {
    count = 2
    update {
      max_parallel      = 2
      min_healthy_time  = "1s"
      healthy_deadline  = "1m"
      progress_deadline = "2m"
    }
    task "t" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "echo started; trap 'exit 0' TERM; while true; do sleep 1; done"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
      kill_timeout = "2s"
    }
  }
}
`, id, image)
}

// TestGC_SystemGCRemovesAStoppedJobEverywhere: a job runs on a client
// with real containerd, is stopped, and `drover system gc` removes it
// with its evaluations, allocations and deployment from all three
// servers (each server's own state, read without forwarding), and the
// client removes the allocations' directories. A dry run before lists
// exactly those objects and deletes nothing. A job that still runs is
// left as it was.
func TestGC_SystemGCRemovesAStoppedJobEverywhere(t *testing.T) {
	h := startServers(t, 3, nil, nil)
	c1 := h.addClient("c1")
	via := h.servers[1]

	run := func(id string) {
		t.Helper()
		if r := via.cli("job", "run", writeFile(t, id+".hcl", gcJob(id, testutil.BusyboxRef))); r.code != 0 {
			t.Fatalf("job run %s: %s", id, r)
		}
	}
	run("gone")
	run("kept")

	stale := &api.QueryOptions{AllowStale: true}
	allocs, _, err := via.api.Jobs().Allocations("gone", nil)
	if err != nil || len(allocs) != 2 {
		t.Fatalf("allocations of gone: %d, %v", len(allocs), err)
	}
	evals, _, err := via.api.Jobs().Evaluations("gone", nil)
	if err != nil || len(evals) == 0 {
		t.Fatalf("evaluations of gone: %d, %v", len(evals), err)
	}
	deps, _, err := via.api.Jobs().Deployments("gone", nil)
	if err != nil || len(deps) != 1 {
		t.Fatalf("deployments of gone: %d, %v", len(deps), err)
	}
	allocDir := func(id string) string { return filepath.Join(c1.dataDir, "alloc", id) }
	for _, a := range allocs {
		if _, err := os.Stat(filepath.Join(allocDir(a.ID), "alloc", "logs")); err != nil {
			t.Fatalf("allocation %s has no directory on the client: %v", a.ID, err)
		}
	}
	keptAllocs, _, err := via.api.Jobs().Allocations("kept", nil)
	if err != nil || len(keptAllocs) != 2 {
		t.Fatalf("allocations of kept: %d, %v", len(keptAllocs), err)
	}

	if r := via.cli("job", "stop", "gone"); r.code != 0 {
		t.Fatalf("job stop: %s", r)
	}
	// The client reports the allocations complete; the deployment was
	// cancelled by the stop.
	testutil.WaitFor(t, time.Minute, func() (bool, error) {
		list, _, err := via.api.Jobs().Allocations("gone", nil)
		if err != nil {
			return false, err
		}
		for _, a := range list {
			if a.ClientStatus != "complete" {
				return false, fmt.Errorf("allocation %s is %s/%s", a.ID, a.DesiredStatus, a.ClientStatus)
			}
		}
		d, _, err := via.api.Jobs().LatestDeployment("gone", nil)
		if err != nil || d == nil || d.Status == "running" {
			return false, fmt.Errorf("deployment %+v (%v)", d, err)
		}
		return true, nil
	})
	before := h.waitConverged(30 * time.Second)
	evals, _, err = via.api.Jobs().Evaluations("gone", nil)
	if err != nil {
		t.Fatal(err)
	}

	dry := via.cli("system", "gc", "-dry-run")
	if dry.code != 0 || !strings.Contains(dry.stdout, "Would delete") || !strings.Contains(dry.stdout, "default/gone") {
		t.Fatalf("dry run: %s", dry)
	}
	for _, id := range append(append(ids(allocs), ids(evals)...), deps[0].ID) {
		if !strings.Contains(dry.stdout, id) {
			t.Fatalf("the dry run does not list %s:\n%s", id, dry.stdout)
		}
	}
	for _, a := range keptAllocs {
		if strings.Contains(dry.stdout, a.ID) {
			t.Fatalf("the dry run lists the running job's allocation %s:\n%s", a.ID, dry.stdout)
		}
	}
	if after := h.waitConverged(30 * time.Second); after[0].Index != before[0].Index {
		t.Fatalf("a dry run moved the state from index %d to %d", before[0].Index, after[0].Index)
	}

	gc := via.cli("system", "gc")
	if gc.code != 0 || !strings.Contains(gc.stdout, "Deleted 1 job") || !strings.Contains(gc.stdout, "evaluations") ||
		!strings.Contains(gc.stdout, "2 allocations") || !strings.Contains(gc.stdout, "1 deployment") {
		t.Fatalf("system gc: %s", gc)
	}

	// Every server, from its own state.
	hashes := h.waitConverged(30 * time.Second)
	for _, hs := range hashes {
		// What is left is the running job's: its two allocations, its
		// deployment, its evaluation(s); nothing of the stopped one.
		if hs.Rows["jobs"] != 1 || hs.Rows["allocs"] != 2 || hs.Rows["deployment"] != 1 {
			t.Fatalf("%s: rows %v; want only the running job's", hs.Server, hs.Rows)
		}
	}
	for _, s := range h.servers {
		if j, _, err := s.api.Jobs().Info("gone", stale); err == nil || j != nil {
			t.Fatalf("%s still has the job: %+v %v", s.name, j, err)
		}
		for _, a := range allocs {
			if got, _, err := s.api.Allocations().Info(a.ID, stale); err == nil || got != nil {
				t.Fatalf("%s still has allocation %s", s.name, a.ID)
			}
		}
		for _, e := range evals {
			if got, _, err := s.api.Evaluations().Info(e.ID, stale); err == nil || got != nil {
				t.Fatalf("%s still has evaluation %s", s.name, e.ID)
			}
		}
		if left, _, err := s.api.Jobs().Evaluations("gone", stale); err != nil || len(left) != 0 {
			t.Fatalf("%s still lists %d evaluations of the stopped job (%v)", s.name, len(left), err)
		}
		if got, _, err := s.api.Deployments().Info(deps[0].ID, stale); err == nil || got != nil {
			t.Fatalf("%s still has deployment %s", s.name, deps[0].ID)
		}
		list, _, err := s.api.Jobs().Allocations("kept", stale)
		if err != nil || len(list) != 2 {
			t.Fatalf("%s: the running job has %d allocations (%v)", s.name, len(list), err)
		}
	}

	// The client removes the collected allocations' directories, and
	// keeps the running job's.
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		for _, a := range allocs {
			if _, err := os.Stat(allocDir(a.ID)); !os.IsNotExist(err) {
				return false, fmt.Errorf("the directory of %s is still there (%v)", a.ID, err)
			}
		}
		return true, nil
	})
	for _, a := range keptAllocs {
		if _, err := os.Stat(allocDir(a.ID)); err != nil {
			t.Fatalf("the running allocation %s lost its directory: %v", a.ID, err)
		}
	}
	// Nothing left to collect.
	if again := via.cli("system", "gc"); again.code != 0 || !strings.Contains(again.stdout, "Nothing to collect") {
		t.Fatalf("second system gc: %s", again)
	}
}

// TestGC_ACLRefusesWithoutOperatorWrite: with ACLs on, `drover system
// gc` (and its dry run) is refused without operator:write, and works
// with it.
func TestGC_ACLRefusesWithoutOperatorWrite(t *testing.T) {
	h := startServers(t, 3, nil, nil, "-acl-enabled")
	s1 := h.servers[0]
	boot := s1.cli("acl", "bootstrap", "-json")
	if boot.code != 0 {
		t.Fatalf("bootstrap: %s", boot)
	}
	mgmt := secretOf(t, boot.stdout)
	policy := writeFile(t, "ops.hcl", `operator { policy = "read" }`)
	if r := s1.cliAs(mgmt, "acl", "policy", "apply", "ops-read", policy); r.code != 0 {
		t.Fatalf("policy apply: %s", r)
	}
	tok := s1.cliAs(mgmt, "acl", "token", "create", "-name", "ops", "-policy", "ops-read", "-json")
	if tok.code != 0 {
		t.Fatalf("token create: %s", tok)
	}
	reader := secretOf(t, tok.stdout)
	for _, c := range []struct {
		name, token string
		args        []string
		want        string
	}{
		{"anonymous", "", []string{"system", "gc"}, `token "anonymous" lacks operator:write`},
		{"operator read", reader, []string{"system", "gc"}, `token "ops" lacks operator:write`},
		{"operator read, dry run", reader, []string{"system", "gc", "-dry-run"}, `token "ops" lacks operator:write`},
	} {
		r := s1.cliAs(c.token, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("%s: %s\nwant a refusal with %q", c.name, r, c.want)
		}
	}
	if r := s1.cliAs(mgmt, "system", "gc"); r.code != 0 {
		t.Fatalf("management token: %s", r)
	}
}

// secretOf returns the SecretID of a token the CLI printed as JSON.
func secretOf(t *testing.T, out string) string {
	t.Helper()
	var tok struct{ SecretID string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.SecretID == "" {
		t.Fatalf("no token secret in %q (%v)", out, err)
	}
	return tok.SecretID
}

func ids(list interface{}) []string {
	var out []string
	switch l := list.(type) {
	case []*api.Allocation:
		for _, a := range l {
			out = append(out, a.ID)
		}
	case []*api.Evaluation:
		for _, e := range l {
			out = append(out, e.ID)
		}
	}
	return out
}
