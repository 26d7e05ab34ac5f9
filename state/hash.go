package state

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/droverhq/drover/structs"
)

// Hash fingerprints the store: for every table, a SHA-256 over its
// objects in ID order, each encoded as canonical msgpack. Two stores that
// applied the same log up to the same index have the same hashes; the
// chaos tests compare servers with it. It also returns the latest index.
func (s *StateStore) Hash() (uint64, map[string]string, error) {
	txn := s.db.Txn(false)
	out := make(map[string]string, len(Tables))
	for _, table := range Tables {
		iter, err := txn.Get(table, "id")
		if err != nil {
			return 0, nil, fmt.Errorf("hash %s: %w", table, err)
		}
		h := sha256.New()
		enc := codec.NewEncoder(h, structs.MsgpackHandle)
		for raw := iter.Next(); raw != nil; raw = iter.Next() {
			if err := enc.Encode(raw); err != nil {
				return 0, nil, fmt.Errorf("hash %s: %w", table, err)
			}
		}
		out[table] = hex.EncodeToString(h.Sum(nil))
	}
	latest, err := s.LatestIndex()
	return latest, out, err
}
