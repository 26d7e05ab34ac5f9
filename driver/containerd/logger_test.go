package containerd

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestIsLoggerInvocation(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want bool
	}{
		"shim argv":          {[]string{"stdout", "/a/o", "drover-task-logger", "v1", "stderr", "/a/e"}, true},
		"marker first":       {[]string{"drover-task-logger", "v1", "stderr", "/a/e", "stdout", "/a/o"}, true},
		"empty values":       {[]string{"stdout", "", "drover-task-logger", "", "stderr", ""}, true},
		"no args":            {nil, false},
		"cli":                {[]string{"agent", "-config", "x.hcl"}, false},
		"odd count":          {[]string{"drover-task-logger", "v1", "stdout"}, false},
		"marker as value":    {[]string{"stdout", "drover-task-logger"}, false},
		"test binary flags":  {[]string{"-test.v", "-test.run", "X"}, false},
		"marker not a key 2": {[]string{"job", "run", "x", "drover-task-logger"}, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := IsLoggerInvocation(tc.args); got != tc.want {
				t.Fatalf("IsLoggerInvocation(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}

// loggerProc is the test binary run in logger mode the way the runc shim
// runs it: pipes on fds 3 and 4, the ready pipe on fd 5.
type loggerProc struct {
	cmd            *exec.Cmd
	stdout, stderr *os.File      // write ends, the task's side
	exited         chan struct{} // closed once cmd.Wait returned
}

func startLogger(t *testing.T, stdoutPath, stderrPath string) *loggerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	readyR, readyW := pipe(t)
	args := []string{}
	for k, v := range loggerArgs(stdoutPath, stderrPath) {
		args = append(args, k, v)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{"CONTAINER_ID=test", "CONTAINER_NAMESPACE=test"}
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	// As the shim does: wait until the logger closes the ready pipe.
	if _, err := readyR.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("ready pipe: %v, want EOF", err)
	}
	readyR.Close()
	p := &loggerProc{cmd: cmd, stdout: outW, stderr: errW, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func pipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

func (p *loggerProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("logger did not exit within %s", timeout)
		return -1
	}
}

func TestRunLogger_CopiesUntilEOF(t *testing.T) {
	dir := t.TempDir()
	stdoutPath, stderrPath := filepath.Join(dir, "out"), filepath.Join(dir, "err")
	if err := os.WriteFile(stdoutPath, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startLogger(t, stdoutPath, stderrPath)
	p.stdout.WriteString("one\n")
	p.stderr.WriteString("oops\n")
	p.stdout.WriteString("two\n")
	p.stdout.Close()
	p.stderr.Close()
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got := readFile(stdoutPath); got != "earlier\none\ntwo\n" {
		t.Fatalf("stdout file = %q (must be appended to)", got)
	}
	if got := readFile(stderrPath); got != "oops\n" {
		t.Fatalf("stderr file = %q", got)
	}
}

func TestRunLogger_SIGTERMDrainsThenExits(t *testing.T) {
	dir := t.TempDir()
	stdoutPath, stderrPath := filepath.Join(dir, "out"), filepath.Join(dir, "err")
	p := startLogger(t, stdoutPath, stderrPath)
	p.stdout.WriteString("last words\n")
	// The shim closes the task's pipes and sends SIGTERM together.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.stdout.Close()
	p.stderr.Close()
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got := readFile(stdoutPath); got != "last words\n" {
		t.Fatalf("stdout file = %q", got)
	}
}

func TestRunLogger_SIGTERMGivesUpOnOpenPipes(t *testing.T) {
	dir := t.TempDir()
	p := startLogger(t, filepath.Join(dir, "out"), filepath.Join(dir, "err"))
	defer p.stdout.Close()
	defer p.stderr.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Still-open pipes (a task child holding stdout) must not keep the
	// logger alive past its drain timeout.
	if code := p.wait(t, loggerDrainTimeout+5*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
}

func TestRunLogger_NotStartedByShim(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "drover-task-logger", "v1", "stdout", "/dev/null", "stderr", "/dev/null")
	err = cmd.Run()
	if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 2 {
		t.Fatalf("run without fds: %v, want exit code 2", err)
	}
}
