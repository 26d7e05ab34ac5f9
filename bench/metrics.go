package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names the agents export at /v1/metrics (agent/metrics.go,
// server/metrics.go). The drover_* ones count on the leader only.
const (
	mPlanApply      = "drover_plan_apply_seconds"
	mPlanQueueWait  = "drover_plan_queue_wait_seconds"
	mEval           = "drover_eval_seconds"
	mRaftApply      = "drover_raft_apply_seconds"
	mAllocsPlaced   = "drover_allocs_placed_total"
	mPlans          = "drover_plans_total"
	mHeartbeats     = "drover_heartbeats_total"
	mNodesDown      = "drover_nodes_down_total"
	mEvalsAcked     = "drover_evals_acked_total"
	mAllocUpdates   = "drover_alloc_client_updates_total"
	mProcessCPU     = "process_cpu_seconds_total"
	mProcessRSS     = "process_resident_memory_bytes"
	mGoHeapInuse    = "go_memstats_heap_inuse_bytes"
	mGoHeapObjects  = "go_memstats_heap_objects"
	mGoGoroutines   = "go_goroutines"
	mGoStackInuse   = "go_memstats_stack_inuse_bytes"
	mGoHeapIdle     = "go_memstats_heap_idle_bytes"
	mGoHeapReleased = "go_memstats_heap_released_bytes"
	mGoNextGC       = "go_memstats_next_gc_bytes"
	mPlanRejectNode = "drover_plan_rejected_nodes_total"
	mRaftDBFree     = "drover_raft_db_free_bytes"
	// mEvalsProcessed counts on every server: evaluations its workers
	// scheduled, label path="local" (as leader) or "rpc" (as follower).
	mEvalsProcessed = "drover_worker_evals_processed_total"
	// mLeaderships counts on every server the times it became leader.
	mLeaderships = "drover_leaderships_established_total"
)

// metricsClient scrapes /v1/metrics; its timeout is short so that a
// stuck server does not stall a scenario's progress loop.
var metricsClient = &http.Client{Timeout: 10 * time.Second}

// metrics is one scrape of an agent's /v1/metrics.
type metrics struct {
	at       time.Time
	families map[string]*dto.MetricFamily
}

// scrape reads and parses an agent's metrics.
func scrape(ctx context.Context, a *agentProc) (*metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.httpAddr()+"/v1/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", a.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: HTTP %d", a.name, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse metrics of %s: %w", a.name, err)
	}
	return &metrics{at: time.Now(), families: fams}, nil
}

// value returns the value of an unlabelled counter or gauge, NaN when
// the metric is absent.
func (m *metrics) value(name string) float64 {
	f, ok := m.families[name]
	if !ok || len(f.Metric) == 0 {
		return math.NaN()
	}
	x := f.Metric[0]
	switch {
	case x.Counter != nil:
		return x.Counter.GetValue()
	case x.Gauge != nil:
		return x.Gauge.GetValue()
	case x.Untyped != nil:
		return x.Untyped.GetValue()
	}
	return math.NaN()
}

// labelled returns the sum of a counter's series whose label has value
// (every series when label is ""), NaN when the metric is absent.
func (m *metrics) labelled(name, label, value string) float64 {
	f, ok := m.families[name]
	if !ok {
		return math.NaN()
	}
	sum := 0.0
	for _, x := range f.Metric {
		if label != "" {
			match := false
			for _, l := range x.Label {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if !match {
				continue
			}
		}
		if x.Counter != nil {
			sum += x.Counter.GetValue()
		}
	}
	return sum
}

// quantile returns quantile q of a summary, NaN when absent or without
// observations in the summary's window (10 minutes).
func (m *metrics) quantile(name string, q float64) float64 {
	f, ok := m.families[name]
	if !ok || len(f.Metric) == 0 || f.Metric[0].Summary == nil {
		return math.NaN()
	}
	for _, qq := range f.Metric[0].Summary.Quantile {
		if qq.GetQuantile() == q {
			return qq.GetValue()
		}
	}
	return math.NaN()
}

// summaryCount returns a summary's observation count and sum.
func (m *metrics) summaryCount(name string) (count uint64, sum float64) {
	f, ok := m.families[name]
	if !ok || len(f.Metric) == 0 || f.Metric[0].Summary == nil {
		return 0, math.NaN()
	}
	s := f.Metric[0].Summary
	return s.GetSampleCount(), s.GetSampleSum()
}

// meanBetween returns the mean of a summary's observations made between
// two scrapes, NaN when there were none.
func meanBetween(before, after *metrics, name string) float64 {
	c0, s0 := before.summaryCount(name)
	c1, s1 := after.summaryCount(name)
	if c1 <= c0 {
		return math.NaN()
	}
	return (s1 - s0) / float64(c1-c0)
}

// delta returns after - before of a counter.
func delta(before, after *metrics, name string) float64 {
	return after.value(name) - before.value(name)
}

// procStatCPU returns the CPU seconds (user + system) a process used,
// from /proc/<pid>/stat, for processes that do not serve metrics (the
// simulator).
func procStatCPU(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from the
	// closing parenthesis.
	b := string(raw)
	i := strings.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(b[i+1:])
	// fields[0] is state (field 3); utime and stime are fields 14, 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return (ut + st) / clockTicks, nil
}

// procStatusRSS returns a process's resident memory in bytes, from
// /proc/<pid>/status.
func procStatusRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
