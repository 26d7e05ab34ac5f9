package structs

// ComparableResources is the resource usage that placement checks add
// up and compare: CPU in MHz and memory in MiB.
type ComparableResources struct {
	CPU      int64
	MemoryMB int64
}

// Add adds o to c.
func (c *ComparableResources) Add(o ComparableResources) {
	c.CPU += o.CPU
	c.MemoryMB += o.MemoryMB
}

// Subtract subtracts o from c.
func (c *ComparableResources) Subtract(o ComparableResources) {
	c.CPU -= o.CPU
	c.MemoryMB -= o.MemoryMB
}

// Superset reports whether c covers o in every dimension; when it does
// not, it names the first dimension that is short ("cpu", "memory").
func (c ComparableResources) Superset(o ComparableResources) (bool, string) {
	if c.CPU < o.CPU {
		return false, "cpu"
	}
	if c.MemoryMB < o.MemoryMB {
		return false, "memory"
	}
	return true, ""
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
		used.Add(a.ComparableResources())
		for _, p := range a.Ports() {
			if _, dup := ports[p]; dup {
				return false, "ports", used
			}
			ports[p] = struct{}{}
		}
	}
	if ok, dim := node.Capacity().Superset(used); !ok {
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
