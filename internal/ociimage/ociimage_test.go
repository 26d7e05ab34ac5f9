package ociimage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"

	"github.com/droverhq/drover/internal/privctrd"
)

func TestBuildBusybox_Deterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	if err := BuildBusybox(a, BusyboxRef); err != nil {
		t.Fatal(err)
	}
	if err := BuildBusybox(b, BusyboxRef); err != nil {
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

func TestImport_Refusals(t *testing.T) {
	cases := []struct {
		name    string
		ctx     context.Context
		archive string
		want    string
	}{
		{name: "no namespace", ctx: context.Background(), archive: "/nonexistent.tar", want: "no containerd namespace"},
		{name: "missing archive", ctx: namespaces.WithNamespace(context.Background(), "x"), archive: "/nonexistent.tar", want: "/nonexistent.tar"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Both refusals come before the client is used.
			err := Import(tc.ctx, nil, tc.archive, BusyboxRef)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestImport_ImportsAndUnpacks(t *testing.T) {
	c, err := privctrd.Launch("")
	if err != nil {
		t.Fatalf("launch containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	archive := filepath.Join(t.TempDir(), "busybox-oci.tar")
	if err := BuildBusybox(archive, BusyboxRef); err != nil {
		t.Fatal(err)
	}
	client, err := c.Client(c.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), c.Namespace), time.Minute)
	defer cancel()
	if err := Import(ctx, client, archive, BusyboxRef); err != nil {
		t.Fatalf("import: %v", err)
	}
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

	// The same archive imported under another ref names the same
	// content: same digest, no error.
	const other = "localhost/drover/other:1"
	if err := Import(ctx, client, archive, other); err != nil {
		t.Fatalf("import as %s: %v", other, err)
	}
	renamed, err := client.GetImage(ctx, other)
	if err != nil {
		t.Fatalf("get renamed image: %v", err)
	}
	if renamed.Target().Digest != img.Target().Digest {
		t.Fatalf("renamed image digest %s, want %s", renamed.Target().Digest, img.Target().Digest)
	}
}
