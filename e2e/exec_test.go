package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/droverhq/drover/testutil"
)

// TestDev_AllocExec: `drover alloc exec` on real containerd: output and
// exit 0, a command's own exit code, piped stdin with -i, -i -t under a
// pseudo-terminal (its size, a resize reaching stty, typed input, the
// exit code), a missing program, and a CLI killed mid-command taking
// the command with it.
func TestDev_AllocExec(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	if res := a.cli("job", "run", writeFile(t, "web.hcl", webJob("web", c.image, 1, 48))); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	allocs := liveAllocs(t, a, "web")
	if len(allocs) != 1 {
		t.Fatalf("%d live allocations, want 1", len(allocs))
	}
	allocID := allocs[0].ID
	prefix := allocID[:8]

	hostname, err := os.ReadFile("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	res := a.cli("alloc", "exec", prefix, "cat", "/etc/hostname")
	if res.code != 0 || res.stdout != string(hostname) {
		t.Fatalf("alloc exec cat /etc/hostname: %s; want exit 0 and %q", res, hostname)
	}
	res = a.cli("alloc", "exec", "-task", "server", prefix, "sh", "-c", "echo to-err >&2; exit 3")
	if res.code != 3 || res.stderr != "to-err\n" || res.stdout != "" {
		t.Fatalf("alloc exec sh -c 'exit 3': %s; want exit 3 with to-err on stderr", res)
	}
	res = a.cli("alloc", "exec", prefix, "/no/such/program")
	if res.code != 1 || !strings.Contains(res.stderr, "/no/such/program") || !strings.Contains(res.stderr, "no such file") {
		t.Fatalf("alloc exec of a missing program: %s; want exit 1 naming it", res)
	}

	// -i: the CLI's stdin, to its end.
	cmd := exec.Command(droverBin, "alloc", "exec", "-i", prefix, "wc", "-l")
	cmd.Env = append(os.Environ(), a.cliEnv...)
	cmd.Stdin = strings.NewReader(strings.Repeat("a line\n", 5000))
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "5000" {
		t.Fatalf("alloc exec -i wc -l of 5000 lines: %q %v", out, err)
	}

	t.Run("interactive terminal", func(t *testing.T) {
		cmd := exec.Command(droverBin, "alloc", "exec", "-i", "-t", prefix, "sh")
		cmd.Env = append(os.Environ(), a.cliEnv...)
		ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		screen := &lockedBuffer{}
		go func() { _, _ = io.Copy(screen, ptmx) }()
		typeLine := func(line string) {
			t.Helper()
			if _, err := io.WriteString(ptmx, line+"\r"); err != nil {
				t.Fatal(err)
			}
		}
		// askSize types stty size at most every half second while a
		// wait polls: the shell may not be up yet, and a resize takes
		// its way through the CLI and the agent.
		var lastAsked time.Time
		askSize := func() {
			if time.Since(lastAsked) > 500*time.Millisecond {
				typeLine("busybox stty size")
				lastAsked = time.Now()
			}
		}
		// The terminal echoes what is typed, so each command prints
		// what its typed form does not contain.
		testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
			askSize()
			return strings.Contains(screen.String(), "30 100"), fmt.Errorf("no size 30 100 yet; screen %q", screen.String())
		})
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 42, Cols: 132}); err != nil {
			t.Fatal(err)
		}
		lastAsked = time.Time{}
		testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
			askSize()
			return strings.Contains(screen.String(), "42 132"), fmt.Errorf("the resize has not reached stty; screen %q", screen.String())
		})
		typeLine(`echo h""i; exit 7`)
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Fatalf("alloc exec -i -t: %v; want exit 7; screen %q", err, screen.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("alloc exec -i -t did not exit; screen %q", screen.String())
		}
		if s := screen.String(); !strings.Contains(s, "\nhi\r\n") {
			t.Fatalf("no hi on the screen: %q", s)
		}
	})

	t.Run("a killed CLI kills the command", func(t *testing.T) {
		ctr, ctx := c.containerd()
		pids := func() (int, error) {
			container, err := ctr.LoadContainer(ctx, allocID+"-server")
			if err != nil {
				return 0, err
			}
			task, err := container.Task(ctx, nil)
			if err != nil {
				return 0, err
			}
			ps, err := task.Pids(ctx)
			return len(ps), err
		}
		before, err := pids()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(context.Background(), droverBin, "alloc", "exec", prefix, "sleep", "1000")
		cmd.Env = append(os.Environ(), a.cliEnv...)
		errb := &lockedBuffer{}
		cmd.Stderr = errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
			n, err := pids()
			return n == before+1, fmt.Errorf("%d processes in the task (%v), want %d; CLI: %s", n, err, before+1, errb.String())
		})
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
			n, err := pids()
			return n == before, fmt.Errorf("%d processes in the task (%v) after the CLI died, want %d", n, err, before)
		})
		if !a.alive() {
			t.Fatal("the agent died")
		}
	})
}

// lockedBuffer is a goroutine-safe buffer for a terminal's output.
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

// TestDev_ScriptCheck: a script check runs its command in the task on
// real containerd: critical (exit 2, with the command's output) until a
// file exists, warning on exit 1, passing once `alloc exec` created
// the file.
func TestDev_ScriptCheck(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	job := fmt.Sprintf(`job "probed" {
  datacenters = ["dc1"]
  group "g" {
    network {
      port "http" {}
    }
    task "app" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "exec sleep 3600"]
      }
      service {
        name = "probed"
        port = "http"
        check {
          type     = "script"
          command  = "/bin/sh"
          args     = ["-c", "if [ -f /tmp/ready ]; then echo ready; elif [ -f /tmp/degraded ]; then echo degraded; exit 1; else echo not ready >&2; exit 2; fi"]
          interval = "1s"
          timeout  = "1s"
        }
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
`, c.image)
	if res := a.cli("job", "run", "-detach", writeFile(t, "probed.hcl", job)); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	var allocID string
	testutil.WaitFor(t, time.Minute, func() (bool, error) {
		allocs := liveAllocs(t, a, "probed")
		if len(allocs) != 1 || allocs[0].ClientStatus != "running" {
			return false, fmt.Errorf("allocations: %d", len(allocs))
		}
		allocID = allocs[0].ID
		return true, nil
	})
	waitCheck := func(status, output string) {
		t.Helper()
		testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
			checks, _, err := a.api.Allocations().Checks(allocID, nil)
			if err != nil {
				return false, err
			}
			st := checks["probed/probed-script"]
			if st == nil {
				return false, fmt.Errorf("no check probed/probed-script in %v", checks)
			}
			return st.Status == status && st.Output == output, fmt.Errorf("check is %s %q, want %s %q", st.Status, st.Output, status, output)
		})
	}
	waitCheck("critical", "not ready")
	if res := a.cli("alloc", "exec", allocID, "sh", "-c", "echo > /tmp/degraded"); res.code != 0 {
		t.Fatalf("alloc exec: %s", res)
	}
	waitCheck("warning", "degraded")
	if res := a.cli("alloc", "exec", allocID, "sh", "-c", "echo > /tmp/ready"); res.code != 0 {
		t.Fatalf("alloc exec: %s", res)
	}
	waitCheck("passing", "ready")
}
