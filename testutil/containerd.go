package testutil

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
)

// installHint is the message every missing-binary failure carries, so CI
// logs say how to fix the machine rather than only what was missing.
const installHint = "install with apt-get install -y containerd runc busybox-static"

// Timeouts of the private daemon's lifecycle.
const (
	containerdReadyTimeout = 30 * time.Second
	containerdTermTimeout  = 5 * time.Second
	teardownTimeout        = 30 * time.Second
)

// Host-wide paths containerd 1.6 uses whatever the daemon's root and
// state directories are: the runc shims' sockets (defaults.DefaultStateDir
// + "/s", named by a hash of daemon address, namespace and container, so
// unique per daemon) and runc's state (RuncRoot/<namespace>/<container>,
// not unique: see Containerd.Namespace).
const (
	shimSocketDir = "/run/containerd/s"
	runcStateRoot = "/run/containerd/runc"
	cgroupRoot    = "/sys/fs/cgroup"
)

// Containerd is a private containerd daemon with its own root, state and
// socket under Dir. It is started by StartContainerd (tests) or
// LaunchContainerd (harnesses, the demo) and torn down by Stop, which
// removes every task, container, shim and mount it created.
type Containerd struct {
	// Dir holds config.toml, containerd.log, the socket, root/ and state/.
	Dir string
	// Address is the daemon's gRPC unix socket path.
	Address string
	// LogPath is the daemon's log file.
	LogPath string
	// Namespace is a containerd namespace name unique to this daemon.
	// Tests should use it, or names starting with Namespace+"-": runc
	// keeps its state in /run/containerd/runc/<namespace>/<id> and
	// containerd puts tasks in cgroup /<namespace>/<id>, both shared by
	// every containerd on the host, so two daemons using the same
	// namespace and container ID collide. Stop removes what the owned
	// namespaces left there.
	Namespace string

	ownDir  bool
	bin     string
	cfgPath string
	logf    *os.File
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returned

	stopOnce sync.Once
	stopErr  error
}

// StartContainerd starts a private containerd for the test and registers
// its teardown with t.Cleanup. A missing containerd fails the test; it
// never skips, so CI cannot silently lose these tests.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	c, err := LaunchContainerd("")
	var missing *missingBinaryError
	if errors.As(err, &missing) {
		t.Fatalf("%v", err) // never t.Skip: CI must not lose these tests
	}
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log (%s), last lines:\n%s", c.LogPath, c.LogTail(60))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	return c
}

// LaunchContainerd starts a containerd daemon whose root, state, socket,
// config and log live in dir. With dir "" a fresh directory is created
// under /tmp (unix socket paths are limited to 108 bytes, so it stays
// short) and Stop removes it; a given dir is created if needed and kept,
// only its root/ and state/ are removed. The daemon is killed if the
// calling process dies (Pdeathsig). It returns once the daemon serves.
func LaunchContainerd(dir string) (*Containerd, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	c := &Containerd{}
	if dir == "" {
		if dir, err = os.MkdirTemp("/tmp", "drover-ctrd-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	c.Dir = dir
	sum := sha256.Sum256([]byte(dir))
	c.Namespace = fmt.Sprintf("drover-t%x", sum[:5])
	c.Address = filepath.Join(dir, "containerd.sock")
	c.LogPath = filepath.Join(dir, "containerd.log")
	if len(c.Address) >= 100 {
		c.cleanupDir()
		return nil, fmt.Errorf("socket path %q too long for a unix socket", c.Address)
	}

	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(containerdConfig(dir, c.Address)), 0o644); err != nil {
		c.cleanupDir()
		return nil, err
	}
	if c.logf, err = os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		c.cleanupDir()
		return nil, err
	}

	c.bin, c.cfgPath = bin, cfgPath
	if err := c.startDaemon(); err != nil {
		c.logf.Close()
		c.cleanupDir()
		return nil, err
	}
	if err := c.waitServing(); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// startDaemon starts the containerd process.
func (c *Containerd) startDaemon() error {
	cmd := exec.Command(c.bin, "--config", c.cfgPath)
	cmd.Dir = c.Dir
	cmd.Stdout = c.logf
	cmd.Stderr = c.logf
	// Own process group so a terminal's ^C goes to the test, which then
	// tears down in order; Pdeathsig so a crashed or timed-out test
	// binary does not leave the daemon behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited = cmd, exited
	return nil
}

// Restart stops the daemon process (SIGTERM) and starts it again with
// the same config, leaving shims, tasks and containers alone, as a
// containerd upgrade or crash-restart on a node would. It returns once
// the daemon serves again. Not safe to call concurrently with Stop.
func (c *Containerd) Restart() error {
	if err := c.terminate(); err != nil {
		return err
	}
	if err := c.startDaemon(); err != nil {
		return err
	}
	return c.waitServing()
}

// binaryDirs are searched when a binary is not on PATH (Debian puts
// runc in /usr/sbin, which a test's PATH may lack).
var binaryDirs = []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}

