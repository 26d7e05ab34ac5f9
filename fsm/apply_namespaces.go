package fsm

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Namespace entries. The leader writes only namespaces that pass
// Namespace.Validate; an entry that does not (a hostile or broken peer,
// a corrupt log) is refused, never stored. Whether a namespace may be
// deleted (not the default one, no jobs left in it) depends on the
// state, so the state store decides it, in log order: a job registered
// into the namespace just before its deletion commits keeps it alive.

func (f *FSM) applyNamespaceUpsert(buf []byte, index uint64) interface{} {
	var req structs.NamespaceUpsertRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkNamespaceUpsert(&req); err != nil {
		return refusal{err}
	}
	if err := f.State().UpsertNamespaces(index, req.Namespaces); err != nil {
		return err
	}
	// A namespace bound to another quota (or to none) may now fit what
	// its blocked evaluations could not place.
	f.blocked.Unblock(index)
	return nil
}

func (f *FSM) applyNamespaceDelete(buf []byte, index uint64) interface{} {
	var req structs.NamespaceDeleteRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkNamespaceDelete(&req); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().DeleteNamespaces(index, req.Names))
}

func checkNamespaceUpsert(req *structs.NamespaceUpsertRequest) error {
	if len(req.Namespaces) == 0 {
		return fmt.Errorf("Namespaces is empty")
	}
	if err := checkNotNil("Namespaces", req.Namespaces); err != nil {
		return err
	}
	seen := make(map[string]int, len(req.Namespaces))
	for i, ns := range req.Namespaces {
		if err := ns.Validate(); err != nil {
			return fmt.Errorf("Namespaces[%d]: %w", i, err)
		}
		if prev, dup := seen[ns.Name]; dup {
			return fmt.Errorf("Namespaces[%d]: namespace %q is also Namespaces[%d]", i, ns.Name, prev)
		}
		seen[ns.Name] = i
	}
	return nil
}

func checkNamespaceDelete(req *structs.NamespaceDeleteRequest) error {
	if len(req.Names) == 0 {
		return fmt.Errorf("Names is empty")
	}
	for i, name := range req.Names {
		if err := structs.ValidateNamespaceName(name); err != nil {
			return fmt.Errorf("Names[%d]: %w", i, err)
		}
	}
	return nil
}

// persistNamespaces writes the namespace records of a snapshot (the
// default namespace among them).
func (s *fsmSnapshot) persistNamespaces(write func(SnapshotType, interface{}) error) error {
	namespaces, err := s.snap.Namespaces(nil)
	if err != nil {
		return err
	}
	for _, ns := range namespaces {
		if err := write(NamespaceSnapshot, ns); err != nil {
			return err
		}
	}
	return nil
}

// restoreNamespace reads one namespace record of a snapshot, held to
// the same check as a namespace entry of the log.
func restoreNamespace(r *state.Restore, dec *codec.Decoder) error {
	ns := new(structs.Namespace)
	if err := dec.Decode(ns); err != nil {
		return fmt.Errorf("restore namespace: %w", err)
	}
	if err := ns.Validate(); err != nil {
		return fmt.Errorf("restore namespace: %w", err)
	}
	return r.NamespaceRestore(ns)
}
