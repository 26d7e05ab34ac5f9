package client

import (
	"sync"
	"time"

	"github.com/droverhq/drover/structs"
)

// maxUpdateBatch bounds the reports one Node.UpdateAlloc carries; the
// rest follow in the next send.
const maxUpdateBatch = 512

// updateQueue gathers a client's allocation reports and sends them in
// batches. A report replaces any unsent report of the same allocation
// (the last one wins: the servers only need the newest status). The
// first report after a quiet spell waits a short coalescing window, so
// reports that happen together (tasks of one allocation, allocations of
// one plan) go in one Raft write, but never longer: the window is what
// `job run` waits for. A failed send puts its reports back unless newer
// ones came meanwhile, and is retried after a backoff.
//
// No goroutine waits while nothing is queued: a send is scheduled with
// time.AfterFunc, and runs on the timer's goroutine. Sends are
// serialized (sendMu), so a report never overtakes an older one of the
// same allocation on the wire.
type updateQueue struct {
	coalesce time.Duration
	send     func([]*structs.Allocation) error
	backoff  func(attempt int) time.Duration

	// sendMu is held while a batch is taken and sent.
	sendMu sync.Mutex

	// mu guards the fields below.
	mu      sync.Mutex
	pending map[string]*structs.Allocation
	// timer is the scheduled send; nil when none is scheduled.
	timer    *time.Timer
	failures int
	closed   bool
}

func newUpdateQueue(coalesce time.Duration, send func([]*structs.Allocation) error, backoff func(int) time.Duration) *updateQueue {
	return &updateQueue{coalesce: coalesce, send: send, backoff: backoff, pending: make(map[string]*structs.Allocation)}
}

// queue records a report; it replaces an unsent one of the same
// allocation.
func (q *updateQueue) queue(a *structs.Allocation) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending[a.ID] = a
	q.scheduleLocked(q.coalesce)
}

// scheduleLocked schedules a send after d unless one is scheduled.
func (q *updateQueue) scheduleLocked(d time.Duration) {
	if q.timer != nil || q.closed {
		return
	}
	q.timer = time.AfterFunc(d, q.fire)
}

// fire runs on the timer: one send, then the next one scheduled if
// reports are left (after the backoff when the send failed).
func (q *updateQueue) fire() {
	err := q.flushOnce()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.timer = nil
	if err != nil {
		q.failures++
		q.scheduleLocked(q.backoff(q.failures - 1))
		return
	}
	q.failures = 0
	if len(q.pending) > 0 {
		q.scheduleLocked(q.coalesce)
	}
}

// flushOnce sends up to maxUpdateBatch queued reports; on failure it
// puts back those not superseded meanwhile.
func (q *updateQueue) flushOnce() error {
	q.sendMu.Lock()
	defer q.sendMu.Unlock()
	q.mu.Lock()
	if len(q.pending) == 0 {
		q.mu.Unlock()
		return nil
	}
	batch := make([]*structs.Allocation, 0, min(len(q.pending), maxUpdateBatch))
	for id, a := range q.pending {
		batch = append(batch, a)
		delete(q.pending, id)
		if len(batch) == maxUpdateBatch {
			break
		}
	}
	q.mu.Unlock()

	err := q.send(batch)
	if err == nil {
		return nil
	}
	q.mu.Lock()
	for _, a := range batch {
		if _, newer := q.pending[a.ID]; !newer {
			q.pending[a.ID] = a
		}
	}
	q.mu.Unlock()
	return err
}

// flush sends everything queued, batch by batch, until the queue is
// empty or a send fails.
func (q *updateQueue) flush() error {
	for {
		q.mu.Lock()
		empty := len(q.pending) == 0
		q.mu.Unlock()
		if empty {
			return nil
		}
		if err := q.flushOnce(); err != nil {
			return err
		}
	}
}

// close stops scheduling sends; a send in flight finishes. What is still
// queued stays for a last flush.
func (q *updateQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if q.timer != nil {
		q.timer.Stop()
	}
}
