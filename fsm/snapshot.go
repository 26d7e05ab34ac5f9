package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// SnapshotType tags each record of an FSM snapshot. Append-only, like
// structs.MessageType.
type SnapshotType uint8

const (
	IndexSnapshot      SnapshotType = 0
	JobSnapshot        SnapshotType = 1
	JobVersionSnapshot SnapshotType = 2
	NodeSnapshot       SnapshotType = 3
	AllocSnapshot      SnapshotType = 4
	EvalSnapshot       SnapshotType = 5
	DeploymentSnapshot SnapshotType = 6
	SchedConfSnapshot  SnapshotType = 7
	// ACL records, from snapshot version 3.
	ACLPolicySnapshot    SnapshotType = 8
	ACLTokenSnapshot     SnapshotType = 9
	ACLBootstrapSnapshot SnapshotType = 10
	// Namespaces, from snapshot version 4.
	NamespaceSnapshot SnapshotType = 11
	// Quota specs, from snapshot version 4 (usage is derived from the
	// allocations on restore, not stored).
	QuotaSnapshot SnapshotType = 12
	// Service VIP allocations, within snapshot version 4 (see
	// snapshotVersion).
	ServiceVIPSnapshot SnapshotType = 13
	// The cluster's metadata (its ID), from snapshot version 5.
	ClusterMetaSnapshot SnapshotType = 14
	// Sealed variables and wrapped root keys, within snapshot version 5
	// (a snapshot without them restores with none).
	VariableSnapshot SnapshotType = 15
	RootKeySnapshot  SnapshotType = 16
)

// snapshotHeader opens every snapshot; Version lets a future format
// change be detected.
type snapshotHeader struct {
	Version   int
	LastIndex uint64
}

// snapshotVersion 2: placement score components are encoded as a list
// of {Name, Score} (structs.ScoreComponents), not a map. Version 1
// snapshots, and Raft logs written before that change, do not decode:
// such data directories are to be discarded (nothing was released).
//
// snapshotVersion 3 adds the ACL records (policies, tokens with the
// hash of their secret, the bootstrap marker). A version 2 snapshot is
// a version 3 snapshot without them and restores as such: a cluster
// upgraded from it starts with no ACL data, as it had none.
//
// snapshotVersion 4 adds namespaces: namespace records, and jobs, job
// versions, allocations, evaluations and deployments that carry their
// namespace. Version 2 and 3 snapshots restore with every such object
// in the default namespace (state.Restore puts them there) and the
// default namespace alone, which every new store has. Quota specs
// (QuotaSnapshot records) came within version 4 before its release;
// older snapshots, and version 4 snapshots without such records,
// restore with no quotas. Service VIP allocations (ServiceVIPSnapshot
// records) came the same way: a snapshot without them restores with
// none, and each vip gets an address at its job's next register.
//
// snapshotVersion 5 adds the cluster's metadata (a ClusterMetaSnapshot
// record, when the cluster has an ID). Older snapshots restore without
// one, and the next leader creates it. A version 5 snapshot of a
// cluster that had no ID yet has no such record either.
const snapshotVersion = 5

// SnapshotVersion is the version of the snapshots this FSM writes; the
// snapshot archive's metadata carries it.
const SnapshotVersion = snapshotVersion

// minSnapshotVersion is the oldest version Restore reads.
const minSnapshotVersion = 2

// Snapshot captures the state store. It is called on raft's FSM
// goroutine and must be fast: it only takes a memdb snapshot; the
// encoding happens in Persist on another goroutine.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.State().Snapshot()}, nil
}

type fsmSnapshot struct {
	snap *state.Snapshot
}

// Persist writes the snapshot: a header, then one record per object, each
// a SnapshotType byte followed by the msgpack object.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	defer metrics.MeasureSince([]string{"drover", "fsm", "persist"}, time.Now())
	if err := s.persist(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) persist(w io.Writer) error {
	return writeSnapshot(w, s.snap, nil)
}

// WriteSnapshot writes st in the FSM snapshot format, as Persist does,
// with meta as the cluster's metadata instead of st's own when meta is
// set. The server uses it to re-encode a snapshot it decoded before
// handing it to raft.Restore.
func WriteSnapshot(w io.Writer, st *state.StateStore, meta *structs.ClusterMeta) error {
	return writeSnapshot(w, st.Snapshot(), meta)
}

