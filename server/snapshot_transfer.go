package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/droverhq/drover/snapshot"
	"github.com/droverhq/drover/structs"
)

// Snapshot transfers.
//
// Archives can be large (up to a gigabyte by default), and Drover's RPC
// is request and response, so an archive crosses between the agent
// that serves the HTTP request and the server that takes or restores
// the snapshot in chunks of snapshotChunkSize, over ordinary RPCs: they
// are forwarded to the leader like any other, work in process and over
// the network, and need no protocol of their own. The server keeps one
// transfer per save or upload, named by a random ID, bound to the hash
// of the token that started it, and dropped when it ends, on error, or
// after snapshotTransferIdle without a chunk.
//
// A save is an archive being written into a pipe by a goroutine
// (snapshot.Write over Raft's snapshot file); each SnapshotRead takes
// the next chunk from the pipe. An upload is a temp file in the data
// dir that each SnapshotRestore chunk appends to; the final chunk
// restores it (restoreSnapshot). Chunks go in order: a chunk whose
// offset is not where the transfer is refuses the transfer, since a
// retried chunk of unknown outcome cannot be told from a lost one.

// Bounds on snapshot transfers.
const (
	// snapshotChunkSize is the size of a chunk of a save.
	snapshotChunkSize = 1 << 20
	// maxSnapshotChunk bounds a chunk of an upload.
	maxSnapshotChunk = 4 << 20
	// maxSnapshotSaves bounds the saves in progress on one server; one
	// upload at a time is allowed.
	maxSnapshotSaves = 2
)

// snapshotTransferIdle drops a transfer that got no chunk for this
// long (a variable for tests).
var snapshotTransferIdle = time.Minute

// snapshotTransfers holds a server's transfers. The zero value is ready.
type snapshotTransfers struct {
	// restoreLock orders saves against restores (snapshot.go).
	restoreLock sync.RWMutex

	// mu guards saves, upload and closed.
	mu     sync.Mutex
	saves  map[string]*saveTransfer
	upload *uploadTransfer
	closed bool
}

// tokenHash is what a transfer keeps of the token that started it.
func tokenHash(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// transferNotFound is the error for a transfer that is not (or no
// longer) on this server.
func transferNotFound(kind, id string) error {
	return structs.NewError(structs.CodeNotFound, fmt.Sprintf(
		"no snapshot %s %q on this server: it ended, expired after %s without a chunk, or leadership moved; start again",
		kind, truncateID(id), snapshotTransferIdle))
}

func truncateID(id string) string {
	if len(id) > 64 {
		return id[:64] + "..."
	}
	return id
}

// saveTransfer is a snapshot archive being read out.
type saveTransfer struct {
	id    string
	token [32]byte
	size  int64
	timer *time.Timer

	// mu serializes reads; it guards pr and offset.
	mu     sync.Mutex
	pr     *io.PipeReader
	offset int64
}

// startSave registers a save of the archive of meta over state (which
// it closes) and starts writing it.
func (t *snapshotTransfers) startSave(secret string, meta *structs.SnapshotMeta, state io.ReadCloser) (*saveTransfer, error) {
	size, err := snapshot.Size(meta)
	if err != nil {
		state.Close()
		return nil, err
	}
	pr, pw := io.Pipe()
	st := &saveTransfer{id: structs.GenerateUUID(), token: tokenHash(secret), size: size, pr: pr}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		state.Close()
		return nil, structs.NewError(structs.CodeUnavailable, "the server is shutting down")
	}
	if len(t.saves) >= maxSnapshotSaves {
		t.mu.Unlock()
		state.Close()
		return nil, structs.NewError(structs.CodeTooManyRequests, fmt.Sprintf("%d snapshot saves are already in progress on this server; retry when one has finished", len(t.saves)))
	}
	if t.saves == nil {
		t.saves = make(map[string]*saveTransfer)
	}
	t.saves[st.id] = st
	st.timer = time.AfterFunc(snapshotTransferIdle, func() { t.endSave(st, errors.New("snapshot save expired")) })
	t.mu.Unlock()

	go func() {
		defer state.Close()
		_, err := snapshot.Write(pw, meta, state)
		pw.CloseWithError(err)
	}()
	return st, nil
}

// endSave drops a save and stops its writer.
func (t *snapshotTransfers) endSave(st *saveTransfer, reason error) {
	t.mu.Lock()
	if t.saves[st.id] == st {
		delete(t.saves, st.id)
	}
	t.mu.Unlock()
	st.timer.Stop()
	st.pr.CloseWithError(reason)
}

