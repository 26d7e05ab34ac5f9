package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/testutil"
)

func TestDriver_StartTask(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("web", "echo out; echo err >&2; exec sleep 300")
	cfg.MemoryMB = 64
	cfg.CPUShares = 200
	cfg.Env = map[string]string{
		"DROVER_ALLOC_ID": cfg.AllocID,
		"DROVER_TASK":     "web",
		"PATH":            "/bin:/usr/local/bin",
	}
	handle := h.start(cfg)

	if handle.Driver != "containerd" || handle.ID != cfg.ID || handle.PID <= 0 || handle.StartedAt.IsZero() {
		t.Fatalf("bad handle: %+v", handle)
	}
	if handle.Config == cfg || handle.Config.ID != cfg.ID {
		t.Fatalf("handle must carry its own copy of the config, got %p (cfg %p)", handle.Config, cfg)
	}

	// containerd's own view of the container.
	ctx := h.ctx()
	container, err := h.client.LoadContainer(ctx, cfg.ID)
	if err != nil {
		t.Fatalf("load container: %v", err)
	}
	labels, err := container.Labels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"drover.alloc_id": cfg.AllocID, "drover.task_name": "web", "drover.job_id": "example"} {
		if labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, labels[k], want)
		}
	}
	spec, err := container.Spec(ctx)
	if err != nil {
		t.Fatalf("container spec: %v", err)
	}
	if got := spec.Linux.Resources.Memory; got == nil || got.Limit == nil || *got.Limit != 64*1024*1024 {
		t.Errorf("memory limit = %v, want %d", got, 64*1024*1024)
	}
	if got := spec.Linux.Resources.CPU; got == nil || got.Shares == nil || *got.Shares != 200 {
		t.Errorf("cpu shares = %v, want 200", got)
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			t.Errorf("spec has a network namespace %+v; want host networking", ns)
		}
	}
	for _, dst := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		if !slices.ContainsFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == dst && m.Source == dst }) {
			t.Errorf("no bind mount of the host's %s", dst)
		}
	}
	wantArgs := []string{"/bin/sh", "-c", "echo out; echo err >&2; exec sleep 300"}
	if !slices.Equal(spec.Process.Args, wantArgs) {
		t.Errorf("args = %q, want %q", spec.Process.Args, wantArgs)
	}
	// The image's PATH is overridden in place; the task env follows in
	// sorted order.
	wantEnv := []string{"PATH=/bin:/usr/local/bin", "DROVER_ALLOC_ID=" + cfg.AllocID, "DROVER_TASK=web"}
	if !slices.Equal(spec.Process.Env, wantEnv) {
		t.Errorf("env = %q, want %q", spec.Process.Env, wantEnv)
	}

	task, err := container.Task(ctx, nil)
	if err != nil {
		t.Fatalf("load task: %v", err)
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != "running" {
		t.Fatalf("task status = %v (%v), want running", st.Status, err)
	}
	if int(task.Pid()) != handle.PID {
		t.Errorf("task pid %d, handle pid %d", task.Pid(), handle.PID)
	}

	fileContains(t, cfg.StdoutPath, "out\n")
	fileContains(t, cfg.StderrPath, "err\n")
	if b := readStream(cfg.StdoutPath); strings.Contains(b, "err") {
		t.Errorf("stderr leaked into stdout: %q", b)
	}

	status, err := h.drv.InspectTask(context.Background(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if status.State != driver.TaskStateRunning || status.PID != handle.PID || status.StartedAt.IsZero() {
		t.Errorf("inspect = %+v, want running with pid %d", status, handle.PID)
	}
}

func TestDriver_StartTask_ImageDefaultsAndArgs(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()

	// No command, no args: the image's cmd (/bin/sh).
	def := h.shellTask("default", "")
	def.Command, def.Args = "", nil
	h.start(def)
	// Args only: they replace the image's cmd (it has no entrypoint).
	args := h.shellTask("args", "")
	args.Command, args.Args = "", []string{"/bin/echo", "from-args"}
	h.start(args)
	fileContains(t, args.StdoutPath, "from-args\n")

	// The image's filesystem: root user, sticky /tmp, busybox applets.
	fs := h.shellTask("fs", "id; ls -ld /tmp; hostname >/dev/null && echo hostname-ok")
	h.start(fs)
	if res := h.wait(h.drv, fs.ID); !res.Successful() {
		t.Fatalf("fs task: %+v; stderr %q", res, readStream(fs.StderrPath))
	}
	fileContains(t, fs.StdoutPath, "uid=0(root) gid=0(root)")
	fileContains(t, fs.StdoutPath, "drwxrwxrwt")
	fileContains(t, fs.StdoutPath, "hostname-ok")

	for cfg, want := range map[*driver.TaskConfig][]string{
		def:  {"/bin/sh"},
		args: {"/bin/echo", "from-args"},
	} {
		c, err := h.client.LoadContainer(ctx, cfg.ID)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(spec.Process.Args, want) {
			t.Errorf("%s: args = %q, want %q", cfg.TaskName, spec.Process.Args, want)
		}
		if !slices.Equal(spec.Process.Env, []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin"}) {
			t.Errorf("%s: env = %q, want the image's", cfg.TaskName, spec.Process.Env)
		}
	}
}

func TestDriver_StartTask_AllocDir(t *testing.T) {
	h := newHarness(t)
	allocDir := t.TempDir()
	cfg := h.shellTask("writer", "echo hello > /alloc/greeting")
	cfg.AllocDir = allocDir
	h.start(cfg)
	if res := h.wait(h.drv, cfg.ID); !res.Successful() {
		t.Fatalf("task failed: %+v; stderr: %s", res, readStream(cfg.StderrPath))
	}
	if got := readFile(filepath.Join(allocDir, "greeting")); got != "hello\n" {
		t.Fatalf("/alloc/greeting = %q, want hello", got)
	}
}

func TestDriver_StartTask_DNSServers(t *testing.T) {
	h := newHarness(t)
	allocRoot := t.TempDir()
	allocDir := filepath.Join(allocRoot, "alloc")
	if err := os.Mkdir(allocDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := h.shellTask("resolver", "cat /etc/resolv.conf; if echo x >>/etc/resolv.conf; then echo writable; fi")
	cfg.AllocDir = allocDir
	cfg.DNSServers = []string{"127.0.0.153"}
	h.start(cfg)
	if res := h.wait(h.drv, cfg.ID); !res.Successful() {
		t.Fatalf("task failed: %+v; stderr: %s", res, readStream(cfg.StderrPath))
	}

	// The task sees its own file, Drover's server first, the host's
	// nameservers after it; it cannot change it.
	want := string(taskResolvConf(cfg.DNSServers, []byte(readFile(hostResolvConf))))
	fileContains(t, cfg.StdoutPath, want)
	if !strings.Contains(want, "\nnameserver 127.0.0.153\n") {
		t.Fatalf("resolv.conf %q does not name the task's DNS server", want)
	}
	fileContains(t, cfg.StderrPath, "Read-only file system")
	if out := readStream(cfg.StdoutPath); strings.Contains(out, "writable") {
		t.Errorf("the task could write its /etc/resolv.conf: %q", out)
	}

	// The file lives in the task's directory beside the allocation's,
	// outside /alloc, and replaces the host's mount.
	path := filepath.Join(allocRoot, "tasks", "resolver", "resolv.conf")
	if got := readFile(path); got != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
	container, err := h.client.LoadContainer(h.ctx(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := container.Spec(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	var mounts []specs.Mount
	for _, m := range spec.Mounts {
		if m.Destination == "/etc/resolv.conf" {
			mounts = append(mounts, m)
		}
	}
	if len(mounts) != 1 || mounts[0].Source != path || !slices.Contains(mounts[0].Options, "ro") {
		t.Errorf("/etc/resolv.conf mounts = %+v, want one read-only bind of %s", mounts, path)
	}
}

func TestDriver_RecoverTask(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("ticker", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
	handle := h.start(cfg)
	fileContains(t, cfg.StdoutPath, "tick 3\n")

	// The client dies: its driver goes away, the task and its logger do not.
	if err := h.drv.Close(); err != nil {
		t.Fatal(err)
	}
	before := streamSize(t, cfg.StdoutPath)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		if n := streamSize(t, cfg.StdoutPath); n <= before+20 {
			return false, fmt.Errorf("stdout stuck at %d bytes (was %d when the driver closed)", n, before)
		}
		return true, nil
	})
	if _, err := h.drv.InspectTask(context.Background(), cfg.ID); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed driver: err = %v, want ErrClosed", err)
	}

	// The restarted client re-attaches.
	d2 := newTestDriver(t, h.ctrd.Address, h.ctrd.Namespace)
	if err := d2.RecoverTask(context.Background(), handle); err != nil {
		t.Fatalf("recover: %v", err)
	}
	status, err := d2.InspectTask(context.Background(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if status.State != driver.TaskStateRunning || status.PID != handle.PID {
		t.Fatalf("recovered task = %+v, want running with pid %d", status, handle.PID)
	}
	mid := streamSize(t, cfg.StdoutPath)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		return streamSize(t, cfg.StdoutPath) > mid, errors.New("no output after recovery")
	})

	// The loop's sh is PID 1 without a TERM handler: killed after timeout.
	if err := d2.StopTask(context.Background(), cfg.ID, 200*time.Millisecond, ""); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if res := h.wait(d2, cfg.ID); res.Signal != 9 || res.ExitCode != 137 || res.Err != nil {
		t.Fatalf("exit = %+v, want killed by SIGKILL", res)
	}
}

func TestDriver_WaitTask_ExitCode(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("fail", "echo bye; exit 3")
	h.start(cfg)
	res := h.wait(h.drv, cfg.ID)
	if res.ExitCode != 3 || res.Signal != 0 || res.Err != nil || res.Successful() {
		t.Fatalf("exit = %+v, want exit code 3", res)
	}

	// Waiting again on the exited task answers at once, also from a new
	// driver, and inspect agrees.
	d2 := newTestDriver(t, h.ctrd.Address, h.ctrd.Namespace)
	if res := h.wait(d2, cfg.ID); res.ExitCode != 3 {
		t.Fatalf("second wait = %+v, want exit code 3", res)
	}
	status, err := d2.InspectTask(context.Background(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if status.State != driver.TaskStateExited || status.ExitCode != 3 || status.ExitedAt.IsZero() {
		t.Fatalf("inspect = %+v, want exited with 3", status)
	}

	// Cancelling the wait closes the channel without a result.
	long := h.shellTask("long", "exec sleep 300")
	h.start(long)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := h.drv.WaitTask(ctx, long.ID)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case res, ok := <-ch:
		if ok {
			t.Fatalf("cancelled wait delivered %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled wait did not close its channel")
	}
}

func TestDriver_StopTask_SIGTERM(t *testing.T) {
	h := newHarness(t)
	// PID 1 of a PID namespace only receives signals it handles, so the
	// task traps TERM (as any server meant to stop gracefully does).
	cfg := h.shellTask("graceful", "trap 'echo terminated; exit 143' TERM; sleep 300 & wait")
	h.start(cfg)
	fileContains(t, cfg.StdoutPath, "") // the logger is up
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		// The trap is installed once sh has started sleep.
		st, err := h.drv.InspectTask(context.Background(), cfg.ID)
		return err == nil && st.State == driver.TaskStateRunning && hasChild(st.PID), err
	})
	// A long timeout: if SIGTERM did not work, the exit would be SIGKILL's.
	if err := h.drv.StopTask(context.Background(), cfg.ID, time.Minute, ""); err != nil {
		t.Fatalf("stop: %v", err)
	}
	res := h.wait(h.drv, cfg.ID)
	if res.ExitCode != 143 || res.Signal != 15 {
		t.Fatalf("exit = %+v, want 143 (SIGTERM)", res)
	}
	fileContains(t, cfg.StdoutPath, "terminated\n")

	// Stopping an exited task, or an unknown one, is not an error.
	if err := h.drv.StopTask(context.Background(), cfg.ID, time.Second, ""); err != nil {
		t.Fatalf("stop exited task: %v", err)
	}
	if err := h.drv.StopTask(context.Background(), "no-such-task", time.Second, ""); err != nil {
		t.Fatalf("stop unknown task: %v", err)
	}
}

func TestDriver_StopTask_NamedSignal(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("usr1", "trap 'echo got usr1; exit 0' USR1; sleep 300 & wait")
	h.start(cfg)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		st, err := h.drv.InspectTask(context.Background(), cfg.ID)
		return err == nil && hasChild(st.PID), err
	})
	if err := h.drv.StopTask(context.Background(), cfg.ID, time.Minute, "SIGUSR1"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if res := h.wait(h.drv, cfg.ID); !res.Successful() {
		t.Fatalf("exit = %+v, want 0 from the USR1 trap", res)
	}
	if err := h.drv.StopTask(context.Background(), cfg.ID, time.Second, "NOSUCHSIG"); err == nil || !strings.Contains(err.Error(), "NOSUCHSIG") {
		t.Fatalf("stop with a bad signal: err = %v, want one naming the signal", err)
	}
}

func TestDriver_StopTask_KillsAfterTimeout(t *testing.T) {
	h := newHarness(t)
	for name, script := range map[string]string{
		"ignores-term": "trap '' TERM; sleep 300",
		"bare-sleep":   "exec sleep 300",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := h.shellTask(name, script)
			h.start(cfg)
			if err := h.drv.StopTask(context.Background(), cfg.ID, 500*time.Millisecond, ""); err != nil {
				t.Fatalf("stop: %v", err)
			}
			res := h.wait(h.drv, cfg.ID)
			if res.ExitCode != 137 || res.Signal != 9 {
				t.Fatalf("exit = %+v, want 137 (SIGKILL)", res)
			}
		})
	}
}

func TestDriver_DestroyTask(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	cfg := h.shellTask("doomed", "echo hi; exec sleep 300")
	handle := h.start(cfg)
	fileContains(t, cfg.StdoutPath, "hi\n")

	if err := h.drv.DestroyTask(context.Background(), cfg.ID, false); err == nil {
		t.Fatal("destroying a running task without force succeeded")
	}
	if err := h.drv.DestroyTask(context.Background(), cfg.ID, true); err != nil {
		t.Fatalf("destroy: %v", err)
	}

	list, err := h.client.ContainerService().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("containers left: %+v", list)
	}
	if _, err := h.client.SnapshotService("").Stat(ctx, cfg.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("snapshot stat after destroy: err = %v, want not found", err)
	}
	if err := h.drv.DestroyTask(context.Background(), cfg.ID, true); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if err := h.drv.DestroyTask(context.Background(), "no-such-task", false); err != nil {
		t.Fatalf("destroy unknown: %v", err)
	}
	if err := h.drv.RecoverTask(context.Background(), handle); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("recover after destroy: err = %v, want ErrTaskNotFound", err)
	}
	if _, err := h.drv.InspectTask(context.Background(), cfg.ID); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("inspect after destroy: err = %v, want ErrTaskNotFound", err)
	}
	if _, err := h.drv.WaitTask(context.Background(), cfg.ID); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("wait after destroy: err = %v, want ErrTaskNotFound", err)
	}

	// The ID is free again.
	h.start(h.shellTask("doomed", "exit 0"))
}

