package testutil

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/droverhq/drover/internal/ociimage"
)

// BusyboxRef is the reference the busybox test image is imported under.
// No registry serves it: it exists only where ImportImage put it.
const BusyboxRef = ociimage.BusyboxRef

// BusyboxBinary is the static busybox the image is built from
// (Debian's busybox-static).
const BusyboxBinary = ociimage.BusyboxBinary

// BuildBusyboxImage writes the busybox OCI image layout tarball to path,
// naming its image ref (ociimage.BuildBusybox).
func BuildBusyboxImage(path string, ref string) error {
	return ociimage.BuildBusybox(path, ref)
}

// ImportImage imports the OCI layout tarball at archivePath into the
// namespace of ctx as ref, unpacked (ociimage.Import).
func ImportImage(ctx context.Context, client *ctrd.Client, archivePath string, ref string) error {
	return ociimage.Import(ctx, client, archivePath, ref)
}

// ImportBusybox builds the busybox image and imports it as ref into
// namespace of the containerd at address, failing the test on error.
func ImportBusybox(t testing.TB, address, namespace, ref string) {
	t.Helper()
	archivePath := filepath.Join(t.TempDir(), "busybox-oci.tar")
	if err := ociimage.BuildBusybox(archivePath, ref); err != nil {
		t.Fatalf("build busybox image: %v", err)
	}
	client, err := ctrd.New(address, ctrd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to containerd at %s: %v", address, err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), namespace), time.Minute)
	defer cancel()
	if err := ociimage.Import(ctx, client, archivePath, ref); err != nil {
		t.Fatalf("import busybox image: %v", err)
	}
}
