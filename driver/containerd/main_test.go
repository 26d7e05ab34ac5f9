package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/testutil"
)

// TestMain lets the test binary serve as the task logger: the runc shim
// runs os.Executable() (Config.LoggerPath in these tests) with the
// logger's key/value argv, exactly as it runs the drover binary in
// production.
func TestMain(m *testing.M) {
	if IsLoggerInvocation(os.Args[1:]) {
		os.Exit(RunLogger(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// harness is a private containerd with the busybox image imported, a
// driver on it and a raw client to check containerd's own view.
type harness struct {
	t      *testing.T
	ctrd   *testutil.Containerd
	client *ctrd.Client
	drv    *Driver
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c := testutil.StartContainerd(t)
	testutil.ImportBusybox(t, c.Address, c.Namespace, testutil.BusyboxRef)
	client, err := c.Client(c.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return &harness{t: t, ctrd: c, client: client, drv: newTestDriver(t, c.Address, c.Namespace)}
}

// newTestDriver returns a driver on address and namespace whose log is printed if the
// test fails, and which is closed when the test ends.
func newTestDriver(t *testing.T, address, namespace string) *Driver {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: logs})
	d, err := New(Config{Address: address, Namespace: namespace, LoggerPath: exe}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		if t.Failed() {
			t.Logf("driver log:\n%s", logs.String())
		}
	})
	return d
}

// ctx is a test context carrying the test namespace, for raw client calls.
func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), h.ctrd.Namespace), time.Minute)
	h.t.Cleanup(cancel)
	return ctx
}

// shellTask is a task running script with busybox sh, output in a
// fresh temp dir.
func (h *harness) shellTask(name, script string) *driver.TaskConfig {
	dir := h.t.TempDir()
	return &driver.TaskConfig{
		ID:         "3f1c6a52-7d0e-4c44-9d3b-1f2e3d4c5b6a-" + name,
		AllocID:    "3f1c6a52-7d0e-4c44-9d3b-1f2e3d4c5b6a",
		TaskName:   name,
		JobID:      "example",
		Image:      testutil.BusyboxRef,
		Command:    "/bin/sh",
		Args:       []string{"-c", script},
		StdoutPath: filepath.Join(dir, name+".stdout"),
		StderrPath: filepath.Join(dir, name+".stderr"),
	}
}

func (h *harness) start(cfg *driver.TaskConfig) *driver.TaskHandle {
	h.t.Helper()
	handle, err := h.drv.StartTask(context.Background(), cfg)
	if err != nil {
		h.t.Fatalf("start task %s: %v", cfg.ID, err)
	}
	return handle
}

// wait waits for the task's exit result.
func (h *harness) wait(d *Driver, id string) *driver.ExitResult {
	h.t.Helper()
	ch, err := d.WaitTask(context.Background(), id)
	if err != nil {
		h.t.Fatalf("wait task %s: %v", id, err)
	}
	select {
	case res, ok := <-ch:
		if !ok || res == nil {
			h.t.Fatalf("wait channel of %s closed without a result", id)
		}
		return res
	case <-time.After(time.Minute):
		h.t.Fatalf("task %s did not exit", id)
		return nil
	}
}

// fileContains waits until the task output stream at base (its rotated
// files, concatenated) contains want.
func fileContains(t *testing.T, base, want string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		files, err := LogFiles(base)
		if err != nil {
			return false, err
		}
		if len(files) == 0 {
			return false, fmt.Errorf("no files of stream %s yet", base)
		}
		if b := readStream(base); !strings.Contains(b, want) {
			return false, fmt.Errorf("%s holds %q, want it to contain %q", base, b, want)
		}
		return true, nil
	})
}

// readStream returns what a task output stream holds: its files, oldest
// first, concatenated.
func readStream(base string) string {
	files, _ := LogFiles(base)
	var b bytes.Buffer
	for _, f := range files {
		data, _ := os.ReadFile(f.Path)
		b.Write(data)
	}
	return b.String()
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
