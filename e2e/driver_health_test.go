package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// TestDriverHealth_ContainerdDownAndBack stops the node's (private)
// containerd under a running job: within 10 s the node's containerd
// driver is unhealthy (node status -verbose says why and since when)
// and a new job is refused with exit 2 naming the driver; once
// containerd is back the node is healthy again, the new job places, and
// the old tasks ran on throughout (same PIDs).
func TestDriverHealth_ContainerdDownAndBack(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	if r := a.cli("job", "run", writeFile(t, "old.hcl", webJob("old", c.image, 2, 32))); r.code != 0 {
		t.Fatalf("job run old: %s", r)
	}
	ctr, ctx := c.containerd()
	pids := map[string]uint32{}
	for _, al := range liveAllocs(t, a, "old") {
		cont, err := ctr.LoadContainer(ctx, al.ID+"-server")
		if err != nil {
			t.Fatal(err)
		}
		task, err := cont.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		pids[al.ID] = task.Pid()
	}
	nodeHealthy := func() (bool, string) {
		nodes, _, err := a.api.Nodes().List(nil)
		if err != nil || len(nodes) != 1 {
			return false, fmt.Sprint(err)
		}
		n, _, err := a.api.Nodes().Info(nodes[0].ID, nil)
		if err != nil {
			return false, err.Error()
		}
		d := n.Drivers["containerd"]
		if d == nil {
			return false, "no containerd driver"
		}
		return d.Healthy, d.HealthDescription
	}

	if err := c.ctrd.StopDaemon(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		ok, why := nodeHealthy()
		return !ok, fmt.Errorf("still healthy: %s", why)
	})
	t.Logf("driver unhealthy %v after containerd stopped", time.Since(stopped).Round(100*time.Millisecond))
	_, why := nodeHealthy()
	if !strings.Contains(why, "containerd") {
		t.Fatalf("health description %q does not name containerd", why)
	}
	nodes, _, _ := a.api.Nodes().List(nil)
	if r := a.cli("node", "status", "-verbose", nodes[0].ID); r.code != 0 || !strings.Contains(r.stdout, "unhealthy") || !strings.Contains(r.stdout, "Since") {
		t.Fatalf("node status -verbose: %s", r)
	}
	r := a.cli("job", "run", writeFile(t, "new.hcl", webJob("new", c.image, 1, 32)))
	if r.code != 2 || !strings.Contains(r.stdout+r.stderr, `driver "containerd" unhealthy`) {
		t.Fatalf("job run while containerd is down: exit %d\n%s", r.code, r)
	}

	if err := c.ctrd.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, func() (bool, error) {
		ok, why := nodeHealthy()
		return ok, fmt.Errorf("still unhealthy: %s", why)
	})
	// The blocked job places now.
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		for _, al := range liveAllocs(t, a, "new") {
			if al.ClientStatus == "running" {
				return true, nil
			}
		}
		return false, fmt.Errorf("job new has no running allocation")
	})
	for id, pid := range pids {
		cont, err := ctr.LoadContainer(ctx, id+"-server")
		if err != nil {
			t.Fatalf("container of %s: %v", id, err)
		}
		task, err := cont.Task(ctx, nil)
		if err != nil || task.Pid() != pid {
			t.Fatalf("task of %s: pid %v (was %d), %v: it did not run on", id, task, pid, err)
		}
	}
	for _, al := range liveAllocs(t, a, "old") {
		if al.ClientStatus != "running" {
			t.Fatalf("old allocation %s is %s", al.ID, al.ClientStatus)
		}
	}
}
