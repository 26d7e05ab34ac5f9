package fsm

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// ACL entries. The leader writes tokens with only the hash of their
// secret (structs.ACLToken has no field for the secret), and checks each
// entry's shape first (check.go), so a malformed entry from elsewhere is
// refused, never stored or panicked on.

func (f *FSM) applyACLPolicyUpsert(buf []byte, index uint64) interface{} {
	var req structs.ACLPolicyUpsertRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkACLPolicyUpsert(&req); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().UpsertACLPolicies(index, req.Policies))
}

func (f *FSM) applyACLPolicyDelete(buf []byte, index uint64) interface{} {
	var req structs.ACLPolicyDeleteRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkACLNames("Names", req.Names); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().DeleteACLPolicies(index, req.Names))
}

func (f *FSM) applyACLTokenUpsert(buf []byte, index uint64) interface{} {
	var req structs.ACLTokenUpsertRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkACLTokens("Tokens", req.Tokens); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().UpsertACLTokens(index, req.Tokens))
}

func (f *FSM) applyACLTokenDelete(buf []byte, index uint64) interface{} {
	var req structs.ACLTokenDeleteRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkACLNames("AccessorIDs", req.AccessorIDs); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().DeleteACLTokens(index, req.AccessorIDs))
}

func (f *FSM) applyACLTokenBootstrap(buf []byte, index uint64) interface{} {
	var req structs.ACLBootstrapRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkACLBootstrap(&req); err != nil {
		return refusal{err}
	}
	err := f.State().BootstrapACLToken(index, req.Token)
	var done *state.ACLBootstrappedError
	if errors.As(err, &done) {
		// A second bootstrap is an answer for the caller, not a broken
		// entry: two bootstrap requests may race through the leader.
		return structs.NewError(structs.CodeConflict, done.Error())
	}
	return errOrNil(err)
}

// persistACL writes the ACL records of a snapshot.
func (s *fsmSnapshot) persistACL(write func(SnapshotType, interface{}) error) error {
	policies, err := s.snap.ACLPolicies(nil)
	if err != nil {
		return err
	}
	for _, p := range policies {
		if err := write(ACLPolicySnapshot, p); err != nil {
			return err
		}
	}
	tokens, err := s.snap.ACLTokens(nil)
	if err != nil {
		return err
	}
	for _, t := range tokens {
		if err := write(ACLTokenSnapshot, t); err != nil {
			return err
		}
	}
	markers, err := s.snap.ACLBootstrapMarkers()
	if err != nil {
		return err
	}
	for _, m := range markers {
		if err := write(ACLBootstrapSnapshot, m); err != nil {
			return err
		}
	}
	return nil
}

// restoreACLRecord reads one ACL record of a snapshot. A token is held
// to the same shape check as a token entry of the log.
func restoreACLRecord(r *state.Restore, dec *codec.Decoder, t SnapshotType) error {
	switch t {
	case ACLPolicySnapshot:
		p := new(structs.ACLPolicy)
		if err := dec.Decode(p); err != nil {
			return fmt.Errorf("restore acl policy: %w", err)
		}
		return r.ACLPolicyRestore(p)
	case ACLTokenSnapshot:
		tok := new(structs.ACLToken)
		if err := dec.Decode(tok); err != nil {
			return fmt.Errorf("restore acl token: %w", err)
		}
		if err := tok.ValidateShape(); err != nil {
			return fmt.Errorf("restore acl token: %w", err)
		}
		return r.ACLTokenRestore(tok)
	case ACLBootstrapSnapshot:
		m := new(state.ACLBootstrapMarker)
		if err := dec.Decode(m); err != nil {
			return fmt.Errorf("restore acl bootstrap marker: %w", err)
		}
		return r.ACLBootstrapRestore(m)
	}
	return fmt.Errorf("restore: snapshot record type %d is not an ACL record", t)
}
