package privctrd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
)

// Stop tears the daemon down and leaves nothing running or mounted: it
// kills and deletes every task and container (with their snapshots) in
// every namespace, stops the daemon (SIGTERM, then SIGKILL), kills any
// shim or logger still tied to Dir, unmounts what is left under Dir and
// removes the directory (or, for a caller-given dir, root/ and state/).
// It is safe to call more than once.
func (c *Containerd) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Containerd) stop() error {
	var errs []error
	var shimSockets []string
	select {
	case <-c.exited:
	default:
		socks, err := c.removeAll()
		if err != nil {
			errs = append(errs, err)
		}
		shimSockets = socks
	}
	if err := c.terminate(); err != nil {
		errs = append(errs, err)
	}
	// Shims of tasks the daemon did not delete leave their sockets.
	bundles, _ := filepath.Glob(filepath.Join(c.Dir, "state", "io.containerd.runtime.v2.task", "*", "*"))
	for _, b := range bundles {
		shimSockets = append(shimSockets, shimSocket(c.Address, filepath.Base(filepath.Dir(b)), filepath.Base(b)))
	}
	if err := killProcessesUnder(c.Dir); err != nil {
		errs = append(errs, err)
	}
	// Tasks the daemon could not delete (it crashed, or was wedged) run
	// on without their shims; their cgroups find them.
	if err := killBundleCgroups(c.Dir); err != nil {
		errs = append(errs, err)
	}
	for _, s := range shimSockets {
		_ = os.Remove(s)
	}
	if err := unmountUnder(c.Dir); err != nil {
		errs = append(errs, err)
	}
	c.removeHostState()
	if c.logf != nil {
		c.logf.Close()
	}
	if err := c.cleanupDir(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeAll kills and deletes every task and container in every
// namespace. It returns the socket paths the runc shims of those
// containers used, for removal once the shims are gone.
func (c *Containerd) removeAll() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	client, err := ctrd.New(c.Address, ctrd.WithTimeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect for teardown: %w", err)
	}
	defer client.Close()
	nss, err := client.NamespaceService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var errs []error
	var sockets []string
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		containers, err := client.Containers(nctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list containers in %s: %w", ns, err))
			continue
		}
		for _, ctr := range containers {
			sockets = append(sockets, shimSocket(c.Address, ns, ctr.ID()))
			if task, err := ctr.Task(nctx, nil); err == nil {
				if _, err := task.Delete(nctx, ctrd.WithProcessKill); err != nil {
					errs = append(errs, fmt.Errorf("delete task %s/%s: %w", ns, ctr.ID(), err))
				}
			}
			if err := ctr.Delete(nctx, ctrd.WithSnapshotCleanup); err != nil {
				errs = append(errs, fmt.Errorf("delete container %s/%s: %w", ns, ctr.ID(), err))
			}
		}
	}
	return sockets, errors.Join(errs...)
}

// shimSocket is the socket the runc v2 shim of container id in ns uses
// (runtime/v2/shim.SocketAddress in containerd 1.6).
func shimSocket(address, ns, id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(address, ns, id)))
	return filepath.Join(shimSocketDir, fmt.Sprintf("%x", sum))
}

// terminate stops the daemon: SIGTERM, then SIGKILL after a grace period.
func (c *Containerd) terminate() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(containerdTermTimeout):
	}
	_ = c.cmd.Process.Kill()
	select {
	case <-c.exited:
		return nil
	case <-time.After(containerdTermTimeout):
		return fmt.Errorf("containerd (pid %d) did not exit after SIGKILL", c.cmd.Process.Pid)
	}
}

// cleanupDir removes what this daemon created: the whole directory if
// Launch made it, else root/ and state/.
func (c *Containerd) cleanupDir() error {
	if c.Dir == "" {
		return nil
	}
	if c.ownDir {
		return os.RemoveAll(c.Dir)
	}
	return errors.Join(os.RemoveAll(filepath.Join(c.Dir, "root")), os.RemoveAll(filepath.Join(c.Dir, "state")))
}

