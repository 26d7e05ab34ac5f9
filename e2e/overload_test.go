package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// Overload: the security issue's flood. 20,000 open blocking queries
// from one address took every file descriptor of an agent: RPC accepts
// failed and a healthy node was marked down.
//
// The flood comes from child processes (testdata/flood, built by the
// test): this test process, like the agent, has 20,000 descriptors, and
// needs some for itself. Four children run 5,000 workers each, all from
// 127.0.0.1: each worker keeps one blocking query asked, reusing its
// connection when the agent answers at once and keeps it, redialing
// after a pause when the agent closes it (a 429 over the connection
// limit). So 20,000 queries are outstanding throughout, while the agent
// holds at most its per-client limit plus its overflow connections.
//
// Throughout, from the flood's own address, /v1/agent/health answers
// 200 (the overflow server); from an observer address, both nodes stay
// ready: the dev agent's own client and a client-only agent whose
// heartbeats reach the dev agent's RPC port from 127.0.0.1 too. The dev
// agent's open descriptors (/proc/<pid>/fd) stay bounded.
const (
	floodProcs   = 4
	floodWorkers = 5000
	floodFor     = 45 * time.Second
	// floodFDBudget bounds the agent's descriptors during the flood
	// over its idle count: 100 per-client connections, 256 overflow
	// connections, and room for what an agent opens anyway (log
	// files, RPC sessions, containerd).
	floodFDBudget = 100 + 256 + 150
)

func TestOverload_BlockingQueryFlood(t *testing.T) {
	c := newCluster(t)
	dev := c.startDevAgent()
	// A client-only agent on its own address, registered with the dev
	// agent's server over RPC; its source address is 127.0.0.1, the
	// flood's.
	host := newHost()
	client := newAgent(t, "client", host, "", []string{"agent", "-client", "-bind", host, "-node-name", "client",
		"-servers", dev.host + ":4647", "-containerd-address", c.ctrd.Address, "-containerd-namespace", c.ns + "-client",
		"-log-level", "debug"})
	client.start()
	client.waitReady()

	observer := clientFrom(t, "127.0.0.2", "http://"+dev.host+":4646", 10*time.Second)
	floodSide := clientFrom(t, "127.0.0.1", "http://"+dev.host+":4646", 10*time.Second)
	waitNodesReady(t, observer, 2)
	pid := devPID(t, dev)
	idleFDs := openFDs(t, pid)
	beats0 := metric(t, dev, "drover_heartbeats_total")

	bin := filepath.Join(t.TempDir(), "flood")
	build := exec.Command("go", "build", "-o", bin, "./testdata/flood/main.go")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build flood: %v\n%s", err, out)
	}
	index := jobsIndexFrom(t, observer)
	type child struct {
		cmd *exec.Cmd
		out bytes.Buffer
	}
	var children []*child
	for i := 0; i < floodProcs; i++ {
		ch := &child{}
		ch.cmd = exec.Command(bin, "-addr", dev.host+":4646", "-from", "127.0.0.1", "-conns", strconv.Itoa(floodWorkers),
			"-duration", floodFor.String(), "-path", fmt.Sprintf("/v1/jobs?index=%d&wait=5m", index))
		ch.cmd.Stdout = &ch.out
		ch.cmd.Stderr = os.Stderr
		ch.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := ch.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, ch)
	}
	done := make(chan struct{})
	var waitErrs []error
	var mu sync.Mutex
	go func() {
		var wg sync.WaitGroup
		for _, ch := range children {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := ch.cmd.Wait(); err != nil {
					mu.Lock()
					waitErrs = append(waitErrs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		for _, ch := range children {
			_ = ch.cmd.Process.Kill()
		}
		<-done
	})

	// Throughout the flood: health from the flood's address, nodes
	// ready, no node marked down, descriptors bounded.
	checks, maxFDs := 0, 0
	deadline := time.Now().Add(floodFor + time.Minute)
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the flood did not end")
		}
		if !dev.alive() {
			t.Fatalf("the agent died during the flood:\n%s", tail(dev.logPath, 40))
		}
		if err := floodSide.Agent().Health(); err != nil {
			t.Fatalf("check %d: /v1/agent/health from the flood's address failed: %v", checks, err)
		}
		nodes, _, err := observer.Nodes().List(nil)
		if err != nil {
			t.Fatalf("check %d: list nodes from the observer: %v", checks, err)
		}
		for _, n := range nodes {
			if n.Status != "ready" {
				t.Fatalf("check %d: node %s is %s during the flood", checks, n.Name, n.Status)
			}
		}
		if down := metric(t, dev, "drover_nodes_down_total"); down != 0 {
			t.Fatalf("check %d: %v nodes marked down during the flood", checks, down)
		}
		fds := openFDs(t, pid)
		maxFDs = max(maxFDs, fds)
		if fds > idleFDs+floodFDBudget {
			t.Fatalf("check %d: the agent has %d open descriptors, %d when idle; want at most %d more", checks, fds, idleFDs, floodFDBudget)
		}
		checks++
	}
	if len(waitErrs) > 0 {
		t.Fatalf("flood processes failed: %v", waitErrs)
	}

	// What the flood saw: the limits answered it, none of it crashed
	// anything.
	var total floodStats
	for _, ch := range children {
		var st floodStats
		if err := json.Unmarshal(ch.out.Bytes(), &st); err != nil {
			t.Fatalf("flood output %q: %v", ch.out.String(), err)
		}
		total.add(st)
	}
	t.Logf("flood: %+v; agent descriptors: %d idle, at most %d during the flood; %d checks", total, idleFDs, maxFDs, checks)
	if total.Workers != floodProcs*floodWorkers || total.TooMany == 0 || total.NotBlocked == 0 {
		t.Fatalf("flood %+v: want %d workers refused with 429 over the connection limit and answered at once over the blocking-query cap", total, floodProcs*floodWorkers)
	}
	if beats := metric(t, dev, "drover_heartbeats_total"); beats <= beats0 {
		t.Fatalf("no heartbeat reached the leader during the flood (%v before, %v after)", beats0, beats)
	}
	// The flood's connections are given back: its address is served
	// normally again.
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		_, _, err := floodSide.Jobs().List(nil)
		return err == nil, err
	})
}

