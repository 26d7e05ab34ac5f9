package scheduler

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// updateGolden rewrites the golden files: go test ./scheduler -run Golden -update
var updateGolden = flag.Bool("update", false, "rewrite the scheduler's testdata/*.golden files")

// TestGolden runs every scenario in testdata/*.txt through the harness
// and compares the rendered plans, evaluations and cluster state with
// the .golden file next to it. The scenario language is described in
// testdata/README.md. Each scenario runs twice: the output must not
// depend on anything but the scenario (evaluation IDs, and so the
// random seeds, are derived from it).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := runScenario(t, file, string(src))
			if again := runScenario(t, file, string(src)); again != got {
				t.Fatalf("scenario output differs between two runs:\n%s", firstDiff(got, again))
			}
			golden := strings.TrimSuffix(file, ".txt") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Fatalf("output differs from %s (run with -update to accept):\n%s", golden, firstDiff(string(want), got))
			}
		})
	}
}

// lastLine returns the last complete line of out.
func lastLine(out string) string {
	out = strings.TrimSuffix(out, "\n")
	return out[strings.LastIndexByte(out, '\n')+1:]
}

// firstDiff shows the first differing line of two outputs.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, wl, gl)
		}
	}
	return "(equal)"
}

// scenario is the state of one scenario run.
type scenario struct {
	t    *testing.T
	file string
	line int
	h    *Harness
	out  strings.Builder
	t0   time.Time

	jobs map[string]*structs.Job // job ID -> latest definition
	// evalNum numbers evaluations in the output, by ID.
	evalNum map[string]int
	nextNum int
	// handled are scheduler-created evaluations already processed.
	handled map[string]bool
	// scores prints each placement's score components; nostate prints
	// the cluster state only on the state command.
	scores, nostate bool
}

func runScenario(t *testing.T, file, src string) string {
	t.Helper()
	s := &scenario{
		t: t, file: file, h: NewHarness(t),
		jobs: map[string]*structs.Job{}, evalNum: map[string]int{}, handled: map[string]bool{},
	}
	s.t0 = s.h.Now
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		s.line = i + 1
		line := strings.TrimRight(lines[i], " \t\r")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "#"):
			if s.out.Len() > 0 && !strings.HasSuffix(s.out.String(), "\n\n") && !strings.HasPrefix(lastLine(s.out.String()), "#") {
				fmt.Fprintln(&s.out)
			}
			fmt.Fprintln(&s.out, trimmed)
			continue
		}
		args := s.tokens(trimmed)
		if args[0] == "job" {
			// The job block: the indented lines that follow.
			var block []string
			for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t")) {
				i++
				if b := strings.TrimSpace(lines[i]); b != "" && !strings.HasPrefix(b, "#") {
					block = append(block, b)
				}
			}
			s.defineJob(args[1:], block)
			continue
		}
		if !strings.HasPrefix(lastLine(s.out.String()), "> node ") || args[0] != "node" {
			fmt.Fprintln(&s.out)
		}
		fmt.Fprintf(&s.out, "> %s\n", trimmed)
		s.command(args)
	}
	return s.out.String()
}

func (s *scenario) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, args...))
}

// tokens splits a line on spaces, keeping "double-quoted strings"
// together (unquoted).
func (s *scenario) tokens(line string) []string {
	var out []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		if line[0] == '"' {
			end := strings.IndexByte(line[1:], '"')
			if end < 0 {
				s.fatalf("unterminated quote in %q", line)
			}
			out = append(out, line[1:end+1])
			line = line[end+2:]
			continue
		}
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			end = len(line)
		}
		out = append(out, line[:end])
		line = line[end:]
	}
	return out
}

// kv splits key=value arguments; bare words map to "".
func kv(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		out[k] = v
	}
	return out
}

func (s *scenario) atoi(v string) int {
	s.t.Helper()
	n, err := strconv.Atoi(v)
	if err != nil {
		s.fatalf("%q is not a number", v)
	}
	return n
}

func (s *scenario) duration(v string) time.Duration {
	s.t.Helper()
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fatalf("%q is not a duration", v)
	}
	return d
}

// node <name> [dc=] [pool=] [class=] [cpu=] [mem=] [status=] [ineligible] [drain] [nodriver] [meta.K=V] [attr.K=V]
func (s *scenario) node(args []string) {
	n := namedNode(args[0])
	n.ID = args[0]
	for k, v := range kv(args[1:]) {
		switch {
		case k == "dc":
			n.Datacenter = v
		case k == "pool":
			n.NodePool = v
		case k == "class":
			n.NodeClass = v
		case k == "cpu":
			n.NodeResources.Cpu.CpuShares = int64(s.atoi(v))
		case k == "mem":
			n.NodeResources.Memory.MemoryMB = int64(s.atoi(v))
		case k == "status":
			n.Status = v
		case k == "ineligible":
			n.SchedulingEligibility = structs.NodeSchedulingIneligible
		case k == "drain":
			n.SchedulingEligibility = structs.NodeSchedulingIneligible
			n.DrainStrategy = &structs.DrainStrategy{}
		case k == "nodriver":
			n.Drivers["containerd"].Healthy = false
		case strings.HasPrefix(k, "meta."):
			withMeta(strings.TrimPrefix(k, "meta."), v)(n)
		case strings.HasPrefix(k, "attr."):
			withAttr(strings.TrimPrefix(k, "attr."), v)(n)
		default:
			s.fatalf("unknown node option %q", k)
		}
	}
	s.h.addNodes(n)
}

