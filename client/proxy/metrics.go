package proxy

import "github.com/prometheus/client_golang/prometheus"

// metrics exports the services' counters at scrape time (a collector
// over Status), so a removed service's series simply stop.
type metrics struct {
	registry *prometheus.Registry
	p        *Proxy

	connections, active, bytesIn, bytesOut, failed, rejected, replayed, listenerErrors *prometheus.Desc
}

func newMetrics(p *Proxy) *metrics {
	labels := []string{"namespace", "service"}
	desc := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("drover_proxy_"+name, help, labels, nil)
	}
	m := &metrics{
		registry:       prometheus.NewRegistry(),
		p:              p,
		connections:    desc("connections_total", "Connections forwarded to a backend of the service.", labels),
		active:         desc("active_connections", "Open forwarded connections of the service.", labels),
		bytesIn:        desc("bytes_in_total", "Bytes copied from clients to the service's backends.", labels),
		bytesOut:       desc("bytes_out_total", "Bytes copied from the service's backends to clients.", labels),
		failed:         desc("failed_connects_total", "Connections closed because no backend of the service could be dialed.", labels),
		rejected:       desc("rejected_connections_total", "Connections closed at once because a listener of the service was at its bound.", labels),
		replayed:       desc("replayed_total", "Connections whose backend closed without answering, sent again to another backend.", labels),
		listenerErrors: desc("listener_errors", "Addresses the proxy should listen on and cannot.", nil),
	}
	m.registry.MustRegister(m)
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.connections, m.active, m.bytesIn, m.bytesOut, m.failed, m.rejected, m.replayed, m.listenerErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	st := m.p.Status()
	for _, s := range st.Services {
		lv := []string{s.Namespace, s.Name}
		ch <- prometheus.MustNewConstMetric(m.connections, prometheus.CounterValue, float64(s.Connections), lv...)
		ch <- prometheus.MustNewConstMetric(m.active, prometheus.GaugeValue, float64(s.Active), lv...)
		ch <- prometheus.MustNewConstMetric(m.bytesIn, prometheus.CounterValue, float64(s.BytesIn), lv...)
		ch <- prometheus.MustNewConstMetric(m.bytesOut, prometheus.CounterValue, float64(s.BytesOut), lv...)
		ch <- prometheus.MustNewConstMetric(m.failed, prometheus.CounterValue, float64(s.FailedConnects), lv...)
		ch <- prometheus.MustNewConstMetric(m.rejected, prometheus.CounterValue, float64(s.Rejected), lv...)
		ch <- prometheus.MustNewConstMetric(m.replayed, prometheus.CounterValue, float64(s.Replayed), lv...)
	}
	ch <- prometheus.MustNewConstMetric(m.listenerErrors, prometheus.GaugeValue, float64(st.Totals.ListenerErrors))
}