// missingBinaryError names binaries the private daemon needs and did not
// find, with how to install them.
type missingBinaryError struct{ names []string }

func (e *missingBinaryError) Error() string {
	return strings.Join(e.names, ", ") + " not found: " + installHint
}

// findBinaries returns the containerd binary, checking that the runc
// shim and runc it needs are there too.
func findBinaries() (string, error) {
	return findBinariesIn(binaryDirs)
}

func findBinariesIn(dirs []string) (string, error) {
	var missing []string
	var found []string
	for _, name := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		path, err := exec.LookPath(name)
		if err != nil {
			path = ""
			for _, d := range dirs {
				if fi, err := os.Stat(filepath.Join(d, name)); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
					path = filepath.Join(d, name)
					break
				}
			}
		}
		if path == "" {
			missing = append(missing, name)
		}
		found = append(found, path)
	}
	if len(missing) > 0 {
		return "", &missingBinaryError{names: missing}
	}
	return found[0], nil
}

// containerdConfig is a version 2 config that keeps everything under dir
// and disables the plugins that only add noise or need things this
// daemon never uses (CRI, the exotic snapshotters, tracing).
func containerdConfig(dir, address string) string {
	q := strconv.Quote
	return fmt.Sprintf(`version = 2
root = %s
state = %s
oom_score = 0
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %s

[ttrpc]
  address = %s

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %s
`, q(filepath.Join(dir, "root")), q(filepath.Join(dir, "state")), q(address),
		q(address+".ttrpc"), q(filepath.Join(dir, "opt")))
}

// waitServing polls the socket until the daemon answers or gives up.
func (c *Containerd) waitServing() error {
	deadline := time.Now().Add(containerdReadyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return fmt.Errorf("containerd exited during startup; log tail:\n%s", c.LogTail(40))
		default:
		}
		if _, err := os.Stat(c.Address); err == nil {
			lastErr = probe(c.Address)
			if lastErr == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("containerd did not serve on %s within %s (last error: %v); log tail:\n%s",
		c.Address, containerdReadyTimeout, lastErr, c.LogTail(40))
}

// probe asks the daemon whether it serves, with a short deadline.
func probe(address string) error {
	client, err := ctrd.New(address, ctrd.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ok, err := client.IsServing(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("containerd not serving yet")
	}
	return nil
}

// Client returns a new client of the daemon whose default namespace is
// namespace. The caller closes it.
func (c *Containerd) Client(namespace string) (*ctrd.Client, error) {
	return ctrd.New(c.Address, ctrd.WithTimeout(5*time.Second), ctrd.WithDefaultNamespace(namespace))
}

// LogTail returns the last n lines of the daemon's log.
func (c *Containerd) LogTail(n int) string {
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", c.LogPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

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
// LaunchContainerd made it, else root/ and state/.
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
// Tests use it to check that nothing is left mounted.
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