// defineJob reads a job header and block; see testdata/README.md.
func (s *scenario) defineJob(header, block []string) {
	id := header[0]
	opts := kv(header[1:])
	job := &structs.Job{ID: id, Type: structs.JobTypeService, Datacenters: []string{"dc1"}}
	newGroup := func(name string, opts map[string]string) *structs.TaskGroup {
		tg := &structs.TaskGroup{Name: name, Count: 1, Tasks: []*structs.Task{{
			Name: "server", Driver: "containerd",
			Config:    &structs.TaskConfig{Image: "busybox:1"},
			Resources: &structs.Resources{CPU: 500, MemoryMB: 256},
		}}}
		for k, v := range opts {
			switch k {
			case "count":
				tg.Count = s.atoi(v)
			case "cpu":
				tg.Tasks[0].Resources.CPU = s.atoi(v)
			case "mem":
				tg.Tasks[0].Resources.MemoryMB = s.atoi(v)
			}
		}
		return tg
	}
	for k, v := range opts {
		switch k {
		case "type":
			job.Type = v
		case "priority":
			job.Priority = s.atoi(v)
		case "dcs":
			job.Datacenters = strings.Split(v, ",")
		case "pool":
			job.NodePool = v
		case "count", "cpu", "mem":
		default:
			s.fatalf("unknown job option %q", k)
		}
	}
	tg := newGroup(id, opts)
	job.TaskGroups = []*structs.TaskGroup{tg}
	for _, line := range block {
		args := s.tokens(line)
		switch args[0] {
		case "group":
			tg = newGroup(args[1], kv(args[2:]))
			job.TaskGroups = append(job.TaskGroups, tg)
		case "constraint":
			tg.Constraints = append(tg.Constraints, s.constraint(args[1:]))
		case "job-constraint":
			job.Constraints = append(job.Constraints, s.constraint(args[1:]))
		case "affinity":
			tg.Affinities = append(tg.Affinities, s.affinity(args[1:]))
		case "job-affinity":
			job.Affinities = append(job.Affinities, s.affinity(args[1:]))
		case "spread":
			tg.Spreads = append(tg.Spreads, s.spread(args[1:]))
		case "update":
			u := &structs.UpdateStrategy{}
			for k, v := range kv(args[1:]) {
				switch k {
				case "max_parallel":
					u.MaxParallel = s.atoi(v)
				case "canary":
					u.Canary = s.atoi(v)
				case "auto_revert":
					u.AutoRevert = true
				default:
					s.fatalf("unknown update option %q", k)
				}
			}
			tg.Update = u
		case "migrate":
			tg.Migrate = &structs.MigrateStrategy{MaxParallel: s.atoi(kv(args[1:])["max_parallel"])}
		case "reschedule":
			p := &structs.ReschedulePolicy{}
			for k, v := range kv(args[1:]) {
				switch k {
				case "attempts":
					p.Attempts = s.atoi(v)
				case "interval":
					p.Interval = s.duration(v)
				case "delay":
					p.Delay = s.duration(v)
				case "function":
					p.DelayFunction = v
				case "max_delay":
					p.MaxDelay = s.duration(v)
				case "unlimited":
					p.Unlimited = true
				default:
					s.fatalf("unknown reschedule option %q", k)
				}
			}
			tg.ReschedulePolicy = p
		case "port":
			if len(tg.Networks) == 0 {
				tg.Networks = []*structs.NetworkResource{{}}
			}
			p := structs.Port{Label: args[1]}
			if v, ok := kv(args[2:])["static"]; ok {
				p.Value = s.atoi(v)
				tg.Networks[0].ReservedPorts = append(tg.Networks[0].ReservedPorts, p)
			} else {
				tg.Networks[0].DynamicPorts = append(tg.Networks[0].DynamicPorts, p)
			}
		case "env":
			for k, v := range kv(args[1:]) {
				if tg.Tasks[0].Env == nil {
					tg.Tasks[0].Env = map[string]string{}
				}
				tg.Tasks[0].Env[k] = v
			}
		case "meta":
			for k, v := range kv(args[1:]) {
				if tg.Meta == nil {
					tg.Meta = map[string]string{}
				}
				tg.Meta[k] = v
			}
		default:
			s.fatalf("unknown job line %q", line)
		}
	}
	job.Canonicalize()
	s.jobs[id] = job
}

// constraint reads `<ltarget> <operator> [rtarget]`.
func (s *scenario) constraint(args []string) *structs.Constraint {
	c := &structs.Constraint{LTarget: args[0]}
	if len(args) > 1 {
		c.Operand = args[1]
	}
	if len(args) > 2 {
		c.RTarget = args[2]
	}
	if args[0] == structs.ConstraintDistinctHosts {
		c = &structs.Constraint{Operand: structs.ConstraintDistinctHosts}
		if len(args) > 1 {
			c.RTarget = args[1]
		}
	}
	return c
}

// affinity reads `<ltarget> <operator> <rtarget> weight=N`.
func (s *scenario) affinity(args []string) *structs.Affinity {
	if len(args) != 4 || !strings.HasPrefix(args[3], "weight=") {
		s.fatalf("affinity wants <ltarget> <operator> <rtarget> weight=N")
	}
	return &structs.Affinity{LTarget: args[0], Operand: args[1], RTarget: args[2], Weight: int8(s.atoi(strings.TrimPrefix(args[3], "weight=")))}
}

// spread reads `<attribute> [weight=N] [<value>=<percent> ...]`.
func (s *scenario) spread(args []string) *structs.Spread {
	sp := &structs.Spread{Attribute: args[0]}
	for _, a := range args[1:] {
		k, v, _ := strings.Cut(a, "=")
		if k == "weight" {
			sp.Weight = int8(s.atoi(v))
			continue
		}
		sp.SpreadTarget = append(sp.SpreadTarget, &structs.SpreadTarget{Value: k, Percent: uint8(s.atoi(v))})
	}
	return sp
}
