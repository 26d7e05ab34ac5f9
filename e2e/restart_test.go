package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// TestHA_ClientKill: a client killed with SIGKILL goes down after its
// heartbeat TTL and its allocations are replaced on the other client;
// started again, it stops the containers that were replaced, so nothing
// runs twice.
func TestHA_ClientKill(t *testing.T) {
	cfg := writeFile(t, "server.hcl", `server {
  min_heartbeat_ttl = "1s"
  heartbeat_grace   = "1s"
}
`)
	h := startServers(t, 1, nil, nil, "-config", cfg)
	c1 := h.addClient("c1")
	c2 := h.addClient("c2")
	if res := c1.cli("job", "run", writeFile(t, "j.hcl", countJob("moving", h.ctrd.image, 2, 16))); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	// Kill the client of the first allocation (job anti-affinity may
	// have put the other one on the other client).
	allocs := liveAllocs(t, c1, "moving")
	victim, survivor := c1, c2
	node, _, err := c1.api.Nodes().Info(allocs[0].NodeID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if node.Name == "c2" {
		victim, survivor = c2, c1
	}
	onVictim := 0
	for _, a := range allocs {
		if a.NodeID == node.ID {
			onVictim++
		}
	}
	victimNS, survivorNS := h.clientNamespace(victim), h.clientNamespace(survivor)
	if n := len(taskPIDs(t, h.ctrd, victimNS)); n != onVictim {
		t.Fatalf("%d tasks on %s, want %d", n, victim.name, onVictim)
	}
	if n := len(taskPIDs(t, h.ctrd, survivorNS)); n != 2-onVictim {
		t.Fatalf("%d tasks on %s, want %d", n, survivor.name, 2-onVictim)
	}

	victim.kill()
	start := time.Now()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		n, _, err := survivor.api.Nodes().Info(node.ID, nil)
		if err != nil {
			return false, err
		}
		return n.Status == "down", fmt.Errorf("killed node is %s", n.Status)
	})
	t.Logf("node %s down %s after its agent was killed", victim.name, time.Since(start).Round(time.Millisecond))
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		n := len(taskPIDs(t, h.ctrd, survivorNS))
		return n == 2, fmt.Errorf("%d replacement tasks on %s", n, survivor.name)
	})
	// The killed client's containers kept running meanwhile (it is dead,
	// not its machine).
	if n := len(taskPIDs(t, h.ctrd, victimNS)); n != onVictim {
		t.Fatalf("%d tasks left on the killed client, want its %d still running", n, onVictim)
	}

	victim.restart()
	victim.waitReady()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		n := len(taskPIDs(t, h.ctrd, victimNS))
		return n == 0, fmt.Errorf("%d replaced tasks still run on the restarted client", n)
	})
	if n := len(taskPIDs(t, h.ctrd, survivorNS)); n != 2 {
		t.Fatalf("%d tasks on %s after the restart, want 2", n, survivor.name)
	}
	live := liveAllocs(t, survivor, "moving")
	if len(live) != 2 {
		t.Fatalf("%d live allocations, want 2", len(live))
	}
	for _, a := range live {
		if a.NodeID == node.ID {
			t.Fatalf("allocation %s still wants to run on the node that went down", a.Name)
		}
	}
}

// TestHA_FullClusterRestart: all three servers SIGKILLed and restarted
// on their data dirs come back with the same state, and the running
// containers are untouched.
func TestHA_FullClusterRestart(t *testing.T) {
	h := startServers(t, 3, nil, nil)
	c := h.addClient("c1")
	if res := c.cli("job", "run", writeFile(t, "j.hcl", countJob("survivor", h.ctrd.image, 3, 16))); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	for i := 0; i < 5; i++ {
		if ok, _ := putJob(h.servers[i%3], regJob(fmt.Sprintf("kept-%d", i), "v")); !ok {
			t.Fatalf("write %d failed", i)
		}
	}
	waitEvalsDone(t, h.servers[0])
	before := h.waitConverged(30 * time.Second)[0]
	pids := taskPIDs(t, h.ctrd, h.clientNamespace(c))

	for _, s := range h.servers {
		s.kill()
	}
	for _, s := range h.servers {
		s.restart()
	}
	h.waitLeader(nil)
	after := h.waitConverged(60 * time.Second)[0]
	for table, sum := range before.Tables {
		if after.Tables[table] != sum {
			t.Errorf("table %s changed across the restart (index %d -> %d)", table, before.Index, after.Index)
		}
	}
	if after.Index < before.Index {
		t.Fatalf("state index went back from %d to %d", before.Index, after.Index)
	}
	for id, pid := range taskPIDs(t, h.ctrd, h.clientNamespace(c)) {
		if pids[id] != pid {
			t.Fatalf("task %s: PID %d before, %d after", id, pids[id], pid)
		}
	}
	if len(pids) != 3 {
		t.Fatalf("%d tasks, want 3", len(pids))
	}
	// The restarted cluster takes writes and the job is intact.
	if ok, _ := putJob(h.servers[0], regJob("after", "v")); !ok {
		t.Fatal("no write after the restart")
	}
	if live := liveAllocs(t, c, "survivor"); len(live) != 3 {
		t.Fatalf("%d live allocations after the restart", len(live))
	}
}

// waitEvalsDone waits until no evaluation of any job is pending, so the
// state is quiet: nothing queued will write to it.
func waitEvalsDone(t *testing.T, via *agent) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		jobs, _, err := via.api.Jobs().List(nil)
		if err != nil {
			return false, err
		}
		for _, j := range jobs {
			evals, _, err := via.api.Jobs().Evaluations(j.ID, nil)
			if err != nil {
				return false, err
			}
			for _, e := range evals {
				if e.Status == "pending" {
					return false, fmt.Errorf("evaluation %s of job %s is pending", e.ID, j.ID)
				}
			}
		}
		return true, nil
	})
}
