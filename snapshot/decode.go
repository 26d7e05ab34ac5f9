package snapshot

import (
	"errors"
	"fmt"
	"io"

	"github.com/droverhq/drover/fsm"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Decoded is a checked archive with its state decoded.
type Decoded struct {
	Meta *structs.SnapshotMeta
	// FSM is what the FSM snapshot's header says.
	FSM fsm.SnapshotInfo
	// State is a throwaway store holding the snapshot's state; it is
	// nobody's FSM store.
	State *state.StateStore
}

// ClusterID is the cluster ID the decoded state holds ("" for none).
func (d *Decoded) ClusterID() string {
	if m, _ := d.State.ClusterMeta(); m != nil {
		return m.ClusterID
	}
	return ""
}

// Decode reads the archive as Read does and decodes state.bin with the
// FSM's restore code into a new store, as it streams (state.bin is not
// held in memory or on disk). It also checks that the parts agree: the
// cluster ID and FSM version of meta.json are those of state.bin, whose
// latest index is not past the snapshot's. Every refusal wraps
// ErrInvalid or ErrTooLarge.
func Decode(r io.Reader, limit int64) (*Decoded, error) {
	pr, pw := io.Pipe()
	type decoded struct {
		st   *state.StateStore
		info fsm.SnapshotInfo
		err  error
	}
	done := make(chan decoded, 1)
	go func() {
		st, info, err := fsm.ReadSnapshot(pr)
		if err == nil {
			// The decoder stops at the end of its records; anything
			// after them is not part of a snapshot it wrote.
			if n, _ := io.Copy(io.Discard, pr); n > 0 {
				err = fmt.Errorf("%d bytes follow the last record", n)
			}
		}
		// Unblock Read's writes if decoding stopped early.
		pr.CloseWithError(errDecodeStopped)
		done <- decoded{st, info, err}
	}()
	meta, readErr := Read(r, limit, pw)
	pw.CloseWithError(readErr)
	d := <-done
	if readErr != nil && !errors.Is(readErr, errDecodeStopped) {
		return nil, readErr
	}
	if d.err != nil {
		return nil, invalid("%s does not decode: %v", StateName, d.err)
	}
	if readErr != nil {
		return nil, invalid("%s does not decode", StateName)
	}
	out := &Decoded{Meta: meta, FSM: d.info, State: d.st}
	if got := out.ClusterID(); got != meta.ClusterID {
		return nil, invalid("%s names cluster %q but %s holds cluster %q", MetaName, meta.ClusterID, StateName, got)
	}
	if d.info.Version != meta.FSMVersion {
		return nil, invalid("%s says FSM snapshot version %d but %s is version %d", MetaName, meta.FSMVersion, StateName, d.info.Version)
	}
	if d.info.LastIndex > meta.Index {
		return nil, invalid("%s holds state up to index %d, past the snapshot's index %d", StateName, d.info.LastIndex, meta.Index)
	}
	return out, nil
}

// errDecodeStopped is what Read sees when the decoder stopped reading.
var errDecodeStopped = errors.New("the FSM snapshot decoder stopped reading")

// Rows returns the decoded state's row count for every table.
func (d *Decoded) Rows() (map[string]int, error) { return d.State.RowCounts() }