// killProcessesUnder SIGKILLs every process (other than this one) whose
// command line mentions dir or whose working directory is inside it:
// runc shims (started with -address <dir>/containerd.sock, working in
// their bundle under <dir>/state) and the task loggers they started. It
// waits until they are gone.
func killProcessesUnder(dir string) error {
	var victims []int
	for attempt := 0; attempt < 50; attempt++ {
		victims = processesUnder(dir)
		if len(victims) == 0 {
			return nil
		}
		for _, pid := range victims {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("processes under %s survived SIGKILL: %v", dir, victims)
}

// removeHostState removes, once all processes are gone, what tasks of
// this daemon left outside Dir: runc state of containers whose bundles
// are still in Dir/state (a crashed daemon could not delete them), and
// the runc state and cgroup parent directories of the namespaces this
// daemon owns (see Namespace).
func (c *Containerd) removeHostState() {
	bundles, _ := filepath.Glob(filepath.Join(c.Dir, "state", "io.containerd.runtime.v2.task", "*", "*"))
	for _, b := range bundles {
		ns, id := filepath.Base(filepath.Dir(b)), filepath.Base(b)
		_ = os.RemoveAll(filepath.Join(runcStateRoot, ns, id))
	}
	nsDirs, _ := os.ReadDir(runcStateRoot)
	for _, e := range nsDirs {
		if ns := e.Name(); c.ownsNamespace(ns) {
			_ = os.RemoveAll(filepath.Join(runcStateRoot, ns))
		}
	}
	for _, d := range cgroupDirs("") {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() && c.ownsNamespace(e.Name()) {
				removeEmptyCgroupTree(filepath.Join(d, e.Name()))
			}
		}
	}
}

// ownsNamespace reports whether ns is Namespace or starts with it and "-".
func (c *Containerd) ownsNamespace(ns string) bool {
	return c.Namespace != "" && (ns == c.Namespace || strings.HasPrefix(ns, c.Namespace+"-"))
}

// cgroupDirs returns rel's directory in each cgroup v1 hierarchy, or in
// the cgroup v2 one, that exists.
func cgroupDirs(rel string) []string {
	rel = filepath.Clean("/" + rel)
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return []string{filepath.Join(cgroupRoot, rel)}
	}
	var dirs []string
	hierarchies, _ := os.ReadDir(cgroupRoot)
	for _, h := range hierarchies {
		d := filepath.Join(cgroupRoot, h.Name(), rel)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// removeEmptyCgroupTree removes the cgroup d and its descendants,
// deepest first; cgroups that still hold processes stay.
func removeEmptyCgroupTree(d string) {
	entries, _ := os.ReadDir(d)
	for _, e := range entries {
		if e.IsDir() {
			removeEmptyCgroupTree(filepath.Join(d, e.Name()))
		}
	}
	_ = os.Remove(d)
}

// killBundleCgroups SIGKILLs the processes of every container whose
// runc bundle is still under dir/state, found through the cgroup named
// in the bundle's config.json, and removes those cgroups once empty.
func killBundleCgroups(dir string) error {
	configs, _ := filepath.Glob(filepath.Join(dir, "state", "io.containerd.runtime.v2.task", "*", "*", "config.json"))
	var errs []error
	for _, cfg := range configs {
		cgroupDirs := bundleCgroupDirs(cfg)
		var pids []int
		for attempt := 0; attempt < 50; attempt++ {
			pids = cgroupPids(cgroupDirs)
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(pids) > 0 {
			errs = append(errs, fmt.Errorf("container processes %v of %s survived SIGKILL", pids, filepath.Dir(cfg)))
			continue
		}
		for _, d := range cgroupDirs {
			_ = os.Remove(d)
		}
	}
	return errors.Join(errs...)
}

// bundleCgroupDirs returns the cgroup directories (one per v1
// controller, or the v2 one) of the bundle whose config.json is at path.
func bundleCgroupDirs(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var spec struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(b, &spec) != nil || spec.Linux == nil || !strings.HasPrefix(spec.Linux.CgroupsPath, "/") {
		return nil // no cgroup, or a systemd "slice:prefix:name" one
	}
	return cgroupDirs(spec.Linux.CgroupsPath)
}

func cgroupPids(dirs []string) []int {
	seen := map[int]bool{}
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] && !isZombie(pid) {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func processesUnder(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if isZombie(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if bytes.Contains(cmdline, []byte(dir+"/")) || cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // gone
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces or parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest
// first, as listed in /proc/self/mountinfo.
func unmountUnder(dir string) error {
	points, err := mountPointsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// MountsUnder returns the mount points at or below dir, deepest first.
// Tests use it to check that Stop left nothing mounted.
func MountsUnder(dir string) ([]string, error) {
	return mountPointsUnder(dir)
}

func mountPointsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	return points, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
