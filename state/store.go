package state

import (
	"fmt"
	"sync"
	"sync/atomic"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// StateStore is the indexed in-memory cluster state. Writes come only
// from the FSM (one goroutine); reads may happen from anywhere.
type StateStore struct {
	db *memdb.MemDB

	// events, when set, receives the events of every committed write
	// (events.go); snapshots never have one.
	events EventSink

	// abandonLock guards abandonCh. abandonCh is closed when the store
	// is replaced by a restore, so blocking queries watching it wake up
	// and re-run against the new store.
	abandonLock sync.Mutex
	abandonCh   chan struct{}

	// nodeViews memoizes lists derived from the nodes table (see
	// NodesDerived). A store and its snapshots share it; a write to the
	// nodes table of a snapshot gives that snapshot its own.
	nodeViews atomic.Pointer[nodeViews]

	// allocWatch wakes the watchers of a node's allocations when the
	// server changes them (see AllocsChangedCh). Snapshots have none.
	allocWatch *nodeAllocWatch
}

// nodeAllocWatch hands out, per node, a channel closed at the next
// commit that changes one of the node's allocations on the server side
// (AllocModifyIndex). It replaces memdb's watch on the allocs-by-node
// index for clients' blocking watches: that watch also fires for every
// write near the node's keys in the radix tree (always, for a node
// without allocations), waking thousands of idle watches per commit.
type nodeAllocWatch struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
}

func (w *nodeAllocWatch) ch(nodeID string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.chans[nodeID]
	if !ok {
		c = make(chan struct{})
		w.chans[nodeID] = c
	}
	return c
}

func (w *nodeAllocWatch) notify(nodes map[string]struct{}) {
	if w == nil || len(nodes) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range nodes {
		if c, ok := w.chans[id]; ok {
			close(c)
			delete(w.chans, id)
		}
	}
}

// AllocsChangedCh returns a channel closed once the server side of one
// of nodeID's allocations changes (placed, updated, stopped, given a
// desired transition) after this call. Take it before reading, so no
// change falls between the read and the wait. A snapshot returns a
// channel that never closes.
func (s *StateStore) AllocsChangedCh(nodeID string) <-chan struct{} {
	if s.allocWatch == nil {
		return nil
	}
	return s.allocWatch.ch(nodeID)
}

// nodeViews holds the derived node lists of one nodes-table index.
type nodeViews struct {
	mu    sync.Mutex
	index uint64
	views map[string]interface{}
}

// NewStateStore returns an empty store.
func NewStateStore() *StateStore {
	s := &StateStore{db: mustNewDB(), abandonCh: make(chan struct{}), allocWatch: &nodeAllocWatch{chans: make(map[string]chan struct{})}}
	insertDefaultNamespace(s.db)
	s.nodeViews.Store(&nodeViews{})
	return s
}

// Snapshot is an immutable point-in-time view of the store. It has every
// read method of StateStore and costs O(1) to take (memdb is a radix
// tree with structural sharing). The scheduler plans against one.
type Snapshot struct {
	StateStore
}

// Snapshot returns an immutable view of the current state.
func (s *StateStore) Snapshot() *Snapshot {
	snap := &Snapshot{StateStore: StateStore{db: s.db.Snapshot(), abandonCh: make(chan struct{})}}
	snap.nodeViews.Store(s.nodeViews.Load())
	return snap
}

// NodesDerived returns a value derived from every node (sorted by ID) by
// build, computed once per change of the nodes table and shared by the
// store and its snapshots under key: the scheduler's list of ready
// nodes, which would otherwise walk every node for every evaluation.
// build must depend only on its arguments and key; callers must not
// modify what it returns.
func (s *StateStore) NodesDerived(key string, build func(all []*structs.Node) interface{}) (interface{}, error) {
	txn := s.db.Txn(false)
	index, err := indexTxn(txn, TableNodes)
	if err != nil {
		return nil, err
	}
	v := s.nodeViews.Load()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.index == index && v.views != nil {
		if out, ok := v.views[key]; ok {
			return out, nil
		}
	}
	// Read the nodes in the same transaction as the index, so the view
	// is exactly that index's.
	all, err := collect[*structs.Node](txn, nil, TableNodes, "id")
	if err != nil {
		return nil, err
	}
	out := build(all)
	if v.index != index || v.views == nil {
		v.index, v.views = index, make(map[string]interface{})
	}
	v.views[key] = out
	return out, nil
}

// detachNodeViews gives this store (a snapshot being written to) its own
// memo, so that what it derives from its own nodes never reaches the
// store it was taken from.
func (s *StateStore) detachNodeViews() {
	s.nodeViews.Store(&nodeViews{})
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
	return indexTxn(s.db.Txn(false), table)
}

// indexTxn returns the Raft index at which table last changed, as txn
// sees it.
func indexTxn(txn *memdb.Txn, table string) (uint64, error) {
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
