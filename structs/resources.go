package structs

import "math"

// ComparableResources is the resource usage that placement checks add
// up and compare: CPU in MHz and memory in MiB.
//
// Every sum is overflow-checked. A dimension whose sum overflowed int64
// (or that took a negative amount from an allocation or a node, which
// only a corrupt object has) is marked, saturates at math.MaxInt64 and
// stays marked through further sums; Superset never lets a marked
// dimension fit, on either side. Without this, a task asking for
// 2^63-1 MHz wrapped the sum of a node's allocations around to a small
// number, and the node took far more than its capacity.
type ComparableResources struct {
	CPU      int64
	MemoryMB int64

	// overflow marks dimensions (dimCPU, dimMemory) whose value is not
	// trustworthy.
	overflow uint8
}

const (
	dimCPU uint8 = 1 << iota
	dimMemory
)

func (c ComparableResources) overflowed(dim uint8) bool { return c.overflow&dim != 0 }

// Overflowed reports whether a sum that built c overflowed (or took a
// negative amount): such resources fit nowhere.
func (c ComparableResources) Overflowed() bool { return c.overflow != 0 }

// addInt64 returns a+b and whether it did not overflow.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	// Overflow iff both operands have the same sign and the sum's sign
	// differs.
	if (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0) {
		return 0, false
	}
	return s, true
}

// subInt64 returns a-b and whether it did not overflow.
func subInt64(a, b int64) (int64, bool) {
	if b == math.MinInt64 {
		if a >= 0 {
			return 0, false
		}
		return a - b, true
	}
	return addInt64(a, -b)
}

// Add adds o to c, overflow-checked.
func (c *ComparableResources) Add(o ComparableResources) {
	c.overflow |= o.overflow
	var ok bool
	if c.CPU, ok = addInt64(c.CPU, o.CPU); !ok {
		c.CPU, c.overflow = math.MaxInt64, c.overflow|dimCPU
	}
	if c.MemoryMB, ok = addInt64(c.MemoryMB, o.MemoryMB); !ok {
		c.MemoryMB, c.overflow = math.MaxInt64, c.overflow|dimMemory
	}
}

// Subtract subtracts o from c, overflow-checked. A marked dimension
// stays marked: what an overflowed sum held is unknown, so taking
// something away from it does not make it trustworthy.
func (c *ComparableResources) Subtract(o ComparableResources) {
	c.overflow |= o.overflow
	var ok bool
	if c.CPU, ok = subInt64(c.CPU, o.CPU); !ok {
		c.CPU, c.overflow = math.MaxInt64, c.overflow|dimCPU
	}
	if c.MemoryMB, ok = subInt64(c.MemoryMB, o.MemoryMB); !ok {
		c.MemoryMB, c.overflow = math.MaxInt64, c.overflow|dimMemory
	}
}

// Superset reports whether c covers o in every dimension; when it does
// not, it names the first dimension that is short ("cpu", "memory"). A
// dimension marked as overflowed on either side never fits.
func (c ComparableResources) Superset(o ComparableResources) (bool, string) {
	if c.overflowed(dimCPU) || o.overflowed(dimCPU) || c.CPU < o.CPU {
		return false, "cpu"
	}
	if c.overflowed(dimMemory) || o.overflowed(dimMemory) || c.MemoryMB < o.MemoryMB {
		return false, "memory"
	}
	return true, ""
}

// Usage returns what the allocation holds: the overflow-checked sum of
// its tasks' cpu and memory. A negative amount marks its dimension (see
// ComparableResources), so a corrupt allocation fits nowhere rather
// than making room. Placement checks use it, not the unchecked
// Allocation.ComparableResources.
func (a *Allocation) Usage() ComparableResources {
	var c ComparableResources
	if a == nil || a.AllocatedResources == nil {
		return c
	}
	for _, t := range a.AllocatedResources.Tasks {
		if t == nil {
			continue
		}
		c.Add(ComparableResources{CPU: t.Cpu.CpuShares, MemoryMB: t.Memory.MemoryMB})
		if t.Cpu.CpuShares < 0 {
			c.overflow |= dimCPU
		}
		if t.Memory.MemoryMB < 0 {
			c.overflow |= dimMemory
		}
	}
	return c
}