// writeSnapshot writes the header, then one record per object, each a
// SnapshotType byte followed by the msgpack object.
func writeSnapshot(w io.Writer, snap *state.Snapshot, meta *structs.ClusterMeta) error {
	s := &fsmSnapshot{snap: snap}
	bw := bufio.NewWriterSize(w, 256*1024)
	enc := codec.NewEncoder(bw, structs.MsgpackHandle)
	latest, err := s.snap.LatestIndex()
	if err != nil {
		return err
	}
	if err := enc.Encode(&snapshotHeader{Version: snapshotVersion, LastIndex: latest}); err != nil {
		return err
	}
	write := func(t SnapshotType, obj interface{}) error {
		if err := bw.WriteByte(byte(t)); err != nil {
			return err
		}
		return enc.Encode(obj)
	}

	indexes, err := s.snap.IndexEntries()
	if err != nil {
		return err
	}
	for _, e := range indexes {
		if err := write(IndexSnapshot, e); err != nil {
			return err
		}
	}
	jobs, err := s.snap.Jobs(nil)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if err := write(JobSnapshot, j); err != nil {
			return err
		}
	}
	versions, err := s.snap.JobVersions(nil)
	if err != nil {
		return err
	}
	for _, j := range versions {
		if err := write(JobVersionSnapshot, j); err != nil {
			return err
		}
	}
	nodes, err := s.snap.Nodes(nil)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := write(NodeSnapshot, n); err != nil {
			return err
		}
	}
	allocs, err := s.snap.Allocs(nil)
	if err != nil {
		return err
	}
	for _, a := range allocs {
		if err := write(AllocSnapshot, a); err != nil {
			return err
		}
	}
	evals, err := s.snap.Evals(nil)
	if err != nil {
		return err
	}
	for _, e := range evals {
		if err := write(EvalSnapshot, e); err != nil {
			return err
		}
	}
	deployments, err := s.snap.Deployments(nil)
	if err != nil {
		return err
	}
	for _, d := range deployments {
		if err := write(DeploymentSnapshot, d); err != nil {
			return err
		}
	}
	confs, err := s.snap.SchedulerConfigs()
	if err != nil {
		return err
	}
	for _, c := range confs {
		if err := write(SchedConfSnapshot, c); err != nil {
			return err
		}
	}
	if err := s.persistACL(write); err != nil {
		return err
	}
	if err := s.persistNamespaces(write); err != nil {
		return err
	}
	if err := s.persistQuotas(write); err != nil {
		return err
	}
	vips, err := s.snap.ServiceVIPs(nil)
	if err != nil {
		return err
	}
	for _, v := range vips {
		if err := write(ServiceVIPSnapshot, v); err != nil {
			return err
		}
	}
	if meta == nil {
		if meta, err = s.snap.ClusterMeta(); err != nil {
			return err
		}
	}
	if meta != nil {
		if err := write(ClusterMetaSnapshot, meta); err != nil {
			return err
		}
	}
	if err := s.persistVariables(write); err != nil {
		return err
	}
	return bw.Flush()
}

// Release is a no-op: a memdb snapshot holds no resources.
func (s *fsmSnapshot) Release() {}

// Restore replaces the state store with the snapshot's contents. Raft
// calls it with no concurrent Apply; readers holding the old store see
// its AbandonCh close and re-read.
//
// A snapshot that does not decode is an error, never a panic: raft
// reports it (and refuses to start from it, or to install it) and the
// current state is kept. A panic from decoding is recovered into that
// error as a last resort; the fresh store it was filling is dropped.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	fresh, _, err := readSnapshot(rc)
	if err != nil {
		var p *restorePanic
		if errors.As(err, &p) {
			f.recoveredPanics.Add(1)
			f.logger.Error("snapshot restore panicked; keeping the current state", "panic", p.value, "stack", string(p.stack))
			return err
		}
		f.logger.Error("snapshot restore failed; keeping the current state", "error", err)
		return err
	}
	// Events from before the snapshot cannot be told apart from events
	// never seen: a stream resuming from before it gets 410 Gone.
	restoredAt, _ := fresh.LatestIndex()
	fresh.SetEventSink(f.events)
	f.stateLock.Lock()
	old := f.state
	f.state = fresh
	f.stateLock.Unlock()
	f.events.Reset(restoredAt)
	old.Abandon()
	return nil
}

// SnapshotInfo is what an FSM snapshot's header says.
type SnapshotInfo struct {
	// Version is the snapshot format version.
	Version int
	// LastIndex is the latest index of the state it holds.
	LastIndex uint64
}

// ReadSnapshot decodes an FSM snapshot into a new state store, as
// Restore would, without touching any FSM: snapshot inspection and the
// checks before a restore decode into a throwaway store with it. A
// snapshot that does not decode is an error, never a panic.
func ReadSnapshot(r io.Reader) (*state.StateStore, SnapshotInfo, error) {
	return readSnapshot(r)
}

