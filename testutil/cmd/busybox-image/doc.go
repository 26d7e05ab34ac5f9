// Command busybox-image builds Drover's busybox test image (an OCI image
// layout tarball made from the host's static /bin/busybox) and imports
// it into a containerd namespace, so the demo can run tasks without a
// registry. With -out it only writes the archive. It uses
// internal/ociimage directly, so it does not link package testing.
//
//	busybox-image -address /run/containerd/containerd.sock -namespace drover
//	busybox-image -out /tmp/busybox-oci.tar
package main