// read returns the next chunk of save id, which must start at offset,
// or drops the save with abort.
func (t *snapshotTransfers) read(secret, id string, offset int64, abort bool) (*structs.SnapshotReadResponse, error) {
	t.mu.Lock()
	st := t.saves[id]
	t.mu.Unlock()
	if st == nil {
		return nil, transferNotFound("save", id)
	}
	want := tokenHash(secret)
	if subtle.ConstantTimeCompare(want[:], st.token[:]) != 1 {
		return nil, structs.NewError(structs.CodePermission, "permission denied: this snapshot save was started with another token")
	}
	if abort {
		t.endSave(st, errors.New("snapshot save aborted by its reader"))
		return &structs.SnapshotReadResponse{EOF: true}, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if offset != st.offset {
		t.endSave(st, errors.New("snapshot save read out of order"))
		return nil, structs.NewError(structs.CodeInvalid, fmt.Sprintf("snapshot save %s: chunk asked at offset %d, but %d bytes were read; the save is dropped, start again", id, offset, st.offset))
	}
	st.timer.Reset(snapshotTransferIdle)
	buf := make([]byte, min(int64(snapshotChunkSize), st.size-st.offset))
	n, err := io.ReadFull(st.pr, buf)
	st.offset += int64(n)
	if err != nil {
		t.endSave(st, err)
		return nil, fmt.Errorf("snapshot save %s: writing the archive failed after %d bytes: %w", id, st.offset, err)
	}
	resp := &structs.SnapshotReadResponse{Data: buf[:n]}
	if st.offset == st.size {
		resp.EOF = true
		t.endSave(st, io.EOF)
	}
	return resp, nil
}

// uploadTransfer is a snapshot archive being uploaded for a restore.
type uploadTransfer struct {
	id    string
	token [32]byte
	timer *time.Timer

	// mu serializes chunks; it guards f, received and done.
	mu       sync.Mutex
	f        *os.File
	received int64
	done     bool
}

// startUpload registers the one upload a server takes at a time.
func (t *snapshotTransfers) startUpload(secret, dir string) (*uploadTransfer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, structs.NewError(structs.CodeUnavailable, "the server is shutting down")
	}
	if t.upload != nil {
		return nil, structs.NewError(structs.CodeConflict, fmt.Sprintf(
			"another snapshot restore is being uploaded or restored on the leader; retry when it has finished (an abandoned one is dropped after %s without a chunk)", snapshotTransferIdle))
	}
	f, err := os.CreateTemp(dir, "restore-upload-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("snapshot restore: %w", err)
	}
	u := &uploadTransfer{id: structs.GenerateUUID(), token: tokenHash(secret), f: f}
	u.timer = time.AfterFunc(snapshotTransferIdle, func() { t.endUpload(u) })
	t.upload = u
	return u, nil
}

// endUpload drops an upload and its file. A chunk in progress (the
// restore itself) finishes first.
func (t *snapshotTransfers) endUpload(u *uploadTransfer) {
	t.mu.Lock()
	if t.upload == u {
		t.upload = nil
	}
	t.mu.Unlock()
	u.timer.Stop()
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.done {
		u.done = true
		u.f.Close()
		os.Remove(u.f.Name())
	}
}

// lookupUpload returns upload id, checked against the caller's token.
func (t *snapshotTransfers) lookupUpload(secret, id string) (*uploadTransfer, error) {
	t.mu.Lock()
	u := t.upload
	t.mu.Unlock()
	if u == nil || u.id != id {
		return nil, transferNotFound("upload", id)
	}
	want := tokenHash(secret)
	if subtle.ConstantTimeCompare(want[:], u.token[:]) != 1 {
		return nil, structs.NewError(structs.CodePermission, "permission denied: this snapshot upload was started with another token")
	}
	return u, nil
}

// appendChunk writes data at offset; limit bounds the upload's size.
// The caller holds u.mu.
func (u *uploadTransfer) appendChunkLocked(offset int64, data []byte, limit int64) error {
	if u.done {
		return transferNotFound("upload", u.id)
	}
	if offset != u.received {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("snapshot upload %s: chunk at offset %d, but %d bytes were received; the upload is dropped, start again", u.id, offset, u.received))
	}
	if len(data) > maxSnapshotChunk {
		return structs.NewError(structs.CodeTooLarge, fmt.Sprintf("snapshot upload chunk of %d bytes; at most %d are accepted", len(data), maxSnapshotChunk))
	}
	if u.received+int64(len(data)) > limit {
		return structs.NewError(structs.CodeTooLarge, fmt.Sprintf("the snapshot is larger than the limit of %d bytes (limits.snapshot_max_bytes); nothing was changed", limit))
	}
	if _, err := u.f.Write(data); err != nil {
		return fmt.Errorf("snapshot upload: %w", err)
	}
	u.received += int64(len(data))
	return nil
}

// closeAll drops every transfer; the server is shutting down.
func (t *snapshotTransfers) closeAll() {
	t.mu.Lock()
	t.closed = true
	saves := make([]*saveTransfer, 0, len(t.saves))
	for _, st := range t.saves {
		saves = append(saves, st)
	}
	upload := t.upload
	t.mu.Unlock()
	for _, st := range saves {
		t.endSave(st, errors.New("the server is shutting down"))
	}
	if upload != nil {
		// Not waited for: a restore in progress holds the upload until
		// Raft, which shuts down after this, makes it return.
		go t.endUpload(upload)
	}
}
