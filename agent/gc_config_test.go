package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/server"
)

func TestConfig_GC(t *testing.T) {
	c := dnsTestServerConfig()
	if sc, err := c.serverConfig(); err != nil || sc.GC != server.DefaultGCConfig() || sc.RaftCompact {
		t.Fatalf("defaults: %+v %v", sc.GC, err)
	}
	c.Merge(loadDNSTestHCL(t, `server {
  raft_trailing_logs = 2048
  raft_compact       = true
  gc {
    interval                = "1m"
    eval_gc_threshold       = "30m"
    batch_eval_gc_threshold = "12h"
    job_gc_threshold        = "2h"
    job_versions            = 3
    terminal_allocs         = 20
  }
}
`))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	sc, err := c.serverConfig()
	if err != nil {
		t.Fatal(err)
	}
	g := sc.GC
	if g.Interval != time.Minute || g.EvalThreshold != 30*time.Minute || g.BatchEvalThreshold != 12*time.Hour || g.JobThreshold != 2*time.Hour ||
		g.JobVersions != 3 || g.TerminalAllocs != 20 {
		t.Fatalf("gc settings %+v", g)
	}
	// Unset ones keep the defaults.
	if g.DeploymentThreshold != time.Hour || g.NodeThreshold != 24*time.Hour {
		t.Fatalf("defaults lost: %+v", g)
	}
	if sc.RaftTrailingLogs != 2048 || !sc.RaftCompact {
		t.Fatalf("raft: trailing %d compact %t", sc.RaftTrailingLogs, sc.RaftCompact)
	}
	// A later file that sets one threshold keeps the others.
	c.Merge(loadDNSTestHCL(t, "server {\n  gc {\n    node_gc_threshold = \"48h\"\n  }\n}\n"))
	sc, _ = c.serverConfig()
	if sc.GC.NodeThreshold != 48*time.Hour || sc.GC.EvalThreshold != 30*time.Minute {
		t.Fatalf("after a second file: %+v", sc.GC)
	}

	for _, tc := range []struct{ name, block, want string }{
		{"not a duration", `eval_gc_threshold = "soon"`, `server gc eval_gc_threshold = "soon"`},
		{"negative", `job_gc_threshold = "-1h"`, "job_gc_threshold"},
		{"zero", `node_gc_threshold = "0s"`, "node_gc_threshold"},
		{"interval too short", `interval = "10ms"`, "interval"},
		{"too many versions", `job_versions = 10`, "job_versions = 10: want 1 to 6"},
		{"negative cap", `terminal_allocs = -5`, "terminal_allocs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dnsTestServerConfig()
			c.Merge(loadDNSTestHCL(t, "server {\n  gc {\n    "+tc.block+"\n  }\n}\n"))
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// An unknown setting is an HCL error with its position.
	path := filepath.Join(t.TempDir(), "agent.hcl")
	if err := os.WriteFile(path, []byte("server {\n  gc {\n    eval_threshold = \"1h\"\n  }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(path); err == nil || !strings.Contains(err.Error(), "eval_threshold") || !strings.Contains(err.Error(), "agent.hcl:3") {
		t.Fatalf("unknown attribute: %v", err)
	}
}
