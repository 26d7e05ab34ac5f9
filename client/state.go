package client

import (
	"sync"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// StateStore keeps what a restarted client needs to pick up where it
// left off: its node identity, the allocations it runs, and per task
// the driver handle and task state. The client calls it from its alloc
// and task runners concurrently. A store owns what it is given: the
// client hands it copies (or, for allocations, versions it no longer
// changes).
//
// A real client keeps it in a bbolt file in its data dir (the default);
// the node simulator keeps it in memory (NewMemoryState), since a
// thousand simulated nodes cannot afford a file and a sync per write.
type StateStore interface {
	// GetMeta returns the value stored under key, "" if none.
	GetMeta(key string) (string, error)
	PutMeta(key, value string) error
	// PutAlloc saves an allocation the client runs.
	PutAlloc(a *structs.Allocation) error
	// PutTask saves one task's handle and state.
	PutTask(allocID, task string, t *PersistedTask) error
	// DeleteAlloc forgets an allocation and its tasks.
	DeleteAlloc(allocID string) error
	// LoadAllocs returns every saved allocation with its tasks.
	LoadAllocs() ([]*RestoredAlloc, error)
	Close() error
}

// PersistedTask is one task's saved state.
type PersistedTask struct {
	Handle *driver.TaskHandle
	State  *structs.TaskState
}

// RestoredAlloc is an allocation loaded at start with its tasks.
type RestoredAlloc struct {
	Alloc *structs.Allocation
	Tasks map[string]*PersistedTask
}

// MemoryState is a StateStore in memory: a client restarted on the same
// MemoryState in the same process re-attaches to its tasks, and nothing
// survives the process.
type MemoryState struct {
	// mu guards every field.
	mu     sync.Mutex
	meta   map[string]string
	allocs map[string]*RestoredAlloc
}

// NewMemoryState returns an empty in-memory store.
func NewMemoryState() *MemoryState {
	return &MemoryState{meta: make(map[string]string), allocs: make(map[string]*RestoredAlloc)}
}

// GetMeta implements StateStore.
func (m *MemoryState) GetMeta(key string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meta[key], nil
}

// PutMeta implements StateStore.
func (m *MemoryState) PutMeta(key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meta[key] = value
	return nil
}

// PutAlloc implements StateStore.
func (m *MemoryState) PutAlloc(a *structs.Allocation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.allocs[a.ID]; ok {
		r.Alloc = a
		return nil
	}
	m.allocs[a.ID] = &RestoredAlloc{Alloc: a}
	return nil
}

// PutTask implements StateStore. A task of an allocation that is not
// stored (deleted meanwhile) is dropped, as the bbolt store would keep
// it only until the allocation is deleted.
func (m *MemoryState) PutTask(allocID, task string, t *PersistedTask) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.allocs[allocID]
	if !ok {
		return nil
	}
	if r.Tasks == nil {
		r.Tasks = make(map[string]*PersistedTask, 1)
	}
	r.Tasks[task] = t
	return nil
}

// DeleteAlloc implements StateStore.
func (m *MemoryState) DeleteAlloc(allocID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.allocs, allocID)
	return nil
}

// LoadAllocs implements StateStore. The returned records are copies of
// the index, sharing the stored values.
func (m *MemoryState) LoadAllocs() ([]*RestoredAlloc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*RestoredAlloc, 0, len(m.allocs))
	for _, r := range m.allocs {
		tasks := make(map[string]*PersistedTask, len(r.Tasks))
		for k, v := range r.Tasks {
			tasks[k] = v
		}
		out = append(out, &RestoredAlloc{Alloc: r.Alloc, Tasks: tasks})
	}
	return out, nil
}

// Close implements StateStore.
func (m *MemoryState) Close() error { return nil }
