package containerd

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/droverhq/drover/driver"
)

// minCPUShares is the kernel's minimum cpu.shares.
const minCPUShares = 2

// ensureImage returns the image ref names, pulling it if the namespace
// does not have it, and makes sure it is unpacked for the snapshotter.
// A short name ("busybox") is also looked up and pulled in its
// normalised form ("docker.io/library/busybox:latest"). Errors name the
// image as the job wrote it.
func (d *Driver) ensureImage(ctx context.Context, client *ctrd.Client, ref string) (ctrd.Image, error) {
	names := []string{ref}
	if named, err := reference.ParseDockerRef(ref); err == nil && named.String() != ref {
		names = append(names, named.String())
	}
	for _, name := range names {
		img, err := client.GetImage(ctx, name)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", ref, err)
		}
		unpacked, err := img.IsUnpacked(ctx, d.cfg.Snapshotter)
		if err != nil {
			return nil, fmt.Errorf("image %q: check unpacked: %w", ref, err)
		}
		if !unpacked {
			d.logger.Debug("unpacking image", "image", name)
			if err := img.Unpack(ctx, d.cfg.Snapshotter); err != nil {
				return nil, fmt.Errorf("unpack image %q: %w", ref, err)
			}
		}
		return img, nil
	}

	pullRef := names[len(names)-1]
	d.logger.Info("pulling image", "image", pullRef)
	pctx, cancel := context.WithTimeout(ctx, d.cfg.PullTimeout)
	defer cancel()
	img, err := client.Pull(pctx, pullRef, ctrd.WithPullUnpack, ctrd.WithPullSnapshotter(d.cfg.Snapshotter))
	if err != nil {
		return nil, fmt.Errorf("pull image %q: %w", ref, err)
	}
	return img, nil
}

// createContainer creates the task's container. A container or snapshot
// left over under the same ID by an earlier failed start (whose handle
// was never persisted) is removed and the creation retried once; one
// whose task still runs is an error.
func (d *Driver) createContainer(ctx context.Context, client *ctrd.Client, cfg *driver.TaskConfig, image ctrd.Image) (ctrd.Container, error) {
	id := containerID(cfg.ID)
	for attempt := 0; ; attempt++ {
		container, err := client.NewContainer(ctx, id, d.containerOpts(cfg, image)...)
		if err == nil {
			return container, nil
		}
		if attempt > 0 || !errdefs.IsAlreadyExists(err) {
			d.removeOrphanSnapshot(ctx, client, id)
			return nil, fmt.Errorf("create container: %w", err)
		}
		d.logger.Warn("removing leftover container", "task_id", cfg.ID, "container_id", id)
		if rmErr := d.DestroyTask(ctx, cfg.ID, false); rmErr != nil {
			return nil, fmt.Errorf("container %s exists: %w", id, rmErr)
		}
		d.removeOrphanSnapshot(ctx, client, id)
	}
}

// removeOrphanSnapshot removes the snapshot named id if no container
// named id exists (the driver names a task's snapshot after its
// container).
func (d *Driver) removeOrphanSnapshot(ctx context.Context, client *ctrd.Client, id string) {
	if _, err := client.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
		return
	}
	err := client.SnapshotService(d.cfg.Snapshotter).Remove(ctx, id)
	if err != nil && !errdefs.IsNotFound(err) {
		d.logger.Warn("remove orphan snapshot", "snapshot", id, "error", err)
	}
}

// containerOpts describe the task's container: image, a new snapshot
// named after the container, the runc v2 runtime, labels and the spec.
func (d *Driver) containerOpts(cfg *driver.TaskConfig, image ctrd.Image) []ctrd.NewContainerOpts {
	id := containerID(cfg.ID)
	opts := []ctrd.NewContainerOpts{ctrd.WithImage(image)}
	if d.cfg.Snapshotter != "" {
		opts = append(opts, ctrd.WithSnapshotter(d.cfg.Snapshotter))
	}
	return append(opts,
		ctrd.WithNewSnapshot(id, image),
		ctrd.WithRuntime(runtimeName, nil),
		ctrd.WithNewSpec(specOpts(cfg, image)...),
		ctrd.WithContainerLabels(map[string]string{
			labelTaskID:   cfg.ID,
			labelAllocID:  cfg.AllocID,
			labelTaskName: cfg.TaskName,
			labelJobID:    cfg.JobID,
		}),
	)
}

// specOpts build the task's OCI spec on containerd's defaults:
//
//   - process: the image's config (env, working dir, user), with args
//     [Command]+Args if Command is set, else the image's entrypoint +
//     Args if Args are set, else the image's entrypoint + cmd;
//   - env: the image's env, overridden by cfg.Env in sorted key order;
//   - host networking: no network namespace, the host's /etc/hosts,
//     /etc/hostname and /etc/resolv.conf; with DNSServers, a resolv.conf of the task's
//     own naming them first instead (see withTaskResolvConf);
//   - memory limit MemoryMB MiB and cpu shares CPUShares (at least 2),
//     each only if set;
//   - the task's directories bind-mounted read-write (taskDirMounts).
func specOpts(cfg *driver.TaskConfig, image ctrd.Image) []oci.SpecOpts {
	var opts []oci.SpecOpts
	switch {
	case cfg.Command != "":
		args := append([]string{cfg.Command}, cfg.Args...)
		opts = append(opts, oci.WithImageConfig(image), oci.WithProcessArgs(args...))
	case len(cfg.Args) > 0:
		opts = append(opts, oci.WithImageConfigArgs(image, cfg.Args))
	default:
		opts = append(opts, oci.WithImageConfig(image))
	}
	if len(cfg.Env) > 0 {
		opts = append(opts, oci.WithEnv(envList(cfg.Env)))
	}
	opts = append(opts,
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithHostHostsFile,
		withHostHostnameFile,
	)
	if len(cfg.DNSServers) > 0 {
		opts = append(opts, withTaskResolvConf(cfg))
	} else {
		opts = append(opts, oci.WithHostResolvconf)
	}
	if cfg.MemoryMB > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(cfg.MemoryMB)*1024*1024))
	}
	if cfg.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(uint64(max(cfg.CPUShares, minCPUShares))))
	}
	if mounts := taskDirMounts(cfg); len(mounts) > 0 {
		opts = append(opts, oci.WithMounts(mounts))
	}
	return opts
}

// taskDirOptions are the mount options of the task's directories:
// read-write, and neither setuid binaries nor device files take effect
// in them (the client writes rendered templates there as root).
var taskDirOptions = []string{"rbind", "rw", "nosuid", "nodev"}

// taskDirMounts bind-mounts the directories the client prepared:
// AllocDir at /alloc, LocalDir at /local, SecretsDir at /secrets (each
// only if set).
func taskDirMounts(cfg *driver.TaskConfig) []specs.Mount {
	var mounts []specs.Mount
	for _, m := range []struct{ src, dst string }{
		{cfg.AllocDir, "/alloc"}, {cfg.LocalDir, "/local"}, {cfg.SecretsDir, "/secrets"},
	} {
		if m.src == "" {
			continue
		}
		src, err := filepath.Abs(m.src)
		if err != nil {
			src = m.src
		}
		mounts = append(mounts, specs.Mount{
			Destination: m.dst,
			Type:        "bind",
			Source:      src,
			Options:     append([]string(nil), taskDirOptions...),
		})
	}
	return mounts
}

// envList renders env as KEY=VALUE in sorted key order.
func envList(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}
