package gateway

import (
	"strconv"
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
	lv := []string{rt.namespace, rt.service, rt.host, rt.path}
	m.requests.WithLabelValues(append(lv, strconv.Itoa(code/100)+"xx")...).Inc()
	m.duration.WithLabelValues(lv...).Observe(d.Seconds())
	if upstreamErr {
		m.upstreamErrors.WithLabelValues(lv...).Inc()
	}
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
