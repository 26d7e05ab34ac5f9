package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// droverBin is the binary under test, built once by TestMain.
var droverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drover-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	droverBin = filepath.Join(dir, "drover")
	build := exec.Command("go", "build", "-o", droverBin, "..")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build drover:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// nextHost hands each agent its own loopback address, so default ports
// never clash between agents.
var nextHost atomic.Int32

func newHost() string {
	return fmt.Sprintf("127.0.0.%d", 20+nextHost.Add(1))
}

// cluster is one test's world: a private containerd with the busybox
// image imported, and the agents started in it.
type cluster struct {
	t     testing.TB
	ctrd  *testutil.Containerd
	ns    string
	image string
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := testutil.StartContainerd(t)
	ns := c.Namespace + "-drover"
	testutil.ImportBusybox(t, c.Address, ns, testutil.BusyboxRef)
	return &cluster{t: t, ctrd: c, ns: ns, image: testutil.BusyboxRef}
}

// containerd returns a containerd client and a context in the agents'
// namespace: the witness of what runs.
func (c *cluster) containerd() (*ctrd.Client, context.Context) {
	c.t.Helper()
	cl, err := c.ctrd.Client(c.ns)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl, namespaces.WithNamespace(context.Background(), c.ns)
}

// agent is a drover agent process.
type agent struct {
	t       testing.TB
	name    string
	host    string
	dataDir string
	args    []string
	// netns, when set, runs the agent inside that network namespace.
	netns   string
	logPath string
	api     *api.Client
	// scheme is "http", or "https" for an agent serving TLS; httpc makes
	// raw requests to it, and cliEnv is the environment the CLI needs
	// to reach it (address and, with TLS, certificates).
	scheme string
	httpc  *http.Client
	cliEnv []string

	// mu guards cmd and exited, which start replaces while other
	// goroutines (a test's writers) ask whether the agent runs.
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// proc returns the current process and its exit channel.
func (a *agent) proc() (*exec.Cmd, chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd, a.exited
}

// startDevAgent starts `drover agent -dev` on a fresh address and data
// dir, and waits until its node is registered.
func (c *cluster) startDevAgent(extra ...string) *agent {
	c.t.Helper()
	host := newHost()
	a := newAgent(c.t, "dev", host, "", append([]string{"agent", "-dev", "-bind", host,
		"-containerd-address", c.ctrd.Address, "-containerd-namespace", c.ns, "-log-level", "debug"}, extra...))
	a.start()
	a.waitReady()
	return a
}

// newAgent prepares (but does not start) an agent process: args get
// -data-dir appended; the agent is stopped when the test ends, and its
// log printed if the test failed.
func newAgent(t testing.TB, name, host, netns string, args []string) *agent {
	t.Helper()
	a := &agent{t: t, name: name, host: host, netns: netns, dataDir: t.TempDir(), scheme: "http",
		httpc: &http.Client{Timeout: 15 * time.Second}}
	a.args = append(args, "-data-dir", a.dataDir)
	a.logPath = filepath.Join(a.dataDir, "agent.log")
	cl, err := api.NewClient(&api.Config{Address: a.url()})
	if err != nil {
		t.Fatal(err)
	}
	a.api = cl
	a.cliEnv = []string{"DROVER_ADDR=" + a.url()}
	t.Cleanup(func() {
		a.stop(syscall.SIGTERM)
		// Tasks outlive their agent: the secrets tmpfs it mounted for
		// them stays, and would keep the data dir from being removed.
		unmountUnder(t, a.dataDir)
		if t.Failed() {
			t.Logf("agent %s (%s) log:\n%s", name, host, tail(a.logPath, 60))
		}
	})
	return a
}

// unmountUnder detaches every mount below dir (in this process's mount
// namespace).
func unmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Logf("read mountinfo: %v", err)
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	// Deepest first.
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}

// useToken makes the harness's API client of a plain-HTTP agent send
// an ACL token. The CLI (cli) stays anonymous unless the test passes a
// token itself.
func (a *agent) useToken(token string) {
	a.t.Helper()
	cl, err := api.NewClient(&api.Config{Address: a.url(), Token: token})
	if err != nil {
		a.t.Fatal(err)
	}
	a.api = cl
}

// url is the agent's HTTP API address.
func (a *agent) url() string { return a.scheme + "://" + a.host + ":4646" }

func (a *agent) start() {
	a.t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.t.Fatal(err)
	}
	var cmd *exec.Cmd
	if a.netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", a.netns, droverBin}, a.args...)...)
	} else {
		cmd = exec.Command(droverBin, a.args...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	a.mu.Lock()
	a.cmd, a.exited = cmd, exited
	a.mu.Unlock()
}

// alive reports whether the agent process runs.
func (a *agent) alive() bool {
	_, exited := a.proc()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// waitReady waits until the agent's node is registered and ready.
func (a *agent) waitReady() {
	a.t.Helper()
	testutil.WaitFor(a.t, 30*time.Second, func() (bool, error) {
		if !a.alive() {
			a.t.Fatalf("agent exited during start:\n%s", tail(a.logPath, 40))
		}
		if err := a.api.Agent().Health(); err != nil {
			return false, err
		}
		nodes, _, err := a.api.Nodes().List(nil)
		if err != nil {
			return false, err
		}
		for _, n := range nodes {
			if n.Status == "ready" {
				return true, nil
			}
		}
		return false, fmt.Errorf("no ready node yet")
	})
}

// kill SIGKILLs the agent and waits for it to die.
func (a *agent) kill() { a.stop(syscall.SIGKILL) }

// restart starts the agent again on the same data dir after kill or
// stop.
func (a *agent) restart() {
	a.t.Helper()
	a.start()
}

func (a *agent) stop(sig syscall.Signal) {
	cmd, exited := a.proc()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// result is a finished CLI invocation.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs the drover CLI against this agent.
func (a *agent) cli(args ...string) result {
	a.t.Helper()
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
	} else if err != nil {
		a.t.Fatalf("run drover %v: %v", args, err)
	}
	return r
}

// writeFile writes content to a new file in a temp dir and returns its
// path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// httpGet fetches a URL with a short timeout.
func httpGet(url string) (string, error) {
	cl := &http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		return b.String(), fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return b.String(), err
}

// webJob is a count-N service whose tasks serve their allocation ID over
// HTTP on their dynamic port and log to stdout and stderr.
func webJob(id, image string, count, memoryMB int) string {
	return fmt.Sprintf(`job %q {
  datacenters = ["dc1"]
  group "web" {
    count = %d
    network {
      port "http" {}
    }
    restart {
      attempts = 2
      delay    = "1s"
    }
    task "server" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args = ["-c", "mkdir -p /tmp/www && echo \"alloc $DROVER_ALLOC_ID\" > /tmp/www/index.html && echo \"serving on $DROVER_PORT_http\" && echo \"to stderr\" >&2 && exec httpd -f -p $DROVER_PORT_http -h /tmp/www"]
      }
      resources {
        cpu    = 100
        memory = %d
      }
      kill_timeout = "3s"
    }
  }
}
`, id, count, image, memoryMB)
}

// nsContext returns a context in a containerd namespace.
func nsContext(ns string) context.Context {
	return namespaces.WithNamespace(context.Background(), ns)
}
