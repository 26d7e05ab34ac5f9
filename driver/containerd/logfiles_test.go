package containerd

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogFiles_OrderAndNaming(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"web.stdout", "web.stdout.10", "web.stdout.9", "web.stdout.0",
		// Not files of the stream:
		"web.stdout.01", "web.stdout.x", "web.stdout.", "web.stderr.1", "web.stdout.stdout.3", "api.stdout.2",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := LogFiles(filepath.Join(dir, "web.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f.Path))
	}
	if want := []string{"web.stdout", "web.stdout.0", "web.stdout.9", "web.stdout.10"}; !slices.Equal(got, want) {
		t.Fatalf("LogFiles = %v, want %v", got, want)
	}
	if files[0].Index != -1 || files[3].Index != 10 {
		t.Fatalf("indexes %+v", files)
	}
	if files, err := LogFiles(filepath.Join(dir, "missing", "web.stdout")); err != nil || files != nil {
		t.Fatalf("LogFiles of a missing dir = %v, %v; want none, no error", files, err)
	}
}

// TestRotatingFile_RotationOrder writes in pieces that straddle the
// file limit: files fill to exactly the limit, in index order, and only
// the newest maxFiles survive.
func TestRotatingFile_RotationOrder(t *testing.T) {
	base := filepath.Join(t.TempDir(), "t.stdout")
	r, err := openRotatingFile(base, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, piece := range []string{"0123456", "789abcdefghij", "klmnopqrstu", "v"} {
		if n, err := r.Write([]byte(piece)); err != nil || n != len(piece) {
			t.Fatalf("Write(%q) = %d, %v", piece, n, err)
		}
	}
	// 32 bytes: files 0..3 of 10, 10, 10, 2; the newest 2 are kept.
	files, _ := LogFiles(base)
	var contents []string
	for _, f := range files {
		b, _ := os.ReadFile(f.Path)
		contents = append(contents, filepath.Base(f.Path)+"="+string(b))
	}
	if want := []string{"t.stdout.2=klmnopqrst", "t.stdout.3=uv"}; !slices.Equal(contents, want) {
		t.Fatalf("files %v, want %v", contents, want)
	}
}

func TestRotatingFile_PrunesBeyondLoweredMaxFiles(t *testing.T) {
	base := filepath.Join(t.TempDir(), "t.stdout")
	for _, name := range []string{base, base + ".3", base + ".4", base + ".5", base + ".6"} {
		if err := os.WriteFile(name, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := openRotatingFile(base, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	files, _ := LogFiles(base)
	var idx []int
	for _, f := range files {
		idx = append(idx, f.Index)
	}
	if !slices.Equal(idx, []int{5, 6}) {
		t.Fatalf("after reopening with max 2 files: indexes %v, want 5 6 (the v1 file too is past retention)", idx)
	}
	if r.idx != 6 || r.size != 1 {
		t.Fatalf("continues at index %d size %d, want 6 and 1", r.idx, r.size)
	}
}

func TestRotatingFile_RejectsBadLimits(t *testing.T) {
	if _, err := openRotatingFile(filepath.Join(t.TempDir(), "x"), 0, 10); err == nil {
		t.Fatal("max files 0 accepted")
	}
	if _, err := openRotatingFile(filepath.Join(t.TempDir(), "x"), 1, 0); err == nil {
		t.Fatal("max bytes 0 accepted")
	}
}

// fakeDisk is a filesystem whose free space and clock tests set.
type fakeDisk struct {
	mu    sync.Mutex
	free  uint64
	total uint64
	err   error
	now   time.Time
	calls int
}

func (d *fakeDisk) statfs(string) (uint64, uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return d.free, d.total, d.err
}

func (d *fakeDisk) clock() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.now
}

func (d *fakeDisk) set(free uint64, advance time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.free = free
	d.now = d.now.Add(advance)
}

func newFakeGuard(d *fakeDisk, minFree uint64) *diskGuard {
	g := newDiskGuard("/logs", minFree)
	g.statfs, g.now = d.statfs, d.clock
	return g
}

// TestGuardedStream_DropsAndResumes: output stops (with one line) while
// the disk is under the threshold and resumes (with one line) after it
// recovers, free space being looked at only once per interval.
func TestGuardedStream_DropsAndResumes(t *testing.T) {
	disk := &fakeDisk{free: 100 << 30, total: 200 << 30, now: time.Unix(1e9, 0)}
	var out strings.Builder
	s := &guardedStream{out: &out, guard: newFakeGuard(disk, 0), now: disk.clock}

	s.Write([]byte("a\n"))
	disk.set(5<<30, 0) // under 5% of 200 GiB = 10 GiB, but not looked at yet
	s.Write([]byte("b\n"))
	if disk.calls != 1 {
		t.Fatalf("statfs called %d times for two writes within the interval, want 1", disk.calls)
	}
	disk.set(5<<30, diskCheckInterval)
	s.Write([]byte("c\n"))
	s.Write([]byte("d\n"))
	disk.set(50<<30, diskCheckInterval)
	s.Write([]byte("e\n"))

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 5 || lines[0] != "a" || lines[1] != "b" || lines[4] != "e" {
		t.Fatalf("stream:\n%s\nwant a, b, a drop notice, a resume notice, e", out.String())
	}
	if !strings.Contains(lines[2], "output dropped from here") || !strings.Contains(lines[2], "5120 MiB free, less than the 10240 MiB") {
		t.Errorf("drop notice = %q", lines[2])
	}
	if !strings.Contains(lines[3], "output resumed: 4 bytes were dropped") {
		t.Errorf("resume notice = %q", lines[3])
	}
	if s.failed {
		t.Error("dropping for a full disk marked the stream failed")
	}
}

func TestDiskGuard_Threshold(t *testing.T) {
	for _, tc := range []struct {
		name        string
		total, free uint64
		minFree     uint64
		ok          bool
	}{
		{"small disk: the 1 GiB floor", 10 << 30, 900 << 20, 0, false},
		{"small disk with room", 10 << 30, 2 << 30, 0, true},
		{"big disk: 5%", 1000 << 30, 40 << 30, 0, false},
		{"override", 1000 << 30, 40 << 30, 1 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := &fakeDisk{free: tc.free, total: tc.total, now: time.Unix(1e9, 0)}
			if ok, _, _ := newFakeGuard(disk, tc.minFree).allow(1); ok != tc.ok {
				t.Fatalf("allow = %v, want %v", ok, tc.ok)
			}
		})
	}
}

// TestDiskGuard_ChecksAfterManyBytes: a fast writer is checked before
// the interval is up, once it wrote diskCheckBytes.
func TestDiskGuard_ChecksAfterManyBytes(t *testing.T) {
	disk := &fakeDisk{free: 100 << 30, total: 200 << 30, now: time.Unix(1e9, 0)}
	g := newFakeGuard(disk, 0)
	g.allow(1)
	disk.set(1<<20, 0)
	if ok, _, _ := g.allow(diskCheckBytes); ok {
		t.Fatal("a writer past diskCheckBytes was not checked again")
	}
	// A failing statfs keeps the last verdict.
	disk.mu.Lock()
	disk.err = errors.New("statfs broke")
	disk.mu.Unlock()
	disk.set(100<<30, time.Hour)
	if ok, _, _ := g.allow(1); ok {
		t.Fatal("a failed statfs changed the verdict")
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk broke") }

func TestGuardedStream_WriteErrorsKeepDraining(t *testing.T) {
	s := &guardedStream{out: failingWriter{}, now: time.Now}
	if n, err := s.Write([]byte("x")); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v; want the bytes taken so the pipe drains", n, err)
	}
	if !s.failed {
		t.Fatal("a failed write was not recorded")
	}
}
