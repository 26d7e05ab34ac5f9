package structs

import (
	"hash/fnv"

	uuid "github.com/hashicorp/go-uuid"
)

// GenerateUUID returns a random version-4 style identifier. It is called
// on the leader (never inside FSM apply) when IDs are stamped into a
// request.
func GenerateUUID() string {
	id, err := uuid.GenerateUUID()
	if err != nil {
		// crypto/rand failing means the machine cannot be trusted to
		// generate anything; there is no meaningful recovery.
		panic(err)
	}
	return id
}

// SeedFromID derives a deterministic random seed from an identifier, so
// that a scheduler run for an evaluation can be replayed exactly.
func SeedFromID(id string) int64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int64(h.Sum64())
}
