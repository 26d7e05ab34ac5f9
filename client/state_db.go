package client

import (
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// stateDB persists what a restarted client needs to pick up where it
// left off: its node identity, the allocations it runs, and per task the
// driver handle and task state. Every write is a synced bbolt
// transaction.
type stateDB struct {
	db *bolt.DB
}

var (
	bucketMeta   = []byte("meta")
	bucketAllocs = []byte("allocs")
	bucketTasks  = []byte("tasks")
)

// persistedTask is one task's saved state.
type persistedTask struct {
	Handle *driver.TaskHandle
	State  *structs.TaskState
}

func openStateDB(dir string) (*stateDB, error) {
	db, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open client state: %w (is another agent using this data dir?)", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketAllocs, bucketTasks} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init client state: %w", err)
	}
	return &stateDB{db: db}, nil
}

func (s *stateDB) close() error { return s.db.Close() }

func (s *stateDB) getMeta(key string) (string, error) {
	var v string
	err := s.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get([]byte(key)))
		return nil
	})
	return v, err
}

func (s *stateDB) putMeta(key, value string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), []byte(value))
	})
}

func encode(v interface{}) ([]byte, error) {
	buf, err := structs.Encode(0, v)
	if err != nil {
		return nil, err
	}
	return buf[1:], nil
}

// putAlloc saves the allocation the client runs.
func (s *stateDB) putAlloc(a *structs.Allocation) error {
	buf, err := encode(a)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllocs).Put([]byte(a.ID), buf)
	})
}

// putTask saves one task's handle and state.
func (s *stateDB) putTask(allocID, task string, pt *persistedTask) error {
	buf, err := encode(pt)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketTasks).CreateBucketIfNotExists([]byte(allocID))
		if err != nil {
			return err
		}
		return b.Put([]byte(task), buf)
	})
}

// deleteAlloc forgets an allocation and its tasks.
func (s *stateDB) deleteAlloc(allocID string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketAllocs).Delete([]byte(allocID)); err != nil {
			return err
		}
		if tx.Bucket(bucketTasks).Bucket([]byte(allocID)) != nil {
			return tx.Bucket(bucketTasks).DeleteBucket([]byte(allocID))
		}
		return nil
	})
}

// restoredAlloc is an allocation loaded at startup with its tasks.
type restoredAlloc struct {
	Alloc *structs.Allocation
	Tasks map[string]*persistedTask
}

// loadAllocs returns every saved allocation.
func (s *stateDB) loadAllocs() ([]*restoredAlloc, error) {
	var out []*restoredAlloc
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllocs).ForEach(func(k, v []byte) error {
			a := new(structs.Allocation)
			if err := structs.Decode(v, a); err != nil {
				return fmt.Errorf("decode alloc %s: %w", k, err)
			}
			r := &restoredAlloc{Alloc: a, Tasks: make(map[string]*persistedTask)}
			if tb := tx.Bucket(bucketTasks).Bucket(k); tb != nil {
				err := tb.ForEach(func(tk, tv []byte) error {
					pt := new(persistedTask)
					if err := structs.Decode(tv, pt); err != nil {
						return fmt.Errorf("decode task %s/%s: %w", k, tk, err)
					}
					r.Tasks[string(tk)] = pt
					return nil
				})
				if err != nil {
					return err
				}
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}
