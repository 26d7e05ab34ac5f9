package structs

import (
	"fmt"
)

// Hard ceilings. Job.Validate holds every job to them, wherever it comes
// from (the FSM included), and no configuration may raise an admission
// limit above them. They are far above what a sane job asks for; what
// they buy is that the biggest job they allow is still safe to handle:
// the scheduler's memory for a group grows with its count, and
// 100,000 allocations x 1,000 groups x 1,000 tasks x 64 TiB (in MiB)
// stays below 2^63, so no sum of a job's resources can overflow int64
// (the capacity checks are overflow-checked as well; see resources.go).
const (
	HardMaxCountPerGroup = 100_000
	HardMaxGroupsPerJob  = 1_000
	HardMaxTasksPerGroup = 1_000
	// HardMaxTaskCPU is 1,000 cores at 1 GHz, in MHz.
	HardMaxTaskCPU = 1_000_000
	// HardMaxTaskMemoryMB is 64 TiB, in MiB.
	HardMaxTaskMemoryMB = 64 << 20

	// Counts of entries that no setting changes: every one of them is
	// walked for every node the scheduler considers (placement rules)
	// or copied into every allocation and container (ports, env, meta).
	MaxPortsPerGroup       = 100
	MaxEnvPerTask          = 1_000
	MaxMetaEntries         = 1_000
	MaxPlacementRules      = 100
	MaxDatacentersPerJob   = 100
	maxJobNameLength       = 128
	maxProblemsPerValidate = 100
)

// Default admission limits, used when the agent's limits block leaves a
// setting out.
const (
	DefaultMaxCountPerGroup = 10_000
	DefaultMaxGroupsPerJob  = 100
	DefaultMaxTasksPerGroup = 100
)

// JobLimits are the admission limits a server holds jobs to before it
// registers or plans them (`limits` block of the agent configuration).
// A zero field means "the default". The check is JobLimits.Validate.
//
// MaxTaskCPU and MaxTaskMemoryMB bound one task's ask. Left at zero,
// the bound is the capacity of the largest registered node (a task
// bigger than every node can never run), or, before any node has
// registered, the hard ceiling; see ForCapacity.
type JobLimits struct {
	MaxCountPerGroup int
	MaxGroupsPerJob  int
	MaxTasksPerGroup int
	// MaxTaskCPU is in MHz, MaxTaskMemoryMB in MiB.
	MaxTaskCPU      int64
	MaxTaskMemoryMB int64

	// cpuFrom and memoryFrom say where the cpu and memory limits came
	// from, for messages ("" means the configuration).
	cpuFrom, memoryFrom string
	// hard marks the hard ceilings, for messages.
	hard bool
}

// DefaultJobLimits returns the default admission limits. MaxTaskCPU and
// MaxTaskMemoryMB are zero: they follow the largest node.
func DefaultJobLimits() JobLimits {
	return JobLimits{
		MaxCountPerGroup: DefaultMaxCountPerGroup,
		MaxGroupsPerJob:  DefaultMaxGroupsPerJob,
		MaxTasksPerGroup: DefaultMaxTasksPerGroup,
	}
}

// HardJobLimits returns the hard ceilings as limits: what Job.Validate
// checks.
func HardJobLimits() JobLimits {
	return JobLimits{
		MaxCountPerGroup: HardMaxCountPerGroup,
		MaxGroupsPerJob:  HardMaxGroupsPerJob,
		MaxTasksPerGroup: HardMaxTasksPerGroup,
		MaxTaskCPU:       HardMaxTaskCPU,
		MaxTaskMemoryMB:  HardMaxTaskMemoryMB,
		hard:             true,
	}
}

// CheckConfig reports a configured limit that is negative or above its
// hard ceiling, naming the setting. Zero (unset) is accepted.
func (l JobLimits) CheckConfig() error {
	for _, s := range []struct {
		key      string
		val, max int64
	}{
		{"max_count_per_group", int64(l.MaxCountPerGroup), HardMaxCountPerGroup},
		{"max_groups_per_job", int64(l.MaxGroupsPerJob), HardMaxGroupsPerJob},
		{"max_tasks_per_group", int64(l.MaxTasksPerGroup), HardMaxTasksPerGroup},
		{"max_task_cpu", l.MaxTaskCPU, HardMaxTaskCPU},
		{"max_task_memory_mb", l.MaxTaskMemoryMB, HardMaxTaskMemoryMB},
	} {
		if s.val < 0 || s.val > s.max {
			return fmt.Errorf("limits.%s = %d is out of range; accepted: 1 to %d, or leave it unset for the default", s.key, s.val, s.max)
		}
	}
	return nil
}

