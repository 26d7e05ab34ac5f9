package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConfig_FollowerSchedulers(t *testing.T) {
	load := func(t *testing.T, hcl string) *Config {
		t.Helper()
		path := filepath.Join(t.TempDir(), "agent.hcl")
		if err := os.WriteFile(path, []byte(hcl), 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := LoadConfigFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c := DevConfig()
		c.Merge(file)
		return c
	}
	cases := []struct {
		name                     string
		hcl                      string
		wantWorkers, wantFollows int
	}{
		{"unset: every worker", `server { num_schedulers = 6 }`, 6, 6},
		{"a few", `server {
  num_schedulers      = 6
  follower_schedulers = 2
}`, 6, 2},
		{"none: only the leader schedules", `server {
  num_schedulers      = 6
  follower_schedulers = 0
}`, 6, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := load(t, tc.hcl).serverConfig()
			if err != nil {
				t.Fatal(err)
			}
			if sc.NumSchedulers != tc.wantWorkers || sc.FollowerSchedulers != tc.wantFollows {
				t.Fatalf("num_schedulers %d follower_schedulers %d, want %d and %d", sc.NumSchedulers, sc.FollowerSchedulers, tc.wantWorkers, tc.wantFollows)
			}
		})
	}
	t.Run("negative refused", func(t *testing.T) {
		if _, err := load(t, `server { follower_schedulers = -1 }`).serverConfig(); err == nil {
			t.Fatal("follower_schedulers = -1 accepted")
		}
	})
}
