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
	// only, when set, restricts passes to some of the nodes (an exact
	// spread's value): positions into nodes, with their own offset, so
	// that position-keyed caches stay valid.
	only *nodeCursor
	// last is the position of the node Next returned last.
	last int
	// generation changes with every SetNodes, so position-keyed caches
	// know when positions change meaning.
	generation int
}

// NewStaticIterator returns a source over nodes (not copied, not
// shuffled; see SetNodes).
func NewStaticIterator(ctx *EvalContext, nodes []*structs.Node) *StaticIterator {
	return &StaticIterator{ctx: ctx, nodes: nodes}
}

// nodeCursor is a subset of a StaticIterator's nodes, by position, and
// where the next pass over them starts.
type nodeCursor struct {
	pos    []int
	offset int
}

// Restrict limits the following passes to c's nodes (nil: all nodes).
func (it *StaticIterator) Restrict(c *nodeCursor) {
	it.only = c
	it.seen = 0
}

// Next returns the next node of the pass, or nil.
func (it *StaticIterator) Next() *structs.Node {
	if c := it.only; c != nil {
		if it.seen == len(c.pos) {
			return nil
		}
		p := c.pos[c.offset]
		c.offset = (c.offset + 1) % len(c.pos)
		it.seen++
		it.last = p
		it.ctx.metrics.EvaluateNode()
		return it.nodes[p]
	}
	if it.seen == len(it.nodes) {
		return nil
	}
	n := it.nodes[it.offset]
	it.last = it.offset
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
	it.only = nil
	it.generation++
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
			if info := node.Drivers[d]; info != nil && info.Detected {
				return false, fmt.Sprintf("driver %q unhealthy", d)
			}
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

// FeasibilityWrapper filters a source through checkers, recording every
// node a checker rejects (and why) in the placement metrics. A node's
// result only depends on the node and the group, so it is cached for
// the evaluation, by the node's position in the source: after the first
// pass over the nodes, each placement costs a slice lookup per node
// instead of evaluating constraints again. Filter counts are kept per
// reason and added to the placement metrics once per placement (Flush),
// instead of a map update per filtered node.
type FeasibilityWrapper struct {
	ctx      *EvalContext
	source   *StaticIterator
	checkers []FeasibilityChecker
	// cache is the current group's results by node position: 0 not
	// checked yet, 1 feasible, r+2 filtered for reasons[r].
	cache      []uint16
	caches     map[string][]uint16
	generation int
	group      string
	// reasons are the filter reasons seen, indexed; filtered counts the
	// current placement's filtered nodes per reason, and classes per
	// node class.
	reasons   []string
	reasonIdx map[string]int
	filtered  []int
	anyFilter bool
	// nodeClass is each node's class index+1 (0: not looked up yet) for
	// the current node list; classFiltered counts the current
	// placement's filtered nodes per class.
	nodeClass     []uint16
	classes       []string
	classIdx      map[string]int
	classFiltered []int
}

// NewFeasibilityWrapper returns a filter over source.
func NewFeasibilityWrapper(ctx *EvalContext, source *StaticIterator, checkers ...FeasibilityChecker) *FeasibilityWrapper {
	return &FeasibilityWrapper{ctx: ctx, source: source, checkers: checkers, caches: make(map[string][]uint16), reasonIdx: make(map[string]int)}
}

// SetTaskGroup selects the cache of the group being placed; the caller
// has set the checkers up for it.
func (w *FeasibilityWrapper) SetTaskGroup(name string) {
	w.group = name
	w.cache = nil
}

// current returns the group's cache for the source's node list.
func (w *FeasibilityWrapper) current() []uint16 {
	if w.generation != w.source.generation {
		// New node list: positions mean other nodes now.
		w.generation = w.source.generation
		clear(w.caches)
		w.cache = nil
		w.nodeClass = nil
	}
	if w.cache == nil {
		c, ok := w.caches[w.group]
		if !ok || len(c) != len(w.source.nodes) {
			c = make([]uint16, len(w.source.nodes))
			w.caches[w.group] = c
		}
		w.cache = c
	}
	return w.cache
}

// Next returns the next feasible node, or nil.
func (w *FeasibilityWrapper) Next() *structs.Node {
	cache := w.current()
	for {
		n := w.source.Next()
		if n == nil {
			return nil
		}
		pos := w.source.last
		res := cache[pos]
		if res == 0 {
			res = 1
			for _, c := range w.checkers {
				if fine, reason := c.Feasible(n); !fine {
					res = uint16(w.reasonID(reason) + 2)
					break
				}
			}
			cache[pos] = res
		}
		if res == 1 {
			return n
		}
		w.noteFiltered(n, int(res-2))
	}
}

func (w *FeasibilityWrapper) reasonID(reason string) int {
	if id, ok := w.reasonIdx[reason]; ok {
		return id
	}
	id := len(w.reasons)
	w.reasons = append(w.reasons, reason)
	w.reasonIdx[reason] = id
	return id
}

func (w *FeasibilityWrapper) noteFiltered(n *structs.Node, reason int) {
	for len(w.filtered) <= reason {
		w.filtered = append(w.filtered, 0)
	}
	w.filtered[reason]++
	w.anyFilter = true
	if n.NodeClass == "" {
		return
	}
	if w.nodeClass == nil {
		w.nodeClass = make([]uint16, len(w.source.nodes))
	}
	pos := w.source.last
	c := w.nodeClass[pos]
	if c == 0 {
		if w.classIdx == nil {
			w.classIdx = make(map[string]int)
		}
		id, ok := w.classIdx[n.NodeClass]
		if !ok {
			id = len(w.classes)
			w.classes = append(w.classes, n.NodeClass)
			w.classIdx[n.NodeClass] = id
			w.classFiltered = append(w.classFiltered, 0)
		}
		c = uint16(id + 1)
		w.nodeClass[pos] = c
	}
	w.classFiltered[c-1]++
}

// Flush adds the filter counts of the placement just made to the
// context's metrics and starts counting afresh.
func (w *FeasibilityWrapper) Flush() {
	if !w.anyFilter {
		return
	}
	m := w.ctx.metrics
	for id, count := range w.filtered {
		if count == 0 {
			continue
		}
		m.NodesFiltered += count
		if m.ConstraintFiltered == nil {
			m.ConstraintFiltered = make(map[string]int)
		}
		m.ConstraintFiltered[w.reasons[id]] += count
		w.filtered[id] = 0
	}
	for id, count := range w.classFiltered {
		if count == 0 {
			continue
		}
		if m.ClassFiltered == nil {
			m.ClassFiltered = make(map[string]int)
		}
		m.ClassFiltered[w.classes[id]] += count
		w.classFiltered[id] = 0
	}
	w.anyFilter = false
}

// Reset resets the source.
func (w *FeasibilityWrapper) Reset() { w.source.Reset() }
