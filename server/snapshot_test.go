package server

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/snapshot"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	dtestutil "github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// saveSnapshot downloads a snapshot archive through s, chunk by chunk,
// as the agent does.
func saveSnapshot(t *testing.T, s *Server, token string) ([]byte, structs.SnapshotMeta) {
	t.Helper()
	req := &structs.SnapshotSaveRequest{}
	req.AuthToken = token
	var resp structs.SnapshotSaveResponse
	if err := s.RPC("Operator.SnapshotSave", req, &resp); err != nil {
		t.Fatalf("Operator.SnapshotSave: %v", err)
	}
	var buf bytes.Buffer
	for {
		read := &structs.SnapshotReadRequest{ID: resp.ID, Offset: int64(buf.Len())}
		read.AuthToken = token
		var chunk structs.SnapshotReadResponse
		if err := s.RPC("Operator.SnapshotRead", read, &chunk); err != nil {
			t.Fatalf("Operator.SnapshotRead at %d: %v", buf.Len(), err)
		}
		buf.Write(chunk.Data)
		if chunk.EOF {
			break
		}
	}
	if int64(buf.Len()) != resp.Size {
		t.Fatalf("read %d bytes, the save announced %d", buf.Len(), resp.Size)
	}
	return buf.Bytes(), resp.Meta
}

// uploadSnapshot restores archive through s in chunks of chunk bytes.
func uploadSnapshot(s *Server, token string, archive []byte, force bool, chunk int) (*structs.SnapshotRestoreResponse, error) {
	var id string
	for off := 0; ; off += chunk {
		end := min(off+chunk, len(archive))
		req := &structs.SnapshotRestoreRequest{ID: id, Offset: int64(off), Data: archive[off:end], Final: end == len(archive), Force: force}
		req.AuthToken = token
		var resp structs.SnapshotRestoreResponse
		if err := s.RPC("Operator.SnapshotRestore", req, &resp); err != nil {
			return nil, err
		}
		id = resp.ID
		if req.Final {
			return &resp, nil
		}
	}
}

// waitClusterID waits until s has a cluster ID and returns it.
func waitClusterID(t *testing.T, s *Server) string {
	t.Helper()
	var id string
	dtestutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		id = s.ClusterID()
		return id != "", nil
	})
	return id
}

// hashOf returns s's state index and table hashes.
func hashOf(t *testing.T, s *Server) (uint64, map[string]string) {
	t.Helper()
	index, tables, err := s.State().Hash()
	if err != nil {
		t.Fatal(err)
	}
	return index, tables
}

// populateCluster registers nodes and jobs through the leader and waits
// until they are scheduled and every server has the same state.
func populateCluster(t *testing.T, c *testCluster) {
	t.Helper()
	leader := c.waitLeader(c.servers...)
	for i := 0; i < 3; i++ {
		registerNode(t, leader, mock.Node())
	}
	var jobs []*structs.Job
	for i := 0; i < 3; i++ {
		jobs = append(jobs, c.register(leader))
	}
	c.waitScheduled(leader, jobs...)
	c.waitSameState(c.servers...)
}

