package privctrd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"

	"github.com/droverhq/drover/internal/ociimage"
)

// launch starts a private containerd for the test and stops it at the
// test's end (a second Stop is harmless, so tests may stop it earlier).
func launch(t *testing.T) *Containerd {
	t.Helper()
	c, err := Launch("")
	if err != nil {
		t.Fatalf("launch containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	return c
}

// importBusybox builds the busybox image and imports it into ns of c.
// (testutil.ImportBusybox does this for other packages; this package
// cannot import testutil, which imports it.)
func importBusybox(t *testing.T, c *Containerd, ns string) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "busybox-oci.tar")
	if err := ociimage.BuildBusybox(archive, ociimage.BusyboxRef); err != nil {
		t.Fatalf("build busybox image: %v", err)
	}
	client, err := c.Client(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	if err := ociimage.Import(ctx, client, archive, ociimage.BusyboxRef); err != nil {
		t.Fatalf("import busybox image: %v", err)
	}
}

// startSleeper runs `sleep 300` from the busybox image in c and returns
// its host PID.
func startSleeper(t *testing.T, c *Containerd, ns, id string) int {
	t.Helper()
	client, err := c.Client(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	img, err := client.GetImage(ctx, ociimage.BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := client.NewContainer(ctx, id,
		ctrd.WithNewSnapshot(id, img),
		ctrd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "300")))
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return int(task.Pid())
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil && !isZombie(pid)
}

// checkGone fails unless c left no process, mount or directory behind.
func checkGone(t *testing.T, c *Containerd, namespaces []string, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("task process %d still running", pid)
		}
	}
	if left := processesUnder(c.Dir); len(left) > 0 {
		t.Errorf("processes left under %s: %v", c.Dir, left)
	}
	if m, err := MountsUnder(c.Dir); err != nil || len(m) > 0 {
		t.Errorf("mounts left under %s: %v %v", c.Dir, m, err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", c.Dir, err)
	}
	for _, ns := range namespaces {
		if _, err := os.Stat(filepath.Join(runcStateRoot, ns)); !os.IsNotExist(err) {
			t.Errorf("runc state of namespace %s left: %v", ns, err)
		}
		if d := cgroupDirs(ns); len(d) > 0 {
			t.Errorf("cgroups of namespace %s left: %v", ns, d)
		}
	}
}

func TestContainerd_StopRemovesEverything(t *testing.T) {
	c := launch(t)
	one, two := c.Namespace, c.Namespace+"-two"
	importBusybox(t, c, one)
	importBusybox(t, c, two)
	p1 := startSleeper(t, c, one, "sleeper")
	p2 := startSleeper(t, c, two, "sleeper")
	if m, _ := MountsUnder(c.Dir); len(m) == 0 {
		t.Fatal("no rootfs mounts while tasks run")
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	checkGone(t, c, []string{one, two}, p1, p2)
	for _, ns := range []string{one, two} {
		if _, err := os.Stat(shimSocket(c.Address, ns, "sleeper")); !os.IsNotExist(err) {
			t.Errorf("shim socket of %s left: %v", ns, err)
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestContainerd_StopAfterDaemonCrash(t *testing.T) {
	c := launch(t)
	importBusybox(t, c, c.Namespace)
	pid := startSleeper(t, c, c.Namespace, "orphan")

	// The daemon dies; shims and the task live on.
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	if !alive(pid) {
		t.Fatal("task died with the daemon")
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	checkGone(t, c, []string{c.Namespace}, pid)
	if _, err := os.Stat(shimSocket(c.Address, c.Namespace, "orphan")); !os.IsNotExist(err) {
		t.Errorf("shim socket left: %v", err)
	}
}

func TestContainerd_RestartKeepsTasks(t *testing.T) {
	c := launch(t)
	importBusybox(t, c, c.Namespace)
	pid := startSleeper(t, c, c.Namespace, "survivor")
	if err := c.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	client, err := c.Client(c.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), c.Namespace)
	ctr, err := client.LoadContainer(ctx, "survivor")
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatalf("task after restart: %v", err)
	}
	if int(task.Pid()) != pid || !alive(pid) {
		t.Fatalf("task pid %d after restart, want %d alive", task.Pid(), pid)
	}
}

func TestLaunch_MissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinariesIn(nil)
	if err == nil {
		t.Fatal("found binaries on an empty PATH")
	}
	const want = "containerd, containerd-shim-runc-v2, runc not found: install with apt-get install -y containerd runc busybox-static"
	if err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	// Callers (testutil.StartContainerd) tell a machine without
	// containerd apart from a daemon that failed to start.
	var missing *MissingBinaryError
	if !errors.As(err, &missing) || len(missing.Names) != 3 {
		t.Fatalf("error %T %v is not a MissingBinaryError naming 3 binaries", err, err)
	}
	if _, err := findBinaries(); err != nil {
		t.Fatalf("fallback directories: %v", err)
	}
}
