package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// committedMemory sums the memory of team-a's allocations that hold it:
// desired to run, and not complete, failed or lost on their client.
func committedMemory(t *testing.T, a *agent, ns string) (int64, int) {
	t.Helper()
	allocs, _, err := a.api.WithNamespace(ns).Allocations().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	var mem int64
	n := 0
	for _, al := range allocs {
		if al.Namespace != ns {
			t.Fatalf("allocation %s of namespace %q listed in %q", al.ID, al.Namespace, ns)
		}
		switch {
		case al.DesiredStatus != "run":
		case al.ClientStatus == "complete" || al.ClientStatus == "failed" || al.ClientStatus == "lost":
		default:
			n++
			if al.AllocatedResources != nil {
				for _, tr := range al.AllocatedResources.Tasks {
					mem += tr.Memory.MemoryMB
				}
			}
		}
	}
	return mem, n
}

// runCLI runs the drover CLI against a from any goroutine (agent.cli
// fails the test, which only the test's goroutine may do).
func runCLI(a *agent, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, args...)
	cmd.Env = append(os.Environ(), a.cliEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
		err = nil
	}
	return r, err
}

// TestQuota_NamespaceMemoryLimit is the quota issue end to end on real
// containerd: team-a is held to 1,024 MB; a job asking for more is
// refused by `job run` with exit 2 naming the quota (and `job plan`
// says so); then jobs submitted at the same time, each within the quota
// alone but over it together, leave at most 1,024 MB committed in
// team-a, and the ones that did not fit are explained.
func TestQuota_NamespaceMemoryLimit(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	if res := a.cli("namespace", "apply", "team-a"); res.code != 0 {
		t.Fatalf("namespace apply: %s", res)
	}
	quota := writeFile(t, "quota.hcl", `name        = "team-a"
description = "e2e"
namespace   = "team-a"
limit {
  memory = 1024
}
`)
	if res := a.cli("quota", "apply", quota); res.code != 0 {
		t.Fatalf("quota apply: %s", res)
	}
	inTeamA := func(id string, memMB int) string {
		return writeFile(t, id+".hcl", strings.Replace(webJob(id, c.image, 1, memMB), fmt.Sprintf("job %q {", id), fmt.Sprintf("job %q {\n  namespace = \"team-a\"", id), 1))
	}

	// One allocation asking for more than the whole quota.
	big := inTeamA("big", 2048)
	plan := a.cli("job", "plan", big)
	if !strings.Contains(plan.stdout+plan.stderr, `quota "team-a" exhausted: memory 0/1024 MB`) {
		t.Fatalf("job plan over the quota: %s", plan)
	}
	res := a.cli("job", "run", big)
	if res.code != 2 || !strings.Contains(res.stdout+res.stderr, `quota "team-a" exhausted: memory 0/1024 MB`) {
		t.Fatalf("job run over the quota: want exit 2 naming the quota, got %s", res)
	}
	if mem, n := committedMemory(t, a, "team-a"); n != 0 || mem != 0 {
		t.Fatalf("after the refused job, team-a holds %d allocations (%d MB)", n, mem)
	}
	if stop := a.cli("job", "stop", "-purge", "-namespace", "team-a", "big"); stop.code != 0 {
		t.Fatalf("job stop big: %s", stop)
	}

	// Five jobs of 300 MB at once: three fit in 1,024 MB, five do not.
	const jobs = 5
	files := make([]string, jobs)
	for i := range files {
		files[i] = inTeamA(fmt.Sprintf("w%d", i), 300)
	}
	results := make([]result, jobs)
	errs := make([]error, jobs)
	var wg sync.WaitGroup
	for i := range files {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = runCLI(a, "job", "run", files[i])
		}(i)
	}
	wg.Wait()
	placed, refused := 0, 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("job run w%d: %v", i, errs[i])
		}
		switch {
		case r.code == 0:
			placed++
		case r.code == 2 && strings.Contains(r.stdout+r.stderr, `quota "team-a" exhausted: memory`):
			refused++
		default:
			t.Fatalf("job run w%d: want exit 0, or 2 naming the quota; got %s", i, r)
		}
	}
	mem, n := committedMemory(t, a, "team-a")
	t.Logf("%d jobs placed, %d refused; team-a holds %d allocations, %d MB", placed, refused, n, mem)
	if mem > 1024 {
		t.Fatalf("team-a holds %d MB in %d allocations: over its 1,024 MB quota", mem, n)
	}
	if placed != 3 || refused != 2 || n != 3 {
		t.Fatalf("%d placed and %d refused (%d live allocations); want 3 and 2", placed, refused, n)
	}
	// The quota's usage agrees, and stays within the limit while the
	// blocked evaluations are retried.
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		u, _, err := a.api.Quotas().Usage("team-a", nil)
		if err != nil {
			return false, err
		}
		if u.Used.MemoryMB > 1024 {
			t.Fatalf("quota usage %+v over the limit", u.Used)
		}
		return u.Used.MemoryMB == 900 && u.Used.Allocations == 3, fmt.Errorf("usage %+v, want 900 MB in 3", u.Used)
	})
	if st := a.cli("quota", "status", "team-a"); st.code != 0 || !strings.Contains(st.stdout, "900") {
		t.Fatalf("quota status: %s", st)
	}
}
