package server

import (
	"reflect"
	"sync"
	"time"

	"github.com/droverhq/drover/structs"
)

// allocUpdateWindow is how long the leader gathers client allocation
// reports before writing them: every Node.UpdateAlloc that arrives in
// the window goes into the same Raft entry (up to
// maxAllocUpdatesPerEntry reports), so a busy cluster pays one FSM
// transaction, one index bump and one round of watch wake-ups per
// window instead of one per client call. A full entry is written at
// once, without waiting for the window.
const allocUpdateWindow = 10 * time.Millisecond

// allocUpdateBatcher coalesces client allocation reports into Raft
// entries on the leader. Entries are handed to Raft in the order their
// reports arrived, so a later report of an allocation is never applied
// before an earlier one; within one entry a later report replaces an
// earlier one in place.
type allocUpdateBatcher struct {
	srv    *Server
	window time.Duration

	mu sync.Mutex
	// open is the entry being filled; nil when none.
	open *allocUpdateEntry
	// inflight counts, per allocation, the reports in entries not yet
	// applied: a report equal to the stored allocation is dropped only
	// when none is, since the stored state is not what the allocation
	// will be once they apply.
	inflight map[string]int
}

// allocUpdateEntry is one Raft entry being filled or written.
type allocUpdateEntry struct {
	req *structs.AllocUpdateRequest
	// pos finds an allocation's report in req.Alloc.
	pos map[string]int
	// written is set once the entry was handed to Raft.
	written bool
	// done is closed once the entry is applied (or failed); index and
	// err are its result.
	done  chan struct{}
	index uint64
	err   error
}

func newAllocUpdateBatcher(s *Server, window time.Duration) *allocUpdateBatcher {
	return &allocUpdateBatcher{srv: s, window: window, inflight: make(map[string]int)}
}

// submit adds one call's reports: caused are the reports that caused
// evals, written in the same entry as them (an evaluation must never
// run before the report it answers is in the state, nor be lost while
// the report is kept); rest may go in any entry. It waits until every
// entry holding them is applied and returns the highest index; with
// nothing to write (every report unchanged) it returns 0.
func (b *allocUpdateBatcher) submit(caused []*structs.Allocation, evals []*structs.Evaluation, rest []*structs.Allocation) (uint64, error) {
	var mine []*allocUpdateEntry
	b.mu.Lock()
	if len(caused) > 0 || len(evals) > 0 {
		if b.open != nil && len(b.open.req.Alloc)+len(caused) > maxAllocUpdatesPerEntry {
			b.writeLocked(b.open)
		}
		e := b.openLocked()
		for _, a := range caused {
			b.addLocked(e, a)
		}
		e.req.Evals = append(e.req.Evals, evals...)
		mine = append(mine, e)
	}
	for _, a := range rest {
		if b.unchangedLocked(a) {
			b.srv.metrics.allocUpdatesUnchanged.Inc()
			continue
		}
		if b.open != nil && len(b.open.req.Alloc) >= maxAllocUpdatesPerEntry {
			if _, ok := b.open.pos[a.ID]; !ok {
				b.writeLocked(b.open)
			}
		}
		e := b.openLocked()
		b.addLocked(e, a)
		if len(mine) == 0 || mine[len(mine)-1] != e {
			mine = append(mine, e)
		}
	}
	if b.open != nil && len(b.open.req.Alloc) >= maxAllocUpdatesPerEntry {
		b.writeLocked(b.open)
	}
	b.mu.Unlock()

	var index uint64
	var firstErr error
	for _, e := range mine {
		select {
		case <-e.done:
		case <-b.srv.shutdownCh:
			return 0, structs.NewError(structs.CodeUnavailable, "server shutting down")
		}
		if e.err != nil && firstErr == nil {
			firstErr = e.err
		}
		index = max(index, e.index)
	}
	return index, firstErr
}

// openLocked returns the entry being filled, starting one (and its
// window's timer) when there is none.
func (b *allocUpdateBatcher) openLocked() *allocUpdateEntry {
	if b.open != nil {
		return b.open
	}
	e := &allocUpdateEntry{req: &structs.AllocUpdateRequest{}, pos: make(map[string]int), done: make(chan struct{})}
	b.open = e
	time.AfterFunc(b.window, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !e.written {
			b.writeLocked(e)
		}
	})
	return e
}

// addLocked puts a report in e, replacing an earlier report of the same
// allocation there.
func (b *allocUpdateBatcher) addLocked(e *allocUpdateEntry, a *structs.Allocation) {
	if i, ok := e.pos[a.ID]; ok {
		e.req.Alloc[i] = a
		return
	}
	e.pos[a.ID] = len(e.req.Alloc)
	e.req.Alloc = append(e.req.Alloc, a)
	b.inflight[a.ID]++
}

// writeLocked hands e to Raft as a compact entry (structs/compact.go:
// every server's FSM decodes it, cheaper than reflective msgpack);
// entries are handed over in order, under b.mu. Its result is awaited
// on another goroutine.
func (b *allocUpdateBatcher) writeLocked(e *allocUpdateEntry) {
	e.written = true
	if b.open == e {
		b.open = nil
	}
	e.req.UpdatedAt = time.Now().UnixNano()
	b.srv.metrics.allocUpdateEntries.Inc()
	msgType := b.srv.allocUpdateType()
	applied, err := b.srv.raftApplyAsync(msgType, e.req)
	if err != nil {
		b.finishLocked(e, 0, err)
		return
	}
	go func() {
		_, index, err := b.srv.raftResult(msgType, applied)
		b.mu.Lock()
		defer b.mu.Unlock()
		b.finishLocked(e, index, err)
	}()
}

func (b *allocUpdateBatcher) finishLocked(e *allocUpdateEntry, index uint64, err error) {
	for _, a := range e.req.Alloc {
		if b.inflight[a.ID]--; b.inflight[a.ID] <= 0 {
			delete(b.inflight, a.ID)
		}
	}
	e.index, e.err = index, err
	close(e.done)
}

// unchangedLocked reports whether writing report u would change nothing
// the state keeps: the allocation's stored client status, description,
// task states, checks and deployment health already say what u says,
// and no earlier report of it is still on its way.
func (b *allocUpdateBatcher) unchangedLocked(u *structs.Allocation) bool {
	if b.inflight[u.ID] > 0 {
		return false
	}
	if e := b.open; e != nil {
		if _, ok := e.pos[u.ID]; ok {
			return false
		}
	}
	old, err := b.srv.State().AllocByID(nil, u.ID)
	if err != nil || old == nil {
		return false
	}
	return allocReportUnchanged(old, u)
}

// allocReportUnchanged reports whether the state store would keep old
// as it is (but for its modify index and time) on applying client
// report u; it mirrors state.UpdateAllocsFromClient.
func allocReportUnchanged(old, u *structs.Allocation) bool {
	if structs.ClientStatusAfterReport(old.ClientStatus, u.ClientStatus) != old.ClientStatus || u.ClientDescription != old.ClientDescription || u.FollowupEvalID != "" {
		return false
	}
	if u.DeploymentStatus != nil && old.DeploymentID != "" {
		ods := old.DeploymentStatus
		if ods == nil || !equalBoolPtr(ods.Healthy, u.DeploymentStatus.Healthy) || ods.Timestamp != u.DeploymentStatus.Timestamp {
			return false
		}
	}
	return reflect.DeepEqual(old.TaskStates, u.TaskStates) && reflect.DeepEqual(old.Checks, u.Checks)
}

func equalBoolPtr(a, b *bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
