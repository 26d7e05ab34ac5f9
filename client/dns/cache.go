package dns

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/droverhq/drover/structs"
)

// Cache bounds.
const (
	// cacheTTL is how long a lookup's answer is reused. Short: an
	// instance that stops passing must leave the answers soon, and the
	// TTL handed to resolvers already lets them keep answers longer.
	cacheTTL = time.Second
	// defaultCacheSize bounds the cached names (and the remembered SRV
	// targets); past it the oldest entry goes.
	defaultCacheSize = 4096
)

// errLookupPanic is what a lookup that panicked returns to everyone
// waiting on it.
var errLookupPanic = fmt.Errorf("dns: lookup panicked")

// cache sits in front of Lookup: an answer is reused for cacheTTL, and
// while a lookup for a name is in flight, queries for that name wait for
// it instead of starting their own. Errors are not cached: the next
// query tries again.
type cache struct {
	lookup LookupFunc
	now    func() time.Time
	size   int
	// onPanic is told of a recovered panic (the server logs it).
	onPanic func(v any)

	// lock guards entries and order. order holds the entries oldest
	// first (by the time their lookup started).
	lock    sync.Mutex
	entries map[cacheKey]*cacheEntry
	order   *list.List
}

type cacheKey struct{ namespace, name string }

type cacheEntry struct {
	key  cacheKey
	elem *list.Element
	// ready is closed when the lookup is done; insts, err and expires
	// are written before and only read after.
	ready   chan struct{}
	insts   []*structs.ServiceInstance
	err     error
	expires time.Time
}

func newCache(lookup LookupFunc, now func() time.Time, size int) *cache {
	return &cache{lookup: lookup, now: now, size: size,
		entries: make(map[cacheKey]*cacheEntry), order: list.New()}
}

// get returns the instances of name in namespace, from the cache or a
// lookup. The returned slice is shared: do not change it.
func (c *cache) get(ctx context.Context, namespace, name string) ([]*structs.ServiceInstance, error) {
	key := cacheKey{namespace, name}
	c.lock.Lock()
	e, ok := c.entries[key]
	if ok {
		select {
		case <-e.ready:
			if c.now().Before(e.expires) {
				c.lock.Unlock()
				return e.insts, nil
			}
			c.removeLocked(e)
			ok = false
		default: // in flight: wait for it below
		}
	}
	if ok {
		c.lock.Unlock()
		select {
		case <-e.ready:
			return e.insts, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e = &cacheEntry{key: key, ready: make(chan struct{})}
	e.elem = c.order.PushBack(e)
	c.entries[key] = e
	for c.order.Len() > c.size {
		c.removeLocked(c.order.Front().Value.(*cacheEntry))
	}
	c.lock.Unlock()

	insts, err := c.call(ctx, namespace, name)
	c.lock.Lock()
	e.insts, e.err = insts, err
	e.expires = c.now().Add(cacheTTL)
	if err != nil {
		c.removeLocked(e)
	}
	close(e.ready)
	c.lock.Unlock()
	return insts, err
}

// call runs the lookup, turning a panic into errLookupPanic so that
// neither the agent nor the queries waiting on this one are lost.
func (c *cache) call(ctx context.Context, namespace, name string) (insts []*structs.ServiceInstance, err error) {
	defer func() {
		if v := recover(); v != nil {
			if c.onPanic != nil {
				c.onPanic(v)
			}
			insts, err = nil, errLookupPanic
		}
	}()
	return c.lookup(ctx, namespace, name)
}

// removeLocked drops e if it is still the entry of its key. An entry
// evicted while in flight is still answered to its waiters.
func (c *cache) removeLocked(e *cacheEntry) {
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
	if e.elem != nil {
		c.order.Remove(e.elem)
		e.elem = nil
	}
}
