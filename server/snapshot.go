package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/fsm"
	"github.com/droverhq/drover/snapshot"
	"github.com/droverhq/drover/structs"
)

// Snapshots for operators: save, restore, and the scheduled ones.
//
// A save asks Raft for a user snapshot (raft.Snapshot: the FSM's
// Persist, written to Raft's snapshot store like any snapshot) and
// streams it, wrapped in the archive of package snapshot, to whoever
// asked. It runs on the leader after a barrier, so the snapshot holds
// every write acknowledged before it (or on any server with
// AllowStale, e.g. when the cluster has no leader).
//
// A restore runs on the leader only and changes nothing until the
// uploaded archive has passed every check: its layout and sums, the
// FSM snapshot decoding into a throwaway store, and the cluster check
// (restoreAllowed). The throwaway store is then written again as an
// FSM snapshot, with the cluster metadata to keep, and handed to
// raft.Restore, which installs it on the leader and, by leaving a gap
// in the log, on every follower. Raft panics if the FSM cannot restore
// what it was given; re-encoding what was decoded rules that out. The
// leader's components are then rebuilt from the new state
// (reassertLeadership).
//
// Saves hold restoreLock for reading while they take their snapshot,
// and a restore holds it for writing: the cluster ID a save names is
// the one its snapshot holds.

// DefaultSnapshotMaxBytes bounds a snapshot archive uploaded for a
// restore when the configuration sets no bound.
const DefaultSnapshotMaxBytes = 1 << 30

// snapshotRestoreTimeout bounds raft.Restore.
const snapshotRestoreTimeout = 2 * time.Minute

// openSnapshot has Raft take a snapshot and opens it: the archive's
// metadata and the FSM snapshot (state.bin) to stream, which the caller
// closes.
func (s *Server) openSnapshot() (*structs.SnapshotMeta, io.ReadCloser, error) {
	s.snapshots.restoreLock.RLock()
	defer s.snapshots.restoreLock.RUnlock()
	clusterID := s.ClusterID()
	if clusterID == "" {
		return nil, nil, structs.NewError(structs.CodeUnavailable, "the cluster has no ID yet (its first leader writes one as it starts); retry in a moment")
	}
	if s.IsLeader() {
		// Every entry committed before the request is in the snapshot.
		if err := s.raft.Barrier(raftApplyTimeout).Error(); err != nil {
			return nil, nil, structs.NewError(structs.CodeNoLeader, fmt.Sprintf("snapshot: the leader could not confirm its log: %v", err))
		}
	}
	start := time.Now()
	future := s.raft.Snapshot()
	if err := future.Error(); err != nil {
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return nil, nil, structs.NewError(structs.CodeUnavailable, "this server has applied nothing yet, so there is nothing to snapshot; retry in a moment")
		}
		return nil, nil, fmt.Errorf("take snapshot: %w", err)
	}
	meta, rc, err := future.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open snapshot: %w", err)
	}
	s.logger.Info("snapshot taken for an operator", "index", meta.Index, "term", meta.Term, "bytes", meta.Size, "duration", time.Since(start))
	return &structs.SnapshotMeta{
		ArchiveVersion: structs.SnapshotArchiveVersion,
		ClusterID:      clusterID,
		Index:          meta.Index,
		Term:           meta.Term,
		Time:           time.Now().UTC().Format(time.RFC3339Nano),
		DroverVersion:  s.config.Version,
		FSMVersion:     fsm.SnapshotVersion,
		StateSize:      meta.Size,
	}, rc, nil
}

// snapshotTempDir is where restores spool their uploads: the data dir,
// or the system's temp dir for a server that keeps nothing on disk.
func (s *Server) snapshotTempDir() (string, error) {
	if s.config.DataDir == "" {
		return os.TempDir(), nil
	}
	dir := filepath.Join(s.config.DataDir, "snapshot-restore")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	return dir, nil
}

// cleanSnapshotSpool removes what restores left in the data dir when
// the server stopped in the middle of one; no restore runs yet.
func (s *Server) cleanSnapshotSpool() {
	if s.config.DataDir == "" {
		return
	}
	dir := filepath.Join(s.config.DataDir, "snapshot-restore")
	for _, pattern := range []string{"restore-upload-*.tmp", "restore-state-*.tmp"} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, m := range matches {
			if err := os.Remove(m); err == nil {
				s.logger.Info("removed a snapshot restore's leftover file", "file", m)
			}
		}
	}
}

