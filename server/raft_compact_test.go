package server

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// writeRaftDB writes n log entries of size bytes to a new raft.db,
// keeps the last keep of them (as a snapshot's truncation does) and
// closes it.
func writeRaftDB(t *testing.T, path string, n, size, keep int) {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var batch []*raft.Log
	for i := 1; i <= n; i++ {
		batch = append(batch, &raft.Log{Index: uint64(i), Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, size)})
		if len(batch) == 64 || i == n {
			if err := store.StoreLogs(batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	if err := store.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if keep < n {
		if err := store.DeleteRange(1, uint64(n-keep)); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// checkRaftDB opens raft.db as the server does and checks it holds
// entries from..to with their data, and the stable store's term.
func checkRaftDB(t *testing.T, path string, from, to, size int) {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	if first != uint64(from) || last != uint64(to) {
		t.Fatalf("log %d..%d, want %d..%d", first, last, from, to)
	}
	for _, i := range []int{from, (from + to) / 2, to} {
		var l raft.Log
		if err := store.GetLog(uint64(i), &l); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(l.Data, bytes.Repeat([]byte{byte(i)}, size)) {
			t.Fatalf("entry %d has other data", i)
		}
	}
	if term, err := store.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("current term %d (%v), want 7", term, err)
	}
}

func TestRaftCompact_MostlyFreeFileIsCompacted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	// ~20 MB of entries, of which the last 200 (~2 MB) are kept.
	writeRaftDB(t, path, 2000, 10_000, 200)
	grown := fileSize(t, path)
	st, err := inspectRaftDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.freeFraction() < compactFreeFraction || grown < compactMinBytes {
		t.Fatalf("fixture: %d bytes, %.0f%% free; want a big, mostly free file", grown, 100*st.freeFraction())
	}
	// A copy left by a crash is removed.
	if err := os.WriteFile(path+".compact", []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, after, compacted, err := maybeCompactRaftDB(path, false, hclog.NewNullLogger())
	if err != nil || !compacted {
		t.Fatalf("compacted %t, %v", compacted, err)
	}
	if before.FileBytes != grown || after.FileBytes >= grown/3 || fileSize(t, path) != after.FileBytes {
		t.Fatalf("%d bytes before, %d after (on disk %d); want under a third", before.FileBytes, after.FileBytes, fileSize(t, path))
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("the temp copy is left: %v", err)
	}
	checkRaftDB(t, path, 1801, 2000, 10_000)
}

func TestRaftCompact_OnlyWhenMostlyFreeOrForced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	// Big but mostly live: left alone.
	writeRaftDB(t, path, 1200, 10_000, 1100)
	size := fileSize(t, path)
	if _, _, compacted, err := maybeCompactRaftDB(path, false, hclog.NewNullLogger()); err != nil || compacted {
		t.Fatalf("a mostly live file: compacted %t, %v", compacted, err)
	}
	if fileSize(t, path) != size {
		t.Fatal("the file changed")
	}
	// Forced, it is compacted anyway, and stays readable.
	if _, _, compacted, err := maybeCompactRaftDB(path, true, hclog.NewNullLogger()); err != nil || !compacted {
		t.Fatalf("forced: compacted %t, %v", compacted, err)
	}
	checkRaftDB(t, path, 101, 1200, 10_000)
	// A new server has no file: nothing to do.
	if _, _, compacted, err := maybeCompactRaftDB(filepath.Join(dir, "none.db"), true, hclog.NewNullLogger()); err != nil || compacted {
		t.Fatalf("missing file: compacted %t, %v", compacted, err)
	}
}

// A server started with RaftCompact on a data dir it used before comes
// back with its state.
func TestRaftCompact_ServerRestartsOnACompactedFile(t *testing.T) {
	dir := t.TempDir()
	s := testServer(t, func(c *Config) { c.DataDir = dir; c.NodeID = "s1"; c.NumSchedulers = 0 })
	job := smallWeb()
	registerJob(t, s, job)
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	s2 := testServer(t, func(c *Config) { c.DataDir = dir; c.NodeID = "s1"; c.NumSchedulers = 0; c.RaftCompact = true })
	if j, _ := s2.State().JobByID(nil, "", job.ID); j == nil {
		t.Fatal("the job is gone after a restart on the compacted raft.db")
	}
}
