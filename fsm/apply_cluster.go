package fsm

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// applyClusterMeta creates the cluster's metadata. The first entry
// wins: a later one (a second leader racing the first) changes nothing
// and is not an error, so every server keeps the same ID.
func (f *FSM) applyClusterMeta(buf []byte, index uint64) interface{} {
	var req structs.ClusterMetaRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := structs.ValidateClusterID(req.Meta.ClusterID); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().CreateClusterMeta(index, &req.Meta))
}

// restoreClusterMeta reads the cluster metadata record of a snapshot,
// held to the same check as the log entry.
func restoreClusterMeta(r *state.Restore, dec *codec.Decoder) error {
	m := new(structs.ClusterMeta)
	if err := dec.Decode(m); err != nil {
		return fmt.Errorf("restore cluster meta: %w", err)
	}
	if err := structs.ValidateClusterID(m.ClusterID); err != nil {
		return fmt.Errorf("restore cluster meta: %w", err)
	}
	return r.ClusterMetaRestore(m)
}
