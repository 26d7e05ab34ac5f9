package gateway

import (
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/structs"
)

// table is one immutable routing table; Update builds a new one and
// swaps it in.
type table struct {
	// exact maps a lower-cased host to its routes, longest path first;
	// wildcard maps the suffix of a "*.example.com" host
	// (".example.com") the same way; any holds the routes without a
	// host.
	exact    map[string][]*route
	wildcard map[string][]*route
	any      []*route
	// routes lists every route, sorted, for Status.
	routes []*route
	// certByHost and certByWildcard name the certificate a route asks
	// for its host (exact or wildcard suffix), for SNI.
	certByHost, certByWildcard map[string]string
}

// route is one route of one service with the backends it sends to.
type route struct {
	namespace, service string
	host, path         string
	spec               structs.ServiceRoute
	timeout            time.Duration
	// passing are the passing instances; canary and stable split them
	// by the Canary flag.
	passing, canary, stable []*backend
	stats                   *routeStats
	// rr rotates the start of the least-requests scan (ties).
	rr *atomic.Uint64
}

// routeKey identifies a route across updates (its counters survive).
type routeKey struct{ namespace, service, host, path string }

// routeStats are a route's counters and metric series, kept across
// updates.
type routeStats struct {
	requests atomic.Uint64
	errors   atomic.Uint64
	rr       atomic.Uint64
	series   routeSeries
}

// backend is one instance address, shared by the routes that send to
// it and kept across updates while listed.
type backend struct {
	addr     string
	canary   bool
	active   atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64
}

// normalizeHost lower-cases a request or route host and strips its
// port.
func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// normalizePath returns the route's path prefix: "/" by default,
// without a trailing slash (except "/").
func normalizePath(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
		if p == "" {
			p = "/"
		}
	}
	return p
}

// pathMatches reports whether prefix matches path at a segment
// boundary.
func pathMatches(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// stripPrefix removes prefix from path, keeping a leading "/".
func stripPrefix(prefix, path string) string {
	if prefix == "/" || !strings.HasPrefix(path, prefix) {
		return path
	}
	out := path[len(prefix):]
	if !strings.HasPrefix(out, "/") {
		out = "/" + out
	}
	return out
}

// lookup finds the route for host and path: exact host, then wildcard,
// then any host; the longest matching prefix within each.
func (t *table) lookup(host, path string) *route {
	if t == nil {
		return nil
	}
	host = normalizeHost(host)
	if r := longest(t.exact[host], path); r != nil {
		return r
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		if r := longest(t.wildcard[host[i:]], path); r != nil {
			return r
		}
	}
	return longest(t.any, path)
}

func longest(routes []*route, path string) *route {
	for _, r := range routes {
		if pathMatches(r.path, path) {
			return r
		}
	}
	return nil
}

// certFor names the certificate routes ask for sni ("" when none).
func (t *table) certFor(sni string) string {
	if t == nil {
		return ""
	}
	sni = normalizeHost(sni)
	if n := t.certByHost[sni]; n != "" {
		return n
	}
	if i := strings.IndexByte(sni, '.'); i > 0 {
		return t.certByWildcard[sni[i:]]
	}
	return ""
}

// buildTable makes the table for services. backends are reused by
// address from old (and the map returned holds the ones in use); stats
// likewise by route key.
func buildTable(services []*structs.ProxiedService, oldBackends map[string]*backend, oldStats map[routeKey]*routeStats) (*table, map[string]*backend, map[routeKey]*routeStats) {
	t := &table{exact: map[string][]*route{}, wildcard: map[string][]*route{}, certByHost: map[string]string{}, certByWildcard: map[string]string{}}
	backends := map[string]*backend{}
	stats := map[routeKey]*routeStats{}
	seen := map[routeKey]bool{}
	sorted := append([]*structs.ProxiedService(nil), services...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Namespace != sorted[j].Namespace {
			return sorted[i].Namespace < sorted[j].Namespace
		}
		return sorted[i].Name < sorted[j].Name
	})
	for _, svc := range sorted {
		if svc == nil || len(svc.Routes) == 0 {
			continue
		}
		var passing, canary, stable []*backend
		for _, inst := range svc.Instances {
			if inst == nil || inst.Status != structs.ServiceStatusPassing || inst.Port == 0 {
				continue
			}
			addr := net.JoinHostPort(inst.Address, strconv.Itoa(inst.Port))
			// One backend per address and canary flag.
			key := addr
			if inst.Canary {
				key += "#canary"
			}
			b := backends[key]
			if b == nil {
				b = oldBackends[key]
				if b == nil {
					b = &backend{addr: addr, canary: inst.Canary}
				}
				backends[key] = b
			}
			passing = append(passing, b)
			if inst.Canary {
				canary = append(canary, b)
			} else {
				stable = append(stable, b)
			}
		}
		for _, rs := range svc.Routes {
			if rs == nil {
				continue
			}
			host := normalizeHost(rs.Host)
			wild := strings.HasPrefix(host, "*.")
			k := routeKey{svc.Namespace, svc.Name, host, normalizePath(rs.Path)}
			if seen[k] {
				continue
			}
			seen[k] = true
			st := oldStats[k]
			if st == nil {
				st = &routeStats{}
			}
			stats[k] = st
			r := &route{namespace: svc.Namespace, service: svc.Name, host: host, path: k.path, spec: *rs,
				passing: passing, canary: canary, stable: stable, stats: st, rr: &st.rr, timeout: rs.Timeout}
			if r.timeout <= 0 {
				r.timeout = structs.DefaultRouteTimeout
			}
			t.routes = append(t.routes, r)
			switch {
			case host == "" || host == "*":
				t.any = append(t.any, r)
			case wild:
				t.wildcard[host[1:]] = append(t.wildcard[host[1:]], r)
			default:
				t.exact[host] = append(t.exact[host], r)
			}
			if rs.TLS != nil && rs.TLS.CertName != "" && host != "" {
				if wild {
					if _, ok := t.certByWildcard[host[1:]]; !ok {
						t.certByWildcard[host[1:]] = rs.TLS.CertName
					}
				} else if _, ok := t.certByHost[host]; !ok {
					t.certByHost[host] = rs.TLS.CertName
				}
			}
		}
	}
	byLen := func(rs []*route) {
		// Longest prefix first; the first service (by namespace and
		// name) keeps a prefix two services declare.
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].path) > len(rs[j].path) })
	}
	for _, rs := range t.exact {
		byLen(rs)
	}
	for _, rs := range t.wildcard {
		byLen(rs)
	}
	byLen(t.any)
	sort.SliceStable(t.routes, func(i, j int) bool {
		a, b := t.routes[i], t.routes[j]
		if a.host != b.host {
			return a.host < b.host
		}
		if a.path != b.path {
			return a.path < b.path
		}
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		return a.service < b.service
	})
	return t, backends, stats
}
