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

// ConstraintChecker requires a node to meet every node constraint of
// the job, the group and its tasks (distinct_hosts and
// distinct_property are plan-dependent and checked after ranking).
type ConstraintChecker struct {
	ctx         *EvalContext
	constraints []*structs.Constraint
}

// SetConstraints sets the constraints to check.
func (c *ConstraintChecker) SetConstraints(cs []*structs.Constraint) {
	c.constraints = c.constraints[:0]
	for _, con := range cs {
		if con.Operand == structs.ConstraintDistinctHosts || con.Operand == structs.ConstraintDistinctProperty {
			continue
		}
		c.constraints = append(c.constraints, con)
	}
}

// Feasible implements FeasibilityChecker; the reason names the
// constraint, e.g. `${meta.rack} = r9`.
func (c *ConstraintChecker) Feasible(node *structs.Node) (bool, string) {
	for _, con := range c.constraints {
		if !c.ctx.matcher.meets(con.Operand, con.LTarget, con.RTarget, node) {
			return false, con.String()
		}
	}
	return true, ""
}

// feasibility is a cached check result.
type feasibility struct {
	ok     bool
	reason string
}

// FeasibilityWrapper filters a source through checkers, recording every
// node a checker rejects (and why) in the placement metrics. A node's
// result only depends on the node and the group, so it is cached for
// the evaluation: after the first pass over the nodes, each placement
// costs a map lookup per node instead of evaluating constraints again.
type FeasibilityWrapper struct {
	ctx      *EvalContext
	source   FeasibleIterator
	checkers []FeasibilityChecker
	// cache is the results for the current group, by node ID.
	cache  map[string]feasibility
	caches map[string]map[string]feasibility
}

// NewFeasibilityWrapper returns a filter over source.
func NewFeasibilityWrapper(ctx *EvalContext, source FeasibleIterator, checkers ...FeasibilityChecker) *FeasibilityWrapper {
	return &FeasibilityWrapper{ctx: ctx, source: source, checkers: checkers, caches: make(map[string]map[string]feasibility)}
}

// SetTaskGroup selects the cache of the group being placed; the caller
// has set the checkers up for it.
func (w *FeasibilityWrapper) SetTaskGroup(name string) {
	c, ok := w.caches[name]
	if !ok {
		c = make(map[string]feasibility)
		w.caches[name] = c
	}
	w.cache = c
}

// Next returns the next feasible node, or nil.
func (w *FeasibilityWrapper) Next() *structs.Node {
	for {
		n := w.source.Next()
		if n == nil {
			return nil
		}
		res, ok := w.cache[n.ID]
		if !ok {
			res = feasibility{ok: true}
			for _, c := range w.checkers {
				if fine, reason := c.Feasible(n); !fine {
					res = feasibility{reason: reason}
					break
				}
			}
			w.cache[n.ID] = res
		}
		if !res.ok {
			w.ctx.metrics.FilterNode(n, res.reason)
			continue
		}
		return n
	}
}

// Reset resets the source.
func (w *FeasibilityWrapper) Reset() { w.source.Reset() }
