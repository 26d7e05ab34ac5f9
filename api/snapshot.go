package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// SnapshotMeta describes a snapshot archive (its meta.json).
type SnapshotMeta struct {
	ArchiveVersion int
	ClusterID      string
	Index          uint64
	Term           uint64
	// Time is RFC 3339, UTC.
	Time          string
	DroverVersion string
	FSMVersion    int
	StateSize     int64
}

// SnapshotDownload is a snapshot archive being read from the agent.
// Close it when done.
type SnapshotDownload struct {
	io.ReadCloser
	// Size is the archive's size in bytes (-1 when the agent did not
	// say).
	Size int64
	// Index and ClusterID say what the snapshot is of.
	Index     uint64
	ClusterID string
}

// SnapshotSave streams a snapshot archive of the cluster's state: GET
// /v1/operator/snapshot. It needs a management token. With
// q.AllowStale, the agent's server takes it from its own state (no
// leader needed). A body shorter than Size means the save failed
// midway.
func (o *Operator) SnapshotSave(q *QueryOptions) (*SnapshotDownload, error) {
	resp, err := o.c.do(o.c.newRequest(http.MethodGet, "/v1/operator/snapshot", q))
	if err != nil {
		return nil, err
	}
	d := &SnapshotDownload{ReadCloser: resp.Body, Size: resp.ContentLength, ClusterID: resp.Header.Get("X-Drover-Snapshot-Cluster-Id")}
	d.Index, _ = strconv.ParseUint(resp.Header.Get("X-Drover-Snapshot-Index"), 10, 64)
	return d, nil
}

// SnapshotRestoreResult describes a restore that happened.
type SnapshotRestoreResult struct {
	// Index is the leader's last Raft index after the restore.
	Index uint64
	// Meta is the restored archive's metadata.
	Meta SnapshotMeta
	// ClusterID is the cluster's ID after the restore.
	ClusterID string
	// Forced: the snapshot was of another cluster and force made the
	// restore happen; the cluster kept its ID.
	Forced bool
	// Adopted: the cluster held no data and took on the snapshot's
	// cluster ID.
	Adopted bool
}

// SnapshotRestore replaces the cluster's state with the snapshot
// archive read from r (size bytes, or -1 when unknown): PUT
// /v1/operator/snapshot. It needs a management token. A snapshot of
// another cluster is refused (409) by a cluster that holds data unless
// force. A damaged archive is refused (400) and one over the agent's
// limit too (413); nothing changes then.
func (o *Operator) SnapshotRestore(r io.Reader, size int64, force bool) (*SnapshotRestoreResult, error) {
	req := o.c.newRequest(http.MethodPut, "/v1/operator/snapshot", nil)
	req.raw, req.rawType, req.rawLength = r, "application/x-tar", size
	if force {
		req.params.Set("force", "true")
	}
	resp, err := o.c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out SnapshotRestoreResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode the restore answer: %w", err)
	}
	return &out, nil
}
