package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestBench_QuickWritesEndToEnd runs `drover bench -quick -scenarios
// writes` as a user would (a freshly built binary, three real server
// processes) and checks the JSON it writes, so the harness cannot rot
// unnoticed. It also checks that no process outlives the command.
func TestBench_QuickWritesEndToEnd(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "drover")
	build := exec.Command("go", "build", "-o", bin, "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build drover: %v\n%s", err, out)
	}
	results := filepath.Join(dir, "results")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "-quick", "-scenarios", "writes", "-results-dir", results)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("drover bench: %v\n%s", err, out.String())
	}
	for _, want := range []string{"SCENARIO", "writes (quick)", "job registrations acknowledged per second"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	raw, err := os.ReadFile(filepath.Join(results, "writes.json"))
	if err != nil {
		t.Fatalf("results: %v\n%s", err, out.String())
	}
	var res Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("decode writes.json: %v\n%s", err, raw)
	}
	if res.Scenario != "writes" || !res.Quick || res.Error != "" {
		t.Fatalf("scenario %q quick %v error %q", res.Scenario, res.Quick, res.Error)
	}
	if _, err := time.Parse(time.RFC3339, res.Date); err != nil {
		t.Errorf("date %q: %v", res.Date, err)
	}
	if res.Machine.Cores < 1 || res.Machine.MemoryBytes <= 0 || res.Machine.GoVersion == "" || res.Machine.Kernel == "" {
		t.Errorf("machine not described: %+v", res.Machine)
	}
	if res.Parameters["writers"] == nil || res.Parameters["servers"] == nil {
		t.Errorf("parameters missing: %v", res.Parameters)
	}
	value := func(name string) float64 {
		m := res.metric(name)
		if m == nil || m.Value == nil {
			t.Fatalf("metric %s missing or unmeasured in %s", name, raw)
		}
		if m.Unit == "" && name != "servers_identical" {
			t.Errorf("metric %s has no unit", name)
		}
		return *m.Value
	}
	rate, acked := value("writes_per_second"), value("writes_acked")
	p50, p99 := value("write_p50"), value("write_p99")
	if acked < 50 || rate <= 0 || rate > 1e6 {
		t.Errorf("%v writes acknowledged at %v/s: not a sane run", acked, rate)
	}
	if p50 <= 0 || p99 < p50 || p99 > 10000 {
		t.Errorf("write latency p50 %v ms, p99 %v ms: not sane", p50, p99)
	}
	if e := value("write_errors"); e != 0 {
		t.Errorf("%v write errors", e)
	}
	if liveCount() != 0 {
		t.Errorf("this process tracked children it never started")
	}
	if leftover := processesMentioning(results); len(leftover) > 0 {
		t.Errorf("processes left behind: %v", leftover)
	}
}

// processesMentioning returns the command lines of running processes
// that mention s.
func processesMentioning(s string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, s) && !strings.Contains(cmd, "go test") {
			out = append(out, cmd)
		}
	}
	return out
}

func TestPercentile_NearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 20; i++ {
		ds = append(ds, time.Duration(21-i)*time.Millisecond)
	}
	cases := []struct {
		name string
		p    float64
		want time.Duration
	}{
		{"min", 0, 1 * time.Millisecond},
		{"p50", 0.5, 10 * time.Millisecond},
		{"p90", 0.9, 18 * time.Millisecond},
		{"p99 of 20 is the max", 0.99, 20 * time.Millisecond},
		{"max", 1, 20 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := percentile(ds, c.p); got != c.want {
				t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
			}
		})
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

func TestResult_FinishJudgesGoals(t *testing.T) {
	res := &Result{Scenario: "x"}
	res.add("fast", "fast", "ms", 100, "").goal("<", 350)
	res.add("slow", "slow", "ms", 500, "").goal("<", 350)
	res.add("lost", "lost", "writes", 0, "").invariant("==", 0)
	res.add("unmeasured", "unmeasured", "ms", math.NaN(), "").goal("<", 1)
	res.add("info", "info", "ms", 3, "")
	res.finish()
	want := map[string]bool{"fast": true, "slow": false, "lost": true, "unmeasured": false}
	if len(res.Goals) != len(want) {
		t.Fatalf("%d goals, want %d: %+v", len(res.Goals), len(want), res.Goals)
	}
	for _, g := range res.Goals {
		if g.Pass != want[g.Metric] {
			t.Errorf("goal %s %s: pass %v, want %v", g.Metric, g.Goal, g.Pass, want[g.Metric])
		}
	}
	if res.Pass {
		t.Error("result passes with missed goals")
	}
	if !res.invariantsHold() {
		t.Error("the invariant held but invariantsHold says no")
	}
	if res.metric("unmeasured").Value != nil {
		t.Error("NaN was recorded as a value")
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatalf("result does not encode: %v", err)
	}
	var b bytes.Buffer
	printTable(&b, []*Result{res})
	for _, want := range []string{"SCENARIO", "FAIL", "pass", "n/a", "< 350 ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestMetrics_ParsesSummariesAndCounters(t *testing.T) {
	text := `# TYPE drover_plan_apply_seconds summary
drover_plan_apply_seconds{quantile="0.5"} 0.004
drover_plan_apply_seconds{quantile="0.99"} 0.02
drover_plan_apply_seconds_sum 1.5
drover_plan_apply_seconds_count 300
# TYPE drover_allocs_placed_total counter
drover_allocs_placed_total 10000
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.048576e+08
# TYPE drover_worker_evals_processed_total counter
drover_worker_evals_processed_total{path="local"} 7
drover_worker_evals_processed_total{path="rpc"} 35
`
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	m := &metrics{at: time.Now(), families: fams}
	cases := []struct {
		name      string
		got, want float64
	}{
		{"p50", m.quantile(mPlanApply, 0.5), 0.004},
		{"p99", m.quantile(mPlanApply, 0.99), 0.02},
		{"counter", m.value(mAllocsPlaced), 10000},
		{"gauge", m.value(mProcessRSS), 100 << 20},
		{"labelled rpc", m.labelled(mEvalsProcessed, "path", "rpc"), 35},
		{"labelled local", m.labelled(mEvalsProcessed, "path", "local"), 7},
		{"labelled all", m.labelled(mEvalsProcessed, "", ""), 42},
		{"labelled no match", m.labelled(mEvalsProcessed, "path", "other"), 0},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if v := m.labelled("absent", "path", "rpc"); !math.IsNaN(v) {
		t.Errorf("absent labelled metric = %v, want NaN", v)
	}
	if v := m.value("absent"); !math.IsNaN(v) {
		t.Errorf("absent metric = %v, want NaN", v)
	}
	p2 := expfmt.NewTextParser(model.UTF8Validation)
	earlier, err := p2.TextToMetricFamilies(strings.NewReader(
		"# TYPE drover_plan_apply_seconds summary\ndrover_plan_apply_seconds_sum 0.5\ndrover_plan_apply_seconds_count 100\n"))
	if err != nil {
		t.Fatal(err)
	}
	before := &metrics{families: earlier}
	if got := meanBetween(before, m, mPlanApply); math.Abs(got-0.005) > 1e-12 {
		t.Errorf("mean between scrapes = %v, want 0.005", got)
	}
	if got := meanBetween(m, m, mPlanApply); !math.IsNaN(got) {
		t.Errorf("mean without observations = %v, want NaN", got)
	}
}
