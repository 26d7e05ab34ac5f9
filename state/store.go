package state

import (
	"fmt"
	"sync"

	memdb "github.com/hashicorp/go-memdb"
)

// StateStore is the indexed in-memory cluster state. Writes come only
// from the FSM (one goroutine); reads may happen from anywhere.
type StateStore struct {
	db *memdb.MemDB

	// abandonLock guards abandonCh. abandonCh is closed when the store
	// is replaced by a restore, so blocking queries watching it wake up
	// and re-run against the new store.
	abandonLock sync.Mutex
	abandonCh   chan struct{}
}

// NewStateStore returns an empty store.
func NewStateStore() *StateStore {
	return &StateStore{db: mustNewDB(), abandonCh: make(chan struct{})}
}

// Snapshot is an immutable point-in-time view of the store. It has every
// read method of StateStore and costs O(1) to take (memdb is a radix
// tree with structural sharing). The scheduler plans against one.
type Snapshot struct {
	StateStore
}

// Snapshot returns an immutable view of the current state.
func (s *StateStore) Snapshot() *Snapshot {
	return &Snapshot{StateStore: StateStore{db: s.db.Snapshot(), abandonCh: make(chan struct{})}}
}

// AbandonCh is closed when the store is abandoned for a restored one.
func (s *StateStore) AbandonCh() <-chan struct{} {
	s.abandonLock.Lock()
	defer s.abandonLock.Unlock()
	return s.abandonCh
}

// Abandon wakes everything watching this store; the FSM calls it after
// swapping in a restored store.
func (s *StateStore) Abandon() {
	s.abandonLock.Lock()
	defer s.abandonLock.Unlock()
	close(s.abandonCh)
}

// Index returns the Raft index at which table last changed.
func (s *StateStore) Index(table string) (uint64, error) {
	txn := s.db.Txn(false)
	raw, err := txn.First(TableIndex, "id", table)
	if err != nil {
		return 0, fmt.Errorf("index lookup %s: %w", table, err)
	}
	if raw == nil {
		return 0, nil
	}
	return raw.(*IndexEntry).Value, nil
}

// LatestIndex returns the highest index of any table: the Raft index the
// store reflects.
func (s *StateStore) LatestIndex() (uint64, error) {
	txn := s.db.Txn(false)
	iter, err := txn.Get(TableIndex, "id")
	if err != nil {
		return 0, fmt.Errorf("index scan: %w", err)
	}
	var max uint64
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if v := raw.(*IndexEntry).Value; v > max {
			max = v
		}
	}
	return max, nil
}

// Indexes returns every table's index, for tests and debugging.
func (s *StateStore) Indexes() (map[string]uint64, error) {
	txn := s.db.Txn(false)
	iter, err := txn.Get(TableIndex, "id")
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64)
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		e := raw.(*IndexEntry)
		out[e.Key] = e.Value
	}
	return out, nil
}

// setIndex records index for tables inside a write transaction.
func setIndex(txn *memdb.Txn, index uint64, tables ...string) error {
	for _, t := range tables {
		if err := txn.Insert(TableIndex, &IndexEntry{Key: t, Value: index}); err != nil {
			return fmt.Errorf("update index %s: %w", t, err)
		}
	}
	return nil
}

// watch adds ch to ws when ws is non-nil.
func watch(ws memdb.WatchSet, ch <-chan struct{}) {
	if ws != nil {
		ws.Add(ch)
	}
}

// first runs txn.FirstWatch and adds the watch channel.
func first(txn *memdb.Txn, ws memdb.WatchSet, table, index string, args ...interface{}) (interface{}, error) {
	ch, raw, err := txn.FirstWatch(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s lookup: %w", table, err)
	}
	watch(ws, ch)
	return raw, nil
}

// collect runs txn.Get and gathers the results as T.
func collect[T any](txn *memdb.Txn, ws memdb.WatchSet, table, index string, args ...interface{}) ([]T, error) {
	iter, err := txn.Get(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s scan: %w", table, err)
	}
	watch(ws, iter.WatchCh())
	var out []T
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		out = append(out, raw.(T))
	}
	return out, nil
}
