package proxy

import "time"

// Status is what the proxy serves and how it went, for GET
// /v1/client/proxy. Lists are sorted (services by namespace and name,
// backends by address).
type Status struct {
	Balance   string
	Listeners []ListenerStatus
	Services  []ServiceStatus
	Totals    Totals
}

// ListenerStatus is one address a service is (meant to be) served on.
type ListenerStatus struct {
	Address   string
	Namespace string
	Service   string
	// Kind is "vip" or "published".
	Kind string
	// Error says why the address could not be listened on ("" when
	// listening); the next update tries again.
	Error string `json:",omitempty"`
	// Active is the listener's open connections.
	Active int64
}

// ServiceStatus is one proxied service and its backends.
type ServiceStatus struct {
	Namespace     string
	Name          string
	VIP           string `json:",omitempty"`
	VIPPort       int    `json:",omitempty"`
	PublishedPort int    `json:",omitempty"`
	Backends      []BackendStatus
	Counters
}

// Counters of one service, or of all (Totals). BytesIn flow from
// clients to backends, BytesOut back.
type Counters struct {
	Connections uint64
	Active      int64
	BytesIn     uint64
	BytesOut    uint64
	// FailedConnects are connections closed because no backend could
	// be dialed (or none passed).
	FailedConnects uint64
	// Replayed are attempts whose backend closed without answering and
	// whose client bytes were sent to another backend.
	Replayed uint64
	// Rejected are connections closed at once because their listener
	// was at its connection bound.
	Rejected uint64
}

// BackendStatus is one instance address of a service.
type BackendStatus struct {
	Address string
	// Status is the instance's (passing, warning, critical,
	// terminating), or "draining" once it is no longer listed and still
	// has open connections.
	Status string
	// Passing: the backend gets new connections.
	Passing     bool
	Active      int64
	Total       uint64
	FailedDials uint64
	// CoolingDownUntil is set while a failed dial keeps the backend a
	// last resort.
	CoolingDownUntil time.Time `json:",omitempty"`
}

// Totals sums the services' counters.
type Totals struct {
	Listeners      int
	ListenerErrors int
	Counters
}

// Status returns the proxy's listeners, services and counters.
func (p *Proxy) Status() *Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &Status{Balance: p.cfg.Balance, Listeners: []ListenerStatus{}, Services: []ServiceStatus{}}
	for _, svc := range p.sortedServicesLocked() {
		for _, kind := range []string{KindVIP, KindPublished} {
			l := svc.listeners[kind]
			if l == nil {
				continue
			}
			ls := ListenerStatus{Address: l.addr, Namespace: svc.key.namespace, Service: svc.key.name, Kind: kind, Active: l.active.Load()}
			if l.err != nil {
				ls.Error = l.err.Error()
				st.Totals.ListenerErrors++
			} else {
				st.Totals.Listeners++
			}
			st.Listeners = append(st.Listeners, ls)
		}
		ss := ServiceStatus{Namespace: svc.key.namespace, Name: svc.key.name, VIP: svc.spec.VIP, VIPPort: svc.spec.VIPPort,
			PublishedPort: svc.spec.PublishedPort, Backends: svc.pool.status(), Counters: svc.counters.snapshot()}
		st.Totals.add(ss.Counters)
		st.Services = append(st.Services, ss)
	}
	return st
}

func (c *counters) snapshot() Counters {
	return Counters{Connections: c.connections.Load(), Active: c.active.Load(), BytesIn: c.bytesIn.Load(),
		BytesOut: c.bytesOut.Load(), FailedConnects: c.failedConnects.Load(), Rejected: c.rejected.Load(), Replayed: c.replayed.Load()}
}

func (t *Totals) add(c Counters) {
	t.Connections += c.Connections
	t.Active += c.Active
	t.BytesIn += c.BytesIn
	t.BytesOut += c.BytesOut
	t.FailedConnects += c.FailedConnects
	t.Rejected += c.Rejected
	t.Replayed += c.Replayed
}