// restorePanic is the error of a restore whose decoding panicked: a
// corrupt snapshot that a check should have refused.
type restorePanic struct {
	value interface{}
	stack []byte
}

func (p *restorePanic) Error() string {
	return fmt.Sprintf("restore: the snapshot is corrupt (decoding it panicked: %v)", p.value)
}

func readSnapshot(r io.Reader) (st *state.StateStore, info SnapshotInfo, err error) {
	st = state.NewStateStore()
	defer func() {
		if p := recover(); p != nil {
			st = nil
			err = &restorePanic{value: p, stack: debug.Stack()}
		}
	}()
	info, err = restoreInto(st, r)
	if err != nil {
		return nil, info, err
	}
	return st, info, nil
}

func restoreInto(st *state.StateStore, r io.Reader) (SnapshotInfo, error) {
	br := bufio.NewReaderSize(r, 256*1024)
	dec := codec.NewDecoder(br, structs.MsgpackHandle)
	var header snapshotHeader
	if err := dec.Decode(&header); err != nil {
		return SnapshotInfo{}, fmt.Errorf("restore: read header: %w", err)
	}
	info := SnapshotInfo{Version: header.Version, LastIndex: header.LastIndex}
	if header.Version < minSnapshotVersion || header.Version > snapshotVersion {
		return info, fmt.Errorf("restore: unsupported snapshot version %d (this server reads %d to %d)", header.Version, minSnapshotVersion, snapshotVersion)
	}
	restore := st.Restore()
	defer restore.Abort()
	for {
		b, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, fmt.Errorf("restore: %w", err)
		}
		if err := restoreRecord(restore, dec, SnapshotType(b), header.Version); err != nil {
			return info, err
		}
	}
	return info, restore.Commit()
}

func restoreRecord(r *state.Restore, dec *codec.Decoder, t SnapshotType, version int) error {
	switch t {
	case IndexSnapshot:
		e := new(state.IndexEntry)
		if err := dec.Decode(e); err != nil {
			return fmt.Errorf("restore index: %w", err)
		}
		return r.IndexRestore(e)
	case JobSnapshot:
		j := new(structs.Job)
		if err := dec.Decode(j); err != nil {
			return fmt.Errorf("restore job: %w", err)
		}
		return r.JobRestore(j)
	case JobVersionSnapshot:
		j := new(structs.Job)
		if err := dec.Decode(j); err != nil {
			return fmt.Errorf("restore job version: %w", err)
		}
		return r.JobVersionRestore(j)
	case NodeSnapshot:
		n := new(structs.Node)
		if err := dec.Decode(n); err != nil {
			return fmt.Errorf("restore node: %w", err)
		}
		return r.NodeRestore(n)
	case AllocSnapshot:
		a := new(structs.Allocation)
		if err := dec.Decode(a); err != nil {
			return fmt.Errorf("restore alloc: %w", err)
		}
		return r.AllocRestore(a)
	case EvalSnapshot:
		e := new(structs.Evaluation)
		if err := dec.Decode(e); err != nil {
			return fmt.Errorf("restore eval: %w", err)
		}
		return r.EvalRestore(e)
	case DeploymentSnapshot:
		d := new(structs.Deployment)
		if err := dec.Decode(d); err != nil {
			return fmt.Errorf("restore deployment: %w", err)
		}
		return r.DeploymentRestore(d)
	case SchedConfSnapshot:
		c := new(structs.SchedulerConfiguration)
		if err := dec.Decode(c); err != nil {
			return fmt.Errorf("restore scheduler config: %w", err)
		}
		return r.SchedulerConfigRestore(c)
	case ACLPolicySnapshot, ACLTokenSnapshot, ACLBootstrapSnapshot:
		return restoreACLRecord(r, dec, t)
	case NamespaceSnapshot:
		return restoreNamespace(r, dec)
	case QuotaSnapshot:
		return restoreQuota(r, dec)
	case ServiceVIPSnapshot:
		v := new(structs.ServiceVIPAllocation)
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("restore service vip: %w", err)
		}
		return r.ServiceVIPRestore(v)
	case VariableSnapshot, RootKeySnapshot:
		return restoreVariableRecord(r, dec, t)
	case ClusterMetaSnapshot:
		if version < 5 {
			break
		}
		return restoreClusterMeta(r, dec)
	}
	return fmt.Errorf("restore: unknown snapshot record type %d; the snapshot was written by a newer Drover", t)
}
