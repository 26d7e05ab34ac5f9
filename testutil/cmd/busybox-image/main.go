package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/droverhq/drover/internal/ociimage"
)

func main() {
	address := flag.String("address", "/run/containerd/containerd.sock", "containerd socket")
	namespace := flag.String("namespace", "drover", "containerd namespace to import into")
	ref := flag.String("ref", ociimage.BusyboxRef, "image reference")
	out := flag.String("out", "", "only write the OCI archive to this path, import nothing")
	flag.Parse()
	if err := run(*address, *namespace, *ref, *out); err != nil {
		fmt.Fprintln(os.Stderr, "busybox-image:", err)
		os.Exit(1)
	}
}

func run(address, namespace, ref, out string) error {
	if out != "" {
		if err := ociimage.BuildBusybox(out, ref); err != nil {
			return err
		}
		fmt.Printf("wrote OCI image archive %s (ref %s)\n", out, ref)
		return nil
	}

	dir, err := os.MkdirTemp("", "busybox-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "busybox-oci.tar")
	if err := ociimage.BuildBusybox(archive, ref); err != nil {
		return err
	}

	client, err := ctrd.New(address, ctrd.WithTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), namespace), 2*time.Minute)
	defer cancel()
	if err := ociimage.Import(ctx, client, archive, ref); err != nil {
		return err
	}
	img, err := client.GetImage(ctx, ref)
	if err != nil {
		return err
	}
	fmt.Printf("imported %s (%s) into namespace %q of %s, unpacked\n", ref, img.Target().Digest, namespace, address)
	return nil
}