// The Done-when of snapshots, in process: save from one three-server
// cluster through a follower, restore through a follower into a fresh
// three-server cluster; every table of every server of the new cluster
// then hashes as the old cluster's did, the new cluster took the old
// one's ID, and it keeps working.
func TestSnapshot_SaveAndRestoreIntoAFreshCluster(t *testing.T) {
	src := newTestCluster(t, 3)
	srcID := waitClusterID(t, src.waitLeader(src.servers...))
	populateCluster(t, src)
	leader := src.waitLeader(src.servers...)
	follower := src.others(leader)[0]
	wantIndex, want := hashOf(t, leader)

	archive, meta := saveSnapshot(t, follower, "")
	if meta.ClusterID != srcID || meta.Index < wantIndex || meta.FSMVersion != 5 || meta.ArchiveVersion != 1 {
		t.Fatalf("snapshot meta %+v (cluster %s, state index %d)", meta, srcID, wantIndex)
	}
	if _, err := time.Parse(time.RFC3339Nano, meta.Time); err != nil {
		t.Fatalf("meta time %q: %v", meta.Time, err)
	}
	decoded, err := snapshot.Decode(bytes.NewReader(archive), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := decoded.Rows()
	if rows[state.TableJobs] != 3 || rows[state.TableNodes] != 3 || rows[state.TableAllocs] == 0 {
		t.Fatalf("rows in the snapshot: %v", rows)
	}

	dst := newTestCluster(t, 3)
	dstLeader := dst.waitLeader(dst.servers...)
	dstID := waitClusterID(t, dstLeader)
	if dstID == srcID {
		t.Fatal("two clusters got the same ID")
	}
	resp, err := uploadSnapshot(dst.others(dstLeader)[0], "", archive, false, 64<<10)
	if err != nil {
		t.Fatalf("restore into a fresh cluster: %v", err)
	}
	if r := resp.Result; r == nil || !r.Adopted || r.Forced || r.ClusterID != srcID || r.Meta.Index != meta.Index {
		t.Fatalf("restore result %+v", resp.Result)
	}
	dst.waitSameState(dst.servers...)
	for _, s := range dst.servers {
		index, got := hashOf(t, s)
		if index != wantIndex {
			t.Errorf("%s is at index %d after the restore, the source was at %d", dst.name(s), index, wantIndex)
		}
		for _, table := range state.Tables {
			if got[table] != want[table] {
				t.Errorf("%s: table %s differs from the source cluster after the restore", dst.name(s), table)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// The restored cluster schedules: its leader's components were
	// rebuilt from the restored state.
	newLeader := dst.waitLeader(dst.servers...)
	job := dst.register(newLeader)
	dst.waitScheduled(newLeader, job)
	if allocs := liveAllocs(t, newLeader, job.ID); len(allocs) == 0 {
		t.Fatal("a job registered after the restore was not placed on the restored nodes")
	}
}

// A snapshot of another cluster is refused (409) by a cluster that
// holds data, and nothing changes; with force it is restored and the
// cluster keeps its own ID. A snapshot of the cluster itself needs no
// force.
func TestSnapshot_RestoreOfAnotherClusterNeedsForce(t *testing.T) {
	src := newTestCluster(t, 1)
	waitClusterID(t, src.servers[0])
	populateCluster(t, src)
	archive, _ := saveSnapshot(t, src.servers[0], "")
	_, srcTables := hashOf(t, src.servers[0])

	dst := newTestCluster(t, 3)
	dstLeader := dst.waitLeader(dst.servers...)
	dstID := waitClusterID(t, dstLeader)
	registerNode(t, dstLeader, mock.Node())
	dst.waitSameState(dst.servers...)
	beforeIndex, before := hashOf(t, dstLeader)

	_, err := uploadSnapshot(dstLeader, "", archive, false, 1<<20)
	wantCoded(t, err, structs.CodeConflict, "the snapshot is of cluster "+src.servers[0].ClusterID()+", and this cluster is "+dstID+" and holds data")
	if !strings.Contains(err.Error(), "-force") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("the refusal does not say how to go on: %v", err)
	}
	if index, after := hashOf(t, dstLeader); index != beforeIndex || !reflect.DeepEqual(after, before) {
		t.Fatal("a refused restore changed the state")
	}

	resp, err := uploadSnapshot(dstLeader, "", archive, true, 1<<20)
	if err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if r := resp.Result; r == nil || !r.Forced || r.Adopted || r.ClusterID != dstID {
		t.Fatalf("forced restore result %+v", resp.Result)
	}
	dst.waitSameState(dst.servers...)
	for _, s := range dst.servers {
		if s.ClusterID() != dstID {
			t.Fatalf("%s has cluster ID %s after a forced restore, want its own %s", dst.name(s), s.ClusterID(), dstID)
		}
		_, got := hashOf(t, s)
		for _, table := range state.Tables {
			if table != state.TableClusterMeta && got[table] != srcTables[table] {
				t.Fatalf("%s: table %s differs from the snapshot's after a forced restore", dst.name(s), table)
			}
		}
	}

	// A snapshot of this very cluster (it now holds data) needs no force.
	own, _ := saveSnapshot(t, dstLeader, "")
	if _, err := uploadSnapshot(dst.waitLeader(dst.servers...), "", own, false, 1<<20); err != nil {
		t.Fatalf("restore of the cluster's own snapshot: %v", err)
	}
}

// Damaged, oversized and malformed uploads are refused with a clear
// 4xx and change nothing; the server keeps serving.
func TestSnapshot_RestoreRefusesBadArchives(t *testing.T) {
	c := newTestClusterWith(t, 1, func(cfg *Config) { cfg.SnapshotMaxBytes = 256 << 10 })
	s := c.servers[0]
	waitClusterID(t, s)
	populateCluster(t, c)
	archive, _ := saveSnapshot(t, s, "")
	if len(archive) > 200<<10 {
		t.Fatalf("the test archive is %d bytes, too big for the limit", len(archive))
	}
	flipped := append([]byte(nil), archive...)
	flipped[len(flipped)/2] ^= 0xff
	cases := []struct {
		name string
		data []byte
		code string
		msg  string
	}{
		{"a flipped byte", flipped, structs.CodeInvalid, "invalid snapshot archive"},
		{"truncated", archive[:len(archive)-2000], structs.CodeInvalid, "invalid snapshot archive"},
		{"not an archive", []byte("PUT me back"), structs.CodeInvalid, "invalid snapshot archive"},
		{"over the limit", append(append([]byte(nil), archive...), make([]byte, 300<<10)...), structs.CodeTooLarge, "the snapshot is larger than the limit of 262144 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			index, before := hashOf(t, s)
			_, err := uploadSnapshot(s, "", tc.data, true, 64<<10)
			wantCoded(t, err, tc.code, tc.msg)
			if i, after := hashOf(t, s); i != index || !reflect.DeepEqual(after, before) {
				t.Fatal("a refused restore changed the state")
			}
			// No upload is left behind: a good restore can start.
			s.snapshots.mu.Lock()
			left := s.snapshots.upload
			s.snapshots.mu.Unlock()
			if left != nil {
				t.Fatal("the refused upload is still registered")
			}
		})
	}
	if _, err := uploadSnapshot(s, "", archive, false, 64<<10); err != nil {
		t.Fatalf("a good restore after the refusals: %v", err)
	}
}

// Chunks go in order and stay with the token that started the
// transfer; a second upload waits for the first.
func TestSnapshot_TransfersAreOrderedAndBoundToTheirToken(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.servers[0]
	waitClusterID(t, s)

	var save structs.SnapshotSaveResponse
	if err := s.RPC("Operator.SnapshotSave", &structs.SnapshotSaveRequest{}, &save); err != nil {
		t.Fatal(err)
	}
	var chunk structs.SnapshotReadResponse
	err := s.RPC("Operator.SnapshotRead", &structs.SnapshotReadRequest{ID: save.ID, Offset: 5}, &chunk)
	wantCoded(t, err, structs.CodeInvalid, "snapshot save "+save.ID+": chunk asked at offset 5, but 0 bytes were read")
	err = s.RPC("Operator.SnapshotRead", &structs.SnapshotReadRequest{ID: save.ID}, &chunk)
	wantCoded(t, err, structs.CodeNotFound, "no snapshot save")

	first := &structs.SnapshotRestoreRequest{Data: []byte("abc")}
	var up structs.SnapshotRestoreResponse
	if err := s.RPC("Operator.SnapshotRestore", first, &up); err != nil {
		t.Fatal(err)
	}
	if up.ID == "" || up.Received != 3 {
		t.Fatalf("first chunk answer %+v", up)
	}
	err = s.RPC("Operator.SnapshotRestore", &structs.SnapshotRestoreRequest{Data: []byte("x")}, &structs.SnapshotRestoreResponse{})
	wantCoded(t, err, structs.CodeConflict, "another snapshot restore is being uploaded")
	other := &structs.SnapshotRestoreRequest{ID: up.ID, Offset: 3, Data: []byte("d")}
	other.AuthToken = "someone else"
	err = s.RPC("Operator.SnapshotRestore", other, &structs.SnapshotRestoreResponse{})
	wantCoded(t, err, structs.CodePermission, "permission denied: this snapshot upload was started with another token")
	err = s.RPC("Operator.SnapshotRestore", &structs.SnapshotRestoreRequest{ID: up.ID, Offset: 1, Data: []byte("d")}, &structs.SnapshotRestoreResponse{})
	wantCoded(t, err, structs.CodeInvalid, "snapshot upload "+up.ID+": chunk at offset 1, but 3 bytes were received")
	// The out-of-order chunk dropped the upload and its file.
	err = s.RPC("Operator.SnapshotRestore", &structs.SnapshotRestoreRequest{ID: up.ID, Offset: 3, Data: []byte("d")}, &structs.SnapshotRestoreResponse{})
	wantCoded(t, err, structs.CodeNotFound, "no snapshot upload")
}

// Only a management token saves or restores: a snapshot holds the node
// secrets and every namespace, and a restore replaces the ACL tokens.
func TestSnapshot_ManagementOnly(t *testing.T) {
	s := aclServer(t)
	mgmt := bootstrapACL(t, s)
	waitClusterID(t, s)
	upsertPolicy(t, s, mgmt, "op", `operator { policy = "write" }`)
	op := createToken(t, s, mgmt, &structs.ACLTokenCreateRequest{Name: "op", Policies: []string{"op"}}).SecretID

	archive, _ := saveSnapshot(t, s, mgmt)
	index, before := hashOf(t, s)
	for name, token := range map[string]string{"anonymous": "", "operator:write": op, "unknown": structs.GenerateUUID()} {
		t.Run(name, func(t *testing.T) {
			req := &structs.SnapshotSaveRequest{}
			req.AuthToken = token
			err := s.RPC("Operator.SnapshotSave", req, &structs.SnapshotSaveResponse{})
			if ce := structs.ParseCodedError(err); ce == nil || (ce.Code != structs.CodePermission && ce.Code != structs.CodeTokenNotFound) {
				t.Fatalf("save with the %s token: %v", name, err)
			}
			_, err = uploadSnapshot(s, token, archive, true, 1<<20)
			if ce := structs.ParseCodedError(err); ce == nil || (ce.Code != structs.CodePermission && ce.Code != structs.CodeTokenNotFound) {
				t.Fatalf("restore with the %s token: %v", name, err)
			}
			if i, after := hashOf(t, s); i != index || !reflect.DeepEqual(after, before) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
	if _, err := uploadSnapshot(s, mgmt, archive, false, 1<<20); err != nil {
		t.Fatalf("restore with the management token: %v", err)
	}
}

// The leader writes scheduled snapshots, named by time and index,
// prunes them to retain, leaves other files alone, and reports the
// newest's age.
func TestSnapshot_Scheduled(t *testing.T) {
	dir := t.TempDir()
	stranger := filepath.Join(dir, "drover-notes.txt")
	if err := os.WriteFile(stranger, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testServer(t, func(c *Config) {
		c.SnapshotSchedule = &SnapshotSchedule{Interval: time.Second, Retain: 2, Path: dir}
	})
	dtestutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		n := metricValue(t, s, "drover_snapshot_scheduled_total")
		return n >= 4, fmt.Errorf("%v scheduled snapshots written", n)
	})
	files, err := listScheduled(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("%d scheduled snapshots kept, want 2 (retain): %v", len(files), files)
	}
	if _, err := os.Stat(stranger); err != nil {
		t.Fatalf("pruning removed a file it did not write: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		d, err := snapshot.Decode(bytes.NewReader(raw), 1<<30)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if d.Meta.Index != f.index || d.ClusterID() != s.ClusterID() {
			t.Fatalf("%s holds index %d of cluster %s", f.name, d.Meta.Index, d.ClusterID())
		}
	}
	if age := metricValue(t, s, "drover_snapshot_newest_age_seconds"); age < 0 || age > 5 {
		t.Fatalf("newest snapshot age %v s", age)
	}
	if n := metricValue(t, s, "drover_snapshot_scheduled_failures_total"); n != 0 {
		t.Fatalf("%v scheduled snapshots failed", n)
	}
}

// metricValue returns the value of the counter or gauge name in s's
// metrics; it fails the test when there is none.
func metricValue(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	mfs, err := s.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// An abandoned save or upload is dropped after the idle time, its
// temp file with it, and the next restore can start.
func TestSnapshot_AbandonedTransfersExpire(t *testing.T) {
	idle := snapshotTransferIdle
	t.Cleanup(func() { snapshotTransferIdle = idle })
	snapshotTransferIdle = time.Second
	dataDir := t.TempDir()
	c := newTestClusterWith(t, 1, func(cfg *Config) { cfg.DataDir = dataDir })
	s := c.servers[0]
	waitClusterID(t, s)

	var save structs.SnapshotSaveResponse
	if err := s.RPC("Operator.SnapshotSave", &structs.SnapshotSaveRequest{}, &save); err != nil {
		t.Fatal(err)
	}
	var up structs.SnapshotRestoreResponse
	if err := s.RPC("Operator.SnapshotRestore", &structs.SnapshotRestoreRequest{Data: []byte("abandoned")}, &up); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dataDir, "snapshot-restore")
	if entries, _ := os.ReadDir(spool); len(entries) != 1 {
		t.Fatalf("%d files in %s during the upload, want 1", len(entries), spool)
	}
	dtestutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		s.snapshots.mu.Lock()
		defer s.snapshots.mu.Unlock()
		return s.snapshots.upload == nil && len(s.snapshots.saves) == 0, fmt.Errorf("transfers still registered")
	})
	dtestutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		entries, err := os.ReadDir(spool)
		return err == nil && len(entries) == 0, fmt.Errorf("%d files left in %s (%v)", len(entries), spool, err)
	})
	err := s.RPC("Operator.SnapshotRead", &structs.SnapshotReadRequest{ID: save.ID}, &structs.SnapshotReadResponse{})
	wantCoded(t, err, structs.CodeNotFound, "no snapshot save")
	archive, _ := saveSnapshot(t, s, "")
	if _, err := uploadSnapshot(s, "", archive, false, 1<<20); err != nil {
		t.Fatalf("a restore after an abandoned upload: %v", err)
	}
}
