package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// TestSnapshot_SaveRestoreIntoAFreshCluster is the Done-when of
// snapshots: `drover operator snapshot save` on a three-server cluster
// with jobs (placed on simulated nodes), then `snapshot restore` into a
// fresh three-server cluster: every server of the new cluster has the
// old one's state, table by table (cluster ID included: a new cluster
// takes the snapshot's); `inspect` prints the row counts; the old
// cluster's leader writes scheduled snapshots and prunes them to
// retain.
func TestSnapshot_SaveRestoreIntoAFreshCluster(t *testing.T) {
	srcCfg := writeFile(t, "src.hcl", `server {
  snapshot {
    interval = "2s"
    retain   = 2
  }
}
`)
	src := startServers(t, 3, nil, nil, "-config", srcCfg)
	simNodes(t, src, 3, "snapsim")
	s1 := src.servers[0]
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		st, err := simNodeStatus(s1, "snapsim")
		if err != nil {
			return false, err
		}
		ready := 0
		for _, status := range st {
			if status == "ready" {
				ready++
			}
		}
		return ready == 3, fmt.Errorf("%d of 3 simulated nodes ready", ready)
	})
	for _, id := range []string{"web", "api"} {
		if res := s1.cli("job", "run", "-timeout", "1m", writeFile(t, id+".hcl", countJob(id, testutil.BusyboxRef, 2, 32))); res.code != 0 {
			t.Fatalf("job run %s: %s", id, res)
		}
	}
	// Deployments settle before the save: a running one would be moved
	// on by the new cluster's leader and its state would differ.
	testutil.WaitFor(t, 90*time.Second, func() (bool, error) {
		deps, _, err := s1.api.Deployments().List(nil)
		if err != nil {
			return false, err
		}
		for _, d := range deps {
			if d.Status == "running" || d.Status == "pending" {
				return false, fmt.Errorf("deployment %s of %s is %s", d.ID, d.JobID, d.Status)
			}
		}
		return true, nil
	})

	// Save through a follower (the save is forwarded to the leader), and
	// make sure the state did not move during the save: the hashes
	// before and after are the snapshot's.
	leader := src.waitLeader(nil)
	var follower *agent
	for _, s := range src.servers {
		if s != leader {
			follower = s
			break
		}
	}
	file := filepath.Join(t.TempDir(), "cluster.snap")
	var want *api.StateHash
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		before := src.waitConverged(30 * time.Second)[0]
		res := follower.cli("operator", "snapshot", "save", file)
		if res.code != 0 {
			return false, fmt.Errorf("snapshot save: %s", res)
		}
		if !strings.Contains(res.stdout, "Saved a snapshot of cluster ") {
			t.Fatalf("snapshot save: %s", res)
		}
		after := src.waitConverged(30 * time.Second)[0]
		if after.Index != before.Index || !reflect.DeepEqual(after.Tables, before.Tables) {
			return false, fmt.Errorf("the state moved during the save (index %d -> %d)", before.Index, after.Index)
		}
		want = after
		return true, nil
	})
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("snapshot save left %s.tmp behind: %v", file, err)
	}

	// inspect prints the rows of every table.
	res := s1.cli("operator", "snapshot", "inspect", file)
	if res.code != 0 {
		t.Fatalf("snapshot inspect: %s", res)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			rows[f[0]] = f[1]
		}
	}
	if rows["jobs"] != "2" || rows["nodes"] != "3" || rows["cluster_meta"] != "1" {
		t.Fatalf("inspect rows %v:\n%s", rows, res.stdout)
	}
	allocs, _ := strconv.Atoi(rows["allocs"])
	if allocs < 4 {
		t.Fatalf("inspect shows %d allocations, want at least 4:\n%s", allocs, res.stdout)
	}
	srcID := regexp.MustCompile(`Cluster ID\s+= (\S+)`).FindStringSubmatch(res.stdout)
	if srcID == nil {
		t.Fatalf("inspect shows no cluster ID:\n%s", res.stdout)
	}

	// A fresh cluster, whose nodes (the restored ones) do not expire
	// while the test compares.
	dstCfg := writeFile(t, "dst.hcl", `server {
  min_heartbeat_ttl = "10m"
  heartbeat_grace   = "10m"
}
`)
	dst := startServers(t, 3, nil, nil, "-config", dstCfg)
	dstLeader := dst.waitLeader(nil)
	var dstFollower *agent
	for _, s := range dst.servers {
		if s != dstLeader {
			dstFollower = s
			break
		}
	}
	var res2 result
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		// Retried while the new cluster settles (its follower learns
		// the leader it forwards to).
		res2 = dstFollower.cli("operator", "snapshot", "restore", file)
		return res2.code == 0, fmt.Errorf("snapshot restore: %s", res2)
	})
	if !strings.Contains(res2.stdout, "took the snapshot's cluster ID "+srcID[1]) {
		t.Fatalf("snapshot restore into a fresh cluster: %s", res2)
	}
	got := dst.waitConverged(60 * time.Second)
	for _, h := range got {
		if h.Index != want.Index {
			t.Errorf("%s is at index %d, the source was at %d", h.Server, h.Index, want.Index)
		}
		for table, sum := range want.Tables {
			if h.Tables[table] != sum {
				t.Errorf("%s: table %s differs from the source cluster", h.Server, table)
			}
		}
		if len(h.Tables) != len(want.Tables) {
			t.Errorf("%s has %d tables, the source %d", h.Server, len(h.Tables), len(want.Tables))
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Scheduled snapshots: the source's leader writes one every 2s into
	// <data_dir>/snapshots and keeps the newest 2.
	leader = src.waitLeader(nil)
	dir := filepath.Join(leader.dataDir, "snapshots")
	name := regexp.MustCompile(`^drover-\d{8}T\d{6}\.\d{3}Z-\d+\.snap$`)
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		metrics, err := httpGet(leader.url() + "/v1/metrics")
		if err != nil {
			return false, err
		}
		m := regexp.MustCompile(`(?m)^drover_snapshot_scheduled_total (\d+)`).FindStringSubmatch(metrics)
		if m == nil {
			return false, fmt.Errorf("no drover_snapshot_scheduled_total in the leader's metrics")
		}
		if n, _ := strconv.Atoi(m[1]); n < 4 {
			return false, fmt.Errorf("%d scheduled snapshots written", n)
		}
		age := regexp.MustCompile(`(?m)^drover_snapshot_newest_age_seconds (\S+)`).FindStringSubmatch(metrics)
		if age == nil {
			return false, fmt.Errorf("no drover_snapshot_newest_age_seconds in the leader's metrics")
		}
		if a, err := strconv.ParseFloat(age[1], 64); err != nil || a > 10 {
			return false, fmt.Errorf("newest snapshot age %s", age[1])
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, err
		}
		var snaps []string
		for _, e := range entries {
			if name.MatchString(e.Name()) {
				snaps = append(snaps, e.Name())
			}
		}
		if len(snaps) != 2 {
			return false, fmt.Errorf("%d scheduled snapshots in %s, want 2 (retain): %v", len(snaps), dir, snaps)
		}
		return true, nil
	})
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if name.MatchString(e.Name()) {
			if res := s1.cli("operator", "snapshot", "inspect", filepath.Join(dir, e.Name())); res.code != 0 || !strings.Contains(res.stdout, srcID[1]) {
				t.Fatalf("inspect scheduled snapshot %s: %s", e.Name(), res)
			}
			break
		}
	}
}
