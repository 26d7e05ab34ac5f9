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
// heartbeat metrics (drover_*).
func (a *Agent) metricsHandler() http.Handler {
	process := prometheus.NewRegistry()
	process.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gatherers := prometheus.Gatherers{process}
	if a.server != nil {
		gatherers = append(gatherers, a.server.MetricsRegistry())
	}
	return promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