// restoreSnapshot checks the archive in f and, if it passes, restores
// it into the cluster. It runs on the leader.
func (s *Server) restoreSnapshot(f *os.File, force bool) (*structs.SnapshotRestoreResult, error) {
	if !s.IsLeader() {
		return nil, structs.NewError(structs.CodeNoLeader, "snapshot restore: this server no longer leads; upload the snapshot again")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	decoded, err := snapshot.Decode(f, s.config.SnapshotMaxBytes)
	switch {
	case errors.Is(err, snapshot.ErrTooLarge):
		return nil, structs.NewError(structs.CodeTooLarge, err.Error())
	case errors.Is(err, snapshot.ErrInvalid):
		return nil, structs.NewError(structs.CodeInvalid, err.Error()+"; nothing was changed")
	case err != nil:
		return nil, fmt.Errorf("read the uploaded snapshot: %w", err)
	}

	s.snapshots.restoreLock.Lock()
	defer s.snapshots.restoreLock.Unlock()
	result, keep, err := s.restoreAllowed(decoded, force)
	if err != nil {
		return nil, err
	}

	dir, err := s.snapshotTempDir()
	if err != nil {
		return nil, err
	}
	state, err := os.CreateTemp(dir, "restore-state-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("snapshot restore: %w", err)
	}
	defer func() {
		state.Close()
		os.Remove(state.Name())
	}()
	if err := fsm.WriteSnapshot(state, decoded.State, keep); err != nil {
		return nil, fmt.Errorf("snapshot restore: re-encode the state: %w", err)
	}
	size, err := state.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	if _, err := state.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: decoded.Meta.Index, Term: decoded.Meta.Term, Size: size}
	start := time.Now()
	if err := s.raft.Restore(meta, state, snapshotRestoreTimeout); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, structs.NewError(structs.CodeNoLeader, fmt.Sprintf("snapshot restore: leadership was lost: %v", err))
		}
		return nil, fmt.Errorf("snapshot restore: %w", err)
	}
	result.ClusterID = s.ClusterID()
	s.logger.Warn("restored a snapshot: the cluster state was replaced", "snapshot_index", decoded.Meta.Index,
		"snapshot_cluster", decoded.ClusterID(), "cluster", result.ClusterID, "forced", result.Forced, "adopted", result.Adopted,
		"duration", time.Since(start))
	return result, nil
}

// restoreAllowed decides whether decoded may replace the cluster's
// state, and which cluster metadata the restored state keeps (nil: the
// snapshot's own):
//
//   - a snapshot of this cluster: restored as it is;
//   - a cluster that holds nothing yet (state.HoldsClusterData): the
//     snapshot is restored as it is, cluster ID included: a cluster
//     rebuilt from a backup becomes the cluster it backs up, and
//     later snapshots of either match;
//   - a snapshot of another cluster, into a cluster that holds data:
//     refused (409) unless force, and then restored with this
//     cluster's own ID: the data is imported, the cluster stays
//     itself.
func (s *Server) restoreAllowed(decoded *snapshot.Decoded, force bool) (*structs.SnapshotRestoreResult, *structs.ClusterMeta, error) {
	result := &structs.SnapshotRestoreResult{Meta: *decoded.Meta}
	current, err := s.State().ClusterMeta()
	if err != nil {
		return nil, nil, err
	}
	snapID := decoded.ClusterID()
	if current != nil && current.ClusterID == snapID {
		return result, nil, nil
	}
	holds, err := s.State().HoldsClusterData()
	if err != nil {
		return nil, nil, err
	}
	if !holds {
		result.Adopted = true
		return result, nil, nil
	}
	ours := "no ID yet"
	if current != nil {
		ours = current.ClusterID
	}
	theirs := snapID
	if theirs == "" {
		theirs = "a cluster without an ID"
	}
	if !force {
		return nil, nil, structs.NewError(structs.CodeConflict, fmt.Sprintf(
			"the snapshot is of cluster %s, and this cluster is %s and holds data: restoring would replace this cluster's state with the other one's. "+
				"Restore it into a new cluster, or pass -force (?force=true) to replace the state anyway (this cluster keeps its ID); nothing was changed",
			theirs, ours))
	}
	result.Forced = true
	return result, current, nil
}

// reassertLeadership rebuilds the leader's components from the state
// after a restore replaced it: the eval broker, blocked evaluations and
// heartbeat timers held the old state's objects.
func (s *Server) reassertLeadership() {
	s.revokeLeadership()
	if s.IsLeader() && !s.isShutdown() {
		s.establishLeadership()
	}
}
