package containerd

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/identifiers"
	"github.com/containerd/containerd/namespaces"
	"github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// ErrClosed is returned by every method of a Driver after Close.
var ErrClosed = errors.New("containerd driver closed")

// Name is the driver name tasks select with `driver = "containerd"`.
const Name = "containerd"

// Defaults of Config.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultNamespace   = "drover"
	DefaultPullTimeout = 5 * time.Minute
)

// runtimeName is the containerd runtime every task uses.
const runtimeName = "io.containerd.runc.v2"

// Container labels the driver sets.
const (
	labelAllocID   = "drover.alloc_id"
	labelTaskName  = "drover.task_name"
	labelJobID     = "drover.job_id"
	labelTaskID    = "drover.task_id"
	labelStartedAt = "drover.started_at"
)

// Timeouts of calls to containerd. They keep a containerd that is down
// or wedged from blocking the agent.
const (
	dialTimeout        = 3 * time.Second
	fingerprintTimeout = 5 * time.Second
	cleanupTimeout     = 30 * time.Second
)

// Config configures the driver.
type Config struct {
	// Address is containerd's gRPC socket; default DefaultAddress.
	Address string
	// Namespace is the containerd namespace all tasks live in; default
	// DefaultNamespace.
	Namespace string
	// LoggerPath is the binary the runc shim runs as each task's logger
	// (see RunLogger); default os.Executable(), i.e. the drover binary.
	LoggerPath string
	// Snapshotter is the containerd snapshotter for task root
	// filesystems; "" means containerd's default (overlayfs).
	Snapshotter string
	// PullTimeout bounds pulling a missing image; default
	// DefaultPullTimeout.
	PullTimeout time.Duration
}

// Driver runs tasks as containerd containers. It keeps no per-task state
// in memory: every method looks the container up by ID, so a restarted
// agent needs nothing but the IDs to carry on.
type Driver struct {
	cfg    Config
	logger hclog.Logger

	mu     sync.Mutex   // guards client and closed
	client *ctrd.Client // nil until the first successful dial
	closed bool

	// execs holds the IDs of the exec'ed processes this driver started
	// and has not deleted yet: RecoverTask ends only the others, left
	// by an earlier run of the agent.
	execs sync.Map
}

var _ driver.Driver = (*Driver)(nil)

// New returns a driver for the containerd at cfg.Address. It does not
// connect: the connection is made on first use and retried on later
// calls, so a containerd that is down delays nothing and Fingerprint
// reports it unhealthy until it is back.
func New(cfg Config, logger hclog.Logger) (*Driver, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = DefaultPullTimeout
	}
	if cfg.LoggerPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("containerd driver: find own executable for the task logger: %w", err)
		}
		cfg.LoggerPath = exe
	}
	if !strings.HasPrefix(cfg.LoggerPath, "/") {
		return nil, fmt.Errorf("containerd driver: logger path %q must be absolute", cfg.LoggerPath)
	}
	if err := identifiers.Validate(cfg.Namespace); err != nil {
		return nil, fmt.Errorf("containerd driver: namespace: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Driver{cfg: cfg, logger: logger}, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return Name }

// Config returns the driver's configuration with defaults filled in.
func (d *Driver) Config() Config { return d.cfg }

// Fingerprint implements driver.Driver. It never takes longer than a few
// seconds, even when containerd is down or not answering.
func (d *Driver) Fingerprint(ctx context.Context) *structs.DriverInfo {
	info := &structs.DriverInfo{
		Detected: true,
		Attributes: map[string]string{
			"driver.containerd.address":   d.cfg.Address,
			"driver.containerd.namespace": d.cfg.Namespace,
			"driver.containerd.runtime":   runtimeName,
		},
		UpdateTime: time.Now().UnixNano(),
	}
	if d.cfg.Snapshotter != "" {
		info.Attributes["driver.containerd.snapshotter"] = d.cfg.Snapshotter
	}
	ctx, cancel := context.WithTimeout(ctx, fingerprintTimeout)
	defer cancel()

	if fi, err := os.Stat(d.cfg.LoggerPath); err != nil || fi.Mode()&0o111 == 0 {
		info.HealthDescription = fmt.Sprintf("task logger %s is not an executable file", d.cfg.LoggerPath)
		return info
	}
	client, err := d.getClient(ctx)
	if err != nil {
		info.HealthDescription = fmt.Sprintf("containerd unavailable at %s: %v", d.cfg.Address, err)
		return info
	}
	v, err := client.Version(d.nsCtx(ctx))
	if err != nil {
		info.HealthDescription = fmt.Sprintf("containerd at %s not answering: %v", d.cfg.Address, err)
		return info
	}
	info.Attributes["driver.containerd"] = "1"
	info.Attributes["driver.containerd.version"] = v.Version
	info.Attributes["driver.containerd.revision"] = v.Revision
	info.Healthy = true
	info.HealthDescription = "Healthy"
	return info
}

// Close implements driver.Driver. Tasks keep running; their loggers run
// under the shims and are unaffected.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.client == nil {
		return nil
	}
	err := d.client.Close()
	d.client = nil
	return err
}

// getClient returns the connected client, dialing if there is none yet.
// Once dialed, the gRPC connection reconnects by itself (with at most 3s
// of backoff), so a containerd restart needs no new client.
func (d *Driver) getClient(ctx context.Context) (*ctrd.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	if d.client != nil {
		return d.client, nil
	}
	// containerd's dialer waits for a missing socket to appear until the
	// timeout; say at once that it is not there.
	if _, err := os.Stat(strings.TrimPrefix(d.cfg.Address, "unix://")); err != nil {
		return nil, fmt.Errorf("no containerd socket: %w", err)
	}
	timeout := dialTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, ctx.Err()
	}
	// No WithDefaultNamespace: it would make New query namespace labels
	// without a deadline. Every call carries the namespace in its context.
	client, err := ctrd.New(d.cfg.Address, ctrd.WithTimeout(timeout), ctrd.WithDefaultRuntime(runtimeName))
	if err != nil {
		return nil, err
	}
	d.client = client
	return client, nil
}

// nsCtx returns ctx carrying the driver's containerd namespace.
func (d *Driver) nsCtx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, d.cfg.Namespace)
}

// cleanupCtx is a context for undoing work after ctx was cancelled.
func (d *Driver) cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(d.nsCtx(context.WithoutCancel(ctx)), cleanupTimeout)
}

var invalidIDChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

// containerID maps a task ID to a valid containerd identifier. Drover's
// task IDs ("<allocID>-<taskName>") normally are valid and are used
// unchanged; others (a task name with other characters, or too long)
// are sanitised and suffixed with a hash of the original, so the mapping
// stays deterministic and collision-free across agent restarts.
func containerID(id string) string {
	if identifiers.Validate(id) == nil {
		return id
	}
	clean := strings.Trim(invalidIDChars.ReplaceAllString(id, "-"), "-")
	if len(clean) > 48 {
		clean = clean[:48]
	}
	sum := sha256.Sum256([]byte(id))
	if clean == "" {
		return fmt.Sprintf("task-%x", sum[:8])
	}
	return fmt.Sprintf("%s-%x", strings.TrimRight(clean, "-"), sum[:8])
}
