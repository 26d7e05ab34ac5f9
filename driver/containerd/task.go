package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/signal"
	"golang.org/x/sys/unix"

	"github.com/droverhq/drover/driver"
)

// killWaitTimeout bounds the wait for a task to die after SIGKILL.
const killWaitTimeout = 30 * time.Second

// StartTask implements driver.Driver: it makes sure the image is there
// (pulling it if needed), creates the container and its snapshot, starts
// the task with its output going to the task logger, and returns once
// the task runs. On failure it removes whatever it created.
func (d *Driver) StartTask(ctx context.Context, cfg *driver.TaskConfig) (*driver.TaskHandle, error) {
	if cfg == nil || cfg.ID == "" {
		return nil, errors.New("start task: task config without ID")
	}
	if cfg.Image == "" {
		return nil, fmt.Errorf("start task %s: no image", cfg.ID)
	}
	stdoutPath, stderrPath, err := prepareLogFiles(cfg)
	if err != nil {
		return nil, fmt.Errorf("start task %s: %w", cfg.ID, err)
	}
	client, err := d.getClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("start task %s: connect to containerd: %w", cfg.ID, err)
	}
	ctx = d.nsCtx(ctx)
	id := containerID(cfg.ID)

	image, err := d.ensureImage(ctx, client, cfg.Image)
	if err != nil {
		return nil, fmt.Errorf("start task %s: %w", cfg.ID, err)
	}

	container, err := d.createContainer(ctx, client, cfg, image)
	if err != nil {
		return nil, fmt.Errorf("start task %s: %w", cfg.ID, err)
	}
	undo := func() {
		cctx, cancel := d.cleanupCtx(ctx)
		defer cancel()
		if task, err := container.Task(cctx, nil); err == nil {
			_, _ = task.Delete(cctx, ctrd.WithProcessKill)
		}
		if err := container.Delete(cctx, ctrd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			d.logger.Warn("remove container of failed start", "task_id", cfg.ID, "error", err)
		}
	}

	maxFiles, maxFileBytes := logRetention(cfg)
	taskIO := cio.BinaryIO(d.cfg.LoggerPath, loggerArgs(stdoutPath, stderrPath, maxFiles, maxFileBytes))
	task, err := container.NewTask(ctx, taskIO)
	if err != nil {
		undo()
		return nil, fmt.Errorf("start task %s: create task: %w", cfg.ID, err)
	}
	if err := task.Start(ctx); err != nil {
		undo()
		return nil, fmt.Errorf("start task %s: %w", cfg.ID, err)
	}
	startedAt := time.Now()
	if _, err := container.SetLabels(ctx, map[string]string{labelStartedAt: startedAt.UTC().Format(time.RFC3339Nano)}); err != nil {
		d.logger.Warn("record start time", "task_id", cfg.ID, "error", err)
	}
	d.logger.Info("started task", "task_id", cfg.ID, "container_id", id, "image", cfg.Image, "pid", task.Pid())
	return &driver.TaskHandle{
		Driver:    Name,
		ID:        cfg.ID,
		PID:       int(task.Pid()),
		StartedAt: startedAt,
		Config:    copyTaskConfig(cfg),
	}, nil
}

// prepareLogFiles makes the output base paths absolute and creates
// (or, for a restarted task, opens) the file each stream's logger will
// write, so that a bad path fails the start instead of silently losing
// output in the logger. A stream without a path goes to /dev/null.
func prepareLogFiles(cfg *driver.TaskConfig) (string, string, error) {
	var paths [2]string
	for i, p := range []string{cfg.StdoutPath, cfg.StderrPath} {
		if p == "" {
			paths[i] = os.DevNull
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", "", err
		}
		idx, err := currentLogFile(abs)
		if err != nil {
			return "", "", fmt.Errorf("task output file: %w", err)
		}
		f, err := os.OpenFile(logFilePath(abs, idx), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return "", "", fmt.Errorf("task output file: %w", err)
		}
		f.Close()
		paths[i] = abs
	}
	return paths[0], paths[1], nil
}

