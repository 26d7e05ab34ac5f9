package scheduler

import (
	"fmt"

	"github.com/droverhq/drover/structs"
)

// FeasibleIterator yields nodes that may run the task group being
// placed. Next returns nil when exhausted; Reset starts a new pass for
// the next placement.
type FeasibleIterator interface {
	Next() *structs.Node
	Reset()
}

// StaticIterator is the node source: it yields a fixed, shuffled list of
// nodes. A pass visits every node once, starting where the previous pass
// stopped, so consecutive placements look at different nodes first
// instead of always probing the same ones.
type StaticIterator struct {
	ctx    *EvalContext
	nodes  []*structs.Node
	offset int
	seen   int
}

// NewStaticIterator returns a source over nodes (not copied, not
// shuffled; see SetNodes).
func NewStaticIterator(ctx *EvalContext, nodes []*structs.Node) *StaticIterator {
	return &StaticIterator{ctx: ctx, nodes: nodes}
}

// Next returns the next node of the pass, or nil.
func (it *StaticIterator) Next() *structs.Node {
	if it.seen == len(it.nodes) {
		return nil
	}
	n := it.nodes[it.offset]
	it.offset = (it.offset + 1) % len(it.nodes)
	it.seen++
	it.ctx.metrics.EvaluateNode()
	return n
}

// Reset starts a new pass at the current offset.
func (it *StaticIterator) Reset() { it.seen = 0 }

// SetNodes replaces the node list.
func (it *StaticIterator) SetNodes(nodes []*structs.Node) {
	it.nodes = nodes
	it.offset = 0
	it.seen = 0
}

// shuffleNodes shuffles nodes in place with the eval's random source, so
// that load spreads across equally good nodes and a replay shuffles the
// same way.
func shuffleNodes(ctx *EvalContext, nodes []*structs.Node) {
	ctx.rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
}

// FeasibilityChecker decides whether a node can run a task group; when it
// cannot, it returns the reason recorded in the placement metrics.
type FeasibilityChecker interface {
	Feasible(node *structs.Node) (ok bool, reason string)
}

// DriverChecker requires every task's driver to be detected and healthy
// on the node.
type DriverChecker struct {
	drivers []string
}

// SetTaskGroup records the drivers the group needs.
func (c *DriverChecker) SetTaskGroup(tg *structs.TaskGroup) {
	c.drivers = c.drivers[:0]
	for _, t := range tg.Tasks {
		c.drivers = append(c.drivers, t.Driver)
	}
}

// Feasible implements FeasibilityChecker.
func (c *DriverChecker) Feasible(node *structs.Node) (bool, string) {
	for _, d := range c.drivers {
		if !node.HasHealthyDriver(d) {
			return false, fmt.Sprintf("missing driver %q", d)
		}
	}
	return true, ""
}

// FeasibilityWrapper filters a source through checkers, recording every
// node a checker rejects (and why) in the placement metrics.
type FeasibilityWrapper struct {
	ctx      *EvalContext
	source   FeasibleIterator
	checkers []FeasibilityChecker
}

// NewFeasibilityWrapper returns a filter over source.
func NewFeasibilityWrapper(ctx *EvalContext, source FeasibleIterator, checkers ...FeasibilityChecker) *FeasibilityWrapper {
	return &FeasibilityWrapper{ctx: ctx, source: source, checkers: checkers}
}

// Next returns the next feasible node, or nil.
func (w *FeasibilityWrapper) Next() *structs.Node {
OUTER:
	for {
		n := w.source.Next()
		if n == nil {
			return nil
		}
		for _, c := range w.checkers {
			if ok, reason := c.Feasible(n); !ok {
				w.ctx.metrics.FilterNode(n, reason)
				continue OUTER
			}
		}
		return n
	}
}

// Reset resets the source.
func (w *FeasibilityWrapper) Reset() { w.source.Reset() }
