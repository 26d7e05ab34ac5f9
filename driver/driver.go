package driver

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/droverhq/drover/structs"
)

// ErrTaskNotFound is returned when a driver has no task with the given
// ID, e.g. when re-attaching after the machine rebooted.
var ErrTaskNotFound = errors.New("task not found")

// TaskConfig is everything a driver needs to start a task. The client
// builds it from the allocation and persists it inside the TaskHandle.
type TaskConfig struct {
	// ID identifies the task in the driver (for containerd, the
	// container ID): "<allocID>-<taskName>".
	ID       string
	AllocID  string
	TaskName string
	JobID    string

	Image   string
	Command string
	Args    []string
	// Env is the complete environment the client computed (task env plus
	// DROVER_* variables); the driver adds the image's own env under it.
	Env map[string]string

	// MemoryMB is the hard memory limit; CPUShares the relative CPU
	// weight (Drover uses the task's MHz).
	MemoryMB  int64
	CPUShares int64

	// StdoutPath and StderrPath name the task's output streams (the
	// containerd driver writes rotated files <path>.0, <path>.1, ...;
	// see containerd.LogFiles). Output must keep reaching them while
	// the client is down.
	StdoutPath string
	StderrPath string
	// LogMaxFiles and LogMaxFileSizeMB bound each output stream on disk
	// (the task's logs block): a driver that keeps files rotates them.
	// Zero takes structs.DefaultLogConfig.
	LogMaxFiles      int
	LogMaxFileSizeMB int
	// AllocDir, when set, is mounted read-write at /alloc in the task:
	// the directory the group's tasks share.
	AllocDir string
	// LocalDir and SecretsDir, when set, are the task's own directories,
	// mounted read-write at /local and /secrets. The client makes
	// SecretsDir a tmpfs, so what templates render there never reaches
	// the node's disk. A driver mounts the three without setuid or
	// device files (nosuid, nodev): the client writes into them.
	LocalDir   string
	SecretsDir string
	// DNSServers, when set, are IPv4 addresses of nameservers the task
	// asks before the host's (the client agent's DNS, for *.drover
	// names). A driver that shares the host's resolv.conf gives the
	// task its own instead; the containerd driver writes it into the
	// task's directory beside AllocDir, which it then requires. Empty:
	// the task uses the host's resolver configuration.
	DNSServers []string
}

// TaskHandle is what the client persists to re-attach to a task after a
// restart.
type TaskHandle struct {
	Driver    string
	ID        string
	PID       int
	StartedAt time.Time
	Config    *TaskConfig
}

// ExitResult is how a task ended.
type ExitResult struct {
	ExitCode int
	// Signal is the signal that killed the task, 0 if it exited.
	Signal    int
	OOMKilled bool
	// Err is set when the exit could not be observed (e.g. the driver
	// lost its connection); ExitCode is then meaningless.
	Err error
}

// Successful reports whether the task exited 0 on its own.
func (r *ExitResult) Successful() bool {
	return r.Err == nil && r.ExitCode == 0 && r.Signal == 0
}

// Task states reported by InspectTask.
const (
	TaskStateRunning = "running"
	TaskStateExited  = "exited"
	TaskStateUnknown = "unknown"
)

// TaskStatus is a driver's view of one task.
type TaskStatus struct {
	ID        string
	State     string
	PID       int
	ExitCode  int
	StartedAt time.Time
	ExitedAt  time.Time
}

// Driver runs tasks. All methods may be called from any goroutine and
// concurrently for different tasks; the client's task runner calls the
// methods for one task from one goroutine at a time.
type Driver interface {
	// Name is the value of a task's `driver` field this driver serves.
	Name() string

	// Fingerprint reports whether the driver is usable on this node. It
	// never returns nil; an unusable driver is Detected but not
	// Healthy, with the reason in HealthDescription.
	Fingerprint(ctx context.Context) *structs.DriverInfo

	// StartTask creates and starts the task and returns once it runs.
	// The returned handle is owned by the caller.
	StartTask(ctx context.Context, cfg *TaskConfig) (*TaskHandle, error)

	// RecoverTask re-attaches to a task started by an earlier client
	// process, without restarting it. It returns ErrTaskNotFound
	// (wrapped) if the task no longer exists in the driver.
	RecoverTask(ctx context.Context, h *TaskHandle) error

	// WaitTask returns a channel that receives one ExitResult when the
	// task exits (immediately, if it has already exited), then is
	// closed. Cancelling ctx stops the wait without a result.
	WaitTask(ctx context.Context, id string) (<-chan *ExitResult, error)

	// SignalTask sends sig to the task's main process and returns; the
	// task keeps running (a template change asking it to reload). It
	// returns ErrTaskNotFound (wrapped) for a task the driver does not
	// have, and an error for one that is not running. The task runner
	// calls it from its own goroutine, like the other methods.
	SignalTask(ctx context.Context, id string, sig syscall.Signal) error

	// StopTask sends the task SIGTERM (or signal, if set), waits up to
	// timeout for it to exit, then kills it with SIGKILL. It returns
	// once the task has exited. Stopping an exited task is not an error.
	StopTask(ctx context.Context, id string, timeout time.Duration, signal string) error

	// DestroyTask removes the task and everything the driver created for
	// it (container, snapshot). With force it kills a running task
	// first; without, destroying a running task is an error.
	// Destroying an unknown task is not an error.
	DestroyTask(ctx context.Context, id string, force bool) error

	// InspectTask returns the task's current status, or ErrTaskNotFound.
	InspectTask(ctx context.Context, id string) (*TaskStatus, error)

	// ExecTask runs opts.Command as a new process in the running task's
	// container (exec.go has the contract): it returns how the process
	// ended once it has exited and all its output was written, or an
	// error when it could not run (ErrTaskNotFound, ErrTaskNotRunning,
	// an executable that is not there). Cancelling ctx kills the
	// process; ExecTask then returns ctx's error once it is gone.
	ExecTask(ctx context.Context, id string, opts *ExecOptions) (*ExitResult, error)

	// Close releases the driver's connections. Running tasks keep
	// running.
	Close() error
}
