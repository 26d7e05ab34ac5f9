package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Result is what one scenario measured; it is written as
// <results-dir>/<scenario>.json.
type Result struct {
	Scenario string `json:"scenario"`
	// Date is when the scenario started (RFC 3339).
	Date            string  `json:"date"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Quick is set for the shrunken smoke run (-quick): its numbers are
	// not comparable with a full run's.
	Quick      bool                   `json:"quick"`
	Machine    Machine                `json:"machine"`
	Parameters map[string]interface{} `json:"parameters"`
	// Metrics are every measured figure, in the order of the table.
	Metrics []*Metric `json:"metrics"`
	// Goals repeats the metrics that have a goal, with pass or fail.
	Goals []GoalResult `json:"goals"`
	// Pass is set when the scenario ran and every goal was met.
	Pass bool `json:"pass"`
	// Error says why the scenario could not complete ("" if it did).
	Error string `json:"error,omitempty"`
	// Notes are observations made during the run (e.g. a leader change
	// that makes a figure less meaningful).
	Notes []string `json:"notes,omitempty"`
}

// Metric is one measured figure.
type Metric struct {
	// Name is stable, for machines (e.g. "placements_per_second").
	Name string `json:"name"`
	// Label is the table's short description.
	Label string `json:"label"`
	// Description says exactly what was measured and how.
	Description string `json:"description"`
	// Value is null when the figure could not be measured (e.g. a
	// summary without observations).
	Value *float64 `json:"value"`
	Unit  string   `json:"unit"`
	Goal  *Goal    `json:"goal,omitempty"`
}

// Goal is a target a metric should meet.
type Goal struct {
	// Op compares the value with Target: "<", "<=", ">=", "==".
	Op     string  `json:"op"`
	Target float64 `json:"target"`
	// Invariant marks correctness properties (no lost write, no node
	// over capacity, no false down): missing one fails the command.
	// Other goals are performance targets, reported only.
	Invariant bool `json:"invariant"`
	Pass      bool `json:"pass"`
}

// GoalResult is a goal with the value it was judged on.
type GoalResult struct {
	Metric    string   `json:"metric"`
	Goal      string   `json:"goal"`
	Value     *float64 `json:"value"`
	Unit      string   `json:"unit"`
	Invariant bool     `json:"invariant"`
	Pass      bool     `json:"pass"`
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPUModel    string `json:"cpu_model"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	// GitCommit is the commit the drover binary was built from ("" if
	// unknown); GitDirty is set when the tree had local changes.
	GitCommit string `json:"git_commit"`
	GitDirty  bool   `json:"git_dirty"`
}

// add records a figure; NaN (not measured) becomes null.
func (res *Result) add(name, label, unit string, value float64, description string) *Metric {
	m := &Metric{Name: name, Label: label, Unit: unit, Description: description}
	if !math.IsNaN(value) && !math.IsInf(value, 0) {
		v := value
		m.Value = &v
	}
	res.Metrics = append(res.Metrics, m)
	return m
}

// goal attaches a performance target to the metric.
func (m *Metric) goal(op string, target float64) *Metric {
	m.Goal = &Goal{Op: op, Target: target}
	return m
}

// invariant attaches a correctness goal to the metric.
func (m *Metric) invariant(op string, target float64) *Metric {
	m.Goal = &Goal{Op: op, Target: target, Invariant: true}
	return m
}

// note records an observation.
func (res *Result) note(format string, args ...interface{}) {
	res.Notes = append(res.Notes, fmt.Sprintf(format, args...))
}

// finish judges the goals. An unmeasured figure fails its goal.
func (res *Result) finish() {
	res.Goals = nil
	res.Pass = res.Error == ""
	for _, m := range res.Metrics {
		if m.Goal == nil {
			continue
		}
		g := m.Goal
		g.Pass = false
		if m.Value != nil {
			v := *m.Value
			switch g.Op {
			case "<":
				g.Pass = v < g.Target
			case "<=":
				g.Pass = v <= g.Target
			case ">=":
				g.Pass = v >= g.Target
			case ">":
				g.Pass = v > g.Target
			case "==":
				g.Pass = v == g.Target
			}
		}
		if !g.Pass {
			res.Pass = false
		}
		res.Goals = append(res.Goals, GoalResult{
			Metric: m.Name, Goal: g.Op + " " + formatValue(g.Target, m.Unit), Value: m.Value,
			Unit: m.Unit, Invariant: g.Invariant, Pass: g.Pass,
		})
	}
}

// invariantsHold reports whether every invariant goal passed.
func (res *Result) invariantsHold() bool {
	for _, g := range res.Goals {
		if g.Invariant && !g.Pass {
			return false
		}
	}
	return true
}

// metric returns the named metric, nil if absent.
func (res *Result) metric(name string) *Metric {
	for _, m := range res.Metrics {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// writeJSON writes the result to path.
func (res *Result) writeJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// printTable prints one row per figure: scenario, metric, value, goal,
// pass/fail.
func printTable(w io.Writer, results []*Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tVALUE\tGOAL\tRESULT")
	for _, res := range results {
		name := res.Scenario
		if res.Quick {
			name += " (quick)"
		}
		for _, m := range res.Metrics {
			value, goal, verdict := "n/a", "", ""
			if m.Value != nil {
				value = formatValue(*m.Value, m.Unit)
			}
			if m.Goal != nil {
				goal = m.Goal.Op + " " + formatValue(m.Goal.Target, m.Unit)
				verdict = "pass"
				if !m.Goal.Pass {
					verdict = "FAIL"
					if m.Goal.Invariant {
						verdict = "FAIL (invariant)"
					}
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, m.Label, value, goal, verdict)
		}
		if res.Error != "" {
			msg := res.Error
			if i := strings.IndexByte(msg, '\n'); i >= 0 {
				msg = msg[:i] + " ..."
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, "scenario did not complete", msg, "", "ERROR")
		}
	}
	tw.Flush()
	for _, res := range results {
		for _, n := range res.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", res.Scenario, n)
		}
	}
}

// formatValue renders a value with its unit for the table.
func formatValue(v float64, unit string) string {
	switch unit {
	case "bytes":
		return formatBytes(v)
	case "ms":
		if v < 10 {
			return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
		}
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	case "s":
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	case "cores":
		return strconv.FormatFloat(v, 'f', 2, 64) + " cores"
	case "":
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	if v == math.Trunc(v) || math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64) + " " + unit
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
}

// formatBytes renders bytes in MiB or GiB.
func formatBytes(v float64) string {
	const mib, gib = 1 << 20, 1 << 30
	if math.Abs(v) >= gib {
		return strconv.FormatFloat(v/gib, 'f', 2, 64) + " GiB"
	}
	return strconv.FormatFloat(v/mib, 'f', 1, 64) + " MiB"
}

// machineInfo describes this machine and the build.
func machineInfo() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemoryBytes = kb * 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				m.GitCommit = s.Value
			case "vcs.modified":
				m.GitDirty = s.Value == "true"
			}
		}
	}
	if m.GitCommit == "" {
		// Built without VCS stamping (go run, -buildvcs=false): the
		// checkout we run in is the best guess.
		if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			m.GitCommit = strings.TrimSpace(string(out))
			if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
				m.GitDirty = len(strings.TrimSpace(string(st))) > 0
			}
		}
	}
	return m
}