func TestDriver_HostNetworking(t *testing.T) {
	h := newHarness(t)
	port := freePort(t)
	cfg := h.shellTask("httpd", fmt.Sprintf("echo hello-from-task > /www/index.html; exec httpd -f -p 127.0.0.1:%d -h /www", port))
	h.start(cfg)
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err
		}
		if resp.StatusCode != http.StatusOK || string(body) != "hello-from-task\n" {
			return false, fmt.Errorf("GET %s: %s %q", url, resp.Status, body)
		}
		return true, nil
	})
}

func TestDriver_StartTask_MissingImage(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("ghost", "true")
	cfg.Image = "127.0.0.1:1/drover/missing:latest"
	_, err := h.drv.StartTask(context.Background(), cfg)
	if err == nil {
		t.Fatal("start with an unpullable image succeeded")
	}
	if !strings.Contains(err.Error(), `pull image "127.0.0.1:1/drover/missing:latest"`) {
		t.Fatalf("error does not name the image: %v", err)
	}
	list, err := h.client.ContainerService().List(h.ctx())
	if err != nil || len(list) != 0 {
		t.Fatalf("containers after failed start: %v %v", list, err)
	}
}

func TestDriver_StartTask_FailureLeavesNothing(t *testing.T) {
	h := newHarness(t)
	for name, mutate := range map[string]func(*driver.TaskConfig){
		"missing command":       func(c *driver.TaskConfig) { c.Command, c.Args = "/bin/no-such-binary", nil },
		"missing alloc dir":     func(c *driver.TaskConfig) { c.AllocDir = "/nonexistent/alloc" },
		"bad output dir":        func(c *driver.TaskConfig) { c.StdoutPath = "/nonexistent/dir/stdout" },
		"dns without alloc dir": func(c *driver.TaskConfig) { c.DNSServers = []string{"127.0.0.1"} },
		"dns not ipv4": func(c *driver.TaskConfig) {
			c.AllocDir, c.DNSServers = t.TempDir(), []string{"::1"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := h.shellTask(strings.ReplaceAll(name, " ", "-"), "true")
			mutate(cfg)
			if _, err := h.drv.StartTask(context.Background(), cfg); err == nil {
				t.Fatal("start succeeded")
			}
			list, err := h.client.ContainerService().List(h.ctx())
			if err != nil || len(list) != 0 {
				t.Fatalf("containers after failed start: %d %v", len(list), err)
			}
			if _, err := h.client.SnapshotService("").Stat(h.ctx(), cfg.ID); !errdefs.IsNotFound(err) {
				t.Fatalf("snapshot after failed start: %v", err)
			}
		})
	}
	// The same ID starts fine afterwards.
	ok := h.shellTask("missing-command", "exit 0")
	h.start(ok)
	if res := h.wait(h.drv, ok.ID); !res.Successful() {
		t.Fatalf("exit = %+v", res)
	}
}