// logRetention is the task's log retention in the logger's terms: files
// per stream and bytes per file, defaults for unset fields.
func logRetention(cfg *driver.TaskConfig) (int, int64) {
	maxFiles, maxMB := cfg.LogMaxFiles, cfg.LogMaxFileSizeMB
	if maxFiles <= 0 {
		maxFiles = defaultLogMaxFiles
	}
	if maxMB <= 0 {
		return maxFiles, defaultLogMaxFileBytes
	}
	return maxFiles, int64(maxMB) << 20
}

func copyTaskConfig(cfg *driver.TaskConfig) *driver.TaskConfig {
	c := *cfg
	c.Args = append([]string(nil), cfg.Args...)
	c.DNSServers = append([]string(nil), cfg.DNSServers...)
	if cfg.Env != nil {
		c.Env = make(map[string]string, len(cfg.Env))
		for k, v := range cfg.Env {
			c.Env[k] = v
		}
	}
	return &c
}

// RecoverTask implements driver.Driver. The driver holds no per-task
// state, so recovering checks that container and task exist and ends
// the exec'ed processes the agent's earlier run left (reapExecs); it
// attaches no IO (the logger keeps running under the shim).
func (d *Driver) RecoverTask(ctx context.Context, h *driver.TaskHandle) error {
	if h == nil || h.ID == "" {
		return errors.New("recover task: handle without ID")
	}
	_, task, err := d.loadTask(ctx, h.ID)
	if err != nil {
		return fmt.Errorf("recover task: %w", err)
	}
	d.reapExecs(ctx, h.ID, task)
	if h.PID != 0 && int(task.Pid()) != h.PID {
		d.logger.Warn("recovered task has a different pid", "task_id", h.ID, "handle_pid", h.PID, "pid", task.Pid())
	}
	d.logger.Info("recovered task", "task_id", h.ID, "pid", task.Pid())
	return nil
}

// loadTask loads a task's container and task. It returns
// driver.ErrTaskNotFound (wrapped with the ID) if either is gone.
func (d *Driver) loadTask(ctx context.Context, id string) (ctrd.Container, ctrd.Task, error) {
	client, err := d.getClient(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("task %s: connect to containerd: %w", id, err)
	}
	ctx = d.nsCtx(ctx)
	container, err := client.LoadContainer(ctx, containerID(id))
	if errdefs.IsNotFound(err) {
		return nil, nil, fmt.Errorf("task %s: no container: %w", id, driver.ErrTaskNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("task %s: load container: %w", id, err)
	}
	task, err := container.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return container, nil, fmt.Errorf("task %s: container has no task: %w", id, driver.ErrTaskNotFound)
	}
	if err != nil {
		return container, nil, fmt.Errorf("task %s: load task: %w", id, err)
	}
	return container, task, nil
}

// WaitTask implements driver.Driver. containerd keeps an exited task's
// status until the task is deleted, so this works for tasks that exited
// while nobody waited, including before an agent restart.
func (d *Driver) WaitTask(ctx context.Context, id string) (<-chan *driver.ExitResult, error) {
	container, task, err := d.loadTask(ctx, id)
	if err != nil {
		return nil, err
	}
	nctx := d.nsCtx(ctx)
	statusC, err := task.Wait(nctx)
	if err != nil {
		return nil, fmt.Errorf("wait task %s: %w", id, err)
	}
	out := make(chan *driver.ExitResult, 1)
	go func() {
		defer close(out)
		var st ctrd.ExitStatus
		select {
		case st = <-statusC:
		case <-ctx.Done():
			return
		}
		if ctx.Err() != nil {
			return
		}
		res := exitResult(st)
		if res.Err != nil {
			res.Err = fmt.Errorf("wait task %s: %w", id, res.Err)
		} else if res.Signal == int(syscall.SIGKILL) {
			res.OOMKilled = d.oomKilled(nctx, container)
		}
		d.logger.Debug("task exited", "task_id", id, "exit_code", res.ExitCode, "signal", res.Signal, "oom_killed", res.OOMKilled)
		out <- res
	}()
	return out, nil
}

