package ociimage

import (
	"context"
	"fmt"
	"os"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/errdefs"
)

// Import imports the OCI layout tarball at archivePath into the
// namespace of ctx, makes sure an image named ref exists (naming the
// archive's image ref if the archive called it something else) and that
// it is unpacked for the default snapshotter.
func Import(ctx context.Context, client *ctrd.Client, archivePath string, ref string) error {
	if _, ok := namespaces.Namespace(ctx); !ok {
		return fmt.Errorf("import %s: no containerd namespace in context", archivePath)
	}
	f, err := os.Open(archivePath)
	if err != nil {
		return err
	}
	defer f.Close()
	imported, err := client.Import(ctx, f)
	if err != nil {
		return fmt.Errorf("import %s: %w", archivePath, err)
	}
	if len(imported) == 0 {
		return fmt.Errorf("import %s: archive holds no image for this platform", archivePath)
	}

	img, err := client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		rec := images.Image{Name: ref, Target: imported[0].Target}
		if _, err := client.ImageService().Create(ctx, rec); err != nil && !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("name image %s: %w", ref, err)
		}
		img, err = client.GetImage(ctx, ref)
	}
	if err != nil {
		return fmt.Errorf("get image %s: %w", ref, err)
	}
	unpacked, err := img.IsUnpacked(ctx, "")
	if err != nil {
		return fmt.Errorf("check unpack of %s: %w", ref, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, ""); err != nil {
			return fmt.Errorf("unpack %s: %w", ref, err)
		}
	}
	return nil
}
