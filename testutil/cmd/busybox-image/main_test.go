package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"

	"github.com/droverhq/drover/testutil"
)

func TestRun_ImportsIntoContainerd(t *testing.T) {
	c := testutil.StartContainerd(t)
	if err := run(c.Address, c.Namespace, testutil.BusyboxRef, ""); err != nil {
		t.Fatalf("run: %v", err)
	}
	// Importing again is idempotent.
	if err := run(c.Address, c.Namespace, testutil.BusyboxRef, ""); err != nil {
		t.Fatalf("second run: %v", err)
	}
	client, err := c.Client(c.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), c.Namespace), 30*time.Second)
	defer cancel()
	img, err := client.GetImage(ctx, testutil.BusyboxRef)
	if err != nil {
		t.Fatalf("image not imported: %v", err)
	}
	if ok, err := img.IsUnpacked(ctx, ""); err != nil || !ok {
		t.Fatalf("image not unpacked: %v %v", ok, err)
	}
}

func TestRun_OutOnly(t *testing.T) {
	out := filepath.Join(t.TempDir(), "busybox.tar")
	if err := run("/nonexistent.sock", "drover", testutil.BusyboxRef, out); err != nil {
		t.Fatalf("run -out: %v", err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() < 100_000 {
		t.Fatalf("archive %s: %v", out, err)
	}
}
