package fsm

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Variable and root key entries. The leader seals a variable before it
// writes the entry, so neither the log nor a snapshot ever holds an
// item in the clear; the FSM only checks the entry's shape and decides
// check-and-set in log order.

func (f *FSM) applyVariable(buf []byte, index uint64) interface{} {
	var req structs.VariableApplyRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkVariableApply(&req); err != nil {
		return refusal{err}
	}
	resp, err := f.State().VariableApply(index, &req)
	if err != nil {
		return err
	}
	return resp
}

// checkVariableApply refuses an entry no leader writes: an unknown
// operation, a bad path, a set without ciphertext or key.
func checkVariableApply(req *structs.VariableApplyRequest) error {
	if req.Var == nil {
		return fmt.Errorf("variable entry without a variable")
	}
	if err := structs.ValidateVariablePath(req.Var.Path); err != nil {
		return err
	}
	switch req.Op {
	case structs.VarOpSet, structs.VarOpCAS:
		if req.Var.KeyID == "" || len(req.Var.Data) == 0 {
			return fmt.Errorf("variable %q: a write needs a key ID and ciphertext", req.Var.Path)
		}
		// Sealed items are at most the limit plus per-item and AEAD
		// overhead; anything far above is not from a leader.
		if len(req.Var.Data) > 2*structs.MaxVariableSize+64*structs.MaxVariableItems+1024 {
			return fmt.Errorf("variable %q: ciphertext of %d bytes is over the limit", req.Var.Path, len(req.Var.Data))
		}
	case structs.VarOpDelete, structs.VarOpDeleteCAS:
	default:
		return fmt.Errorf("unknown variable operation %q", req.Op)
	}
	return nil
}

func (f *FSM) applyRootKeyUpsert(buf []byte, index uint64) interface{} {
	var req structs.RootKeyUpsertRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if len(req.Keys) == 0 || len(req.Keys) > 16 {
		return refusal{fmt.Errorf("root key entry with %d keys", len(req.Keys))}
	}
	for _, k := range req.Keys {
		if k == nil {
			return refusal{fmt.Errorf("root key entry with a nil key")}
		}
	}
	return f.State().UpsertRootKeys(index, req.Keys)
}

func (f *FSM) applyRootKeyDelete(buf []byte, index uint64) interface{} {
	var req structs.RootKeyDeleteRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if len(req.KeyIDs) == 0 || len(req.KeyIDs) > 64 {
		return refusal{fmt.Errorf("root key delete entry with %d keys", len(req.KeyIDs))}
	}
	return f.State().DeleteRootKeys(index, req.KeyIDs)
}

// persistVariables writes the sealed variables and wrapped root keys of
// a snapshot.
func (s *fsmSnapshot) persistVariables(write func(SnapshotType, interface{}) error) error {
	keys, err := s.snap.RootKeys(nil)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := write(RootKeySnapshot, k); err != nil {
			return err
		}
	}
	var werr error
	err = s.snap.VariablesByPrefix(nil, structs.AllNamespaces, "", func(v *structs.VariableEncrypted) bool {
		werr = write(VariableSnapshot, v)
		return werr == nil
	})
	if err != nil {
		return err
	}
	return werr
}

// restoreVariableRecord reads a variable or root key record.
func restoreVariableRecord(r *state.Restore, dec *codec.Decoder, t SnapshotType) error {
	if t == RootKeySnapshot {
		k := new(structs.RootKey)
		if err := dec.Decode(k); err != nil {
			return fmt.Errorf("restore root key: %w", err)
		}
		if k.KeyID == "" || len(k.Wrapped) == 0 {
			return fmt.Errorf("restore root key: key %q has no wrapped material", k.KeyID)
		}
		return r.RootKeyRestore(k)
	}
	v := new(structs.VariableEncrypted)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("restore variable: %w", err)
	}
	if err := structs.ValidateVariablePath(v.Path); err != nil {
		return fmt.Errorf("restore variable: %w", err)
	}
	return r.VariableRestore(v)
}
