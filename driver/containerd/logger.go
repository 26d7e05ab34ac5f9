package containerd

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The task logger protocol.
//
// StartTask gives containerd the IO URI
//
//	binary://<LoggerPath>?drover-task-logger=v1&stdout=<path>&stderr=<path>
//
// and the runc shim (not the agent) runs LoggerPath with the query as
// argv key/value pairs, in random order, e.g.
//
//	<LoggerPath> stdout /a/web.stdout drover-task-logger v1 stderr /a/web.stderr
//
// with CONTAINER_ID and CONTAINER_NAMESPACE as its only environment, the
// task's stdout on fd 3, its stderr on fd 4, and a pipe on fd 5 that it
// closes once ready (the shim starts the task only then). When the task
// is deleted the shim closes the pipes and sends SIGTERM. Because the
// logger is the shim's child, output keeps reaching the files while the
// agent is down or restarting.
const (
	// loggerMarker is the key that identifies a logger invocation.
	loggerMarker = "drover-task-logger"
	// loggerVersion is the marker's value; a future incompatible
	// protocol would bump it.
	loggerVersion = "v1"
	loggerStdout  = "stdout"
	loggerStderr  = "stderr"
)

// Logger file descriptors, as the shim passes them (cmd.ExtraFiles).
const (
	loggerStdoutFD = 3
	loggerStderrFD = 4
	loggerReadyFD  = 5
)

// loggerDrainTimeout bounds how long the logger keeps copying after
// SIGTERM; the shim SIGKILLs it after 12s anyway.
const loggerDrainTimeout = 5 * time.Second

// loggerArgs is the query of the binary IO URI for a task.
func loggerArgs(stdoutPath, stderrPath string) map[string]string {
	return map[string]string{
		loggerMarker: loggerVersion,
		loggerStdout: stdoutPath,
		loggerStderr: stderrPath,
	}
}

// IsLoggerInvocation reports whether args (os.Args[1:]) are the argv the
// runc shim gives a task logger: an even number of arguments forming
// key/value pairs, one key being "drover-task-logger". The drover
// binary's main calls it before anything else (before flag parsing) and,
// if true, exits with RunLogger(args).
func IsLoggerInvocation(args []string) bool {
	if len(args) < 2 || len(args)%2 != 0 {
		return false
	}
	for i := 0; i < len(args); i += 2 {
		if args[i] == loggerMarker {
			return true
		}
	}
	return false
}

// RunLogger is the task logger's main: it appends fd 3 to the stdout
// file and fd 4 to the stderr file named in args, signals readiness by
// closing fd 5, and returns when both pipes reached EOF (or 5s after
// SIGTERM if they do not). It returns the process exit code: 0, 1 if
// output could not be written, 2 if not started by a shim.
//
// A file that cannot be opened does not stop the logger: its pipe is
// drained and discarded, so the task is never blocked on a full pipe or
// killed by SIGPIPE. StartTask creates both files beforehand, so this
// only happens if they vanish or the disk breaks.
func RunLogger(args []string) int {
	kv := make(map[string]string, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		kv[args[i]] = args[i+1]
	}
	// The shim hands over three pipes. Anything else on these fds (say,
	// the Go runtime's own descriptors when run by hand) must not be
	// read or closed.
	for _, fd := range []int{loggerStdoutFD, loggerStderrFD, loggerReadyFD} {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			fmt.Fprintf(os.Stderr, "drover task logger: fd %d is not a pipe; this mode is started by containerd's runc shim\n", fd)
			return 2
		}
	}

	// The shim runs in its own session; a hangup must not end logging.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	code := 0
	var mu sync.Mutex // guards code
	fail := func() {
		mu.Lock()
		code = 1
		mu.Unlock()
	}

	stdoutPipe := os.NewFile(loggerStdoutFD, "task-stdout")
	stderrPipe := os.NewFile(loggerStderrFD, "task-stderr")
	outFile := openLogFile(kv[loggerStdout], fail)
	errFile := openLogFile(kv[loggerStderr], fail)

	// Ready: the shim may now start the task.
	_ = os.NewFile(loggerReadyFD, "ready").Close()

	var wg sync.WaitGroup
	for _, p := range []struct {
		dst io.Writer
		src *os.File
	}{{outFile, stdoutPipe}, {errFile, stderrPipe}} {
		wg.Add(1)
		go func(dst io.Writer, src *os.File) {
			defer wg.Done()
			if _, err := io.Copy(dst, src); err != nil {
				fail()
				// Keep the pipe drained so the task never blocks.
				_, _ = io.Copy(io.Discard, src)
			}
		}(p.dst, p.src)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	select {
	case <-done:
	case <-term:
		select {
		case <-done:
		case <-time.After(loggerDrainTimeout):
			fail()
		}
	}
	for _, f := range []io.Writer{outFile, errFile} {
		if c, ok := f.(io.Closer); ok {
			if err := c.Close(); err != nil {
				fail()
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return code
}

// openLogFile opens path for appending, or returns io.Discard (and
// records the failure) if it cannot.
func openLogFile(path string, fail func()) io.Writer {
	if path == "" {
		fail()
		return io.Discard
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fail()
		return io.Discard
	}
	return f
}
