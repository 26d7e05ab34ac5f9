package server

import (
	"os"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/droverhq/drover/structs"
)

// serverMetrics are the server's Prometheus metrics. Each server has its
// own registry (tests run several servers in one process); the agent
// serves it at /v1/metrics together with the Go runtime and process
// collectors.
type serverMetrics struct {
	registry *prometheus.Registry

	planApply             prometheus.Summary
	planQueueWait         prometheus.Summary
	planBatchSize         prometheus.Summary
	evalLatency           prometheus.Summary
	raftApply             prometheus.Summary
	allocsPlaced          prometheus.Counter
	allocsStopped         prometheus.Counter
	plans                 prometheus.Counter
	planRejectNodes       prometheus.Counter
	heartbeats            prometheus.Counter
	nodesDown             prometheus.Counter
	evalsAcked            prometheus.Counter
	allocUpdates          prometheus.Counter
	allocUpdateBatch      prometheus.Counter
	allocUpdateEntries    prometheus.Counter
	allocUpdatesUnchanged prometheus.Counter
	schedulerPanics       prometheus.Counter
	// leadershipsEstablished counts the times this server became leader
	// (its leader components started): summed over the servers, a
	// run's elections, so leadership lost under load shows.
	leadershipsEstablished prometheus.Counter
	// evalsProcessed counts evaluations this server's workers scheduled
	// and acked, by path: "local" (the leader's in-process broker) or
	// "rpc" (a follower's worker over RPC to the leader).
	evalsProcessed   *prometheus.CounterVec
	snapshotsWritten prometheus.Counter
	snapshotFailures prometheus.Counter
	// gcDeleted and gcSkipped count the garbage collector's rows by
	// kind (written by this server as leader).
	gcDeleted *prometheus.CounterVec
	gcSkipped *prometheus.CounterVec
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
		registry:               prometheus.NewRegistry(),
		planApply:              summary("plan_apply_seconds", "Time from a plan's submission to its commit result (queue wait, re-check, Raft commit)."),
		planQueueWait:          summary("plan_queue_wait_seconds", "Time a plan waited in the plan queue."),
		planBatchSize:          summary("plan_batch_size", "Plans committed together in one Raft entry."),
		evalLatency:            summary("eval_seconds", "Time from an evaluation becoming ready in the broker to its acknowledgement."),
		raftApply:              summary("raft_apply_seconds", "Time to commit and apply one Raft entry on the leader."),
		allocsPlaced:           counter("allocs_placed_total", "Allocations committed by the plan applier."),
		allocsStopped:          counter("allocs_stopped_total", "Allocation stops and evictions committed by the plan applier."),
		plans:                  counter("plans_total", "Plans applied."),
		planRejectNodes:        counter("plan_rejected_nodes_total", "Nodes whose part of a plan was rejected by the re-check."),
		heartbeats:             counter("heartbeats_total", "Client heartbeats received by the leader."),
		nodesDown:              counter("nodes_down_total", "Nodes marked down because their heartbeat TTL expired."),
		evalsAcked:             counter("evals_acked_total", "Evaluations completed by the scheduler workers."),
		allocUpdates:           counter("alloc_client_updates_total", "Allocation updates from clients."),
		allocUpdateBatch:       counter("alloc_client_update_batches_total", "Client allocation update requests (Node.UpdateAlloc calls)."),
		allocUpdateEntries:     counter("alloc_client_update_entries_total", "Raft entries written for client allocation updates (the calls of a short window are coalesced)."),
		allocUpdatesUnchanged:  counter("alloc_client_updates_unchanged_total", "Client allocation updates not written because they changed nothing."),
		schedulerPanics:        counter("scheduler_panics_total", "Evaluations failed because the scheduler panicked (a bug; the log has the stack)."),
		leadershipsEstablished: counter("leaderships_established_total", "Times this server became leader and started its leader components."),
		snapshotsWritten:       counter("snapshot_scheduled_total", "Scheduled snapshots written by this server as leader."),
		snapshotFailures:       counter("snapshot_scheduled_failures_total", "Scheduled snapshots that failed on this server as leader."),
		evalsProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "drover", Name: "worker_evals_processed_total",
			Help: "Evaluations this server's scheduler workers scheduled and acked, by path: local (this server leads) or rpc (this server follows and took them from the leader)."}, []string{"path"}),
		gcDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "drover", Name: "gc_deleted_total",
			Help: "Rows deleted by the garbage collector entries this server wrote as leader, by kind."}, []string{"kind"}),
		gcSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "drover", Name: "gc_skipped_total",
			Help: "Rows the garbage collector chose that were no longer collectable when its entry applied, by kind."}, []string{"kind"}),
	}
	// Both series exist from the start: a server that scheduled nothing
	// reports zeros, not an absent metric.
	m.evalsProcessed.WithLabelValues("local")
	m.evalsProcessed.WithLabelValues("rpc")
	m.registry.MustRegister(m.planApply, m.planQueueWait, m.planBatchSize, m.evalLatency, m.raftApply, m.allocsPlaced, m.allocsStopped,
		m.plans, m.planRejectNodes, m.heartbeats, m.nodesDown, m.evalsAcked, m.allocUpdates, m.allocUpdateBatch, m.allocUpdateEntries, m.allocUpdatesUnchanged, m.schedulerPanics, m.leadershipsEstablished,
		m.evalsProcessed, m.snapshotsWritten, m.snapshotFailures, m.gcDeleted, m.gcSkipped)
	return m
}

// MetricsRegistry returns the server's metrics registry.
func (s *Server) MetricsRegistry() *prometheus.Registry { return s.metrics.registry }

// countGC counts one garbage collection entry's result.
func (m *serverMetrics) countGC(res *structs.GCBatchResult) {
	for _, c := range []struct {
		vec *prometheus.CounterVec
		n   structs.GCCounts
	}{{m.gcDeleted, res.Deleted}, {m.gcSkipped, res.Skipped}} {
		for kind, n := range map[string]int{"job": c.n.Jobs, "job_version": c.n.JobVersions, "eval": c.n.Evals,
			"alloc": c.n.Allocs, "deployment": c.n.Deployments, "node": c.n.Nodes} {
			if n > 0 {
				c.vec.WithLabelValues(kind).Add(float64(n))
			}
		}
	}
}

// watchRaftDB exports the size of the Raft log's bolt file and the bytes
// on its freelist (raft_compact.go), read at each scrape.
func (m *serverMetrics) watchRaftDB(path string, store *raftboltdb.BoltStore) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "drover", Name: "raft_db_bytes",
			Help: "Size of the Raft log's bolt file (raft.db)."}, func() float64 {
			fi, err := os.Stat(path)
			if err != nil {
				return 0
			}
			return float64(fi.Size())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "drover", Name: "raft_db_free_bytes",
			Help: "Bytes of raft.db on bolt's freelist: reused for new entries, given back only by a compaction at start-up."}, func() float64 {
			st := store.Stats()
			return float64(int64(st.FreePageN+st.PendingPageN) * int64(os.Getpagesize()))
		}),
	)
}
