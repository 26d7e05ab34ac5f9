package containerd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Task output files.
//
// The task logger (protocol v2, see logger.go) writes each output stream
// of a task to numbered files next to the stream's base path:
//
//	<alloc>/alloc/logs/web.stdout.0, web.stdout.1, ...
//
// The highest index is the file being written. When it reaches the
// stream's file size limit the logger creates the next index and deletes
// the file max-files indexes back, so a stream never keeps more than
// max-files x max-file-bytes on disk. Files are never renamed: a reader
// that holds one open keeps reading it even after it is deleted, and
// finds its successor by index. A logger started again for the same task
// (a restarted task) continues with the highest index it finds.
//
// A task started by an agent before rotation existed (protocol v1)
// appends to the base path itself; LogFiles lists that file first.

// LogFile is one file of a task's output stream.
type LogFile struct {
	Path string
	// Index orders the files; -1 is the base path itself, written by a
	// v1 logger.
	Index int
}

// LogFiles lists the files holding the output stream whose base path is
// base (what driver.TaskConfig.StdoutPath or StderrPath named), oldest
// first. A stream that has not written anything yet has none.
func LogFiles(base string) ([]LogFile, error) {
	dir, name := filepath.Split(base)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list log files of %s: %w", base, err)
	}
	var out []LogFile
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if idx, ok := logFileIndex(name, e.Name()); ok {
			out = append(out, LogFile{Path: filepath.Join(dir, e.Name()), Index: idx})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// logFileIndex reports whether file is one of the stream named name,
// and its index (-1 for name itself).
func logFileIndex(name, file string) (int, bool) {
	if file == name {
		return -1, true
	}
	rest, ok := strings.CutPrefix(file, name+".")
	if !ok || rest == "" || len(rest) > 9 || strings.TrimLeft(rest, "0123456789") != "" {
		return 0, false
	}
	// "01" is not a file the logger writes; only canonical numbers
	// belong to the stream.
	if len(rest) > 1 && rest[0] == '0' {
		return 0, false
	}
	idx, err := strconv.Atoi(rest)
	return idx, err == nil
}

// logFilePath is the path of a stream's file with index idx.
func logFilePath(base string, idx int) string {
	return base + "." + strconv.Itoa(idx)
}

// currentLogFile returns the index a logger (re)starting on the stream
// writes to: the highest existing one, or 0.
func currentLogFile(base string) (int, error) {
	files, err := LogFiles(base)
	if err != nil {
		return 0, err
	}
	if n := len(files); n > 0 && files[n-1].Index >= 0 {
		return files[n-1].Index, nil
	}
	return 0, nil
}

// rotatingFile writes a stream to its numbered files, keeping at most
// maxFiles of at most maxBytes each. It is used by one goroutine.
type rotatingFile struct {
	base     string
	maxFiles int
	maxBytes int64

	// f is the file with index idx, size bytes long; nil after a failed
	// open (the next write tries again).
	f    *os.File
	idx  int
	size int64
}

// openRotatingFile continues the stream at base: it appends to the
// highest existing file (or creates index 0) and deletes files beyond
// maxFiles (a task restarted with a smaller max_files).
func openRotatingFile(base string, maxFiles int, maxBytes int64) (*rotatingFile, error) {
	if maxFiles < 1 || maxBytes < 1 {
		return nil, fmt.Errorf("log rotation of %s: max files %d and max file bytes %d must be positive", base, maxFiles, maxBytes)
	}
	idx, err := currentLogFile(base)
	if err != nil {
		return nil, err
	}
	r := &rotatingFile{base: base, maxFiles: maxFiles, maxBytes: maxBytes, idx: idx}
	if err := r.open(); err != nil {
		return nil, err
	}
	r.prune()
	return r, nil
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(logFilePath(r.base, r.idx), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, moving to a new file whenever the current one is
// full: a write is split at the size limit, so no file exceeds it.
func (r *rotatingFile) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if r.f == nil {
			if err := r.open(); err != nil {
				return written, err
			}
		}
		if r.size >= r.maxBytes {
			if err := r.rotate(); err != nil {
				return written, err
			}
		}
		chunk := p
		if room := r.maxBytes - r.size; int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, err := r.f.Write(chunk)
		written += n
		r.size += int64(n)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// rotate starts the next file and deletes the one that falls out of the
// retention.
func (r *rotatingFile) rotate() error {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.idx++
	if err := r.open(); err != nil {
		return err
	}
	r.prune()
	return nil
}

// prune deletes the stream's files older than the newest maxFiles:
// normally the one file maxFiles indexes back, but the listing also
// catches older ones (max_files lowered between runs of the task, or the
// single file of a v1 logger). Rotation happens once per maxBytes of
// output, so listing the directory each time is cheap.
func (r *rotatingFile) prune() {
	oldest := r.idx - r.maxFiles + 1
	if oldest <= 0 {
		return
	}
	files, err := LogFiles(r.base)
	if err != nil {
		return
	}
	for _, f := range files {
		if f.Index < oldest {
			_ = os.Remove(f.Path)
		}
	}
}

func (r *rotatingFile) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Disk protection.
//
// The data dir holding task logs usually holds Raft's log too, and a
// full disk makes every Raft write fail (the cluster answers "no
// leader"). So the logger stops writing when the filesystem under its
// log directory has less than the larger of minFreeFloor and
// minFreePercent of its size free, writing one line that says so, and
// resumes when space returns. Free space is checked at most once per
// diskCheckInterval, or after diskCheckBytes of output, not on every
// write.
const (
	minFreeFloor      = 1 << 30
	minFreePercent    = 5
	diskCheckInterval = time.Second
	diskCheckBytes    = 4 << 20
)

// diskGuard decides whether output may be written to the filesystem of
// dir. Both streams of a task share one.
type diskGuard struct {
	dir string
	// minFree, when non-zero, replaces the computed threshold (the
	// logger's min-free-bytes argument).
	minFree uint64
	// statfs and now are replaceable for tests.
	statfs func(dir string) (free, total uint64, err error)
	now    func() time.Time

	// mu guards the fields below.
	mu         sync.Mutex
	checked    time.Time
	sinceCheck int64
	full       bool
	free       uint64
	threshold  uint64
}

func newDiskGuard(dir string, minFree uint64) *diskGuard {
	return &diskGuard{dir: dir, minFree: minFree, statfs: statfsFree, now: time.Now}
}

func statfsFree(dir string) (uint64, uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// allow accounts for n bytes about to be written and reports whether
// they may be; when not, free and threshold say why.
func (g *diskGuard) allow(n int) (ok bool, free, threshold uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sinceCheck += int64(n)
	now := g.now()
	if g.checked.IsZero() || now.Sub(g.checked) >= diskCheckInterval || g.sinceCheck >= diskCheckBytes {
		g.checked, g.sinceCheck = now, 0
		free, total, err := g.statfs(g.dir)
		if err == nil {
			g.threshold = g.minFree
			if g.threshold == 0 {
				g.threshold = max(minFreeFloor, total/100*minFreePercent)
			}
			g.free = free
			g.full = free < g.threshold
		}
		// A failed statfs keeps the last verdict: the write itself
		// will tell whether the disk works.
	}
	return !g.full, g.free, g.threshold
}

// guardedStream is one output stream: the task's bytes go to out unless
// the guard says the disk is too full, in which case they are dropped
// and one line in the stream says so (and another when writing
// resumes). Write errors drop the output too instead of ending the
// copy, so the task's pipe is always drained; failed reports them.
type guardedStream struct {
	out   io.Writer
	guard *diskGuard
	now   func() time.Time

	dropping bool
	dropped  int64
	failed   bool
}

func (s *guardedStream) Write(p []byte) (int, error) {
	ok, free, threshold := true, uint64(0), uint64(0)
	if s.guard != nil {
		ok, free, threshold = s.guard.allow(len(p))
	}
	if !ok {
		if !s.dropping {
			s.dropping = true
			s.notice(fmt.Sprintf("output dropped from here: the filesystem of %s has %s free, less than the %s kept free for the node (Raft); it resumes when space returns",
				s.guard.dir, mib(free), mib(threshold)))
		}
		s.dropped += int64(len(p))
		return len(p), nil
	}
	if s.dropping {
		s.dropping = false
		s.notice(fmt.Sprintf("output resumed: %d bytes were dropped while the disk was too full", s.dropped))
		s.dropped = 0
	}
	if _, err := s.out.Write(p); err != nil {
		s.failed = true
	}
	return len(p), nil
}

// notice writes one line of the logger's own into the stream.
func (s *guardedStream) notice(msg string) {
	line := fmt.Sprintf("[drover task logger %s] %s\n", s.now().UTC().Format(time.RFC3339), msg)
	if _, err := io.WriteString(s.out, line); err != nil {
		s.failed = true
	}
}

func mib(b uint64) string { return fmt.Sprintf("%d MiB", b>>20) }
