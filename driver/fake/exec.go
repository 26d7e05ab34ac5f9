package fake

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/driver"
)

// ExecTask implements driver.Driver. A fake task has no container, so
// the command is one of a few built-in programs (RunBuiltin) rather
// than a process; the task must be running, as a real one must.
func (d *Driver) ExecTask(ctx context.Context, id string, opts *driver.ExecOptions) (*driver.ExitResult, error) {
	d.mu.Lock()
	t, err := d.taskLocked("exec in", id)
	running := err == nil && t.result == nil
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !running {
		return nil, fmt.Errorf("exec in task %s: %w", id, driver.ErrTaskNotRunning)
	}
	return RunBuiltin(ctx, opts)
}

// RunBuiltin runs opts.Command as one of the fake drivers' built-in
// programs, keeping the driver.ExecOptions contract (output written
// before it returns, nothing written after, ctx's end kills):
//
//	echo ARGS...     prints ARGS and a newline on stdout
//	warn ARGS...     prints ARGS and a newline on stderr
//	cat              copies stdin to stdout until stdin ends
//	exit N           exits with N
//	sleep SECONDS    exits 0 after SECONDS (fractions allowed)
//	stty size        prints the terminal's "HEIGHT WIDTH" (Tty only),
//	                 then, until stdin ends, the new size after every
//	                 resize
//
// Anything else is an error, as an executable that is not in the image
// is for a real driver.
func RunBuiltin(ctx context.Context, opts *driver.ExecOptions) (*driver.ExitResult, error) {
	if opts == nil || len(opts.Command) == 0 || opts.Command[0] == "" {
		return nil, driver.ErrNoCommand
	}
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if opts.Tty {
		stderr = stdout
	}
	args := opts.Command[1:]
	switch opts.Command[0] {
	case "echo":
		_, _ = fmt.Fprintln(stdout, strings.Join(args, " "))
		return &driver.ExitResult{}, nil
	case "warn":
		_, _ = fmt.Fprintln(stderr, strings.Join(args, " "))
		return &driver.ExitResult{}, nil
	case "exit":
		code := 0
		if len(args) > 0 {
			n, err := strconv.Atoi(args[0])
			if err != nil {
				_, _ = fmt.Fprintf(stderr, "exit: %q: not a number\n", args[0])
				return &driver.ExitResult{ExitCode: 2}, nil
			}
			code = n
		}
		return &driver.ExitResult{ExitCode: code}, nil
	case "sleep":
		if len(args) != 1 {
			_, _ = fmt.Fprintln(stderr, "usage: sleep SECONDS")
			return &driver.ExitResult{ExitCode: 1}, nil
		}
		secs, err := strconv.ParseFloat(args[0], 64)
		if err != nil || secs < 0 {
			_, _ = fmt.Fprintf(stderr, "sleep: invalid time %q\n", args[0])
			return &driver.ExitResult{ExitCode: 1}, nil
		}
		t := time.NewTimer(time.Duration(secs * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
			return &driver.ExitResult{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "cat":
		return pump(ctx, opts.Stdin, func(p []byte) error {
			_, err := stdout.Write(p)
			return err
		}, nil, nil)
	case "stty":
		if len(args) != 1 || args[0] != "size" || !opts.Tty {
			_, _ = fmt.Fprintln(stderr, "stty: only 'stty size' on a terminal")
			return &driver.ExitResult{ExitCode: 1}, nil
		}
		_, _ = fmt.Fprintf(stdout, "%d %d\n", opts.Size.Height, opts.Size.Width)
		return pump(ctx, opts.Stdin, func([]byte) error { return nil }, opts.Resize, func(sz driver.TerminalSize) {
			_, _ = fmt.Fprintf(stdout, "%d %d\n", sz.Height, sz.Width)
		})
	}
	return nil, fmt.Errorf("exec: %q: executable file not found in $PATH", opts.Command[0])
}

// pump reads stdin into each until it ends (exit 0; at once for a nil
// stdin, as for /dev/null), calling onResize for the sizes that arrive
// on resize meanwhile; ctx's end stops it with ctx's error. The reading
// goroutine may outlive the call, blocked in Read, as the ExecOptions
// contract allows; it never calls each after pump returned.
func pump(ctx context.Context, stdin io.Reader, each func([]byte) error, resize <-chan driver.TerminalSize, onResize func(driver.TerminalSize)) (*driver.ExitResult, error) {
	if stdin == nil {
		return &driver.ExitResult{}, nil
	}
	type chunk struct {
		b   []byte
		err error
	}
	chunks := make(chan chunk)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		buf := make([]byte, 32*1024)
		for {
			n, err := stdin.Read(buf)
			c := chunk{b: append([]byte(nil), buf[:n]...), err: err}
			select {
			case chunks <- c:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case c := <-chunks:
			if len(c.b) > 0 {
				if err := each(c.b); err != nil {
					return &driver.ExitResult{ExitCode: 1}, nil
				}
			}
			if c.err == io.EOF {
				return &driver.ExitResult{}, nil
			}
			if c.err != nil {
				return &driver.ExitResult{ExitCode: 1}, nil
			}
		case sz, ok := <-resize:
			if ok && onResize != nil {
				onResize(sz)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var _ driver.Driver = (*Driver)(nil)