// signalledExits are the signals whose 128+n exit status is reported as
// a death by that signal. runc reports a signal death as 128+n, which an
// exit(128+n) cannot be told apart from; these are the signals tasks are
// actually killed with.
var signalledExits = map[int]bool{
	int(syscall.SIGHUP): true, int(syscall.SIGINT): true, int(syscall.SIGQUIT): true,
	int(syscall.SIGABRT): true, int(syscall.SIGKILL): true, int(syscall.SIGSEGV): true,
	int(syscall.SIGPIPE): true, int(syscall.SIGTERM): true,
}

func exitResult(st ctrd.ExitStatus) *driver.ExitResult {
	code, _, err := st.Result()
	if err != nil {
		return &driver.ExitResult{ExitCode: int(code), Err: err}
	}
	res := &driver.ExitResult{ExitCode: int(code)}
	if code > 128 && signalledExits[int(code)-128] {
		res.Signal = int(code) - 128
	}
	return res
}

// StopTask implements driver.Driver. Note that a task's PID 1 only gets
// signals it installed a handler for (the kernel's rule for a PID
// namespace's init), so a process that does not handle SIGTERM is
// killed with SIGKILL after timeout, as with `docker stop`.
func (d *Driver) StopTask(ctx context.Context, id string, timeout time.Duration, sig string) error {
	stopSignal := syscall.SIGTERM
	if sig != "" {
		var err error
		if stopSignal, err = signal.ParseSignal(sig); err != nil {
			return fmt.Errorf("stop task %s: signal %q: %w", id, sig, err)
		}
	}
	_, task, err := d.loadTask(ctx, id)
	if errors.Is(err, driver.ErrTaskNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	nctx := d.nsCtx(ctx)
	statusC, err := task.Wait(nctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("stop task %s: %w", id, err)
	}
	if err := killIgnoringGone(nctx, task, stopSignal); err != nil {
		return fmt.Errorf("stop task %s: send %s: %w", id, stopSignal, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-statusC:
		d.logger.Info("stopped task", "task_id", id, "signal", stopSignal.String())
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	d.logger.Info("task did not stop in time; killing", "task_id", id, "timeout", timeout)
	if err := killIgnoringGone(nctx, task, syscall.SIGKILL); err != nil {
		return fmt.Errorf("stop task %s: kill: %w", id, err)
	}
	select {
	case <-statusC:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(killWaitTimeout):
		return fmt.Errorf("stop task %s: still running %s after SIGKILL", id, killWaitTimeout)
	}
}

// SignalTask implements driver.Driver: it sends sig to the task's init
// process. As with StopTask, a PID 1 that installed no handler for sig
// does not get it (the kernel's rule for a PID namespace's init).
func (d *Driver) SignalTask(ctx context.Context, id string, sig syscall.Signal) error {
	_, task, err := d.loadTask(ctx, id)
	if err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	nctx := d.nsCtx(ctx)
	st, err := task.Status(nctx)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("signal task %s: %w", id, driver.ErrTaskNotFound)
	}
	if err != nil {
		return fmt.Errorf("signal task %s: status: %w", id, err)
	}
	if st.Status != ctrd.Running {
		return fmt.Errorf("signal task %s: task is %s, not running", id, st.Status)
	}
	if err := task.Kill(nctx, sig); err != nil {
		return fmt.Errorf("signal task %s: send %s: %w", id, unix.SignalName(sig), err)
	}
	d.logger.Info("signalled task", "task_id", id, "signal", unix.SignalName(sig))
	return nil
}

// killIgnoringGone signals the task, treating "already exited" as done.
func killIgnoringGone(ctx context.Context, task ctrd.Task, sig syscall.Signal) error {
	err := task.Kill(ctx, sig)
	if err == nil || errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) {
		return nil
	}
	return err
}

// DestroyTask implements driver.Driver: it deletes the task (killing it
// first when force), then the container and its snapshot. Deleting the
// task makes the shim close the task's output and stop its logger.
func (d *Driver) DestroyTask(ctx context.Context, id string, force bool) error {
	container, task, err := d.loadTask(ctx, id)
	if container == nil && errors.Is(err, driver.ErrTaskNotFound) {
		return nil
	}
	if err != nil && !errors.Is(err, driver.ErrTaskNotFound) {
		return fmt.Errorf("destroy: %w", err)
	}
	nctx := d.nsCtx(ctx)
	if task != nil {
		st, err := task.Status(nctx)
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("destroy task %s: status: %w", id, err)
		}
		if err == nil {
			running := st.Status == ctrd.Running || st.Status == ctrd.Paused || st.Status == ctrd.Pausing
			if running && !force {
				return fmt.Errorf("destroy task %s: task is %s; stop it first or force", id, st.Status)
			}
			var opts []ctrd.ProcessDeleteOpts
			if running || st.Status == ctrd.Created {
				opts = append(opts, ctrd.WithProcessKill)
			}
			kctx, cancel := context.WithTimeout(nctx, killWaitTimeout)
			_, err = task.Delete(kctx, opts...)
			cancel()
			if err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("destroy task %s: delete task: %w", id, err)
			}
		}
	}
	if err := container.Delete(nctx, ctrd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("destroy task %s: delete container: %w", id, err)
	}
	d.logger.Info("destroyed task", "task_id", id)
	return nil
}

