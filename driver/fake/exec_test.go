package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/testutil"
)

func TestDriver_ExecTask(t *testing.T) {
	d := New(Config{})
	ctx := context.Background()
	if _, err := d.ExecTask(ctx, "a-t", &driver.ExecOptions{Command: []string{"echo"}}); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Fatalf("exec in an unknown task: %v, want ErrTaskNotFound", err)
	}
	if _, err := d.StartTask(ctx, &driver.TaskConfig{ID: "a-t"}); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	res, err := d.ExecTask(ctx, "a-t", &driver.ExecOptions{Command: []string{"echo", "hi", "there"}, Stdout: &out, Stderr: &errOut})
	if err != nil || res.ExitCode != 0 || out.String() != "hi there\n" || errOut.Len() != 0 {
		t.Fatalf("echo: %+v %v, stdout %q stderr %q", res, err, out.String(), errOut.String())
	}
	if err := d.StopTask(ctx, "a-t", time.Second, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecTask(ctx, "a-t", &driver.ExecOptions{Command: []string{"echo"}}); !errors.Is(err, driver.ErrTaskNotRunning) {
		t.Fatalf("exec in a stopped task: %v, want ErrTaskNotRunning", err)
	}
}

func TestRunBuiltin(t *testing.T) {
	run := func(opts *driver.ExecOptions) (*driver.ExitResult, string, string, error) {
		var out, errOut bytes.Buffer
		opts.Stdout, opts.Stderr = &out, &errOut
		res, err := RunBuiltin(context.Background(), opts)
		return res, out.String(), errOut.String(), err
	}
	cases := []struct {
		name           string
		opts           driver.ExecOptions
		code           int
		stdout, stderr string
	}{
		{"exit", driver.ExecOptions{Command: []string{"exit", "3"}}, 3, "", ""},
		{"warn", driver.ExecOptions{Command: []string{"warn", "oops"}}, 0, "", "oops\n"},
		{"warn on a tty goes to stdout", driver.ExecOptions{Command: []string{"warn", "oops"}, Tty: true}, 0, "oops\n", ""},
		{"cat", driver.ExecOptions{Command: []string{"cat"}, Stdin: strings.NewReader("a\nb\n")}, 0, "a\nb\n", ""},
		{"cat without stdin", driver.ExecOptions{Command: []string{"cat"}}, 0, "", ""},
		{"stty size", driver.ExecOptions{Command: []string{"stty", "size"}, Tty: true, Size: driver.TerminalSize{Width: 80, Height: 24}}, 0, "24 80\n", ""},
		{"stty without a tty", driver.ExecOptions{Command: []string{"stty", "size"}}, 1, "", "stty: only 'stty size' on a terminal\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, out, errOut, err := run(&tc.opts)
			if err != nil || res.ExitCode != tc.code || out != tc.stdout || errOut != tc.stderr {
				t.Fatalf("%+v %v, stdout %q stderr %q; want exit %d, %q, %q", res, err, out, errOut, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
	if _, _, _, err := run(&driver.ExecOptions{Command: []string{"vi"}}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown program: %v, want not found", err)
	}
	if _, _, _, err := run(&driver.ExecOptions{}); !errors.Is(err, driver.ErrNoCommand) {
		t.Fatalf("no command: %v", err)
	}
}

func TestRunBuiltin_ResizeAndCancel(t *testing.T) {
	inR, inW := io.Pipe()
	resize := make(chan driver.TerminalSize)
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := RunBuiltin(ctx, &driver.ExecOptions{Command: []string{"stty", "size"}, Tty: true, Size: driver.TerminalSize{Width: 80, Height: 24}, Stdin: inR, Stdout: out, Resize: resize})
		done <- err
	}()
	resize <- driver.TerminalSize{Width: 100, Height: 40}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		return out.String() == "24 80\n40 100\n", fmt.Errorf("output %q, want the size then the new size", out.String())
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	inW.Close()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
