package containerd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/droverhq/drover/driver"
)

// hostResolvConf is the host's resolver configuration, read for the
// nameservers and search/options lines a task with DNS servers keeps.
const hostResolvConf = "/etc/resolv.conf"

// maxNameservers is glibc's MAXNS: it ignores nameserver lines after
// the third.
const maxNameservers = 3

// taskResolvConfPath is where the driver writes the resolv.conf of a
// task with DNS servers: in the task's own directory beside the shared
// allocation directory (<alloc>/tasks/<task>/resolv.conf next to
// <alloc>/alloc), so the task cannot write it through its /alloc mount.
// The client removes the allocation's directory, and the file with it,
// when it forgets the allocation.
func taskResolvConfPath(cfg *driver.TaskConfig) (string, error) {
	if cfg.AllocDir == "" {
		return "", errors.New("DNS servers need the task's allocation directory for its resolv.conf")
	}
	if cfg.TaskName == "" || cfg.TaskName != filepath.Base(cfg.TaskName) || strings.HasPrefix(cfg.TaskName, ".") {
		return "", fmt.Errorf("task name %q cannot name a directory", cfg.TaskName)
	}
	allocDir, err := filepath.Abs(cfg.AllocDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(allocDir), "tasks", cfg.TaskName, "resolv.conf"), nil
}

// withTaskResolvConf writes the task's resolv.conf (see taskResolvConf)
// and bind-mounts it read-only at /etc/resolv.conf, in place of the
// host's file. It runs when containerd builds the spec, so a failure
// fails the container's creation.
func withTaskResolvConf(cfg *driver.TaskConfig) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		for _, ns := range cfg.DNSServers {
			if a, err := netip.ParseAddr(ns); err != nil || !a.Is4() {
				return fmt.Errorf("DNS server %q: want an IPv4 address", ns)
			}
		}
		path, err := taskResolvConfPath(cfg)
		if err != nil {
			return err
		}
		host, err := os.ReadFile(hostResolvConf)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read host resolv.conf: %w", err)
		}
		if err := writeFileAtomic(path, taskResolvConf(cfg.DNSServers, host)); err != nil {
			return fmt.Errorf("task resolv.conf: %w", err)
		}
		return oci.WithMounts([]specs.Mount{{
			Destination: "/etc/resolv.conf",
			Type:        "bind",
			Source:      path,
			Options:     []string{"rbind", "ro"},
		}})(ctx, client, c, s)
	}
}

// taskResolvConf renders the resolv.conf of a task whose DNS servers are
// servers (IPv4 addresses) from the host's resolv.conf content host:
//
//   - nameserver lines for servers, then for the host's nameservers
//     (skipping those already listed), at most maxNameservers in all.
//     Drover's DNS comes first and answers REFUSED for names outside its
//     domain, on which glibc asks the next nameserver: other names keep
//     resolving through the host's servers. A host file without
//     nameservers means the local host to glibc, so 127.0.0.1 stands in
//     for them;
//   - the host's search and domain lines, in their order;
//   - the host's options lines without "rotate", which would send
//     queries for Drover's names to host servers (whose NXDOMAIN is
//     final) as often as to Drover's.
//
// Comments and other lines are dropped.
func taskResolvConf(servers []string, host []byte) []byte {
	var nameservers, rest []string
	hostHasNameserver := false
	add := func(ns string) {
		if len(nameservers) < maxNameservers && !slices.Contains(nameservers, ns) {
			nameservers = append(nameservers, ns)
		}
	}
	for _, ns := range servers {
		add(ns)
	}
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) > 1 {
				hostHasNameserver = true
				add(fields[1])
			}
		case "search", "domain":
			rest = append(rest, strings.Join(fields, " "))
		case "options":
			opts := []string{"options"}
			for _, o := range fields[1:] {
				if o != "rotate" {
					opts = append(opts, o)
				}
			}
			if len(opts) > 1 {
				rest = append(rest, strings.Join(opts, " "))
			}
		}
	}
	if !hostHasNameserver {
		add("127.0.0.1")
	}
	var b bytes.Buffer
	b.WriteString("# Written by Drover: the agent's DNS first, then the host's nameservers.\n")
	for _, ns := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	for _, l := range rest {
		b.WriteString(l + "\n")
	}
	return b.Bytes()
}

// writeFileAtomic writes data to path (mode 0644: tasks running as any
// user read it), creating its directory, through a rename so that a
// container starting concurrently never mounts a half-written file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".resolv.conf.*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
