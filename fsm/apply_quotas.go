package fsm

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Quota entries. The leader writes only quota specs that pass
// QuotaSpec.Validate; an entry that does not is refused, never stored.
// Whether a spec may bind its namespace, or a spec may be deleted,
// depends on the state (namespaces and the other specs), so the state
// store decides it, in log order.

func (f *FSM) applyQuotaUpsert(buf []byte, index uint64) interface{} {
	var req structs.QuotaUpsertRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkQuotaUpsert(&req); err != nil {
		return refusal{err}
	}
	if err := f.State().UpsertQuotas(index, req.Quotas); err != nil {
		return err
	}
	// A raised (or new, or rebound) limit may let blocked evaluations
	// place what the old one refused.
	f.blocked.Unblock(index)
	return nil
}

func (f *FSM) applyQuotaDelete(buf []byte, index uint64) interface{} {
	var req structs.QuotaDeleteRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkQuotaDelete(&req); err != nil {
		return refusal{err}
	}
	if err := f.State().DeleteQuotas(index, req.Names); err != nil {
		return err
	}
	f.blocked.Unblock(index)
	return nil
}

// persistQuotas writes the quota records of a snapshot.
func (s *fsmSnapshot) persistQuotas(write func(SnapshotType, interface{}) error) error {
	quotas, err := s.snap.Quotas(nil)
	if err != nil {
		return err
	}
	for _, q := range quotas {
		if err := write(QuotaSnapshot, q); err != nil {
			return err
		}
	}
	return nil
}

// restoreQuota reads one quota record of a snapshot, held to the same
// check as a quota entry of the log.
func restoreQuota(r *state.Restore, dec *codec.Decoder) error {
	q := new(structs.QuotaSpec)
	if err := dec.Decode(q); err != nil {
		return fmt.Errorf("restore quota: %w", err)
	}
	if err := q.Validate(); err != nil {
		return fmt.Errorf("restore quota: %w", err)
	}
	return r.QuotaRestore(q)
}
