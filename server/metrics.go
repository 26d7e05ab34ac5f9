package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics are the server's Prometheus metrics. Each server has its
// own registry (tests run several servers in one process); the agent
// serves it at /v1/metrics together with the Go runtime and process
// collectors.
type serverMetrics struct {
	registry *prometheus.Registry

	planApply        prometheus.Summary
	planQueueWait    prometheus.Summary
	planBatchSize    prometheus.Summary
	evalLatency      prometheus.Summary
	raftApply        prometheus.Summary
	allocsPlaced     prometheus.Counter
	allocsStopped    prometheus.Counter
	plans            prometheus.Counter
	planRejectNodes  prometheus.Counter
	heartbeats       prometheus.Counter
	nodesDown        prometheus.Counter
	evalsAcked       prometheus.Counter
	allocUpdates     prometheus.Counter
	allocUpdateBatch prometheus.Counter
	schedulerPanics  prometheus.Counter
	snapshotsWritten prometheus.Counter
	snapshotFailures prometheus.Counter
}

// quantiles are the summaries' objectives: median, p90, p99.
var quantiles = map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}

func newServerMetrics() *serverMetrics {
	summary := func(name, help string) prometheus.Summary {
		return prometheus.NewSummary(prometheus.SummaryOpts{
			Namespace: "drover", Name: name, Help: help, Objectives: quantiles, MaxAge: 10 * time.Minute,
		})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Name: name, Help: help})
	}
	m := &serverMetrics{
		registry:         prometheus.NewRegistry(),
		planApply:        summary("plan_apply_seconds", "Time from a plan's submission to its commit result (queue wait, re-check, Raft commit)."),
		planQueueWait:    summary("plan_queue_wait_seconds", "Time a plan waited in the plan queue."),
		planBatchSize:    summary("plan_batch_size", "Plans committed together in one Raft entry."),
		evalLatency:      summary("eval_seconds", "Time from an evaluation becoming ready in the broker to its acknowledgement."),
		raftApply:        summary("raft_apply_seconds", "Time to commit and apply one Raft entry on the leader."),
		allocsPlaced:     counter("allocs_placed_total", "Allocations committed by the plan applier."),
		allocsStopped:    counter("allocs_stopped_total", "Allocation stops and evictions committed by the plan applier."),
		plans:            counter("plans_total", "Plans applied."),
		planRejectNodes:  counter("plan_rejected_nodes_total", "Nodes whose part of a plan was rejected by the re-check."),
		heartbeats:       counter("heartbeats_total", "Client heartbeats received by the leader."),
		nodesDown:        counter("nodes_down_total", "Nodes marked down because their heartbeat TTL expired."),
		evalsAcked:       counter("evals_acked_total", "Evaluations completed by the scheduler workers."),
		allocUpdates:     counter("alloc_client_updates_total", "Allocation updates from clients."),
		allocUpdateBatch: counter("alloc_client_update_batches_total", "Client allocation update requests (each one Raft entry)."),
		schedulerPanics:  counter("scheduler_panics_total", "Evaluations failed because the scheduler panicked (a bug; the log has the stack)."),
		snapshotsWritten: counter("snapshot_scheduled_total", "Scheduled snapshots written by this server as leader."),
		snapshotFailures: counter("snapshot_scheduled_failures_total", "Scheduled snapshots that failed on this server as leader."),
	}
	m.registry.MustRegister(m.planApply, m.planQueueWait, m.planBatchSize, m.evalLatency, m.raftApply, m.allocsPlaced, m.allocsStopped,
		m.plans, m.planRejectNodes, m.heartbeats, m.nodesDown, m.evalsAcked, m.allocUpdates, m.allocUpdateBatch, m.schedulerPanics,
		m.snapshotsWritten, m.snapshotFailures)
	return m
}

// MetricsRegistry returns the server's metrics registry.
func (s *Server) MetricsRegistry() *prometheus.Registry { return s.metrics.registry }
