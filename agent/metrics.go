package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves the agent's metrics in Prometheus' text format
// at /v1/metrics: the Go runtime and this process (CPU seconds, resident
// memory), and on servers the scheduler, plan applier, Raft and
// heartbeat metrics (drover_*), and with audit on the audit log's
// (audit.go). The route needs agent:read (http_authz.go).
func (a *Agent) metricsHandler() http.Handler {
	process := prometheus.NewRegistry()
	process.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gatherers := prometheus.Gatherers{process}
	if a.server != nil {
		gatherers = append(gatherers, a.server.MetricsRegistry())
	}
	if a.proxy != nil {
		// drover_proxy_* per service (client/proxy).
		gatherers = append(gatherers, a.proxy.Registry())
	}
	if a.gateway != nil {
		// drover_gateway_* per route (client/gateway).
		gatherers = append(gatherers, a.gateway.Registry())
	}
	if a.audit != nil {
		// drover_audit_lines_total, drover_audit_write_failures_total.
		gatherers = append(gatherers, a.audit.registry)
	}
	return promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
