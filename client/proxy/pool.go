package proxy

import (
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/droverhq/drover/structs"
)

// Balancing policies (Config.Balance).
const (
	BalanceLeastConn  = "least_conn"
	BalanceRoundRobin = "round_robin"
)

// backend is one instance address of a service. Its fields are guarded
// by the pool's mu.
type backend struct {
	addr   string
	status string // the instance's status; "" once it is no longer listed
	// eligible: listed and passing; only eligible backends get new
	// connections.
	eligible bool
	// failedUntil: a dial failed; the backend is tried only when no
	// other is left until then.
	failedUntil time.Time

	active      int64
	total       uint64
	failedDials uint64
	// conns are the open proxied connections, closed when a drain
	// times out or the proxy stops.
	conns map[*proxyConn]struct{}
	// drainGen invalidates drain timers started before the backend
	// became eligible again.
	drainGen  uint64
	drainTime *time.Timer
}

// pool is the backend set of one service and the balancer over it.
type pool struct {
	balance      string
	cooldown     time.Duration
	drainTimeout time.Duration
	now          func() time.Time

	mu sync.Mutex
	// backends by address: listed ones and unlisted ones that still
	// have open connections (draining).
	backends map[string]*backend
	// order is the eligible backends sorted by address; cursor is the
	// round-robin position in it.
	order  []*backend
	cursor int
	// stopped: the proxy stopped; no more drain timers.
	stopped bool
}

func newPool(balance string, cooldown, drainTimeout time.Duration, now func() time.Time) *pool {
	return &pool{balance: balance, cooldown: cooldown, drainTimeout: drainTimeout, now: now,
		backends: make(map[string]*backend)}
}

// set replaces the listed instances. Backends that stop being eligible
// get no new connections; their open ones drain.
func (p *pool) set(instances []*structs.ServiceInstance) {
	listed := make(map[string]string, len(instances))
	for _, in := range instances {
		if in == nil || in.Address == "" || in.Port <= 0 || in.Port > 65535 {
			continue
		}
		addr := net.JoinHostPort(in.Address, strconv.Itoa(in.Port))
		// Two instances on one address (should not happen): passing wins.
		if prev, ok := listed[addr]; ok && prev == structs.ServiceStatusPassing {
			continue
		}
		listed[addr] = in.Status
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, st := range listed {
		b := p.backends[addr]
		if b == nil {
			b = &backend{addr: addr, conns: make(map[*proxyConn]struct{})}
			p.backends[addr] = b
		}
		b.status = st
		p.setEligibleLocked(b, st == structs.ServiceStatusPassing)
	}
	for addr, b := range p.backends {
		if _, ok := listed[addr]; ok {
			continue
		}
		b.status = ""
		p.setEligibleLocked(b, false)
		if b.active == 0 {
			delete(p.backends, addr)
		}
	}
	p.order = p.order[:0]
	for _, b := range p.backends {
		if b.eligible {
			p.order = append(p.order, b)
		}
	}
	sort.Slice(p.order, func(i, j int) bool { return p.order[i].addr < p.order[j].addr })
	if p.cursor >= len(p.order) {
		p.cursor = 0
	}
}

// setEligibleLocked turns a backend on or off; turning it off starts
// its drain timer.
func (p *pool) setEligibleLocked(b *backend, eligible bool) {
	if b.eligible == eligible {
		return
	}
	b.eligible = eligible
	b.drainGen++
	if b.drainTime != nil {
		b.drainTime.Stop()
		b.drainTime = nil
	}
	if eligible || p.drainTimeout <= 0 || p.stopped {
		return
	}
	gen := b.drainGen
	b.drainTime = time.AfterFunc(p.drainTimeout, func() { p.drainExpired(b, gen) })
}

// drainExpired closes the connections of a backend still not eligible
// drainTimeout after it stopped being.
func (p *pool) drainExpired(b *backend, gen uint64) {
	p.mu.Lock()
	if b.drainGen != gen || b.eligible {
		p.mu.Unlock()
		return
	}
	conns := make([]*proxyConn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// pick chooses a backend for a new connection, skipping those in
// tried, and counts the connection as active on it at once (so that
// concurrent picks see it). Backends cooling down after a failed dial
// are chosen only when no other is left. nil: no backend.
func (p *pool) pick(tried map[*backend]bool) *backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.order)
	if n == 0 {
		return nil
	}
	now := p.now()
	var best *backend
	bestIdx := -1
	bestCooling := true
	for i := 0; i < n; i++ {
		idx := (p.cursor + i) % n
		b := p.order[idx]
		if tried[b] {
			continue
		}
		cooling := now.Before(b.failedUntil)
		better := false
		switch {
		case best == nil:
			better = true
		case bestCooling && !cooling:
			better = true
		case cooling && !bestCooling:
			better = false
		case p.balance == BalanceRoundRobin:
			better = false // the first in round-robin order wins
		default:
			better = b.active < best.active // ties: the first from the cursor
		}
		if better {
			best, bestIdx, bestCooling = b, idx, cooling
		}
	}
	if best == nil {
		return nil
	}
	p.cursor = (bestIdx + 1) % n
	best.active++
	return best
}

// dialFailed undoes pick's count after a failed dial and starts the
// backend's cool-down.
func (p *pool) dialFailed(b *backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.failedDials++
	b.failedUntil = p.now().Add(p.cooldown)
	p.releaseLocked(b)
}

// unanswered puts b in its cool-down after a connection it closed
// without answering (its process likely died); the caller still calls
// done for that connection.
func (p *pool) unanswered(b *backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.failedDials++
	b.failedUntil = p.now().Add(p.cooldown)
}

// connected records an established connection; false when the proxy
// stopped during the dial (the caller closes the connection and calls
// done).
func (p *pool) connected(b *backend, c *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.total++
	b.failedUntil = time.Time{}
	if p.stopped {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

// done records the end of a connection picked on b.
func (p *pool) done(b *backend, c *proxyConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(b.conns, c)
	p.releaseLocked(b)
}

func (p *pool) releaseLocked(b *backend) {
	b.active--
	if b.active == 0 && b.status == "" && p.backends[b.addr] == b {
		delete(p.backends, b.addr)
	}
}

// empty reports whether the pool has no backend left, listed or
// draining.
func (p *pool) empty() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.backends) == 0
}

// stop closes every open connection and stops the drain timers.
func (p *pool) stop() {
	p.mu.Lock()
	p.stopped = true
	var conns []*proxyConn
	for _, b := range p.backends {
		if b.drainTime != nil {
			b.drainTime.Stop()
			b.drainTime = nil
		}
		for c := range b.conns {
			conns = append(conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// aged appends to dst the open connections found open by the previous
// call too and not returned yet, and marks the others seen (see
// keepAliveLoop).
func (p *pool) aged(dst []*proxyConn) []*proxyConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.backends {
		for c := range b.conns {
			switch c.keepAlive {
			case keepAliveUnseen:
				c.keepAlive = keepAliveSeen
			case keepAliveSeen:
				c.keepAlive = keepAliveOn
				dst = append(dst, c)
			}
		}
	}
	return dst
}

// status returns the backends, sorted by address.
func (p *pool) status() []BackendStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := make([]BackendStatus, 0, len(p.backends))
	for _, b := range p.backends {
		st := BackendStatus{Address: b.addr, Status: b.status, Passing: b.eligible,
			Active: b.active, Total: b.total, FailedDials: b.failedDials}
		if b.status == "" {
			st.Status = "draining"
		}
		if now.Before(b.failedUntil) {
			st.CoolingDownUntil = b.failedUntil
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}
