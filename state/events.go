package state

import (
	"errors"
	"fmt"
	"sync"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Change tracking: every write transaction of the store (writeTxn) tracks
// what it changed, and commit turns the changes of the tables that have
// an event topic into structs.Events for the store's EventSink. The
// write's index is the one it recorded in the index table, so an event
// carries the Raft index of the entry that caused it.

// EventSink receives the events of each committed write, in commit
// order, on the writer's goroutine (the FSM's): it must not block.
type EventSink interface {
	Publish(index uint64, events []structs.Event)
}

// SetEventSink makes the store publish its writes' events to sink. It is
// set once, before the store takes writes.
func (s *StateStore) SetEventSink(sink EventSink) { s.events = sink }

// writeTxn opens a write transaction, tracking changes when events are
// published.
func (s *StateStore) writeTxn() *memdb.Txn {
	txn := s.db.Txn(true)
	if s.events != nil {
		txn.TrackChanges()
	}
	return txn
}

// commit commits txn and publishes its events.
func (s *StateStore) commit(txn *memdb.Txn) {
	var changes memdb.Changes
	if s.events != nil {
		changes = txn.Changes()
	}
	txn.Commit()
	if len(changes) == 0 {
		return
	}
	index, events := eventsOf(changes)
	if len(events) > 0 {
		s.events.Publish(index, events)
	}
}

// eventsOf converts a write's changes into events.
func eventsOf(changes memdb.Changes) (uint64, []structs.Event) {
	var index uint64
	var events []structs.Event
	for _, c := range changes {
		if c.Table == TableIndex {
			if e, ok := c.After.(*IndexEntry); ok && e.Value > index {
				index = e.Value
			}
			continue
		}
		if ev, ok := eventOf(c); ok {
			events = append(events, ev)
		}
	}
	for i := range events {
		events[i].Index = index
	}
	return index, events
}

// eventOf converts one change, if its table has a topic.
func eventOf(c memdb.Change) (structs.Event, bool) {
	obj := c.After
	if c.Deleted() {
		obj = c.Before
	}
	switch c.Table {
	case TableJobs:
		j := obj.(*structs.Job)
		typ := "JobUpdated"
		switch {
		case c.Deleted():
			typ = "JobDeleted"
		case j.Stop && (c.Created() || !c.Before.(*structs.Job).Stop):
			typ = "JobDeregistered"
		case c.Created() || c.Before.(*structs.Job).JobModifyIndex != j.JobModifyIndex:
			typ = "JobRegistered"
		}
		return structs.Event{Topic: structs.TopicJob, Type: typ, Key: j.ID, Namespace: structs.NamespaceOrDefault(j.Namespace), Object: j}, true
	case TableAllocs:
		a := obj.(*structs.Allocation)
		typ := "AllocationUpdated"
		switch {
		case c.Created():
			typ = "AllocationCreated"
		case c.Deleted():
			typ = "AllocationDeleted"
		}
		keys := []string{a.JobID}
		if a.DeploymentID != "" {
			keys = append(keys, a.DeploymentID)
		}
		return structs.Event{Topic: structs.TopicAllocation, Type: typ, Key: a.ID, Namespace: structs.NamespaceOrDefault(a.Namespace), FilterKeys: keys, Object: a}, true
	case TableEvals:
		e := obj.(*structs.Evaluation)
		typ := "EvaluationUpdated"
		if c.Deleted() {
			typ = "EvaluationDeleted"
		}
		keys := []string{e.JobID}
		if e.DeploymentID != "" {
			keys = append(keys, e.DeploymentID)
		}
		return structs.Event{Topic: structs.TopicEvaluation, Type: typ, Key: e.ID, Namespace: structs.NamespaceOrDefault(e.Namespace), FilterKeys: keys, Object: e}, true
	case TableDeployment:
		d := obj.(*structs.Deployment)
		typ := "DeploymentUpdated"
		if c.Deleted() {
			typ = "DeploymentDeleted"
		}
		return structs.Event{Topic: structs.TopicDeployment, Type: typ, Key: d.ID, Namespace: structs.NamespaceOrDefault(d.Namespace), FilterKeys: []string{d.JobID}, Object: d}, true
	case TableNodes:
		n := obj.(*structs.Node)
		typ := "NodeUpdated"
		switch {
		case c.Created():
			typ = "NodeRegistration"
		case c.Deleted():
			typ = "NodeDeregistration"
		}
		return structs.Event{Topic: structs.TopicNode, Type: typ, Key: n.ID, Object: n}, true
	}
	return structs.Event{}, false
}

// ErrEventsGone is returned for a resume index older than what the
// buffer still holds: events after it may have been dropped.
var ErrEventsGone = errors.New("events gone")

// EventBatch is the events of one index.
type EventBatch struct {
	Index  uint64
	Events []structs.Event
}

// EventBuffer keeps the most recent events, bounded by count, for
// streams to read and resume from. It outlives state store restores
// (the FSM keeps one). Safe for concurrent use.
type EventBuffer struct {
	mu        sync.Mutex
	batches   []EventBatch
	count     int
	maxEvents int
	// gone is the highest index whose events may have been dropped
	// (evicted, or before a snapshot restore); a resume from an older
	// index is refused.
	gone   uint64
	notify chan struct{}
}

// DefaultEventBufferSize bounds the events kept. Each event holds the
// object it reports, so an event whose object was replaced since keeps
// the old version alive: BenchmarkFSM_MemoryPerAllocation's live heap
// per allocation was 2,780 bytes with 50,000 (every event of its 20,000
// allocations kept) and 2,195 with 10,000. 10,000 events still cover
// minutes of an ordinary cluster's changes (Nomad keeps 100) and a few
// seconds of placing thousands of allocations per second; a consumer
// that falls further behind gets 410 and starts again from the state.
const DefaultEventBufferSize = 10000

// NewEventBuffer returns a buffer keeping up to maxEvents events (whole
// batches are dropped, oldest first).
func NewEventBuffer(maxEvents int) *EventBuffer {
	if maxEvents <= 0 {
		maxEvents = DefaultEventBufferSize
	}
	return &EventBuffer{maxEvents: maxEvents, notify: make(chan struct{})}
}

// Publish appends the events of one index.
func (b *EventBuffer) Publish(index uint64, events []structs.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.batches); n > 0 && b.batches[n-1].Index == index {
		// A second write at the same index (the plan applier commits a
		// batch in parts): one batch.
		b.batches[n-1].Events = append(b.batches[n-1].Events, events...)
	} else {
		b.batches = append(b.batches, EventBatch{Index: index, Events: events})
	}
	b.count += len(events)
	for b.count > b.maxEvents && len(b.batches) > 1 {
		b.gone = b.batches[0].Index
		b.count -= len(b.batches[0].Events)
		b.batches[0] = EventBatch{}
		b.batches = b.batches[1:]
	}
	close(b.notify)
	b.notify = make(chan struct{})
}

// Reset drops everything up to index: the state was replaced by a
// snapshot taken at index.
func (b *EventBuffer) Reset(index uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches, b.count = nil, 0
	if index > b.gone {
		b.gone = index
	}
	close(b.notify)
	b.notify = make(chan struct{})
}

// Since returns the batches after index and a channel closed at the next
// publish. A resume from before what the buffer holds is ErrEventsGone.
func (b *EventBuffer) Since(index uint64) ([]EventBatch, <-chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if index < b.gone {
		return nil, nil, fmt.Errorf("%w: index %d is older than the oldest event kept (after %d); start again without index, from the current state", ErrEventsGone, index, b.gone)
	}
	i := len(b.batches)
	for i > 0 && b.batches[i-1].Index > index {
		i--
	}
	out := make([]EventBatch, len(b.batches)-i)
	copy(out, b.batches[i:])
	return out, b.notify, nil
}

// LastIndex returns the index of the newest batch (0 when empty).
func (b *EventBuffer) LastIndex() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.batches); n > 0 {
		return b.batches[n-1].Index
	}
	return b.gone
}
