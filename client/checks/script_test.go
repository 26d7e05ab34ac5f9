package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

// fakeExec is a Config.Exec whose command's first argument names what
// it does: "exit N [output]" or "hang" (until killed by its context).
type fakeExec struct {
	mu     sync.Mutex
	calls  []string
	killed int
}

func (f *fakeExec) exec(ctx context.Context, task string, cmd []string, out io.Writer) (int, error) {
	f.mu.Lock()
	f.calls = append(f.calls, task+": "+strings.Join(cmd, " "))
	f.mu.Unlock()
	switch cmd[0] {
	case "exit":
		var code int
		fmt.Sscanf(cmd[1], "%d", &code)
		if len(cmd) > 2 {
			_, _ = io.WriteString(out, strings.Join(cmd[2:], " "))
		}
		return code, nil
	case "hang":
		<-ctx.Done()
		f.mu.Lock()
		f.killed++
		f.mu.Unlock()
		return 0, ctx.Err()
	case "spew":
		for i := 0; i < 1000; i++ {
			_, _ = io.WriteString(out, "0123456789")
		}
		return 0, nil
	}
	return 0, errors.New(`exec: "` + cmd[0] + `": executable file not found in $PATH`)
}

func TestRunner_ScriptCheck(t *testing.T) {
	cases := []struct {
		name    string
		command string
		args    []string
		status  string
		output  string
	}{
		{"exit 0 passes", "exit", []string{"0", "all", "good"}, structs.ServiceStatusPassing, "all good"},
		{"exit 1 warns", "exit", []string{"1", "degraded"}, structs.ServiceStatusWarning, "degraded"},
		{"exit 2 is critical", "exit", []string{"2"}, structs.ServiceStatusCritical, "exit code 2"},
		{"a missing program is critical", "nope", nil, structs.ServiceStatusCritical, `exec: "nope": executable file not found in $PATH`},
		{"the timeout kills", "hang", nil, structs.ServiceStatusCritical, "timed out after 200ms (the command was killed)"},
		{"output is bounded", "spew", nil, structs.ServiceStatusPassing, strings.Repeat("0123456789", 60)[:maxOutput]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := &fakeExec{}
			rec := &recorder{}
			svc := &structs.Service{Name: "web", PortLabel: "http", TaskName: "server", Checks: []*structs.ServiceCheck{{
				Name: "web-script", Type: structs.ServiceCheckScript, Command: tc.command, Args: tc.args,
				Interval: time.Minute, Timeout: 200 * time.Millisecond,
			}}}
			r := New(Config{Services: []*structs.Service{svc}, Address: "127.0.0.1", Ports: map[string]int{"http": 1}, OnChange: rec.onChange, Exec: fx.exec})
			t.Cleanup(r.Stop)
			r.SetTaskRunning("server", true)
			r.Start()
			testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
				st := r.Statuses()["web/web-script"]
				return st.Status == tc.status && st.Output == tc.output, fmt.Errorf("status %s %q, want %s %q", st.Status, st.Output, tc.status, tc.output)
			})
			fx.mu.Lock()
			defer fx.mu.Unlock()
			want := "server: " + strings.TrimSpace(tc.command+" "+strings.Join(tc.args, " "))
			if len(fx.calls) != 1 || fx.calls[0] != want {
				t.Fatalf("exec calls %q, want [%q]", fx.calls, want)
			}
			if tc.command == "hang" && fx.killed != 1 {
				t.Fatalf("the hung command was not killed")
			}
		})
	}
}

// TestRunner_ScriptCheckWaitsForItsTask: no command runs while the
// service's task does not; without an Exec, a script check says so.
func TestRunner_ScriptCheckWaitsForItsTask(t *testing.T) {
	fx := &fakeExec{}
	svc := &structs.Service{Name: "web", PortLabel: "http", TaskName: "server", Checks: []*structs.ServiceCheck{{
		Name: "web-script", Type: structs.ServiceCheckScript, Command: "exit", Args: []string{"0"}, Interval: time.Minute, Timeout: time.Second,
	}}}
	r := New(Config{Services: []*structs.Service{svc}, Address: "127.0.0.1", Ports: map[string]int{"http": 1}, Exec: fx.exec})
	t.Cleanup(r.Stop)
	r.Start()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		st := r.Statuses()["web/web-script"]
		return st.Output == "task server is not running", fmt.Errorf("output %q", st.Output)
	})
	fx.mu.Lock()
	calls := len(fx.calls)
	fx.mu.Unlock()
	if calls != 0 {
		t.Fatalf("%d commands ran while the task did not", calls)
	}

	noExec := New(Config{Services: []*structs.Service{svc}, Address: "127.0.0.1", Ports: map[string]int{"http": 1}})
	t.Cleanup(noExec.Stop)
	noExec.SetTaskRunning("server", true)
	noExec.Start()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		st := noExec.Statuses()["web/web-script"]
		return st.Status == structs.ServiceStatusCritical && st.Output == "this client cannot run commands in tasks", fmt.Errorf("%s %q", st.Status, st.Output)
	})
}
