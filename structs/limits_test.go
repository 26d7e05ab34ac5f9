package structs

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func problemsOf(t *testing.T, err error) []FieldError {
	t.Helper()
	if err == nil {
		return nil
	}
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v is a %T, want *ValidationError", err, err)
	}
	return verr.Problems
}

func findProblem(problems []FieldError, path string) (FieldError, bool) {
	for _, p := range problems {
		if p.Path == path {
			return p, true
		}
	}
	return FieldError{}, false
}

func TestJobLimits_RefusesWhatAnAttackerSent(t *testing.T) {
	manyGroups := func(j *Job) {
		tg := j.TaskGroups[0]
		j.TaskGroups = nil
		for i := 0; i < 200; i++ {
			c := tg.Copy()
			c.Name = fmt.Sprintf("g%d", i)
			j.TaskGroups = append(j.TaskGroups, c)
		}
	}
	cases := []struct {
		name    string
		limits  JobLimits
		largest ComparableResources
		mutate  func(*Job)
		path    string
		message string
	}{
		{"count of a billion", DefaultJobLimits(), ComparableResources{}, func(j *Job) { j.TaskGroups[0].Count = 1_000_000_000 },
			"TaskGroups[0].Count", "1000000000 is over the limit of 10000 (limits.max_count_per_group)"},
		{"configured count", JobLimits{MaxCountPerGroup: 5}, ComparableResources{}, func(j *Job) { j.TaskGroups[0].Count = 6 },
			"TaskGroups[0].Count", "6 is over the limit of 5 (limits.max_count_per_group)"},
		{"cpu of MaxInt64, no nodes", DefaultJobLimits(), ComparableResources{}, func(j *Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = math.MaxInt64 },
			"TaskGroups[0].Tasks[0].Resources.CPU", "9223372036854775807 MHz is over the limit of 1000000 MHz (the hard limit, until a node registers; limits.max_task_cpu overrides it)"},
		{"cpu over the largest node", DefaultJobLimits(), ComparableResources{CPU: 4000, MemoryMB: 8192}, func(j *Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = 4001 },
			"TaskGroups[0].Tasks[0].Resources.CPU", "4001 MHz is over the limit of 4000 MHz (the largest node's cpu; limits.max_task_cpu overrides it)"},
		{"configured cpu wins over nodes", JobLimits{MaxTaskCPU: 500}, ComparableResources{CPU: 4000, MemoryMB: 8192}, func(j *Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = 501 },
			"TaskGroups[0].Tasks[0].Resources.CPU", "501 MHz is over the limit of 500 MHz (limits.max_task_cpu)"},
		{"memory over the largest node", DefaultJobLimits(), ComparableResources{CPU: 4000, MemoryMB: 8192}, func(j *Job) { j.TaskGroups[0].Tasks[0].Resources.MemoryMB = 8193 },
			"TaskGroups[0].Tasks[0].Resources.MemoryMB", "8193 MB is over the limit of 8192 MB (the largest node's memory; limits.max_task_memory_mb overrides it)"},
		{"200 groups", DefaultJobLimits(), ComparableResources{}, manyGroups,
			"TaskGroups", "200 groups is over the limit of 100 (limits.max_groups_per_job)"},
		{"tasks per group", JobLimits{MaxTasksPerGroup: 1}, ComparableResources{}, func(j *Job) {
			t2 := j.TaskGroups[0].Tasks[0].Copy()
			t2.Name = "second"
			j.TaskGroups[0].Tasks = append(j.TaskGroups[0].Tasks, t2)
		}, "TaskGroups[0].Tasks", "2 tasks is over the limit of 1 (limits.max_tasks_per_group)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := validJob()
			tc.mutate(j)
			problems := problemsOf(t, tc.limits.ForCapacity(tc.largest).Validate(j))
			p, ok := findProblem(problems, tc.path)
			if !ok {
				t.Fatalf("no problem at %s; got %+v", tc.path, problems)
			}
			if p.Message != tc.message {
				t.Fatalf("message at %s:\n got %q\nwant %q", tc.path, p.Message, tc.message)
			}
		})
	}
}

func TestJobLimits_AcceptsJobsWithinThem(t *testing.T) {
	j := validJob()
	j.TaskGroups[0].Count = DefaultMaxCountPerGroup
	j.TaskGroups[0].Tasks[0].Resources.CPU = 4000
	if err := DefaultJobLimits().ForCapacity(ComparableResources{CPU: 4000, MemoryMB: 8192}).Validate(j); err != nil {
		t.Fatalf("a job at the limits: %v", err)
	}
	// Unresolved limits (no ForCapacity) fall back to the hard ones for
	// cpu and memory.
	if err := DefaultJobLimits().Validate(j); err != nil {
		t.Fatalf("a job at the limits, no node information: %v", err)
	}
}

