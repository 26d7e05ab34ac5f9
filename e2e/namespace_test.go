package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// liveIn returns the allocations of job id in namespace ns that should
// run.
func liveIn(t *testing.T, a *agent, ns, id string) []*api.Allocation {
	t.Helper()
	stubs, _, err := a.api.WithNamespace(ns).Jobs().Allocations(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.Allocation
	for _, s := range stubs {
		if s.DesiredStatus == "run" {
			out = append(out, s)
		}
	}
	return out
}

// TestNamespace_SameJobIDInTwoNamespaces is the namespace part of the
// issue end to end on real containerd: a job "web" runs in team-a (one
// instance, the namespace in the job file) and in team-b (two, the
// namespace from -namespace); `job status -namespace team-a web` and
// `-namespace team-b web` show different jobs; deleting team-a while it
// holds its job is refused with the 409's message, and succeeds once
// the job is purged, while team-b's containers keep running.
func TestNamespace_SameJobIDInTwoNamespaces(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	for _, ns := range []string{"team-a", "team-b"} {
		if res := a.cli("namespace", "apply", "-description", "e2e "+ns, ns); res.code != 0 {
			t.Fatalf("namespace apply %s: %s", ns, res)
		}
	}
	fileA := writeFile(t, "web-a.hcl", strings.Replace(webJob("web", c.image, 1, 32), `job "web" {`, "job \"web\" {\n  namespace = \"team-a\"", 1))
	fileB := writeFile(t, "web-b.hcl", webJob("web", c.image, 2, 32))
	if res := a.cli("job", "run", fileA); res.code != 0 || !strings.Contains(res.stdout, "All 1 allocations") {
		t.Fatalf("job run (team-a from the file): %s", res)
	}
	if res := a.cli("job", "run", "-namespace", "team-b", fileB); res.code != 0 || !strings.Contains(res.stdout, "All 2 allocations") {
		t.Fatalf("job run -namespace team-b: %s", res)
	}

	// Two jobs named web, one per namespace, none in the default one.
	inA, inB := liveIn(t, a, "team-a", "web"), liveIn(t, a, "team-b", "web")
	if len(inA) != 1 || len(inB) != 2 {
		t.Fatalf("live allocations: team-a %d, team-b %d; want 1 and 2", len(inA), len(inB))
	}
	for ns, allocs := range map[string][]*api.Allocation{"team-a": inA, "team-b": inB} {
		for _, al := range allocs {
			if al.Namespace != ns {
				t.Fatalf("allocation %s of %s's web is in namespace %q", al.ID, ns, al.Namespace)
			}
		}
	}
	stA := a.cli("job", "status", "-namespace", "team-a", "web")
	stB := a.cli("job", "status", "-namespace", "team-b", "web")
	if stA.code != 0 || stB.code != 0 {
		t.Fatalf("job status:\n%s\n%s", stA, stB)
	}
	if !strings.Contains(stA.stdout, "team-a") || strings.Contains(stA.stdout, "team-b") || !strings.Contains(stA.stdout, short8(inA[0].ID)) {
		t.Fatalf("job status -namespace team-a web:\n%s", stA.stdout)
	}
	if !strings.Contains(stB.stdout, "team-b") || strings.Contains(stB.stdout, "team-a") || !strings.Contains(stB.stdout, short8(inB[0].ID)) || strings.Contains(stB.stdout, short8(inA[0].ID)) {
		t.Fatalf("job status -namespace team-b web:\n%s", stB.stdout)
	}
	if st := a.cli("job", "status", "web"); st.code == 0 || !strings.Contains(st.stderr, `in namespace "default"`) {
		t.Fatalf("job status web in the default namespace: %s", st)
	}
	if st := a.cli("job", "status", "-namespace", "*"); st.code != 0 || strings.Count(st.stdout, "web") != 2 {
		t.Fatalf("job status -namespace '*': %s", st)
	}

	// containerd runs the three.
	ctr, ctx := c.containerd()
	containers, err := ctr.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 3 {
		t.Fatalf("containerd has %d containers, want 3", len(containers))
	}

	// team-a holds a job: refused, with the 409's message.
	del := a.cli("namespace", "delete", "team-a")
	if del.code == 0 || !strings.Contains(del.stderr, `namespace "team-a" has 1 job (web)`) || !strings.Contains(del.stderr, "drover job stop -purge -namespace team-a") {
		t.Fatalf("namespace delete team-a with its job: %s", del)
	}
	if stop := a.cli("job", "stop", "-purge", "-namespace", "team-a", "web"); stop.code != 0 {
		t.Fatalf("job stop -purge in team-a: %s", stop)
	}
	if del := a.cli("namespace", "delete", "team-a"); del.code != 0 {
		t.Fatalf("namespace delete team-a after the purge: %s", del)
	}
	if list := a.cli("namespace", "list"); list.code != 0 || strings.Contains(list.stdout, "team-a") || !strings.Contains(list.stdout, "team-b") {
		t.Fatalf("namespace list: %s", list)
	}

	// team-a's container is gone; team-b's two still run.
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		containers, err := ctr.Containers(ctx)
		if err != nil {
			return false, err
		}
		return len(containers) == 2, fmt.Errorf("%d containers, want team-b's 2", len(containers))
	})
	for _, al := range inB {
		cont, err := ctr.LoadContainer(ctx, al.ID+"-server")
		if err != nil {
			t.Fatalf("team-b's container %s: %v", al.ID, err)
		}
		task, err := cont.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := task.Status(ctx); err != nil || st.Status != "running" {
			t.Fatalf("team-b's task %s is %v (%v)", al.ID, st.Status, err)
		}
	}
	if n := len(liveIn(t, a, "team-b", "web")); n != 2 {
		t.Fatalf("team-b's web has %d live allocations after team-a's purge, want 2", n)
	}
}

// short8 is the 8-character ID prefix the CLI shows.
func short8(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
