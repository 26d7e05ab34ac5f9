package testutil

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"
)

// recordingTB records Fatal instead of ending the test, so WaitFor's
// failure can be checked.
type recordingTB struct {
	testing.TB
	fatal string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatal(args ...any) { r.fatal = fmt.Sprint(args...) }

func TestWaitFor_FailsWithLastError(t *testing.T) {
	rec := &recordingTB{TB: t}
	WaitFor(rec, 0, func() (bool, error) { return false, errors.New("no leader yet") })
	if !strings.Contains(rec.fatal, "no leader yet") || !strings.Contains(rec.fatal, "timed out") {
		t.Fatalf("WaitFor failed the test with %q, want the timeout and cond's last error", rec.fatal)
	}

	rec = &recordingTB{TB: t}
	calls := 0
	WaitFor(rec, time.Minute, func() (bool, error) { calls++; return calls == 2, nil })
	if rec.fatal != "" {
		t.Fatalf("WaitFor failed a condition that held: %q", rec.fatal)
	}
}

// TestImportBusybox_ImportsAndUnpacks checks the wrappers other
// packages' tests use: StartContainerd and ImportBusybox.
func TestImportBusybox_ImportsAndUnpacks(t *testing.T) {
	c := StartContainerd(t)
	ns := c.Namespace
	ImportBusybox(t, c.Address, ns, BusyboxRef)

	client, err := c.Client(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 30*time.Second)
	defer cancel()
	img, err := client.GetImage(ctx, BusyboxRef)
	if err != nil {
		t.Fatalf("get imported image: %v", err)
	}
	if unpacked, err := img.IsUnpacked(ctx, ""); err != nil || !unpacked {
		t.Fatalf("image not unpacked: %v %v", unpacked, err)
	}
}
