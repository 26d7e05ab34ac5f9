package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/runtime/v2/runc/options"
	"github.com/containerd/errdefs"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/testutil"
)

// TestDriver_ExecTask runs commands in one running task of a private
// containerd: output, exit code, environment, stdin to its end, a
// terminal with its size and resizes, a kill by the context, and the
// refusals (no command, unknown task, exited task, missing program).
func TestDriver_ExecTask(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("web", "exec sleep 300")
	cfg.Env = map[string]string{"DROVER_TASK": "web", "PATH": "/bin"}
	h.start(cfg)

	exec := func(t *testing.T, opts *driver.ExecOptions) (*driver.ExitResult, string, string, error) {
		t.Helper()
		var stdout, stderr syncBuffer
		if opts.Stdout == nil {
			opts.Stdout = &stdout
		}
		if opts.Stderr == nil {
			opts.Stderr = &stderr
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := h.drv.ExecTask(ctx, cfg.ID, opts)
		return res, stdout.String(), stderr.String(), err
	}
	// pids is how many processes the task's container has.
	pids := func(t *testing.T) int {
		t.Helper()
		_, task, err := h.drv.loadTask(context.Background(), cfg.ID)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := task.Pids(h.ctx())
		if err != nil {
			t.Fatal(err)
		}
		return len(ps)
	}

	t.Run("output and exit code", func(t *testing.T) {
		res, out, errOut, err := exec(t, &driver.ExecOptions{Command: []string{"sh", "-c", "echo out $DROVER_TASK; echo err >&2; exit 3"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 3 || out != "out web\n" || errOut != "err\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 3, \"out web\\n\", \"err\\n\"", res.ExitCode, out, errOut)
		}
	})

	t.Run("the host's hostname file", func(t *testing.T) {
		res, out, _, err := exec(t, &driver.ExecOptions{Command: []string{"cat", "/etc/hostname"}})
		if err != nil || res.ExitCode != 0 || strings.TrimSpace(out) == "" {
			t.Fatalf("cat /etc/hostname: %+v %q %v", res, out, err)
		}
	})

	t.Run("stdin to its end", func(t *testing.T) {
		input := strings.Repeat("0123456789", 20_000) // 200 kB: many FIFO buffers
		res, out, _, err := exec(t, &driver.ExecOptions{Command: []string{"wc", "-c"}, Stdin: strings.NewReader(input)})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 || strings.TrimSpace(out) != "200000" {
			t.Fatalf("wc -c of 200000 bytes: exit %d, %q", res.ExitCode, out)
		}
	})

	t.Run("no stdin reads end of input", func(t *testing.T) {
		res, out, _, err := exec(t, &driver.ExecOptions{Command: []string{"cat"}})
		if err != nil || res.ExitCode != 0 || out != "" {
			t.Fatalf("cat without stdin: %+v %q %v", res, out, err)
		}
	})

	t.Run("terminal size and resize", func(t *testing.T) {
		inR, inW := io.Pipe()
		defer inW.Close()
		resize := make(chan driver.TerminalSize, 1)
		var out syncBuffer
		done := make(chan error, 1)
		var res *driver.ExitResult
		go func() {
			var err error
			res, _, _, err = exec(t, &driver.ExecOptions{
				Command: []string{"sh", "-c", "test -t 0 && echo on-a-tty; busybox stty size; while read line; do [ \"$line\" = quit ] && exit 7; busybox stty size; done"},
				Tty:     true, Size: driver.TerminalSize{Width: 123, Height: 45},
				Stdin: inR, Stdout: &out, Resize: resize,
			})
			done <- err
		}()
		testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
			s := out.String()
			return strings.Contains(s, "on-a-tty") && strings.Contains(s, "45 123"), fmt.Errorf("output so far: %q", s)
		})
		resize <- driver.TerminalSize{Width: 77, Height: 33}
		testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
			// The resize reaches the shim on its own goroutine: ask
			// again until the new size shows.
			if _, err := io.WriteString(inW, "again\n"); err != nil {
				return false, err
			}
			s := out.String()
			return strings.Contains(s, "33 77"), fmt.Errorf("output so far: %q", s)
		})
		if _, err := io.WriteString(inW, "quit\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil || res.ExitCode != 7 {
				t.Fatalf("tty exec: %+v %v; want exit 7", res, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("tty exec did not end after quit")
		}
	})

	t.Run("a cancelled context kills the process", func(t *testing.T) {
		before := pids(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := h.drv.ExecTask(ctx, cfg.ID, &driver.ExecOptions{Command: []string{"sleep", "1000"}})
			done <- err
		}()
		testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
			n := pids(t)
			return n == before+1, errors.New("the exec'ed sleep is not running yet")
		})
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled exec returned %v, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("cancelled exec did not return")
		}
		if n := pids(t); n != before {
			t.Fatalf("%d processes in the container after the kill, want %d", n, before)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		before := pids(t)
		if _, _, _, err := exec(t, &driver.ExecOptions{}); !errors.Is(err, driver.ErrNoCommand) {
			t.Errorf("no command: %v, want ErrNoCommand", err)
		}
		_, _, _, err := exec(t, &driver.ExecOptions{Command: []string{"/no/such/program"}})
		if err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("missing program: %v, want an error naming it missing", err)
		}
		if n := pids(t); n != before {
			t.Errorf("%d processes after a failed exec, want %d", n, before)
		}
		if _, err := h.drv.ExecTask(context.Background(), "no-such-task", &driver.ExecOptions{Command: []string{"true"}}); !errors.Is(err, driver.ErrTaskNotFound) {
			t.Errorf("unknown task: %v, want ErrTaskNotFound", err)
		}
		done := h.shellTask("done", "exit 0")
		h.start(done)
		h.wait(h.drv, done.ID)
		if _, err := h.drv.ExecTask(context.Background(), done.ID, &driver.ExecOptions{Command: []string{"true"}}); !errors.Is(err, driver.ErrTaskNotRunning) {
			t.Errorf("exited task: %v, want ErrTaskNotRunning", err)
		}
	})
}

