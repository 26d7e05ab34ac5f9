package agent

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/droverhq/drover/server"
)

// SnapshotConfig is the server block's snapshot block: scheduled
// snapshots, written by the leader (server/snapshot_schedule.go).
//
//	server {
//	  snapshot {
//	    interval = "1h"
//	    retain   = 24
//	    path     = "/var/lib/drover/snapshots" # default <data_dir>/snapshots
//	  }
//	}
type SnapshotConfig struct {
	// Interval is a duration, at least 1s (required).
	Interval string `hcl:"interval"`
	// Retain is how many snapshots are kept (default 24).
	Retain int `hcl:"retain,optional"`
	// Path is the directory; a relative one is inside the data dir.
	Path string `hcl:"path,optional"`
}

// DefaultSnapshotRetain is the snapshot block's retain when unset.
const DefaultSnapshotRetain = 24

// schedule turns the block into the server's configuration; nil for no
// block.
func (s *SnapshotConfig) schedule(dataDir string) (*server.SnapshotSchedule, error) {
	if s == nil {
		return nil, nil
	}
	interval, err := time.ParseDuration(s.Interval)
	if err != nil || interval < server.MinSnapshotInterval {
		return nil, fmt.Errorf("server snapshot interval = %q: want a duration of at least %s, like \"1h\"", s.Interval, server.MinSnapshotInterval)
	}
	retain := s.Retain
	if retain == 0 {
		retain = DefaultSnapshotRetain
	}
	if retain < 1 {
		return nil, fmt.Errorf("server snapshot retain = %d: want at least 1 (default %d)", s.Retain, DefaultSnapshotRetain)
	}
	path := s.Path
	if path == "" {
		path = "snapshots"
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dataDir, path)
	}
	return &server.SnapshotSchedule{Interval: interval, Retain: retain, Path: path}, nil
}

// DefaultSnapshotMaxBytes is limits.snapshot_max_bytes unset: the
// largest snapshot archive a restore accepts.
const DefaultSnapshotMaxBytes = server.DefaultSnapshotMaxBytes

// snapshotMaxBytes is limits.snapshot_max_bytes, default applied.
func (c *Config) snapshotMaxBytes() int64 {
	if c.Limits != nil && c.Limits.SnapshotMaxBytes > 0 {
		return c.Limits.SnapshotMaxBytes
	}
	return DefaultSnapshotMaxBytes
}
