package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/runtime/v2/runc/options"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/droverhq/drover/driver"
)

// execDrainTimeout bounds how long ExecTask waits, after the exec'ed
// process exited, for its output to be copied out. A process that left
// a child holding its stdout open would otherwise hold the call until
// the child ends.
const execDrainTimeout = 2 * time.Second

// ExecTask implements driver.Driver: it runs opts.Command as an extra
// process of the task's container (containerd's exec: the shim runs
// `runc exec` with the container's process spec, the arguments
// replaced), with its stdio through FIFOs that containerd's cio copies
// to and from opts' streams.
//
// The order matters: Wait is asked for before Start, so an exit that
// comes at once is not missed; stdin's end is passed on with CloseIO,
// because the shim itself holds the write end of the stdin FIFO open
// and a process would otherwise never see EOF; after the exit, the
// output is drained (bounded by execDrainTimeout) before the process is
// deleted, so the last bytes are not lost.
func (d *Driver) ExecTask(ctx context.Context, id string, opts *driver.ExecOptions) (*driver.ExitResult, error) {
	if opts == nil || len(opts.Command) == 0 || opts.Command[0] == "" {
		return nil, fmt.Errorf("exec in task %s: %w", id, driver.ErrNoCommand)
	}
	container, task, err := d.loadTask(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	nctx := d.nsCtx(ctx)
	st, err := task.Status(nctx)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("exec in task %s: %w", id, driver.ErrTaskNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("exec in task %s: status: %w", id, err)
	}
	if st.Status != ctrd.Running {
		return nil, fmt.Errorf("exec in task %s: it is %s: %w", id, st.Status, driver.ErrTaskNotRunning)
	}
	spec, err := container.Spec(nctx)
	if err != nil {
		return nil, fmt.Errorf("exec in task %s: container spec: %w", id, err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("exec in task %s: container spec has no process", id)
	}
	pspec := *spec.Process
	pspec.Args = append([]string(nil), opts.Command...)
	pspec.Env = append([]string(nil), spec.Process.Env...)
	pspec.Terminal = opts.Tty
	pspec.ConsoleSize = nil
	if opts.Tty {
		if opts.Size.Width > 0 && opts.Size.Height > 0 {
			pspec.ConsoleSize = &specs.Box{Width: uint(opts.Size.Width), Height: uint(opts.Size.Height)}
		}
		if !hasEnv(pspec.Env, "TERM") {
			pspec.Env = append(pspec.Env, "TERM=xterm")
		}
	}

	// The stdin copy of cio runs in its own goroutine; stdinEOF tells
	// this one when it read the end, to close the process's stdin.
	var stdin io.Reader
	stdinEOF := make(chan struct{})
	if opts.Stdin != nil {
		stdin = &eofNotifier{r: opts.Stdin, ch: stdinEOF}
	}
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	ioOpts := []cio.Opt{cio.WithStreams(stdin, stdout, stderr)}
	if opts.Tty {
		ioOpts = append(ioOpts, cio.WithTerminal)
	}

	execID, err := newExecID()
	if err != nil {
		return nil, fmt.Errorf("exec in task %s: %w", id, err)
	}
	d.execs.Store(execID, struct{}{})
	defer d.execs.Delete(execID)
	proc, err := task.Exec(nctx, execID, &pspec, cio.NewCreator(ioOpts...))
	if err != nil {
		return nil, fmt.Errorf("exec in task %s: %w", id, err)
	}
	// From here on the process (and its FIFOs) are deleted however
	// this ends, with a context the caller cannot cancel. pctx is for
	// calls about the process while it runs, which may be for hours:
	// the caller's cancellation kills the process rather than
	// abandoning the calls.
	defer d.deleteExec(ctx, id, proc)
	pctx, cancelProc := context.WithCancel(context.WithoutCancel(nctx))
	defer cancelProc()

	statusC, err := proc.Wait(pctx)
	if err != nil {
		return nil, fmt.Errorf("exec in task %s: wait: %w", id, err)
	}
	if err := proc.Start(nctx); err != nil {
		return nil, fmt.Errorf("exec in task %s: %w", id, execStartError(err))
	}
	d.logger.Debug("exec started", "task_id", id, "exec_id", execID, "pid", proc.Pid(), "tty", opts.Tty)

	// done ends the helpers below once the process has exited.
	done := make(chan struct{})
	var helpers sync.WaitGroup
	defer helpers.Wait()
	defer close(done)
	if opts.Tty {
		if opts.Size.Width > 0 && opts.Size.Height > 0 {
			// runc applies the spec's console size, but not every
			// runc does: say it again now that the terminal exists.
			if err := proc.Resize(nctx, uint32(opts.Size.Width), uint32(opts.Size.Height)); err != nil {
				d.logger.Debug("exec resize", "task_id", id, "exec_id", execID, "error", err)
			}
		}
		if opts.Resize != nil {
			helpers.Add(1)
			go func() {
				defer helpers.Done()
				for {
					select {
					case sz, ok := <-opts.Resize:
						if !ok {
							return
						}
						if sz.Width == 0 || sz.Height == 0 {
							continue
						}
						if err := proc.Resize(pctx, uint32(sz.Width), uint32(sz.Height)); err != nil {
							d.logger.Debug("exec resize", "task_id", id, "exec_id", execID, "error", err)
						}
					case <-done:
						return
					}
				}
			}()
		}
	}
	if opts.Stdin != nil {
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			select {
			case <-stdinEOF:
				if err := proc.CloseIO(pctx, ctrd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
					d.logger.Debug("exec close stdin", "task_id", id, "exec_id", execID, "error", err)
				}
			case <-done:
			}
		}()
	}

	var status ctrd.ExitStatus
	select {
	case status = <-statusC:
	case <-ctx.Done():
		if err := killExec(pctx, proc); err != nil {
			d.logger.Warn("kill exec'ed process", "task_id", id, "exec_id", execID, "error", err)
		}
		select {
		case <-statusC:
		case <-time.After(killWaitTimeout):
			d.logger.Warn("exec'ed process still running after SIGKILL", "task_id", id, "exec_id", execID)
		}
		d.drainExec(proc)
		return nil, fmt.Errorf("exec in task %s: %w", id, ctx.Err())
	}
	d.drainExec(proc)
	res := exitResult(status)
	if res.Err != nil {
		return nil, fmt.Errorf("exec in task %s: wait: %w", id, res.Err)
	}
	d.logger.Debug("exec exited", "task_id", id, "exec_id", execID, "exit_code", res.ExitCode)
	return res, nil
}

// drainExec waits for the output of an exited process to be copied
// out, at most execDrainTimeout, then stops the copying.
func (d *Driver) drainExec(proc ctrd.Process) {
	drained := make(chan struct{})
	go func() {
		proc.IO().Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(execDrainTimeout):
		proc.IO().Cancel()
		<-drained
	}
}

// deleteExec removes an exec'ed process from the shim (killing it if it
// still runs) and closes its FIFOs, even when ctx was cancelled.
func (d *Driver) deleteExec(ctx context.Context, id string, proc ctrd.Process) {
	cctx, cancel := d.cleanupCtx(ctx)
	defer cancel()
	if _, err := proc.Delete(cctx, ctrd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		d.logger.Warn("delete exec'ed process", "task_id", id, "exec_id", proc.ID(), "error", err)
	}
	if pio := proc.IO(); pio != nil {
		pio.Cancel()
		_ = pio.Close()
	}
}

// reapExecs ends the exec'ed processes of task that an earlier run of
// the agent started and did not delete: it was killed while an `alloc
// exec` session or a script check ran. Nobody reads their output any
// more and nothing would ever end them; they would run, and hold the
// container's memory, until the task stops. Processes are told apart
// by containerd's exec ID: ours start with "exec-" (newExecID), and
// the ones this driver runs now are in d.execs. Failures are logged:
// recovering the task matters more.
func (d *Driver) reapExecs(ctx context.Context, id string, task ctrd.Task) {
	nctx := d.nsCtx(ctx)
	procs, err := task.Pids(nctx)
	if err != nil {
		d.logger.Warn("list the processes of a recovered task", "task_id", id, "error", err)
		return
	}
	for _, p := range procs {
		if p.Info == nil {
			continue
		}
		var details options.ProcessDetails
		if err := p.Info.UnmarshalTo(&details); err != nil || !strings.HasPrefix(details.ExecID, execIDPrefix) {
			continue
		}
		if _, ours := d.execs.Load(details.ExecID); ours {
			continue
		}
		proc, err := task.LoadProcess(nctx, details.ExecID, nil)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err == nil {
			err = d.endExec(nctx, proc)
		}
		if err != nil && !errdefs.IsNotFound(err) {
			d.logger.Warn("end an exec'ed process left by an earlier run of the agent", "task_id", id, "exec_id", details.ExecID, "pid", p.Pid, "error", err)
			continue
		}
		d.logger.Info("ended an exec'ed process left by an earlier run of the agent", "task_id", id, "exec_id", details.ExecID, "pid", p.Pid)
	}
}

// endExec kills an exec'ed process, waits for it to exit (at most
// killWaitTimeout) and deletes it from the shim.
func (d *Driver) endExec(ctx context.Context, proc ctrd.Process) error {
	wctx, cancel := context.WithTimeout(ctx, killWaitTimeout)
	defer cancel()
	statusC, err := proc.Wait(wctx)
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if err := killExec(ctx, proc); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	select {
	case <-statusC:
	case <-wctx.Done():
		return fmt.Errorf("still running %s after SIGKILL", killWaitTimeout)
	}
	_, err = proc.Delete(ctx)
	return err
}

// execStartError shortens the error of a process that could not start:
// runc's message is wrapped by the shim and by containerd ("OCI runtime
// exec failed: exec failed: unable to start container process: exec:
// "nope": executable file not found in $PATH: unknown"); what matters is
// the end, which stays.
func execStartError(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "exec: "); i >= 0 {
		return fmt.Errorf("%s", strings.TrimSuffix(msg[i:], ": unknown"))
	}
	return err
}

// execIDPrefix begins the containerd process ID of every exec.
const execIDPrefix = "exec-"

// newExecID returns a fresh containerd process ID for an exec.
func newExecID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("exec ID: %w", err)
	}
	return execIDPrefix + hex.EncodeToString(b[:]), nil
}

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

// eofNotifier passes reads through and closes ch (once) when the
// reader reports its end or fails.
type eofNotifier struct {
	r    io.Reader
	ch   chan struct{}
	once sync.Once
}

func (e *eofNotifier) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.ch) })
	}
	return n, err
}

// killExec sends SIGKILL to an exec'ed process, treating "already
// exited" as done.
func killExec(ctx context.Context, proc ctrd.Process) error {
	err := proc.Kill(ctx, syscall.SIGKILL)
	if err == nil || errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) {
		return nil
	}
	return err
}
