package containerd

import (
	"context"
	"os"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hostHostnameFile is the host's hostname file, which tasks see.
const hostHostnameFile = "/etc/hostname"

// withHostHostnameFile bind-mounts the host's /etc/hostname read-only,
// as the host's /etc/hosts is: a task on the host's network is on the
// host's name too (its UTS namespace starts with the host's hostname),
// and images rarely carry the file (busybox's does not). A host without
// the file mounts nothing.
func withHostHostnameFile(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if fi, err := os.Stat(hostHostnameFile); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	s.Mounts = append(s.Mounts, specs.Mount{
		Destination: hostHostnameFile,
		Type:        "bind",
		Source:      hostHostnameFile,
		Options:     []string{"rbind", "ro"},
	})
	return nil
}
