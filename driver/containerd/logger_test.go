package containerd

import (
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// startLogger starts a v2 logger with the default retention.
func startLogger(t *testing.T, stdoutPath, stderrPath string) *loggerProc {
	t.Helper()
	return startLoggerArgs(t, loggerArgs(stdoutPath, stderrPath, defaultLogMaxFiles, defaultLogMaxFileBytes))
}

// startLoggerArgs starts a logger with the given key/value arguments.
func startLoggerArgs(t *testing.T, kv map[string]string) *loggerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	readyR, readyW := pipe(t)
	args := []string{}
	for k, v := range kv {
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
	// A restarted task's logger appends to the stream's current file.
	if err := os.WriteFile(stdoutPath+".0", []byte("earlier\n"), 0o644); err != nil {
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
	if got := readFile(stdoutPath + ".0"); got != "earlier\none\ntwo\n" {
		t.Fatalf("stdout file = %q (must be appended to)", got)
	}
	if got := readFile(stderrPath + ".0"); got != "oops\n" {
		t.Fatalf("stderr file = %q", got)
	}
	if _, err := os.Stat(stdoutPath); !os.IsNotExist(err) {
		t.Fatalf("a v2 logger wrote the base path itself (%v)", err)
	}
}

// TestRunLogger_V1StillAppendsToTheNamedFile: a task started by an agent
// before rotation keeps its logger's protocol.
func TestRunLogger_V1StillAppendsToTheNamedFile(t *testing.T) {
	dir := t.TempDir()
	stdoutPath, stderrPath := filepath.Join(dir, "out"), filepath.Join(dir, "err")
	if err := os.WriteFile(stdoutPath, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startLoggerArgs(t, map[string]string{loggerMarker: "v1", loggerStdout: stdoutPath, loggerStderr: stderrPath})
	p.stdout.WriteString("one\n")
	p.stdout.Close()
	p.stderr.Close()
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got := readFile(stdoutPath); got != "earlier\none\n" {
		t.Fatalf("stdout file = %q", got)
	}
	files, err := LogFiles(stdoutPath)
	if err != nil || len(files) != 1 || files[0].Index != -1 {
		t.Fatalf("LogFiles = %+v, %v; want the v1 file alone, index -1", files, err)
	}
}

// TestRunLogger_Rotates: 10 files' worth of output through a logger
// keeping 3 leaves the newest 3, each at the size limit, holding the
// newest output in order.
func TestRunLogger_Rotates(t *testing.T) {
	dir := t.TempDir()
	stdoutPath, stderrPath := filepath.Join(dir, "web.stdout"), filepath.Join(dir, "web.stderr")
	p := startLoggerArgs(t, loggerArgs(stdoutPath, stderrPath, 3, 1000))
	want := make([]byte, 0, 10000)
	for i := 0; len(want) < 10000; i++ {
		line := fmt.Sprintf("line %05d %s\n", i, strings.Repeat("x", 50))
		want = append(want, line...)
	}
	want = want[:10000]
	if _, err := p.stdout.Write(want); err != nil {
		t.Fatal(err)
	}
	p.stdout.Close()
	p.stderr.Close()
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	files, err := LogFiles(stdoutPath)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for _, f := range files {
		idx = append(idx, f.Index)
		if n := fileLen(t, f.Path); n != 1000 {
			t.Errorf("%s holds %d bytes, want 1000", f.Path, n)
		}
	}
	if !slices.Equal(idx, []int{7, 8, 9}) {
		t.Fatalf("stream files %v, want indexes 7 8 9", idx)
	}
	if got := readStream(stdoutPath); got != string(want[7000:]) {
		t.Fatalf("retained output is not the newest 3000 bytes in order:\n%q", got)
	}
}

// TestRunLogger_RestartContinuesHighestIndex: the logger of a restarted
// task fills the current file, then rotates on from there.
func TestRunLogger_RestartContinuesHighestIndex(t *testing.T) {
	dir := t.TempDir()
	stdoutPath, stderrPath := filepath.Join(dir, "web.stdout"), filepath.Join(dir, "web.stderr")
	run := func(data string) {
		p := startLoggerArgs(t, loggerArgs(stdoutPath, stderrPath, 5, 1000))
		p.stdout.WriteString(data)
		p.stdout.Close()
		p.stderr.Close()
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	}
	first, second := strings.Repeat("a", 2500), strings.Repeat("b", 700)
	run(first)
	run(second)
	sizes := map[int]int64{}
	files, _ := LogFiles(stdoutPath)
	for _, f := range files {
		sizes[f.Index] = fileLen(t, f.Path)
	}
	if want := map[int]int64{0: 1000, 1: 1000, 2: 1000, 3: 200}; !maps.Equal(sizes, want) {
		t.Fatalf("file sizes by index %v, want %v", sizes, want)
	}
	if got := readStream(stdoutPath); got != first+second {
		t.Fatalf("stream is not the two runs' output in order (%d bytes)", len(got))
	}
}

// TestRunLogger_DropsOutputWhenDiskIsFull: with more free space asked
// for than any disk has, output is dropped and one line says so.
func TestRunLogger_DropsOutputWhenDiskIsFull(t *testing.T) {
	dir := t.TempDir()
	stdoutPath, stderrPath := filepath.Join(dir, "web.stdout"), filepath.Join(dir, "web.stderr")
	args := loggerArgs(stdoutPath, stderrPath, 3, 1000)
	args[loggerMinFreeBytes] = strconv.FormatUint(1<<62, 10)
	p := startLoggerArgs(t, args)
	for i := 0; i < 100; i++ {
		p.stdout.WriteString("lost output\n")
	}
	p.stderr.WriteString("lost too\n")
	p.stdout.Close()
	p.stderr.Close()
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d: dropping for a full disk is not a failure", code)
	}
	for _, path := range []string{stdoutPath, stderrPath} {
		got := readStream(path)
		if strings.Count(got, "\n") != 1 || !strings.Contains(got, "output dropped from here") || strings.Contains(got, "lost") {
			t.Fatalf("%s = %q; want exactly one line saying output is dropped", path, got)
		}
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
	if got := readStream(stdoutPath); got != "last words\n" {
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
	for _, version := range []string{"v1", "v2", "v9"} {
		cmd := exec.Command(exe, "drover-task-logger", version, "stdout", "/dev/null", "stderr", "/dev/null")
		err = cmd.Run()
		if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 2 {
			t.Fatalf("run %s without fds: %v, want exit code 2", version, err)
		}
	}
}

func fileLen(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