// InspectTask implements driver.Driver.
func (d *Driver) InspectTask(ctx context.Context, id string) (*driver.TaskStatus, error) {
	container, task, err := d.loadTask(ctx, id)
	if err != nil {
		return nil, err
	}
	nctx := d.nsCtx(ctx)
	st, err := task.Status(nctx)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("task %s: %w", id, driver.ErrTaskNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect task %s: %w", id, err)
	}
	status := &driver.TaskStatus{ID: id, PID: int(task.Pid()), State: driver.TaskStateUnknown}
	switch st.Status {
	case ctrd.Running, ctrd.Paused, ctrd.Pausing:
		status.State = driver.TaskStateRunning
	case ctrd.Stopped:
		status.State = driver.TaskStateExited
		status.ExitCode = int(st.ExitStatus)
		status.ExitedAt = st.ExitTime
	}
	if labels, err := container.Labels(nctx); err == nil {
		if t, err := time.Parse(time.RFC3339Nano, labels[labelStartedAt]); err == nil {
			status.StartedAt = t
		}
	}
	return status, nil
}

// oomKilled reports whether the kernel OOM-killed a process of the
// container, from its memory cgroup's oom_kill counter (cgroup v1
// memory.oom_control, v2 memory.events). The cgroup exists until the
// task is deleted, so this works after the exit. Best effort: false if
// it cannot tell.
func (d *Driver) oomKilled(ctx context.Context, container ctrd.Container) bool {
	spec, err := container.Spec(ctx)
	if err != nil || spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return false
	}
	p := filepath.Clean("/" + spec.Linux.CgroupsPath)
	for _, f := range []struct{ path, key string }{
		{filepath.Join("/sys/fs/cgroup/memory", p, "memory.oom_control"), "oom_kill"},
		{filepath.Join("/sys/fs/cgroup", p, "memory.events"), "oom_kill"},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			continue
		}
		if n, ok := counter(string(b), f.key); ok {
			return n > 0
		}
	}
	return false
}

// counter finds "key N" in a cgroup key/value file.
func counter(content, key string) (uint64, bool) {
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, err := strconv.ParseUint(f[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