func TestDriver_StartTask_OOMKilled(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("hog", "exec dd if=/dev/zero of=/dev/null bs=64M count=1")
	cfg.MemoryMB = 16
	h.start(cfg)
	res := h.wait(h.drv, cfg.ID)
	if res.Signal != 9 || !res.OOMKilled {
		t.Fatalf("exit = %+v, want OOM-killed", res)
	}
}

func TestDriver_Fingerprint(t *testing.T) {
	h := newHarness(t)
	info := h.drv.Fingerprint(context.Background())
	if !info.Detected || !info.Healthy {
		t.Fatalf("fingerprint against running containerd = %+v", info)
	}
	if info.Attributes["driver.containerd.version"] == "" ||
		info.Attributes["driver.containerd.namespace"] != h.ctrd.Namespace ||
		info.Attributes["driver.containerd.runtime"] != "io.containerd.runc.v2" {
		t.Fatalf("attributes = %v", info.Attributes)
	}
}

func TestDriver_Fingerprint_Unavailable(t *testing.T) {
	// A directory where containerd will later run; nothing listens yet.
	dir, err := os.MkdirTemp("/tmp", "drover-fp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	address := filepath.Join(dir, "containerd.sock")
	d := newTestDriver(t, address, "drover-fingerprint")

	unhealthy := func(what string) {
		t.Helper()
		start := time.Now()
		info := d.Fingerprint(context.Background())
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("%s: fingerprint took %s", what, took)
		}
		if !info.Detected || info.Healthy || !strings.Contains(info.HealthDescription, address) {
			t.Fatalf("%s: fingerprint = %+v, want detected, unhealthy, naming %s", what, info, address)
		}
	}
	unhealthy("no socket")
	if _, err := d.StartTask(context.Background(), &driver.TaskConfig{ID: "x", Image: "y"}); err == nil {
		t.Fatal("start without containerd succeeded")
	}

	// containerd comes up: healthy. It goes away and comes back: the
	// same driver follows.
	for round := 0; round < 2; round++ {
		c, err := testutil.LaunchContainerd(dir)
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
			info := d.Fingerprint(context.Background())
			return info.Healthy, errors.New(info.HealthDescription)
		})
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		unhealthy(fmt.Sprintf("after stop %d", round))
	}
}

