package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfig_SnapshotBlock(t *testing.T) {
	dataDir := t.TempDir()
	for _, tc := range []struct {
		name     string
		hcl      string
		interval time.Duration
		retain   int
		path     string
		maxBytes int64
		err      string
	}{
		{name: "none", maxBytes: DefaultSnapshotMaxBytes},
		{name: "defaults", hcl: `server {
  snapshot {
    interval = "1h"
  }
}
`,
			interval: time.Hour, retain: 24, path: filepath.Join(dataDir, "snapshots"), maxBytes: DefaultSnapshotMaxBytes},
		{name: "every field", hcl: `server {
  snapshot {
    interval = "90s"
    retain = 3
    path = "/srv/snaps"
  }
}
limits {
  snapshot_max_bytes = 2048
}
`,
			interval: 90 * time.Second, retain: 3, path: "/srv/snaps", maxBytes: 2048},
		{name: "relative path", hcl: `server {
  snapshot {
    interval = "2s"
    path = "backups"
  }
}
`,
			interval: 2 * time.Second, retain: 24, path: filepath.Join(dataDir, "backups"), maxBytes: DefaultSnapshotMaxBytes},
		{name: "interval too short", hcl: `server {
  snapshot {
    interval = "10ms"
  }
}
`, err: `server snapshot interval = "10ms": want a duration of at least 1s`},
		{name: "interval not a duration", hcl: `server {
  snapshot {
    interval = "hourly"
  }
}
`, err: `server snapshot interval = "hourly"`},
		{name: "retain negative", hcl: `server {
  snapshot {
    interval = "1h"
    retain = -1
  }
}
`, err: "server snapshot retain = -1: want at least 1"},
		{name: "max bytes negative", hcl: `limits {
  snapshot_max_bytes = -5
}
`, err: "limits snapshot_max_bytes = -5"},
		{name: "interval missing", hcl: `server {
  snapshot {
    retain = 2
  }
}
`, err: `"interval" is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Server.Enabled = true
			cfg.DataDir = dataDir
			if tc.hcl != "" {
				path := filepath.Join(t.TempDir(), "agent.hcl")
				if err := os.WriteFile(path, []byte(tc.hcl), 0o600); err != nil {
					t.Fatal(err)
				}
				file, err := LoadConfigFile(path)
				if err != nil {
					if tc.err != "" && strings.Contains(err.Error(), tc.err) {
						return
					}
					t.Fatal(err)
				}
				cfg.Merge(file)
			}
			sc, err := cfg.serverConfig()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sc.SnapshotMaxBytes != tc.maxBytes {
				t.Fatalf("SnapshotMaxBytes %d, want %d", sc.SnapshotMaxBytes, tc.maxBytes)
			}
			if tc.interval == 0 {
				if sc.SnapshotSchedule != nil {
					t.Fatalf("a schedule without a snapshot block: %+v", sc.SnapshotSchedule)
				}
				return
			}
			s := sc.SnapshotSchedule
			if s == nil || s.Interval != tc.interval || s.Retain != tc.retain || s.Path != tc.path {
				t.Fatalf("schedule %+v, want %s %d %s", s, tc.interval, tc.retain, tc.path)
			}
		})
	}
}
