package containerd

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The task logger protocol.
//
// StartTask gives containerd the IO URI
//
//	binary://<LoggerPath>?drover-task-logger=v2&stdout=<base>&stderr=<base>&max-files=<n>&max-file-bytes=<n>
//
// and the runc shim (not the agent) runs LoggerPath with the query as
// argv key/value pairs, in random order, e.g.
//
//	<LoggerPath> stdout /a/web.stdout drover-task-logger v2 max-files 10 stderr /a/web.stderr max-file-bytes 10485760
//
// with CONTAINER_ID and CONTAINER_NAMESPACE as its only environment, the
// task's stdout on fd 3, its stderr on fd 4, and a pipe on fd 5 that it
// closes once ready (the shim starts the task only then). When the task
// is deleted the shim closes the pipes and sends SIGTERM. Because the
// logger is the shim's child, output keeps reaching the files while the
// agent is down or restarting.
//
// v2 writes each stream to rotated files <base>.0, <base>.1, ... (see
// logfiles.go), keeping max-files of at most max-file-bytes each, and
// drops output while the disk is nearly full; an optional
// min-free-bytes argument sets the free space to keep (default: the
// larger of 1 GiB and 5% of the filesystem). v1, which agents before
// rotation started, appends each stream to the file named by stdout and
// stderr; a drover binary still understands it, so the logger of any
// task keeps working whichever agent version started it.
const (
	// loggerMarker is the key that identifies a logger invocation.
	loggerMarker = "drover-task-logger"
	// loggerVersion is the marker's value this agent starts loggers
	// with; loggerVersionV1 is still accepted.
	loggerVersion   = "v2"
	loggerVersionV1 = "v1"
	loggerStdout    = "stdout"
	loggerStderr    = "stderr"
	// loggerMaxFiles and loggerMaxFileBytes are v2's retention;
	// loggerMinFreeBytes overrides the free-space threshold.
	loggerMaxFiles     = "max-files"
	loggerMaxFileBytes = "max-file-bytes"
	loggerMinFreeBytes = "min-free-bytes"
)

// Retention a v2 logger applies when its arguments lack or garble it
// (structs.DefaultLogConfig: 10 files of 10 MiB).
const (
	defaultLogMaxFiles     = 10
	defaultLogMaxFileBytes = 10 << 20
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

// loggerArgs is the query of the binary IO URI for a task: v2, with
// the stream base paths and their retention.
func loggerArgs(stdoutPath, stderrPath string, maxFiles int, maxFileBytes int64) map[string]string {
	return map[string]string{
		loggerMarker:       loggerVersion,
		loggerStdout:       stdoutPath,
		loggerStderr:       stderrPath,
		loggerMaxFiles:     strconv.Itoa(maxFiles),
		loggerMaxFileBytes: strconv.FormatInt(maxFileBytes, 10),
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

// RunLogger is the task logger's main: it writes fd 3 to the stdout
// stream and fd 4 to the stderr stream named in args (rotated files for
// v2, one appended file for v1), signals readiness by closing fd 5, and
// returns when both pipes reached EOF (or 5s after SIGTERM if they do
// not). It returns the process exit code: 0, 1 if output could not be
// written, 2 if not started by a shim (or with an unknown protocol).
//
// Nothing stops the logger from draining the pipes, so the task is
// never blocked on a full pipe or killed by SIGPIPE: a stream that
// cannot be opened or written is discarded (exit code 1), and output is
// dropped while the disk is nearly full (see diskGuard).
func RunLogger(args []string) int {
	kv := make(map[string]string, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		kv[args[i]] = args[i+1]
	}
	version := kv[loggerMarker]
	if version != loggerVersion && version != loggerVersionV1 {
		fmt.Fprintf(os.Stderr, "drover task logger: protocol %q is not one this binary speaks (%s, %s)\n", version, loggerVersionV1, loggerVersion)
		return 2
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
	minFree, _ := strconv.ParseUint(kv[loggerMinFreeBytes], 10, 64)
	guards := make(map[string]*diskGuard)
	outStream := openStream(kv, loggerStdout, minFree, guards, fail)
	errStream := openStream(kv, loggerStderr, minFree, guards, fail)

	// Ready: the shim may now start the task.
	_ = os.NewFile(loggerReadyFD, "ready").Close()

	var wg sync.WaitGroup
	for _, p := range []struct {
		dst *guardedStream
		src *os.File
	}{{outStream, stdoutPipe}, {errStream, stderrPipe}} {
		wg.Add(1)
		go func(dst *guardedStream, src *os.File) {
			defer wg.Done()
			// guardedStream never fails a write, so this copies until
			// the task's side closes.
			_, _ = io.Copy(dst, src)
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
	for _, s := range []*guardedStream{outStream, errStream} {
		if s.failed {
			fail()
		}
		if c, ok := s.out.(io.Closer); ok {
			if err := c.Close(); err != nil {
				fail()
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return code
}

// openStream opens the stream named by key in kv for the protocol
// version kv gives. A stream that cannot be opened is discarded (and
// recorded with fail). Streams in one directory share a disk guard.
func openStream(kv map[string]string, key string, minFree uint64, guards map[string]*diskGuard, fail func()) *guardedStream {
	path := kv[key]
	s := &guardedStream{out: io.Discard, now: time.Now}
	switch {
	case path == "":
		fail()
		return s
	case path == os.DevNull:
		// Output nobody keeps: no files, no rotation, no guard.
		return s
	}
	dir := filepath.Dir(path)
	if guards[dir] == nil {
		guards[dir] = newDiskGuard(dir, minFree)
	}
	s.guard = guards[dir]
	if kv[loggerMarker] == loggerVersionV1 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fail()
			return s
		}
		s.out = f
		return s
	}
	maxFiles, err := strconv.Atoi(kv[loggerMaxFiles])
	if err != nil || maxFiles < 1 {
		maxFiles = defaultLogMaxFiles
	}
	maxBytes, err := strconv.ParseInt(kv[loggerMaxFileBytes], 10, 64)
	if err != nil || maxBytes < 1 {
		maxBytes = defaultLogMaxFileBytes
	}
	rf, err := openRotatingFile(path, maxFiles, maxBytes)
	if err != nil {
		fail()
		return s
	}
	s.out = rf
	return s
}
