package structs

import (
	"fmt"
	"math"
	"math/big"
	"math/rand"
	"testing"
)

func allocHolding(id string, cpu, mem int64) *Allocation {
	return &Allocation{ID: id, AllocatedResources: &AllocatedResources{Tasks: map[string]*AllocatedTaskResources{
		"t": {Cpu: AllocatedCpuResources{CpuShares: cpu}, Memory: AllocatedMemoryResources{MemoryMB: mem}},
	}}}
}

func nodeWith(cpu, mem int64) *Node {
	return &Node{ID: "n", NodeResources: &NodeResources{Cpu: NodeCpuResources{CpuShares: cpu}, Memory: NodeMemoryResources{MemoryMB: mem}}}
}

func TestComparableResources_OverflowNeverFits(t *testing.T) {
	cases := []struct {
		name   string
		node   *Node
		allocs []*Allocation
		dim    string
	}{
		{"the attack: six 4000 MHz allocations and one of 2^63-1", nodeWith(5192, 1<<20), []*Allocation{
			allocHolding("a", 4000, 1), allocHolding("b", 4000, 1), allocHolding("c", 4000, 1),
			allocHolding("d", 4000, 1), allocHolding("e", 4000, 1), allocHolding("f", 4000, 1),
			allocHolding("g", math.MaxInt64, 1)}, "cpu"},
		{"two halves of MaxInt64 on a MaxInt64 node", nodeWith(math.MaxInt64, math.MaxInt64), []*Allocation{
			allocHolding("a", math.MaxInt64/2+1, 1), allocHolding("b", math.MaxInt64/2+1, 1)}, "cpu"},
		{"memory wraps", nodeWith(1000, 1000), []*Allocation{
			allocHolding("a", 1, math.MaxInt64), allocHolding("b", 1, math.MaxInt64)}, "memory"},
		{"a negative allocation does not make room", nodeWith(1000, 1000), []*Allocation{
			allocHolding("a", 900, 1), allocHolding("b", -800, 1), allocHolding("c", 800, 1)}, "cpu"},
		{"tasks of one allocation wrap", nodeWith(1000, 1000), []*Allocation{{ID: "a", AllocatedResources: &AllocatedResources{Tasks: map[string]*AllocatedTaskResources{
			"x": {Cpu: AllocatedCpuResources{CpuShares: math.MaxInt64}}, "y": {Cpu: AllocatedCpuResources{CpuShares: math.MaxInt64}}}}}}, "cpu"},
		{"a node with negative reservations", &Node{NodeResources: &NodeResources{Cpu: NodeCpuResources{CpuShares: math.MaxInt64}, Memory: NodeMemoryResources{MemoryMB: 100}},
			ReservedResources: &NodeReservedResources{Cpu: NodeCpuResources{CpuShares: -1}}}, []*Allocation{allocHolding("a", 1, 1)}, "cpu"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fit, dim, used := AllocsFit(tc.node, tc.allocs)
			if fit || dim != tc.dim {
				t.Fatalf("AllocsFit = %t, %q (used %+v), want no fit on %s", fit, dim, used, tc.dim)
			}
		})
	}
}

func TestComparableResources_CheckedArithmetic(t *testing.T) {
	var c ComparableResources
	c.Add(ComparableResources{CPU: math.MaxInt64 - 1, MemoryMB: 5})
	c.Add(ComparableResources{CPU: 1, MemoryMB: 5})
	if c.Overflowed() || c.CPU != math.MaxInt64 || c.MemoryMB != 10 {
		t.Fatalf("sum up to MaxInt64 is exact: %+v", c)
	}
	c.Add(ComparableResources{CPU: 1})
	if !c.Overflowed() || c.CPU != math.MaxInt64 {
		t.Fatalf("overflow must mark and saturate: %+v", c)
	}
	c.Subtract(ComparableResources{CPU: math.MaxInt64})
	if !c.Overflowed() {
		t.Fatal("subtracting from an overflowed sum must not clear the mark")
	}
	if ok, _ := nodeWith(math.MaxInt64, math.MaxInt64).CheckedCapacity().Superset(c); ok {
		t.Fatal("an overflowed sum fits nowhere")
	}

	var d ComparableResources
	d.Subtract(ComparableResources{CPU: math.MinInt64})
	if !d.Overflowed() {
		t.Fatalf("0 - MinInt64 overflows: %+v", d)
	}
	e := ComparableResources{CPU: -1}
	e.Subtract(ComparableResources{CPU: math.MinInt64})
	if e.Overflowed() || e.CPU != math.MaxInt64 {
		t.Fatalf("-1 - MinInt64 = MaxInt64 exactly: %+v", e)
	}
}

// AllocsFit agrees with exact (big integer) arithmetic on random
// allocations, huge values included.
func TestAllocsFit_AgreesWithExactArithmetic(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	values := []int64{0, 1, 100, 4000, math.MaxInt64 / 7, math.MaxInt64/2 + 1, math.MaxInt64 - 1, math.MaxInt64}
	pick := func() int64 {
		if rng.Intn(2) == 0 {
			return values[rng.Intn(len(values))]
		}
		return rng.Int63n(10_000)
	}
	for i := 0; i < 5000; i++ {
		node := nodeWith(pick(), pick())
		var allocs []*Allocation
		sumCPU, sumMem := new(big.Int), new(big.Int)
		for j, n := 0, rng.Intn(6); j < n; j++ {
			a := allocHolding(fmt.Sprint(j), pick(), pick())
			allocs = append(allocs, a)
			sumCPU.Add(sumCPU, big.NewInt(a.AllocatedResources.Tasks["t"].Cpu.CpuShares))
			sumMem.Add(sumMem, big.NewInt(a.AllocatedResources.Tasks["t"].Memory.MemoryMB))
		}
		want := sumCPU.Cmp(big.NewInt(node.NodeResources.Cpu.CpuShares)) <= 0 && sumMem.Cmp(big.NewInt(node.NodeResources.Memory.MemoryMB)) <= 0
		if fit, _, used := AllocsFit(node, allocs); fit != want {
			t.Fatalf("case %d: AllocsFit = %t, exact arithmetic says %t (cpu %s of %d, memory %s of %d, used %+v)",
				i, fit, want, sumCPU, node.NodeResources.Cpu.CpuShares, sumMem, node.NodeResources.Memory.MemoryMB, used)
		}
	}
}

func TestAskOf_Overflow(t *testing.T) {
	tg := &TaskGroup{Tasks: []*Task{
		{Name: "a", Resources: &Resources{CPU: math.MaxInt, MemoryMB: 1}},
		{Name: "b", Resources: &Resources{CPU: 1, MemoryMB: 1}},
		{Name: "c"},
		nil,
	}}
	ask := AskOf(tg)
	if !ask.Overflowed() {
		t.Fatalf("AskOf = %+v, want overflow", ask)
	}
	if ok, dim := nodeWith(math.MaxInt64, math.MaxInt64).CheckedCapacity().Superset(ask); ok || dim != "cpu" {
		t.Fatalf("an overflowed ask fit (%t, %q)", ok, dim)
	}
}
