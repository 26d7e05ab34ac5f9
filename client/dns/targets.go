package dns

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// targetTTL is how long an SRV target handed out stays resolvable by
// itself. Longer than the answers' TTL: a resolver asks for the target
// after it got the SRV answer, perhaps from its own cache.
const targetTTL = time.Minute

// targets remembers the SRV targets handed out ("<alloc8>.<node8>.addr.
// <domain>") and their addresses, so that a resolver that does not use
// the Additional section (Go's net.LookupSRV, for one) can still
// resolve them. The target names carry no address themselves, and
// finding an allocation by an 8-character prefix would need a lookup of
// every service.
type targets struct {
	now  func() time.Time
	size int

	// lock guards byName and order (oldest first).
	lock   sync.Mutex
	byName map[string]*targetEntry
	order  *list.List
}

type targetEntry struct {
	name    string
	ip      net.IP
	expires time.Time
	elem    *list.Element
}

func newTargets(now func() time.Time, size int) *targets {
	return &targets{now: now, size: size, byName: make(map[string]*targetEntry), order: list.New()}
}

// put remembers that target name (canonical) is at ip.
func (t *targets) put(name string, ip net.IP) {
	t.lock.Lock()
	defer t.lock.Unlock()
	if e, ok := t.byName[name]; ok {
		e.ip, e.expires = ip, t.now().Add(targetTTL)
		t.order.MoveToBack(e.elem)
		return
	}
	e := &targetEntry{name: name, ip: ip, expires: t.now().Add(targetTTL)}
	e.elem = t.order.PushBack(e)
	t.byName[name] = e
	for t.order.Len() > t.size {
		old := t.order.Remove(t.order.Front()).(*targetEntry)
		delete(t.byName, old.name)
	}
}

// get returns the address of target name, or nil when it is not known
// (any more).
func (t *targets) get(name string) net.IP {
	t.lock.Lock()
	defer t.lock.Unlock()
	e, ok := t.byName[name]
	if !ok {
		return nil
	}
	if !t.now().Before(e.expires) {
		t.order.Remove(e.elem)
		delete(t.byName, name)
		return nil
	}
	return e.ip
}
