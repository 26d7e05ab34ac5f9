package fsm

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// populateClusterMeta gives the cluster its ID, as its first leader
// does.
func populateClusterMeta(h *harness) {
	h.mustApply(structs.ClusterMetaRequestType|structs.IgnoreUnknownTypeFlag, &structs.ClusterMetaRequest{
		Meta: structs.ClusterMeta{ClusterID: structs.GenerateUUID(), CreateTime: 77}})
}

// The first cluster meta entry wins; a later one (a second leader) is
// not an error and changes nothing, so every server keeps one ID.
func TestFSM_ClusterMetaFirstWins(t *testing.T) {
	h := newHarness(t)
	first := structs.ClusterMeta{ClusterID: structs.GenerateUUID(), CreateTime: 5}
	h.mustApply(structs.ClusterMetaRequestType, &structs.ClusterMetaRequest{Meta: first})
	createdAt := h.index
	before := hashOf(t, h.fsm)

	h.mustApply(structs.ClusterMetaRequestType|structs.IgnoreUnknownTypeFlag, &structs.ClusterMetaRequest{
		Meta: structs.ClusterMeta{ClusterID: structs.GenerateUUID(), CreateTime: 6}})
	if hashOf(t, h.fsm) != before {
		t.Fatal("a second cluster meta entry changed the state")
	}
	got, err := h.fsm.State().ClusterMeta()
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.ClusterID != first.ClusterID || got.CreateTime != 5 || got.CreateIndex != createdAt {
		t.Fatalf("cluster meta = %+v, want the first one created at index %d", got, createdAt)
	}
}

func TestFSM_ClusterMetaRefusesBadIDs(t *testing.T) {
	for name, id := range map[string]string{
		"empty":      "",
		"not a UUID": "prod",
		"uppercase":  strings.ToUpper(structs.GenerateUUID()),
		"huge":       strings.Repeat("a", 1<<16),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			before := hashOf(t, h.fsm)
			resp := h.apply(structs.ClusterMetaRequestType, &structs.ClusterMetaRequest{Meta: structs.ClusterMeta{ClusterID: id}})
			assertRefused(t, h, resp, before)
			if len(asError(resp).Error()) > 400 {
				t.Fatalf("the refusal quotes the whole hostile ID: %d bytes", len(asError(resp).Error()))
			}
		})
	}
}

// The cluster ID survives a snapshot; a version 4 snapshot (written
// before cluster IDs) restores without one, and a version 4 snapshot
// claiming a cluster meta record is refused as corrupt.
func TestFSM_ClusterMetaSnapshotVersions(t *testing.T) {
	h := newHarness(t)
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: mock.Node(), UpdatedAt: 1})
	withoutMeta := persist(t, h.fsm)
	populateClusterMeta(h)
	withMeta := persist(t, h.fsm)
	want, _ := h.fsm.State().ClusterMeta()

	f := New(Config{})
	if err := f.Restore(io.NopCloser(bytes.NewReader(withMeta))); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.State().ClusterMeta(); got == nil || *got != *want {
		t.Fatalf("restored cluster meta %+v, want %+v", got, want)
	}
	if hashOf(t, f) != hashOf(t, h.fsm) {
		t.Fatal("the restored state differs")
	}

	asVersion4 := func(data []byte) []byte {
		var hdr snapshotHeader
		n := headerLen(t, data, &hdr)
		return append(mustEncode(t, 0, &snapshotHeader{Version: 4, LastIndex: hdr.LastIndex})[1:], data[n:]...)
	}
	old := New(Config{})
	if err := old.Restore(io.NopCloser(bytes.NewReader(asVersion4(withoutMeta)))); err != nil {
		t.Fatalf("restore a version 4 snapshot: %v", err)
	}
	if got, _ := old.State().ClusterMeta(); got != nil {
		t.Fatalf("a version 4 snapshot restored cluster meta %+v", got)
	}
	if nodes, _ := old.State().Nodes(nil); len(nodes) != 1 {
		t.Fatalf("a version 4 snapshot restored %d nodes, want 1", len(nodes))
	}
	err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(asVersion4(withMeta))))
	if err == nil || !strings.Contains(err.Error(), "unknown snapshot record type 14") {
		t.Fatalf("a version 4 snapshot with a cluster meta record: %v", err)
	}
}

// WriteSnapshot with a meta writes that cluster meta instead of the
// store's, and ReadSnapshot reads it back into a new store.
func TestFSM_WriteSnapshotOverridesClusterMeta(t *testing.T) {
	h := newHarness(t)
	populate(h)
	override := &structs.ClusterMeta{ClusterID: structs.GenerateUUID(), CreateTime: 1, CreateIndex: 3}
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, h.fsm.State(), override); err != nil {
		t.Fatal(err)
	}
	st, info, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != SnapshotVersion {
		t.Fatalf("version %d", info.Version)
	}
	if latest, _ := h.fsm.State().LatestIndex(); info.LastIndex != latest {
		t.Fatalf("last index %d, want %d", info.LastIndex, latest)
	}
	if got, _ := st.ClusterMeta(); got == nil || *got != *override {
		t.Fatalf("cluster meta %+v, want %+v", got, override)
	}
	_, a, _ := h.fsm.State().Hash()
	_, b, _ := st.Hash()
	for table, sum := range a {
		if table != "cluster_meta" && b[table] != sum {
			t.Fatalf("table %s differs after WriteSnapshot/ReadSnapshot", table)
		}
	}
	if a["cluster_meta"] == b["cluster_meta"] {
		t.Fatal("the override did not change the cluster meta")
	}
}

// headerLen decodes the snapshot header at the start of data and
// returns its length in bytes.
func headerLen(t *testing.T, data []byte, hdr *snapshotHeader) int {
	t.Helper()
	if err := structs.Decode(data, hdr); err != nil {
		t.Fatal(err)
	}
	// Re-encode to learn the header's length: the encoding is canonical.
	n := len(mustEncode(t, 0, hdr)) - 1
	if !bytes.HasPrefix(data, mustEncode(t, 0, hdr)[1:]) {
		t.Fatal("the snapshot does not start with the header as re-encoded")
	}
	return n
}