// AskOf returns what one allocation of tg asks for: the overflow-checked
// sum of its tasks' resources, with a negative ask marked like a
// negative allocation (see Usage).
func AskOf(tg *TaskGroup) ComparableResources {
	var c ComparableResources
	if tg == nil {
		return c
	}
	for _, t := range tg.Tasks {
		if t == nil || t.Resources == nil {
			continue
		}
		c.Add(ComparableResources{CPU: int64(t.Resources.CPU), MemoryMB: int64(t.Resources.MemoryMB)})
		if t.Resources.CPU < 0 {
			c.overflow |= dimCPU
		}
		if t.Resources.MemoryMB < 0 {
			c.overflow |= dimMemory
		}
	}
	return c
}

// CheckedCapacity returns the resources available to allocations, like
// Node.Capacity, with overflow-checked arithmetic: a node whose
// resources or reservations are negative, or whose difference
// overflows, has a marked (unusable) dimension instead of a wrapped
// one. Placement checks use it.
func (n *Node) CheckedCapacity() ComparableResources {
	var c ComparableResources
	if n == nil {
		return c
	}
	if r := n.NodeResources; r != nil {
		c.CPU, c.MemoryMB = r.Cpu.CpuShares, r.Memory.MemoryMB
		if c.CPU < 0 {
			c.overflow |= dimCPU
		}
		if c.MemoryMB < 0 {
			c.overflow |= dimMemory
		}
	}
	if r := n.ReservedResources; r != nil {
		c.Subtract(ComparableResources{CPU: r.Cpu.CpuShares, MemoryMB: r.Memory.MemoryMB})
		if r.Cpu.CpuShares < 0 {
			c.overflow |= dimCPU
		}
		if r.Memory.MemoryMB < 0 {
			c.overflow |= dimMemory
		}
	}
	return c
}

// SumUsage returns the overflow-checked sum of the allocations' Usage.
func SumUsage(allocs []*Allocation) ComparableResources {
	var used ComparableResources
	for _, a := range allocs {
		used.Add(a.Usage())
	}
	return used
}

// AllocsFit checks whether allocs fit on node: their summed CPU and
// memory within the node's capacity, and no port used twice or inside
// the node's reserved ports. allocs must already exclude allocations that
// are terminal or being stopped. On failure it names the exhausted
// dimension ("cpu", "memory", "ports"). used is the summed usage.
//
// The scheduler and the plan applier both call it, so a plan that the
// scheduler produced from a consistent snapshot always passes the plan
// applier's re-check.
func AllocsFit(node *Node, allocs []*Allocation) (fit bool, dimension string, used ComparableResources) {
	ports := make(map[int]struct{})
	if node.ReservedResources != nil {
		for _, p := range node.ReservedResources.ReservedPorts {
			ports[p] = struct{}{}
		}
	}
	for _, a := range allocs {
		used.Add(a.Usage())
		for _, p := range a.Ports() {
			if _, dup := ports[p]; dup {
				return false, "ports", used
			}
			ports[p] = struct{}{}
		}
	}
	if ok, dim := node.CheckedCapacity().Superset(used); !ok {
		return false, dim, used
	}
	return true, "", used
}

// ProposedAllocs returns what would run on a node if a plan committed:
// the node's non-terminal allocations (existing), less those the plan
// stops or updates, plus the plan's non-terminal placements. The
// scheduler ranks nodes with it and the plan applier re-checks plans
// with it, so the two always agree on what a node holds.
func ProposedAllocs(existing, stopped, placed []*Allocation) []*Allocation {
	if len(stopped) == 0 && len(placed) == 0 {
		return existing
	}
	remove := make(map[string]struct{}, len(stopped)+len(placed))
	for _, a := range stopped {
		remove[a.ID] = struct{}{}
	}
	for _, a := range placed {
		remove[a.ID] = struct{}{}
	}
	out := make([]*Allocation, 0, len(existing)+len(placed))
	for _, a := range existing {
		if _, gone := remove[a.ID]; !gone && !a.TerminalStatus() {
			out = append(out, a)
		}
	}
	for _, a := range placed {
		if !a.TerminalStatus() {
			out = append(out, a)
		}
	}
	return out
}