func TestContainerID(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		same bool
	}{
		"valid":      {"3f1c6a52-7d0e-4c44-9d3b-1f2e3d4c5b6a-web", true},
		"dotted":     {"alloc.web_1", true},
		"spaces":     {"alloc-my task", false},
		"leading":    {"_task", false},
		"slash":      {"a/b", false},
		"very long":  {strings.Repeat("a", 100), false},
		"only junk!": {"!!!", false},
	} {
		t.Run(name, func(t *testing.T) {
			got := containerID(tc.in)
			if (got == tc.in) != tc.same {
				t.Fatalf("containerID(%q) = %q", tc.in, got)
			}
			if got != containerID(tc.in) {
				t.Fatal("not deterministic")
			}
			if len(got) > 76 || strings.ContainsAny(got, " /!") {
				t.Fatalf("containerID(%q) = %q is not a containerd identifier", tc.in, got)
			}
		})
	}
	if containerID("a b") == containerID("a_b") {
		t.Fatal("distinct IDs collide")
	}
}

func TestExitResult_Signals(t *testing.T) {
	for _, tc := range []struct{ code, signal int }{{0, 0}, {3, 0}, {137, 9}, {143, 15}, {130, 2}, {200, 0}} {
		res := exitResult(exitStatusForTest(uint32(tc.code)))
		if res.ExitCode != tc.code || res.Signal != tc.signal {
			t.Errorf("exit %d -> %+v, want signal %d", tc.code, res, tc.signal)
		}
	}
}

