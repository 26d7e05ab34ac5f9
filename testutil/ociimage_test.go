package testutil

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"
)

func TestBuildBusyboxImage_Deterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	if err := BuildBusyboxImage(a, BusyboxRef); err != nil {
		t.Fatal(err)
	}
	if err := BuildBusyboxImage(b, BusyboxRef); err != nil {
		t.Fatal(err)
	}
	ab, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ab, bb) {
		t.Fatalf("two builds differ (%d vs %d bytes)", len(ab), len(bb))
	}
}

func TestImportImage_ImportsAndUnpacks(t *testing.T) {
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
	unpacked, err := img.IsUnpacked(ctx, "")
	if err != nil || !unpacked {
		t.Fatalf("image not unpacked: %v %v", unpacked, err)
	}
	cfg, err := img.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Config.Cmd) != 1 || cfg.Config.Cmd[0] != "/bin/sh" {
		t.Fatalf("image cmd = %v, want [/bin/sh]", cfg.Config.Cmd)
	}

	// A second import of the same archive under another ref names the
	// same content: same digest, no error.
	ImportBusybox(t, c.Address, ns, "localhost/drover/other:1")
	other, err := client.GetImage(ctx, "localhost/drover/other:1")
	if err != nil {
		t.Fatalf("get renamed image: %v", err)
	}
	if other.Target().Digest == "" {
		t.Fatal("renamed image has no target")
	}
}
