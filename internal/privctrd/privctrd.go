package privctrd

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	ctrd "github.com/containerd/containerd"
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
// socket under Dir. It is started by Launch (the bench harness, and
// testutil.StartContainerd for tests) and torn down by Stop, which
// removes every task, container, shim and mount it created.
type Containerd struct {
	// Dir holds config.toml, containerd.log, the socket, root/ and state/.
	Dir string
	// Address is the daemon's gRPC unix socket path.
	Address string
	// LogPath is the daemon's log file.
	LogPath string
	// Namespace is a containerd namespace name unique to this daemon.
	// Callers should use it, or names starting with Namespace+"-": runc
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

// Launch starts a containerd daemon whose root, state, socket,
// config and log live in dir. With dir "" a fresh directory is created
// under /tmp (unix socket paths are limited to 108 bytes, so it stays
// short) and Stop removes it; a given dir is created if needed and kept,
// only its root/ and state/ are removed. The daemon is killed if the
// calling process dies (Pdeathsig). It returns once the daemon serves.
func Launch(dir string) (*Containerd, error) {
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

// StopDaemon stops the daemon process (SIGTERM) and leaves it stopped,
// shims, tasks and containers alone: a node whose containerd died.
// StartDaemon brings it back. Not safe to call concurrently with Stop.
func (c *Containerd) StopDaemon() error { return c.terminate() }

// StartDaemon starts a daemon stopped by StopDaemon with the same
// config and returns once it serves.
func (c *Containerd) StartDaemon() error {
	if err := c.startDaemon(); err != nil {
		return err
	}
	return c.waitServing()
}

// binaryDirs are searched when a binary is not on PATH (Debian puts
// runc in /usr/sbin, which a test's PATH may lack).
var binaryDirs = []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}

// MissingBinaryError is Launch's error when containerd, its runc shim or
// runc is not installed. Callers tell it apart from a daemon that failed
// to start: the machine needs fixing, not the code, and tests must fail
// on it rather than skip (shared/STYLE.md).
type MissingBinaryError struct {
	// Names are the binaries not found, in the order Launch needs them.
	Names []string
}

func (e *MissingBinaryError) Error() string {
	return strings.Join(e.Names, ", ") + " not found: " + installHint
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
		return "", &MissingBinaryError{Names: missing}
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
