package server

import (
	"sync"

	"github.com/droverhq/drover/structs"
)

// BlockedEvals holds evaluations that could not place everything for
// lack of capacity, one per job, and re-enqueues them into the eval
// broker when capacity may have freed up: a node became ready, or
// allocations stopped or finished (the FSM calls Unblock after such
// writes).
//
// A job has at most one blocked evaluation. When a newer one arrives, or
// a later evaluation of the job placed everything (Untrack), the old one
// is superseded and handed to the leader to be marked canceled, so it
// does not linger as "blocked" in the state store.
//
// Like the broker, it is enabled only on the leader.
type BlockedEvals struct {
	broker *EvalBroker

	// l guards every field below.
	l       sync.Mutex
	enabled bool
	// byJob is keyed by (namespace, job ID): job IDs repeat across
	// namespaces, and two jobs must not supersede each other.
	byJob map[structs.NamespacedID]*structs.Evaluation
	// superseded evaluations waiting to be canceled.
	superseded []*structs.Evaluation
	// unblockIndex is the Raft index of the latest change that may have
	// freed capacity. An evaluation that planned against an older
	// snapshot missed it and is enqueued at once instead of blocked.
	unblockIndex uint64
}

// NewBlockedEvals returns a disabled tracker feeding broker.
func NewBlockedEvals(broker *EvalBroker) *BlockedEvals {
	return &BlockedEvals{broker: broker, byJob: make(map[structs.NamespacedID]*structs.Evaluation)}
}

// SetEnabled turns tracking on or off; off drops everything.
func (b *BlockedEvals) SetEnabled(enabled bool) {
	b.l.Lock()
	defer b.l.Unlock()
	b.enabled = enabled
	if !enabled {
		b.byJob = make(map[structs.NamespacedID]*structs.Evaluation)
		b.superseded = nil
		b.unblockIndex = 0
	}
}

// Block tracks a blocked evaluation.
func (b *BlockedEvals) Block(eval *structs.Evaluation) {
	b.l.Lock()
	defer b.l.Unlock()
	if !b.enabled {
		return
	}
	if eval.SnapshotIndex < b.unblockIndex {
		// Capacity changed after the scheduler looked: try again now.
		b.broker.Enqueue(eval)
		return
	}
	if old, ok := b.byJob[eval.JobKey()]; ok && old.ID != eval.ID {
		if old.CreateIndex > eval.CreateIndex {
			// eval is the older one.
			b.superseded = append(b.superseded, eval)
			return
		}
		b.superseded = append(b.superseded, old)
	}
	b.byJob[eval.JobKey()] = eval
}

// Untrack drops the blocked evaluation of job (namespace, jobID): a
// newer evaluation placed everything the job needs.
func (b *BlockedEvals) Untrack(namespace, jobID string) {
	key := structs.NewNamespacedID(namespace, jobID)
	b.l.Lock()
	defer b.l.Unlock()
	if !b.enabled {
		return
	}
	if old, ok := b.byJob[key]; ok {
		delete(b.byJob, key)
		b.superseded = append(b.superseded, old)
	}
}

// Unblock re-enqueues every blocked evaluation. index is the Raft index
// of the change that may have freed capacity.
func (b *BlockedEvals) Unblock(index uint64) {
	b.l.Lock()
	if index > b.unblockIndex {
		b.unblockIndex = index
	}
	if !b.enabled || len(b.byJob) == 0 {
		b.l.Unlock()
		return
	}
	evals := make([]*structs.Evaluation, 0, len(b.byJob))
	for _, e := range b.byJob {
		evals = append(evals, e)
	}
	b.byJob = make(map[structs.NamespacedID]*structs.Evaluation)
	b.l.Unlock()
	for _, e := range evals {
		b.broker.Enqueue(e)
	}
}

// Superseded returns and forgets up to max superseded evaluations.
func (b *BlockedEvals) Superseded(max int) []*structs.Evaluation {
	b.l.Lock()
	defer b.l.Unlock()
	n := len(b.superseded)
	if n > max {
		n = max
	}
	out := b.superseded[:n:n]
	b.superseded = b.superseded[n:]
	return out
}

// Len returns how many evaluations are blocked.
func (b *BlockedEvals) Len() int {
	b.l.Lock()
	defer b.l.Unlock()
	return len(b.byJob)
}