// Normalize fills unset limits with the defaults and caps every limit
// at its hard ceiling (CheckConfig reports such a setting; capping
// keeps a server that skipped the check safe anyway). MaxTaskCPU and
// MaxTaskMemoryMB stay zero when unset: see ForCapacity.
func (l JobLimits) Normalize() JobLimits {
	def := DefaultJobLimits()
	fill := func(v *int, d, hard int) {
		if *v <= 0 {
			*v = d
		}
		*v = min(*v, hard)
	}
	fill(&l.MaxCountPerGroup, def.MaxCountPerGroup, HardMaxCountPerGroup)
	fill(&l.MaxGroupsPerJob, def.MaxGroupsPerJob, HardMaxGroupsPerJob)
	fill(&l.MaxTasksPerGroup, def.MaxTasksPerGroup, HardMaxTasksPerGroup)
	l.MaxTaskCPU = max(0, min(l.MaxTaskCPU, HardMaxTaskCPU))
	l.MaxTaskMemoryMB = max(0, min(l.MaxTaskMemoryMB, HardMaxTaskMemoryMB))
	return l
}

// ForCapacity returns the limits with unset per-task cpu and memory
// limits resolved against largest, the biggest capacity of any
// registered node in each dimension (zero when no node has registered):
// a task that asks for more than every node has can never be placed,
// and refusing it up front is clearer than an evaluation that blocks
// forever. Without nodes the hard ceilings apply.
func (l JobLimits) ForCapacity(largest ComparableResources) JobLimits {
	l = l.Normalize()
	if l.MaxTaskCPU == 0 {
		l.MaxTaskCPU, l.cpuFrom = HardMaxTaskCPU, "the hard limit, until a node registers; limits.max_task_cpu overrides it"
		if largest.CPU > 0 && !largest.overflowed(dimCPU) {
			l.MaxTaskCPU = min(largest.CPU, HardMaxTaskCPU)
			l.cpuFrom = "the largest node's cpu; limits.max_task_cpu overrides it"
		}
	}
	if l.MaxTaskMemoryMB == 0 {
		l.MaxTaskMemoryMB, l.memoryFrom = HardMaxTaskMemoryMB, "the hard limit, until a node registers; limits.max_task_memory_mb overrides it"
		if largest.MemoryMB > 0 && !largest.overflowed(dimMemory) {
			l.MaxTaskMemoryMB = min(largest.MemoryMB, HardMaxTaskMemoryMB)
			l.memoryFrom = "the largest node's memory; limits.max_task_memory_mb overrides it"
		}
	}
	return l
}

// Validate checks the job like Job.Validate and also holds it to the
// limits l (after ForCapacity; unresolved cpu and memory limits are the
// hard ceilings). The problems name the setting that sets each limit.
func (l JobLimits) Validate(j *Job) error {
	l = l.ForCapacity(ComparableResources{})
	return j.validate(l)
}

// over records that value at path exceeds limit ("1000000000" over
// "10000", "5000 MHz" over "4000 MHz"), naming what sets the limit: the
// hard limits, from (where a resolved cpu or memory limit came from),
// or the setting limits.<key>.
func (l JobLimits) over(p *problems, path, value, limit, key, from string) {
	switch {
	case l.hard:
		p.add(path, "%s is over the hard limit of %s", value, limit)
	case from != "":
		p.add(path, "%s is over the limit of %s (%s)", value, limit, from)
	default:
		p.add(path, "%s is over the limit of %s (limits.%s)", value, limit, key)
	}
}

// LargestCapacity returns, per dimension, the largest capacity among
// nodes (zero when there are none). It is what ForCapacity takes.
func LargestCapacity(nodes []*Node) ComparableResources {
	var out ComparableResources
	for _, n := range nodes {
		if n == nil {
			continue
		}
		c := n.CheckedCapacity()
		if !c.overflowed(dimCPU) && c.CPU > out.CPU {
			out.CPU = c.CPU
		}
		if !c.overflowed(dimMemory) && c.MemoryMB > out.MemoryMB {
			out.MemoryMB = c.MemoryMB
		}
	}
	return out
}