func TestDriver_RecoverTaskEndsExecsOfAnEarlierRun(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("web", "exec sleep 300")
	cfg.Env = map[string]string{"PATH": "/bin"}
	handle := h.start(cfg)
	_, task, err := h.drv.loadTask(context.Background(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := task.Spec(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	// execIDs lists the exec'ed processes the shim knows in the task.
	execIDs := func(t *testing.T) []string {
		t.Helper()
		ps, err := task.Pids(h.ctx())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range ps {
			if p.Info == nil {
				continue
			}
			var d options.ProcessDetails
			if err := p.Info.UnmarshalTo(&d); err == nil && d.ExecID != "" {
				ids = append(ids, d.ExecID)
			}
		}
		sort.Strings(ids)
		return ids
	}
	// What an agent killed mid-session leaves: a process of ours, with
	// no one reading its output, and one that is not ours (an operator's
	// `ctr task exec`), which must be left alone.
	startExec := func(t *testing.T, id string) {
		t.Helper()
		pspec := *spec.Process
		pspec.Args = []string{"sleep", "1000"}
		proc, err := task.Exec(h.ctx(), id, &pspec, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		if err := proc.Start(h.ctx()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = proc.Delete(h.ctx(), ctrd.WithProcessKill) })
	}
	startExec(t, "exec-0123456789abcdef")
	startExec(t, "operator-debug")

	// The restarted agent's driver runs a session of its own before it
	// recovers the task.
	d2 := newTestDriver(t, h.ctrd.Address, h.ctrd.Namespace)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := d2.ExecTask(ctx, cfg.ID, &driver.ExecOptions{Command: []string{"sleep", "1000"}})
		done <- err
	}()
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		ids := execIDs(t)
		return len(ids) == 3, fmt.Errorf("exec'ed processes %v, want 3", ids)
	})
	if err := d2.RecoverTask(context.Background(), handle); err != nil {
		t.Fatalf("recover: %v", err)
	}
	ids := execIDs(t)
	if len(ids) != 2 || ids[1] != "operator-debug" || !strings.HasPrefix(ids[0], execIDPrefix) || ids[0] == "exec-0123456789abcdef" {
		t.Fatalf("after recovery the task runs the exec'ed processes %v; want the new driver's own session and operator-debug", ids)
	}
	if _, err := task.LoadProcess(h.ctx(), "exec-0123456789abcdef", nil); !errdefs.IsNotFound(err) {
		t.Fatalf("the earlier run's process is still known to the shim: %v", err)
	}
	// The new session still works: cancelling it ends it.
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled session: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the new driver's session did not end when cancelled")
	}
	if st, err := d2.InspectTask(context.Background(), cfg.ID); err != nil || st.State != driver.TaskStateRunning {
		t.Fatalf("the task after recovery: %+v %v", st, err)
	}
}
