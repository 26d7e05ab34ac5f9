package client

import (
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/droverhq/drover/structs"
)

// stateDB is the StateStore of a real client: a bbolt file in the data
// dir, every write a synced transaction, so a client killed at any point
// re-attaches to the tasks it had started.
type stateDB struct {
	db *bolt.DB
}

var (
	bucketMeta   = []byte("meta")
	bucketAllocs = []byte("allocs")
	bucketTasks  = []byte("tasks")
)

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

// Close implements StateStore.
func (s *stateDB) Close() error { return s.db.Close() }

// GetMeta implements StateStore.
func (s *stateDB) GetMeta(key string) (string, error) {
	var v string
	err := s.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get([]byte(key)))
		return nil
	})
	return v, err
}

// PutMeta implements StateStore.
func (s *stateDB) PutMeta(key, value string) error {
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

// PutAlloc implements StateStore.
func (s *stateDB) PutAlloc(a *structs.Allocation) error {
	buf, err := encode(a)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllocs).Put([]byte(a.ID), buf)
	})
}

// PutTask implements StateStore.
func (s *stateDB) PutTask(allocID, task string, pt *PersistedTask) error {
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

// DeleteAlloc implements StateStore.
func (s *stateDB) DeleteAlloc(allocID string) error {
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

// LoadAllocs implements StateStore.
func (s *stateDB) LoadAllocs() ([]*RestoredAlloc, error) {
	var out []*RestoredAlloc
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllocs).ForEach(func(k, v []byte) error {
			a := new(structs.Allocation)
			if err := structs.Decode(v, a); err != nil {
				return fmt.Errorf("decode alloc %s: %w", k, err)
			}
			r := &RestoredAlloc{Alloc: a, Tasks: make(map[string]*PersistedTask)}
			if tb := tx.Bucket(bucketTasks).Bucket(k); tb != nil {
				err := tb.ForEach(func(tk, tv []byte) error {
					pt := new(PersistedTask)
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
