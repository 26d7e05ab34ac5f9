package gateway

import "time"

// Status is what the gateway serves, for GET /v1/client/gateway.
type Status struct {
	Listeners    []ListenerStatus
	Certificates []string
	Routes       []RouteStatus
}

// ListenerStatus is one listener: Kind "http" or "https".
type ListenerStatus struct {
	Kind    string
	Address string
}

// RouteStatus is one route and its backends.
type RouteStatus struct {
	Namespace    string
	Service      string
	Host         string `json:",omitempty"`
	Path         string
	StripPrefix  bool          `json:",omitempty"`
	HTTPSOnly    bool          `json:",omitempty"`
	CertName     string        `json:",omitempty"`
	CanaryWeight int           `json:",omitempty"`
	Retries      int           `json:",omitempty"`
	Timeout      time.Duration `json:",omitempty"`
	Backends     []BackendStatus
	// Requests counts the requests answered for the route; Errors those
	// no instance answered.
	Requests uint64
	Errors   uint64
}

// BackendStatus is one passing instance of a route's service.
type BackendStatus struct {
	Address  string
	Canary   bool `json:",omitempty"`
	Active   int64
	Requests uint64
	Failures uint64
}

// Status returns the listeners and the routing table with counters.
func (g *Gateway) Status() *Status {
	st := &Status{Listeners: []ListenerStatus{}, Certificates: []string{}, Routes: []RouteStatus{}}
	g.mu.Lock()
	for _, l := range g.listeners {
		st.Listeners = append(st.Listeners, ListenerStatus{Kind: l.kind, Address: l.addr})
	}
	g.mu.Unlock()
	for _, c := range g.certs.specs {
		st.Certificates = append(st.Certificates, c.Name)
	}
	for _, r := range g.table.Load().routes {
		rs := RouteStatus{Namespace: r.namespace, Service: r.service, Host: r.host, Path: r.path, StripPrefix: r.spec.StripPrefix,
			HTTPSOnly: r.spec.HTTPSOnly, CanaryWeight: r.spec.CanaryWeight, Retries: r.spec.Retries, Timeout: r.timeout,
			Backends: []BackendStatus{}, Requests: r.stats.requests.Load(), Errors: r.stats.errors.Load()}
		if r.spec.TLS != nil {
			rs.CertName = r.spec.TLS.CertName
		}
		for _, b := range r.passing {
			rs.Backends = append(rs.Backends, BackendStatus{Address: b.addr, Canary: b.canary, Active: b.active.Load(),
				Requests: b.requests.Load(), Failures: b.failures.Load()})
		}
		st.Routes = append(st.Routes, rs)
	}
	return st
}
