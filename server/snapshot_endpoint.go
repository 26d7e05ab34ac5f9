package server

import (
	"github.com/droverhq/drover/structs"
)

// The snapshot RPCs (snapshot.go, snapshot_transfer.go). Every one of
// them needs a management token: a snapshot holds every namespace's
// jobs, the nodes' secrets and the ACL tokens' hashes, and a restore
// can replace all of them, ACL tokens included, so operator:write
// would be enough to make oneself a management token.

// SnapshotSave takes a snapshot and starts its transfer: the answer
// names it and gives the archive's size and metadata; SnapshotRead
// returns its chunks.
func (o *Operator) SnapshotSave(args *structs.SnapshotSaveRequest, reply *structs.SnapshotSaveResponse) error {
	if done, err := o.srv.forward("Operator.SnapshotSave", args, args, reply); done {
		return err
	}
	if _, err := o.srv.requireManagement(args.AuthToken, "Operator.SnapshotSave (drover operator snapshot save)"); err != nil {
		return err
	}
	meta, state, err := o.srv.openSnapshot()
	if err != nil {
		return err
	}
	st, err := o.srv.snapshots.startSave(args.AuthToken, meta, state)
	if err != nil {
		return err
	}
	reply.ID, reply.Size, reply.Meta = st.id, st.size, *meta
	reply.Index = meta.Index
	reply.KnownLeader = o.srv.LeaderAddr() != ""
	return nil
}

// SnapshotRead returns the next chunk of a save started by
// SnapshotSave with the same token (and the same AllowStale, so that
// it reaches the same server).
func (o *Operator) SnapshotRead(args *structs.SnapshotReadRequest, reply *structs.SnapshotReadResponse) error {
	if done, err := o.srv.forward("Operator.SnapshotRead", args, args, reply); done {
		return err
	}
	if _, err := o.srv.requireManagement(args.AuthToken, "Operator.SnapshotRead (drover operator snapshot save)"); err != nil {
		return err
	}
	resp, err := o.srv.snapshots.read(args.AuthToken, args.ID, args.Offset, args.Abort)
	if err != nil {
		return err
	}
	*reply = *resp
	return nil
}

// SnapshotRestore takes a chunk of an archive upload; the final chunk
// restores the archive (see SnapshotRestoreRequest).
func (o *Operator) SnapshotRestore(args *structs.SnapshotRestoreRequest, reply *structs.SnapshotRestoreResponse) error {
	if done, err := o.srv.forward("Operator.SnapshotRestore", args, args, reply); done {
		return err
	}
	if _, err := o.srv.requireManagement(args.AuthToken, "Operator.SnapshotRestore (drover operator snapshot restore)"); err != nil {
		return err
	}
	t := &o.srv.snapshots
	var u *uploadTransfer
	var err error
	if args.ID == "" {
		if args.Offset != 0 || args.Abort {
			return structs.NewError(structs.CodeInvalid, "a snapshot upload starts with a chunk at offset 0 and no ID")
		}
		dir, derr := o.srv.snapshotTempDir()
		if derr != nil {
			return derr
		}
		u, err = t.startUpload(args.AuthToken, dir)
	} else {
		u, err = t.lookupUpload(args.AuthToken, args.ID)
	}
	if err != nil {
		return err
	}
	if args.Abort {
		t.endUpload(u)
		return nil
	}
	u.timer.Reset(snapshotTransferIdle)
	u.mu.Lock()
	if err := u.appendChunkLocked(args.Offset, args.Data, o.srv.config.SnapshotMaxBytes); err != nil {
		u.mu.Unlock()
		t.endUpload(u)
		return err
	}
	reply.ID, reply.Received = u.id, u.received
	if !args.Final {
		u.mu.Unlock()
		return nil
	}
	// The restore may take longer than the idle timeout.
	u.timer.Stop()
	result, err := o.srv.restoreSnapshot(u.f, args.Force)
	u.mu.Unlock()
	t.endUpload(u)
	if err != nil {
		return err
	}
	o.srv.reassertLeadership()
	reply.Result = result
	reply.Index = o.srv.raft.LastIndex()
	return nil
}
