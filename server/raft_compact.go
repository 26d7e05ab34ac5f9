package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"go.etcd.io/bbolt"
)

// The Raft log's bolt file (raft.db).
//
// Raft keeps the log bounded: after a snapshot (every
// RaftSnapshotThreshold entries, checked every RaftSnapshotInterval) it
// deletes the entries older than the last RaftTrailingLogs. bolt puts
// the pages of deleted entries on its freelist and reuses them for new
// entries, but never gives them back to the file system: the file keeps
// the size of the largest log it ever held. In steady state that is
// the trailing window plus one threshold of entries; a burst (a log
// that grew long while a follower was down, huge entries) leaves a file
// that is mostly free pages for good.
//
// bolt cannot shrink a file in place, and the file is open for as long
// as Raft runs, so the file is compacted at start-up, before Raft opens
// it: its live pages are copied into a new file (bbolt.Compact), which
// is synced and renamed over raft.db. That happens when the operator
// asks (the agent's -compact-raft flag, RaftCompact here) or on its own
// when free pages are more than compactFreeFraction of a file of at
// least compactMinBytes. A crash during the copy leaves raft.db as it
// was and a temp file that the next start removes. The size of the file
// and its free bytes are the metrics drover_raft_db_bytes and
// drover_raft_db_free_bytes.

const (
	// compactMinBytes is the smallest raft.db compacted on its own.
	compactMinBytes = 8 << 20
	// compactFreeFraction is the share of free pages above which it is.
	compactFreeFraction = 0.5
	// compactTxBytes bounds each transaction of the copy.
	compactTxBytes = 64 << 20
	// compactSlackBytes is the room the copy is grown by beyond what it
	// holds.
	compactSlackBytes = 1 << 20
)

// raftDBStats describes a bolt file.
type raftDBStats struct {
	FileBytes int64
	FreeBytes int64
}

// freeFraction is the share of the file on the freelist.
func (s raftDBStats) freeFraction() float64 {
	if s.FileBytes <= 0 {
		return 0
	}
	return float64(s.FreeBytes) / float64(s.FileBytes)
}

// inspectRaftDB reads a closed bolt file's size and free pages.
func inspectRaftDB(path string) (raftDBStats, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return raftDBStats{}, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: time.Second})
	if err != nil {
		return raftDBStats{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	st := db.Stats()
	return raftDBStats{
		FileBytes: fi.Size(),
		FreeBytes: int64(st.FreePageN+st.PendingPageN) * int64(db.Info().PageSize),
	}, nil
}

// maybeCompactRaftDB compacts the bolt file at path when force is set
// or it is mostly free pages (see above), before anything opens it. It
// returns the sizes before and after, and whether it compacted. A
// missing file (a new server) is left alone.
func maybeCompactRaftDB(path string, force bool, logger hclog.Logger) (before, after raftDBStats, compacted bool, err error) {
	tmp := path + ".compact"
	// A copy a crash interrupted: raft.db is intact, the copy is not.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return before, after, false, fmt.Errorf("remove %s: %w", tmp, err)
	}
	before, err = inspectRaftDB(path)
	if errors.Is(err, os.ErrNotExist) {
		return before, after, false, nil
	}
	if err != nil {
		return before, after, false, err
	}
	if !force && (before.FileBytes < compactMinBytes || before.freeFraction() < compactFreeFraction) {
		logger.Debug("raft.db not compacted", "bytes", before.FileBytes, "free_bytes", before.FreeBytes)
		return before, before, false, nil
	}
	start := time.Now()
	if err := compactBolt(path, tmp); err != nil {
		os.Remove(tmp)
		return before, after, false, fmt.Errorf("compact %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return before, after, false, fmt.Errorf("replace %s with its compacted copy: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return before, after, true, err
	}
	after, err = inspectRaftDB(path)
	if err != nil {
		return before, after, true, err
	}
	logger.Info("compacted raft.db", "bytes_before", before.FileBytes, "free_bytes_before", before.FreeBytes,
		"bytes_after", after.FileBytes, "forced", force, "took", time.Since(start).Round(time.Millisecond))
	return before, after, true, nil
}

// compactBolt copies the live pages of the bolt file src into a new,
// synced file dst.
func compactBolt(src, dst string) error {
	in, err := bbolt.Open(src, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := bbolt.Open(dst, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return err
	}
	// bolt grows a file past 16 MiB to what it needs plus AllocSize (16
	// MiB): the copy gets 1 MiB of slack instead, and the store grows it
	// again once it needs more.
	out.AllocSize = compactSlackBytes
	if err := bbolt.Compact(out, in, compactTxBytes); err != nil {
		out.Close()
		return err
	}
	// Compact committed with NoSync: one sync makes the whole copy
	// durable before it replaces the original.
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