func TestJob_ValidateHoldsJobsToTheHardLimits(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Job)
		path   string
	}{
		{"count", func(j *Job) { j.TaskGroups[0].Count = HardMaxCountPerGroup + 1 }, "TaskGroups[0].Count"},
		{"cpu", func(j *Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = HardMaxTaskCPU + 1 }, "TaskGroups[0].Tasks[0].Resources.CPU"},
		{"memory", func(j *Job) { j.TaskGroups[0].Tasks[0].Resources.MemoryMB = math.MaxInt64 }, "TaskGroups[0].Tasks[0].Resources.MemoryMB"},
		{"env", func(j *Job) {
			env := map[string]string{}
			for i := 0; i <= MaxEnvPerTask; i++ {
				env[fmt.Sprintf("V%d", i)] = "x"
			}
			j.TaskGroups[0].Tasks[0].Env = env
		}, "TaskGroups[0].Tasks[0].Env"},
		{"meta", func(j *Job) {
			j.Meta = map[string]string{}
			for i := 0; i <= MaxMetaEntries; i++ {
				j.Meta[fmt.Sprintf("k%d", i)] = "v"
			}
		}, "Meta"},
		{"ports", func(j *Job) {
			var ports []Port
			for i := 0; i <= MaxPortsPerGroup; i++ {
				ports = append(ports, Port{Label: fmt.Sprintf("p%d", i)})
			}
			j.TaskGroups[0].Networks[0].DynamicPorts = ports
			j.TaskGroups[0].Networks[0].ReservedPorts = nil
		}, "TaskGroups[0].Networks"},
		{"constraints", func(j *Job) {
			for i := 0; i <= MaxPlacementRules; i++ {
				j.Constraints = append(j.Constraints, &Constraint{LTarget: "${attr.kernel.name}", Operand: "=", RTarget: "linux"})
			}
		}, "Constraints"},
		{"name with control characters", func(j *Job) { j.Name = "web\x1b[2J" }, "Name"},
		{"long name", func(j *Job) { j.Name = strings.Repeat("n", 129) }, "Name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := validJob()
			tc.mutate(j)
			p, ok := findProblem(problemsOf(t, j.Validate()), tc.path)
			if !ok {
				t.Fatalf("no problem at %s", tc.path)
			}
			if tc.name == "count" && !strings.Contains(p.Message, "hard limit") {
				t.Fatalf("message %q does not say the limit is a hard one", p.Message)
			}
		})
	}
}

// A job with a million bad entries gets a bounded answer.
func TestJob_ValidateBoundsTheProblemList(t *testing.T) {
	j := validJob()
	tg := j.TaskGroups[0]
	for i := 0; i < 10_000; i++ {
		tg.Tasks = append(tg.Tasks, &Task{Name: "bad name!"})
	}
	problems := problemsOf(t, JobLimits{MaxTasksPerGroup: HardMaxTasksPerGroup}.Validate(j))
	if len(problems) > maxProblemsPerValidate+1 {
		t.Fatalf("%d problems reported", len(problems))
	}
	last := problems[len(problems)-1]
	if !strings.Contains(last.Message, "more problems not shown") {
		t.Fatalf("last problem %+v does not say some were left out", last)
	}
}

func TestJobLimits_CheckConfig(t *testing.T) {
	cases := []struct {
		name   string
		limits JobLimits
		bad    string
	}{
		{"unset", JobLimits{}, ""},
		{"within", JobLimits{MaxCountPerGroup: 50_000, MaxTaskCPU: 64_000}, ""},
		{"negative", JobLimits{MaxGroupsPerJob: -1}, "limits.max_groups_per_job"},
		{"over the hard limit", JobLimits{MaxCountPerGroup: HardMaxCountPerGroup + 1}, "limits.max_count_per_group"},
		{"memory over the hard limit", JobLimits{MaxTaskMemoryMB: math.MaxInt64}, "limits.max_task_memory_mb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.limits.CheckConfig()
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("CheckConfig: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("CheckConfig = %v, want an error naming %s", err, tc.bad)
			}
		})
	}
	// Normalize caps what CheckConfig would refuse.
	n := JobLimits{MaxCountPerGroup: math.MaxInt, MaxTaskCPU: -3}.Normalize()
	if n.MaxCountPerGroup != HardMaxCountPerGroup || n.MaxTaskCPU != 0 || n.MaxGroupsPerJob != DefaultMaxGroupsPerJob {
		t.Fatalf("Normalize = %+v", n)
	}
}

func TestLargestCapacity(t *testing.T) {
	node := func(cpu, mem, rcpu, rmem int64) *Node {
		n := &Node{NodeResources: &NodeResources{Cpu: NodeCpuResources{CpuShares: cpu}, Memory: NodeMemoryResources{MemoryMB: mem}}}
		if rcpu != 0 || rmem != 0 {
			n.ReservedResources = &NodeReservedResources{Cpu: NodeCpuResources{CpuShares: rcpu}, Memory: NodeMemoryResources{MemoryMB: rmem}}
		}
		return n
	}
	got := LargestCapacity([]*Node{
		node(4000, 8192, 0, 0),
		node(8000, 4096, 1000, 0),
		nil,
		{},
		// A node reporting absurd numbers counts for nothing.
		node(math.MaxInt64, math.MaxInt64, -10, -10),
	})
	if got.CPU != 7000 || got.MemoryMB != 8192 {
		t.Fatalf("LargestCapacity = %+v, want cpu 7000, memory 8192", got)
	}
	if (LargestCapacity(nil) != ComparableResources{}) {
		t.Fatal("no nodes must give zero")
	}
}
