package containerd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/testutil"
)

func TestTaskDirMounts(t *testing.T) {
	if got := taskDirMounts(&driver.TaskConfig{}); len(got) != 0 {
		t.Fatalf("mounts without directories: %+v", got)
	}
	got := taskDirMounts(&driver.TaskConfig{AllocDir: "/a/alloc", LocalDir: "/a/tasks/t/local", SecretsDir: "/a/tasks/t/secrets"})
	want := map[string]string{"/alloc": "/a/alloc", "/local": "/a/tasks/t/local", "/secrets": "/a/tasks/t/secrets"}
	if len(got) != 3 {
		t.Fatalf("mounts %+v", got)
	}
	for _, m := range got {
		if want[m.Destination] != m.Source || m.Type != "bind" {
			t.Errorf("mount %+v", m)
		}
		if !reflect.DeepEqual(m.Options, []string{"rbind", "rw", "nosuid", "nodev"}) {
			t.Errorf("mount %s options %v", m.Destination, m.Options)
		}
	}
	// Each mount has its own options slice.
	got[0].Options[0] = "changed"
	if taskDirOptions[0] != "rbind" {
		t.Fatal("mounts share the options slice")
	}
}

// TestDriver_StartTask_TaskDirs: /alloc, /local and /secrets are the
// client's directories, writable by the task, mounted nosuid and nodev.
func TestDriver_StartTask_TaskDirs(t *testing.T) {
	h := newHarness(t)
	root := t.TempDir()
	cfg := h.shellTask("dirs", `for d in alloc local secrets; do echo "in $d" > /$d/f || exit 1; done; grep -E ' /(alloc|local|secrets) ' /proc/mounts`)
	cfg.AllocDir = filepath.Join(root, "alloc")
	cfg.LocalDir = filepath.Join(root, "tasks", "dirs", "local")
	cfg.SecretsDir = filepath.Join(root, "tasks", "dirs", "secrets")
	for _, d := range []string{cfg.AllocDir, cfg.LocalDir, cfg.SecretsDir} {
		mkdirAll(t, d)
	}
	h.start(cfg)
	if res := h.wait(h.drv, cfg.ID); !res.Successful() {
		t.Fatalf("task failed: %+v; stderr: %s", res, readStream(cfg.StderrPath))
	}
	for name, dir := range map[string]string{"alloc": cfg.AllocDir, "local": cfg.LocalDir, "secrets": cfg.SecretsDir} {
		if got := readFile(filepath.Join(dir, "f")); got != "in "+name+"\n" {
			t.Errorf("/%s/f on the host = %q", name, got)
		}
	}
	mounts := strings.Split(strings.TrimSpace(readStream(cfg.StdoutPath)), "\n")
	if len(mounts) != 3 {
		t.Fatalf("mounts in the task:\n%s", strings.Join(mounts, "\n"))
	}
	for _, m := range mounts {
		f := strings.Fields(m)
		if len(f) < 4 {
			t.Fatalf("mount line %q", m)
		}
		opts := "," + f[3] + ","
		for _, o := range []string{",rw,", ",nosuid,", ",nodev,"} {
			if !strings.Contains(opts, o) {
				t.Errorf("mount %s lacks %s: %s", f[1], strings.Trim(o, ","), m)
			}
		}
	}
}

// TestDriver_SignalTask: a busybox task that traps HUP gets the signal
// and keeps running, with the same PID; a task that is gone or exited
// cannot be signalled.
func TestDriver_SignalTask(t *testing.T) {
	h := newHarness(t)
	local := t.TempDir()
	cfg := h.shellTask("hup", `trap 'echo hup >> /local/hup' HUP; while true; do sleep 0.1; done`)
	cfg.LocalDir = local
	handle := h.start(cfg)
	ctx := context.Background()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		// The trap is installed once sh runs its loop.
		st, err := h.drv.InspectTask(ctx, cfg.ID)
		return err == nil && st.State == driver.TaskStateRunning && hasChild(st.PID), err
	})
	for i := 1; i <= 2; i++ {
		if err := h.drv.SignalTask(ctx, cfg.ID, syscall.SIGHUP); err != nil {
			t.Fatalf("signal %d: %v", i, err)
		}
		want := strings.Repeat("hup\n", i)
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
			return readFile(filepath.Join(local, "hup")) == want, nil
		})
	}
	st, err := h.drv.InspectTask(ctx, cfg.ID)
	if err != nil || st.State != driver.TaskStateRunning || st.PID != handle.PID {
		t.Fatalf("after the signals: %+v %v; want still running as pid %d", st, err, handle.PID)
	}

	if err := h.drv.SignalTask(ctx, "no-such-task", syscall.SIGHUP); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("signal an unknown task: %v, want ErrTaskNotFound", err)
	}
	if err := h.drv.StopTask(ctx, cfg.ID, time.Second, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	h.wait(h.drv, cfg.ID)
	if err := h.drv.SignalTask(ctx, cfg.ID, syscall.SIGHUP); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("signal an exited task: %v, want not running", err)
	}
}

func mkdirAll(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
