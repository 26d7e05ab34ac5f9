package e2e

import (
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// simNodes runs `drover sim nodes` against the servers until the test
// ends, its output in a log file printed if the test fails.
func simNodes(t *testing.T, h *haCluster, count int, prefix string) {
	t.Helper()
	var servers []string
	for _, s := range h.servers {
		servers = append(servers, s.host+":4647")
	}
	logPath := filepath.Join(t.TempDir(), "sim.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(droverBin, "sim", "nodes", "-count", fmt.Sprint(count), "-servers", strings.Join(servers, ","),
		"-name-prefix", prefix, "-stats-interval", "5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("simulator log:\n%s", tail(logPath, 40))
		}
	})
}

// freeHost returns a loopback address in 127.0.100.0-127.0.199.255
// whose agent ports are free: away from the 127.0.0.x addresses other
// e2e runs on the machine hand out, since 300 simulated nodes make a
// stray agent joining the gossip pool costly to diagnose.
func freeHost(t *testing.T) string {
	t.Helper()
	for try := 0; try < 100; try++ {
		h := fmt.Sprintf("127.0.%d.%d", 100+rand.Intn(100), 1+rand.Intn(254))
		var ls []io.Closer
		ok := true
		for _, port := range []string{"4646", "4647", "4648"} {
			l, err := net.Listen("tcp", h+":"+port)
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		if ok {
			if u, err := net.ListenPacket("udp", h+":4648"); err == nil {
				ls = append(ls, u)
			} else {
				ok = false
			}
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return h
		}
	}
	t.Fatal("no free loopback address")
	return ""
}

// simNodeStatus returns the simulated nodes (named prefix-NNNNN) by ID,
// with their status.
func simNodeStatus(a *agent, prefix string) (map[string]string, error) {
	nodes, _, err := a.api.Nodes().List(nil)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range nodes {
		if strings.HasPrefix(n.Name, prefix+"-") {
			out[n.ID] = n.Status
		}
	}
	return out, nil
}

// TestSim_SystemJobOnSimulatedNodes runs 300 simulated nodes (drover sim
// nodes, through the real client RPCs) against a server: a system job
// gets exactly one allocation on every simulated node, each reported
// running by the simulator, and the simulator's heartbeats keep every
// node ready over several TTLs (no false down).
func TestSim_SystemJobOnSimulatedNodes(t *testing.T) {
	const count = 300
	// Short TTLs so that "a while" spans several of them: 300 nodes get
	// about 6 s (the leader allows 50 heartbeats/s), plus 2 s of grace.
	cfg := writeFile(t, "server.hcl", `server {
  min_heartbeat_ttl = "2s"
  heartbeat_grace   = "2s"
}
`)
	h := startServers(t, 1, []string{freeHost(t)}, nil, "-config", cfg)
	s := h.servers[0]
	simNodes(t, h, count, "esim")

	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		st, err := simNodeStatus(s, "esim")
		if err != nil {
			return false, err
		}
		ready := 0
		for _, status := range st {
			if status == "ready" {
				ready++
			}
		}
		return ready == count, fmt.Errorf("%d of %d simulated nodes ready (%d registered)", ready, count, len(st))
	})
	nodes, err := simNodeStatus(s, "esim")
	if err != nil {
		t.Fatal(err)
	}

	job := fmt.Sprintf(`job "sys" {
  type = "system"
  group "g" {
    task "t" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sleep"
        args    = ["3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
`, testutil.BusyboxRef)
	// job run follows the job until every allocation runs.
	if res := s.cli("job", "run", "-timeout", "1m", writeFile(t, "sys.hcl", job)); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}

	// Exactly one allocation per simulated node, each running.
	var allocs []*api.Allocation
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		all, _, err := s.api.Jobs().Allocations("sys", nil)
		if err != nil {
			return false, err
		}
		allocs = allocs[:0]
		running := 0
		for _, a := range all {
			if a.DesiredStatus != "run" {
				continue
			}
			allocs = append(allocs, a)
			if a.ClientStatus == "running" {
				running++
			}
		}
		return len(allocs) == count && running == count, fmt.Errorf("%d allocations to run, %d running; want %d", len(allocs), running, count)
	})
	perNode := map[string]int{}
	for _, a := range allocs {
		if _, ok := nodes[a.NodeID]; !ok {
			t.Fatalf("allocation %s on node %s, which is not a simulated node", a.Name, a.NodeID)
		}
		perNode[a.NodeID]++
	}
	for id := range nodes {
		if perNode[id] != 1 {
			t.Fatalf("simulated node %s has %d allocations of the system job, want 1", id, perNode[id])
		}
	}

	// The heartbeats keep every node ready, and no allocation is lost,
	// over 15 s: more than two TTLs plus grace.
	watchUntil := time.Now().Add(15 * time.Second)
	for time.Now().Before(watchUntil) {
		st, err := simNodeStatus(s, "esim")
		if err != nil {
			t.Fatal(err)
		}
		for id, status := range st {
			if status != "ready" {
				t.Fatalf("simulated node %s went %q while its simulator heartbeats", id, status)
			}
		}
		time.Sleep(time.Second)
	}
	all, _, err := s.api.Jobs().Allocations("sys", nil)
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, a := range all {
		if a.DesiredStatus == "run" && a.ClientStatus == "running" {
			running++
		}
	}
	if running != count || len(all) != count {
		t.Fatalf("after the watch: %d allocations, %d running; want %d and %d", len(all), running, count, count)
	}
}