// floodStats is testdata/flood's report.
type floodStats struct {
	Workers                                                int
	Attempts, Held, NotBlocked, OK, TooMany, Other, Closed int64
}

func (s *floodStats) add(o floodStats) {
	s.Workers += o.Workers
	s.Attempts += o.Attempts
	s.Held += o.Held
	s.NotBlocked += o.NotBlocked
	s.OK += o.OK
	s.TooMany += o.TooMany
	s.Other += o.Other
	s.Closed += o.Closed
}

// httpFrom is an HTTP client whose connections leave from the local
// address from, without keep-alive (every call is a new connection, as
// a health checker's would be).
func httpFrom(from string, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true},
	}
}

// clientFrom is an API client over httpFrom.
func clientFrom(t *testing.T, from, addr string, timeout time.Duration) *api.Client {
	t.Helper()
	cl, err := api.NewClient(&api.Config{Address: addr, HTTPClient: httpFrom(from, timeout)})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func waitNodesReady(t *testing.T, cl *api.Client, n int) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		nodes, _, err := cl.Nodes().List(nil)
		if err != nil {
			return false, err
		}
		ready := 0
		for _, node := range nodes {
			if node.Status == "ready" {
				ready++
			}
		}
		return ready == n, fmt.Errorf("%d of %d nodes ready", ready, n)
	})
}

// jobsIndexFrom is the index of the job list: a blocking query on it
// waits until a job is written.
func jobsIndexFrom(t *testing.T, cl *api.Client) uint64 {
	t.Helper()
	_, meta, err := cl.Jobs().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta == nil || meta.LastIndex == 0 {
		t.Fatalf("job list without an index: %+v", meta)
	}
	return meta.LastIndex
}

func devPID(t *testing.T, a *agent) int {
	t.Helper()
	cmd, _ := a.proc()
	if cmd == nil || cmd.Process == nil {
		t.Fatal("the agent is not running")
	}
	return cmd.Process.Pid
}

// openFDs counts a process's open file descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("open descriptors of %d: %v", pid, err)
	}
	return len(entries)
}

// metric reads one unlabelled metric from the agent's /v1/metrics,
// from the observer's address.
func metric(t *testing.T, a *agent, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+a.host+":4646/v1/metrics", nil)
	resp, err := httpFrom("127.0.0.2", 10*time.Second).Do(req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in /v1/metrics (%d)", name, resp.StatusCode)
	return 0
}
