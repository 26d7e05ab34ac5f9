package gateway

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus series per route.
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
}

var routeLabels = []string{"namespace", "service", "host", "path"}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_gateway_requests_total",
			Help: "Requests the gateway answered for a route, by status class (2xx, 4xx, ...)."}, append(routeLabels, "code")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "drover_gateway_request_duration_seconds",
			Help: "Time to answer a request of a route (to the end of the response).", Buckets: prometheus.DefBuckets}, routeLabels),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_gateway_upstream_errors_total",
			Help: "Requests of a route no instance answered (refused, closed, timed out)."}, routeLabels),
	}
	m.registry.MustRegister(m.requests, m.duration, m.upstreamErrors)
	return m
}

func (m *metrics) observe(rt *route, code int, d time.Duration, upstreamErr bool) {
	s := &rt.stats.series
	s.requests(m, rt, code).Inc()
	s.duration(m, rt).Observe(d.Seconds())
	if upstreamErr {
		s.upstreamErrors(m, rt).Inc()
	}
}

// routeSeries are a route's series, looked up in the vectors the first
// time each is needed and kept with the route's counters (routeStats),
// so a request does not hash its route's labels under the vectors'
// locks (WithLabelValues) three times. A series is only created when
// first observed, as before: routes that served nothing export
// nothing. A route dropped from the table is forgotten (its series
// deleted) with its routeStats; requests still in flight on it count
// into series no longer exported.
type routeSeries struct {
	// byClass holds the requests_total series per status class
	// (index code/100).
	byClass  [10]atomic.Pointer[seriesRef[prometheus.Counter]]
	dur      atomic.Pointer[seriesRef[prometheus.Observer]]
	upstream atomic.Pointer[seriesRef[prometheus.Counter]]
}

// seriesRef holds a series looked up once.
type seriesRef[S any] struct{ s S }

// keep stores s in p and returns it. Two first requests may both get
// here: the vector hands both the same series.
func keep[S any](p *atomic.Pointer[seriesRef[S]], s S) S {
	p.Store(&seriesRef[S]{s})
	return s
}

// labelValues are rt's values of routeLabels, then extra.
func (rt *route) labelValues(extra ...string) []string {
	return append([]string{rt.namespace, rt.service, rt.host, rt.path}, extra...)
}

func (s *routeSeries) requests(m *metrics, rt *route, code int) prometheus.Counter {
	class := code / 100
	if class < 0 || class >= len(s.byClass) {
		return m.requests.WithLabelValues(rt.labelValues(strconv.Itoa(class) + "xx")...)
	}
	if r := s.byClass[class].Load(); r != nil {
		return r.s
	}
	return keep(&s.byClass[class], m.requests.WithLabelValues(rt.labelValues(strconv.Itoa(class)+"xx")...))
}

func (s *routeSeries) duration(m *metrics, rt *route) prometheus.Observer {
	if r := s.dur.Load(); r != nil {
		return r.s
	}
	return keep(&s.dur, m.duration.WithLabelValues(rt.labelValues()...))
}

func (s *routeSeries) upstreamErrors(m *metrics, rt *route) prometheus.Counter {
	if r := s.upstream.Load(); r != nil {
		return r.s
	}
	return keep(&s.upstream, m.upstreamErrors.WithLabelValues(rt.labelValues()...))
}

// forget drops a removed route's series.
func (m *metrics) forget(k routeKey) {
	labels := prometheus.Labels{"namespace": k.namespace, "service": k.service, "host": k.host, "path": k.path}
	m.requests.DeletePartialMatch(labels)
	m.duration.DeletePartialMatch(labels)
	m.upstreamErrors.DeletePartialMatch(labels)
}

// Registry holds the drover_gateway_* metrics (for the agent's
// /v1/metrics).
func (g *Gateway) Registry() *prometheus.Registry { return g.metrics.registry }
