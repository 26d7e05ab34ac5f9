package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/droverhq/drover/structs"
)

// Snapshot save and restore over HTTP. The archive crosses between
// this agent and the server that takes or restores the snapshot in
// chunks of Operator.SnapshotRead and Operator.SnapshotRestore RPCs
// (server/snapshot_transfer.go), so any agent serves both, as any
// agent serves every other endpoint.
//
// Both need a management token, checked here before anything is read
// or taken (a refused restore does not make the agent read its body)
// and again by the server.

const (
	// snapshotUploadChunk is the size of the chunks a restore is sent
	// to the leader in.
	snapshotUploadChunk = 1 << 20
	// snapshotBodyIdle cuts off a restore whose client stopped sending:
	// each chunk of the body must arrive within it.
	snapshotBodyIdle = 30 * time.Second
)

// Headers of a snapshot download, besides Content-Length (the exact
// archive size, which the CLI shows progress against).
const (
	HeaderSnapshotIndex     = "X-Drover-Snapshot-Index"
	HeaderSnapshotClusterID = "X-Drover-Snapshot-Cluster-Id"
)

// requireManagement refuses the request unless its token is a
// management token; what names the operation.
func (a *Agent) requireManagement(r *http.Request, what string) error {
	aclObj, token, err := a.requestACL(r)
	if err != nil {
		return err
	}
	if !aclObj.IsManagement() {
		return structs.NewManagementRequiredError(token, what)
	}
	return nil
}

// snapshotSave streams a snapshot archive: GET /v1/operator/snapshot
// (?stale: any server may take it, from its own state). The answer is
// application/x-tar with Content-Length; errors before the first byte
// are JSON with their status, and a failure after it ends the
// connection, so the client sees a short body.
func (a *Agent) snapshotSave(w http.ResponseWriter, r *http.Request) {
	if err := a.requireManagement(r, "GET /v1/operator/snapshot (drover operator snapshot save)"); err != nil {
		writeError(w, err)
		return
	}
	stale := false
	if v, ok := r.URL.Query()["stale"]; ok {
		stale = v[0] == "" || v[0] == "true"
	}
	token := authToken(r)
	args := structs.SnapshotSaveRequest{QueryOptions: structs.QueryOptions{AllowStale: stale, AuthToken: token}}
	var save structs.SnapshotSaveResponse
	if err := a.RPC("Operator.SnapshotSave", &args, &save); err != nil {
		writeError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set("Content-Length", strconv.FormatInt(save.Size, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="drover-%d.snap"`, save.Meta.Index))
	h.Set(HeaderSnapshotIndex, strconv.FormatUint(save.Meta.Index, 10))
	h.Set(HeaderSnapshotClusterID, save.Meta.ClusterID)
	w.WriteHeader(http.StatusOK)
	var sent int64
	for {
		read := structs.SnapshotReadRequest{ID: save.ID, Offset: sent, QueryOptions: structs.QueryOptions{AllowStale: stale, AuthToken: token}}
		var chunk structs.SnapshotReadResponse
		if err := a.RPC("Operator.SnapshotRead", &read, &chunk); err != nil {
			a.logger.Error("snapshot save failed mid-stream; the client gets a short body", "sent", sent, "size", save.Size, "error", err)
			panic(http.ErrAbortHandler)
		}
		if _, err := w.Write(chunk.Data); err != nil {
			a.logger.Warn("snapshot save: the client went away", "sent", sent, "size", save.Size, "error", err)
			abort := structs.SnapshotReadRequest{ID: save.ID, Abort: true, QueryOptions: structs.QueryOptions{AllowStale: stale, AuthToken: token}}
			_ = a.RPC("Operator.SnapshotRead", &abort, &structs.SnapshotReadResponse{})
			return
		}
		sent += int64(len(chunk.Data))
		if chunk.EOF {
			return
		}
	}
}

// snapshotRestoreJSON is the answer of a restore.
type snapshotRestoreJSON struct {
	// Index is the leader's last Raft index after the restore.
	Index uint64
	structs.SnapshotRestoreResult
}

// snapshotRestore restores the snapshot archive in the request body:
// PUT /v1/operator/snapshot (?force=true for a snapshot of another
// cluster into a cluster that holds data). The body goes to the leader
// as it is read; the leader checks every sum and decodes the state
// before anything changes. A body over limits.snapshot_max_bytes is
// 413, a damaged one 400, a snapshot of another cluster 409; in every
// case the state is unchanged.
func (a *Agent) snapshotRestore(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	if err := a.requireManagement(r, "PUT /v1/operator/snapshot (drover operator snapshot restore)"); err != nil {
		return nil, err
	}
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("?force=%q: want true or false", v)
		}
		force = b
	}
	limit := a.config.snapshotMaxBytes()
	if r.ContentLength > limit {
		return nil, structs.NewError(structs.CodeTooLarge, fmt.Sprintf("the snapshot is %d bytes, larger than the limit of %d bytes (limits.snapshot_max_bytes); nothing was changed", r.ContentLength, limit))
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	rc := http.NewResponseController(w)
	token := authToken(r)
	var id string
	var offset int64
	abort := func() {
		if id == "" {
			return
		}
		req := structs.SnapshotRestoreRequest{ID: id, Abort: true, WriteRequest: structs.WriteRequest{AuthToken: token}}
		_ = a.RPC("Operator.SnapshotRestore", &req, &structs.SnapshotRestoreResponse{})
	}
	buf := make([]byte, snapshotUploadChunk)
	for {
		_ = rc.SetReadDeadline(time.Now().Add(snapshotBodyIdle))
		n, err := io.ReadFull(body, buf)
		final := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !final {
			abort()
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, structs.NewError(structs.CodeTooLarge, fmt.Sprintf("the snapshot is larger than the limit of %d bytes (limits.snapshot_max_bytes); nothing was changed", limit))
			}
			return nil, badRequest("reading the snapshot from the request failed after %d bytes: %v; nothing was changed", offset+int64(n), err)
		}
		if final && offset+int64(n) == 0 {
			return nil, badRequest("the request body is empty; send a snapshot archive (drover operator snapshot save writes one)")
		}
		if final {
			// The body is read; the restore may take longer than the
			// idle bound, and a passed read deadline cancels the
			// request's context.
			_ = rc.SetReadDeadline(time.Time{})
		}
		req := structs.SnapshotRestoreRequest{ID: id, Offset: offset, Data: buf[:n], Final: final, Force: force,
			WriteRequest: structs.WriteRequest{AuthToken: token}}
		var resp structs.SnapshotRestoreResponse
		if err := a.RPC("Operator.SnapshotRestore", &req, &resp); err != nil {
			if !final {
				abort()
			}
			return nil, err
		}
		id, offset = resp.ID, resp.Received
		if final {
			if resp.Result == nil {
				return nil, fmt.Errorf("snapshot restore: the leader answered without a result")
			}
			return snapshotRestoreJSON{Index: resp.Index, SnapshotRestoreResult: *resp.Result}, nil
		}
		// buf is reused: the server writes a chunk to its file within
		// the call and keeps no reference to it.
	}
}