func exitStatusForTest(code uint32) ctrd.ExitStatus {
	return *ctrd.NewExitStatus(code, time.Now(), nil)
}

// hasChild reports whether the process pid has a child process.
func hasChild(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	return err == nil && len(strings.TrimSpace(string(b))) > 0
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// streamSize is the number of bytes a task output stream holds on
// disk, over its rotated files.
func streamSize(t *testing.T, base string) int64 {
	t.Helper()
	files, err := LogFiles(base)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		fi, err := os.Stat(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func TestDriver_ContainerdRestart(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("steady", "while true; do echo beat; sleep 0.1; done")
	handle := h.start(cfg)
	fileContains(t, cfg.StdoutPath, "beat\n")
	waitCh, err := h.drv.WaitTask(context.Background(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}

	if err := h.ctrd.Restart(); err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
	// The wait in flight either loses its stream (a result with Err, never
	// an exit: the task still runs) or, when containerd's client had not
	// sent it yet, is sent to the restarted daemon and keeps waiting.
	// Which one happens is a race inside the client; both are fine for
	// the task runner, which waits again after an error.
	select {
	case res := <-waitCh:
		if res == nil || res.Err == nil {
			t.Fatalf("wait across restart = %+v, want an error result", res)
		}
		waitCh = nil
	case <-time.After(5 * time.Second):
	}

	// The same driver reconnects; the task ran on under its shim.
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		st, err := h.drv.InspectTask(context.Background(), cfg.ID)
		if err != nil {
			return false, err
		}
		return st.State == driver.TaskStateRunning && st.PID == handle.PID, fmt.Errorf("status %+v", st)
	})
	before := streamSize(t, cfg.StdoutPath)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		return streamSize(t, cfg.StdoutPath) > before, errors.New("no output after containerd restart")
	})
	if err := h.drv.StopTask(context.Background(), cfg.ID, 200*time.Millisecond, "KILL"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if res := h.wait(h.drv, cfg.ID); res.Signal != 9 {
		t.Fatalf("exit = %+v, want SIGKILL", res)
	}
	if waitCh != nil {
		// The wait that survived the restart sees the same exit.
		select {
		case res := <-waitCh:
			if res == nil || (res.Err == nil && res.Signal != 9) {
				t.Fatalf("surviving wait = %+v, want SIGKILL or an error", res)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the wait that survived the restart never ended")
		}
	}
}
