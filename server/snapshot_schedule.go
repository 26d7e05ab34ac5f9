package server

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/droverhq/drover/snapshot"
)

// SnapshotSchedule is the server config's snapshot block: the leader
// writes a snapshot archive into Path every Interval and keeps the
// newest Retain of them. Files are named by time and Raft index
// (drover-20261206T051514.123Z-1234.snap), and are the same archives
// `drover operator snapshot save` writes: inspect and restore take them.
type SnapshotSchedule struct {
	Interval time.Duration
	Retain   int
	// Path is the directory; the agent resolves a relative one against
	// its data dir (default <data_dir>/snapshots).
	Path string
}

// MinSnapshotInterval is the shortest scheduled snapshot interval.
const MinSnapshotInterval = time.Second

func (c *SnapshotSchedule) validate(dataDir string) error {
	if c == nil {
		return nil
	}
	if c.Interval < MinSnapshotInterval {
		return fmt.Errorf("server: snapshot interval %s: want at least %s, e.g. \"1h\"", c.Interval, MinSnapshotInterval)
	}
	if c.Retain < 1 {
		return fmt.Errorf("server: snapshot retain = %d: want at least 1", c.Retain)
	}
	if c.Path == "" {
		if dataDir == "" {
			return fmt.Errorf("server: snapshot path is required without a data dir")
		}
		c.Path = filepath.Join(dataDir, "snapshots")
	}
	return nil
}

// scheduledName matches the files scheduled snapshots write; nothing
// else in the directory is ever pruned.
var scheduledName = regexp.MustCompile(`^drover-(\d{8}T\d{6}\.\d{3}Z)-(\d+)\.snap$`)

// scheduledTimeLayout is the time in a scheduled snapshot's name; it
// sorts as text in time order.
const scheduledTimeLayout = "20060102T150405.000Z"

// scheduledFile is one scheduled snapshot on disk.
type scheduledFile struct {
	name  string
	time  time.Time
	index uint64
}

// listScheduled returns the scheduled snapshots in dir, oldest first.
func listScheduled(dir string) ([]scheduledFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []scheduledFile
	for _, e := range entries {
		m := scheduledName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		t, err := time.Parse(scheduledTimeLayout, m[1])
		if err != nil {
			continue
		}
		index, _ := strconv.ParseUint(m[2], 10, 64)
		out = append(out, scheduledFile{name: e.Name(), time: t, index: index})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].time.Equal(out[j].time) {
			return out[i].time.Before(out[j].time)
		}
		return out[i].index < out[j].index
	})
	return out, nil
}

// scheduledSnapshots is a leader loop: it writes a snapshot whenever
// the newest one in the directory is Interval old (at once when it is
// older: a new leader whose own directory is stale catches up), and
// prunes the directory to Retain. A failure is logged and counted, and
// tried again after a minute at most.
func (s *Server) scheduledSnapshots(stopCh <-chan struct{}) {
	cfg := s.config.SnapshotSchedule
	if cfg == nil {
		return
	}
	// A new cluster gets its ID from ensureClusterID, beside this loop;
	// a snapshot before it would fail.
	for s.ClusterID() == "" {
		select {
		case <-stopCh:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	retry := min(cfg.Interval, time.Minute)
	var lastFailure time.Time
	for {
		next := time.Now()
		if files, err := listScheduled(cfg.Path); err == nil && len(files) > 0 {
			next = files[len(files)-1].time.Add(cfg.Interval)
		}
		if !lastFailure.IsZero() && next.Before(lastFailure.Add(retry)) {
			next = lastFailure.Add(retry)
		}
		select {
		case <-stopCh:
			return
		case <-time.After(time.Until(next)):
		}
		name, err := s.writeScheduledSnapshot(cfg)
		if err != nil {
			lastFailure = time.Now()
			s.metrics.snapshotFailures.Inc()
			s.logger.Error("scheduled snapshot failed", "path", cfg.Path, "error", err)
			continue
		}
		lastFailure = time.Time{}
		s.logger.Info("scheduled snapshot written", "file", filepath.Join(cfg.Path, name))
		if err := pruneScheduled(cfg.Path, cfg.Retain); err != nil {
			s.logger.Warn("failed to prune scheduled snapshots", "path", cfg.Path, "error", err)
		}
		// Counted once the directory is pruned to retain again.
		s.metrics.snapshotsWritten.Inc()
	}
}

// writeScheduledSnapshot takes a snapshot and writes its archive into
// the directory, through a temp file renamed into place, and returns
// the file's name.
func (s *Server) writeScheduledSnapshot(cfg *SnapshotSchedule) (string, error) {
	if err := os.MkdirAll(cfg.Path, 0o700); err != nil {
		return "", err
	}
	meta, state, err := s.openSnapshot()
	if err != nil {
		return "", err
	}
	defer state.Close()
	t, err := time.Parse(time.RFC3339Nano, meta.Time)
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("drover-%s-%d.snap", t.UTC().Format(scheduledTimeLayout), meta.Index)
	path := filepath.Join(cfg.Path, name)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	_, err = snapshot.Write(f, meta, state)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	if d, err := os.Open(cfg.Path); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return name, nil
}

// pruneScheduled removes all but the newest retain scheduled snapshots
// in dir, and temp files left by a write that did not finish.
func pruneScheduled(dir string, retain int) error {
	files, err := listScheduled(dir)
	if err != nil {
		return err
	}
	var firstErr error
	for i := 0; i < len(files)-retain; i++ {
		if err := os.Remove(filepath.Join(dir, files[i].name)); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if name := e.Name(); len(name) > 4 && name[len(name)-4:] == ".tmp" && scheduledName.MatchString(name[:len(name)-4]) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// registerSnapshotMetrics adds the age of the newest scheduled
// snapshot to the server's metrics: every server reports the newest in
// its own directory (the leader writes them, and leadership moves). No
// snapshot at all is +Inf, so an alert on the age fires for it too.
func (s *Server) registerSnapshotMetrics() {
	cfg := s.config.SnapshotSchedule
	if cfg == nil {
		return
	}
	s.metrics.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "drover", Name: "snapshot_newest_age_seconds",
		Help: "Age of the newest scheduled snapshot in this server's snapshot path (+Inf when there is none).",
	}, func() float64 {
		files, err := listScheduled(cfg.Path)
		if err != nil || len(files) == 0 {
			return math.Inf(1)
		}
		return time.Since(files[len(files)-1].time).Seconds()
	}))
}
