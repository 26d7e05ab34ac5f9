package scheduler

import (
	"math/rand"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
)

// EvalContext is shared by the iterators of one scheduler run: the state,
// the plan being built (so placements made earlier in the run count
// against nodes), the metrics of the current placement, and the seeded
// random source.
type EvalContext struct {
	state   State
	plan    *structs.Plan
	logger  hclog.Logger
	rng     *rand.Rand
	metrics *structs.AllocMetric
	matcher *matcher

	// nodes caches nodes read by ID.
	nodes map[string]*structs.Node
	// proposedCache caches each node's proposed allocations; see
	// proposed. Keyed by the node object (hashing a pointer is cheaper
	// than a UUID, and ranking asks for every option).
	proposedCache map[*structs.Node]*proposedEntry

	// counts tracks, per scope ("" for the job, else a group name) and
	// attribute, how many of the job's allocations run per attribute
	// value, including the plan's placements. Spread and
	// distinct_property read it; placements update it in O(1), so their
	// cost stays linear in the number of placements.
	counts map[countKey]map[string]int
}

type countKey struct {
	scope, attribute string
}

// NewEvalContext returns a context for one scheduler run.
func NewEvalContext(state State, plan *structs.Plan, logger hclog.Logger, rng *rand.Rand) *EvalContext {
	return &EvalContext{
		state:         state,
		plan:          plan,
		logger:        logger,
		rng:           rng,
		metrics:       new(structs.AllocMetric),
		matcher:       newMatcher(),
		nodes:         make(map[string]*structs.Node),
		proposedCache: make(map[*structs.Node]*proposedEntry),
		counts:        make(map[countKey]map[string]int),
	}
}

// Metrics returns the metrics of the placement in progress.
func (c *EvalContext) Metrics() *structs.AllocMetric { return c.metrics }

// ResetMetrics starts metrics for a new placement.
func (c *EvalContext) ResetMetrics() { c.metrics = new(structs.AllocMetric) }

// ProposedAllocs returns what would run on the node if the plan so far
// committed: the node's live allocations, less those the plan stops,
// evicts or updates, plus the plan's placements on it. The result is
// shared: callers must not modify it.
func (c *EvalContext) ProposedAllocs(nodeID string) ([]*structs.Allocation, error) {
	node := c.node(nodeID)
	if node == nil {
		// A node gone from the state: compute without the cache.
		existing, err := c.liveAllocs(nodeID)
		if err != nil {
			return nil, err
		}
		stopped := append(append([]*structs.Allocation(nil), c.plan.NodeUpdate[nodeID]...), c.plan.NodePreemptions[nodeID]...)
		return structs.ProposedAllocs(existing, stopped, c.plan.NodeAllocation[nodeID]), nil
	}
	e, err := c.proposed(node)
	if err != nil {
		return nil, err
	}
	return e.allocs, nil
}

// liveAllocs returns the node's non-terminal allocations in the state.
func (c *EvalContext) liveAllocs(nodeID string) ([]*structs.Allocation, error) {
	all, err := c.state.AllocsByNode(nil, nodeID)
	if err != nil {
		return nil, err
	}
	var live []*structs.Allocation
	for _, a := range all {
		if !a.TerminalStatus() {
			live = append(live, a)
		}
	}
	return live, nil
}

// proposedEntry caches a node's proposed allocations and their total
// resources for the plan as it was when computed (sig).
type proposedEntry struct {
	// existing are the node's live allocations in the state snapshot.
	existing []*structs.Allocation
	sig      planSig
	valid    bool
	allocs   []*structs.Allocation
	used     structs.ComparableResources
}

// planSig identifies the plan's lists for one node. The scheduler only
// appends to them, or removes a stop it takes back; either changes a
// list's length or its last element, so an unchanged signature means an
// unchanged list.
type planSig struct {
	updates, placed, preempted       int
	lastUpdate, lastPlaced, lastPree *structs.Allocation
}

func sigOf(updates, placed, preempted []*structs.Allocation) planSig {
	s := planSig{updates: len(updates), placed: len(placed), preempted: len(preempted)}
	if n := len(updates); n > 0 {
		s.lastUpdate = updates[n-1]
	}
	if n := len(placed); n > 0 {
		s.lastPlaced = placed[n-1]
	}
	if n := len(preempted); n > 0 {
		s.lastPree = preempted[n-1]
	}
	return s
}

// proposed returns the node's cached proposed allocations and usage,
// recomputing them only when the plan's lists for the node changed.
// Ranking visits the same nodes placement after placement, so this
// keeps the state store read to once per node per evaluation and the
// recomputation to nodes the plan touched since.
func (c *EvalContext) proposed(node *structs.Node) (*proposedEntry, error) {
	nodeID := node.ID
	e := c.proposedCache[node]
	if e == nil {
		existing, err := c.liveAllocs(nodeID)
		if err != nil {
			return nil, err
		}
		e = &proposedEntry{existing: existing}
		c.proposedCache[node] = e
	}
	var updates, placed, preempted []*structs.Allocation
	if len(c.plan.NodeUpdate) > 0 {
		updates = c.plan.NodeUpdate[nodeID]
	}
	if len(c.plan.NodeAllocation) > 0 {
		placed = c.plan.NodeAllocation[nodeID]
	}
	if len(c.plan.NodePreemptions) > 0 {
		preempted = c.plan.NodePreemptions[nodeID]
	}
	sig := sigOf(updates, placed, preempted)
	if e.valid && e.sig == sig {
		return e, nil
	}
	stopped := updates
	if len(preempted) > 0 {
		stopped = append(append([]*structs.Allocation(nil), updates...), preempted...)
	}
	e.allocs = structs.ProposedAllocs(e.existing, stopped, placed)
	e.used = sumResources(e.allocs)
	e.sig, e.valid = sig, true
	return e, nil
}

// node returns a node by ID, cached.
func (c *EvalContext) node(id string) *structs.Node {
	if n, ok := c.nodes[id]; ok {
		return n
	}
	n, err := c.state.NodeByID(nil, id)
	if err != nil {
		n = nil
	}
	c.nodes[id] = n
	return n
}

// valueCounts returns how many of the job's live allocations (of group
// scope, or all groups for scope "") run per value of attribute. The
// first call for a key reads the job's allocations; later placements
// are added by notePlacement.
func (c *EvalContext) valueCounts(job *structs.Job, scope, attribute string) map[string]int {
	key := countKey{scope, attribute}
	if m, ok := c.counts[key]; ok {
		return m
	}
	m := make(map[string]int)
	c.counts[key] = m
	allocs, err := c.state.AllocsByJob(nil, job.Namespace, job.ID)
	if err != nil {
		return m
	}
	gone := make(map[string]bool)
	for _, list := range c.plan.NodeUpdate {
		for _, a := range list {
			gone[a.ID] = true
		}
	}
	for _, list := range c.plan.NodePreemptions {
		for _, a := range list {
			gone[a.ID] = true
		}
	}
	count := func(a *structs.Allocation) {
		if scope != "" && a.TaskGroup != scope {
			return
		}
		n := c.node(a.NodeID)
		if n == nil {
			return
		}
		if v, ok := resolveTarget(attribute, n); ok {
			m[v]++
		}
	}
	known := make(map[string]bool, len(allocs))
	for _, a := range allocs {
		known[a.ID] = true
		if !a.TerminalStatus() && !gone[a.ID] {
			count(a)
		}
	}
	// New placements already in the plan (in-place updates are existing
	// allocations, counted above).
	for _, list := range c.plan.NodeAllocation {
		for _, a := range list {
			if a.JobID == job.ID && a.Namespace == job.Namespace && !known[a.ID] && !a.TerminalStatus() {
				count(a)
			}
		}
	}
	return m
}

// notePlacement updates the tracked counts with a new placement of
// group tg on node.
func (c *EvalContext) notePlacement(tg string, node *structs.Node) {
	for key, m := range c.counts {
		if key.scope != "" && key.scope != tg {
			continue
		}
		if v, ok := resolveTarget(key.attribute, node); ok {
			m[v]++
		}
	}
}

// noteStop updates the tracked counts when the plan stops one of the
// job's live allocations after the counts were first read (the system
// scheduler interleaves stops and placements); counts read later leave
// it out already.
func (c *EvalContext) noteStop(a *structs.Allocation) {
	if len(c.counts) == 0 || a.TerminalStatus() {
		return
	}
	n := c.node(a.NodeID)
	if n == nil {
		return
	}
	for key, m := range c.counts {
		if key.scope != "" && key.scope != a.TaskGroup {
			continue
		}
		if v, ok := resolveTarget(key.attribute, n); ok && m[v] > 0 {
			m[v]--
		}
	}
}

// takeBackStop removes the plan's stop of prev, whose replacement could
// not be placed, so that it keeps running. When a placement made since
// took the room the stop freed, the stop stays (taking it back would
// over-commit the node) and it returns false.
func (c *EvalContext) takeBackStop(prev *structs.Allocation) bool {
	list := c.plan.NodeUpdate[prev.NodeID]
	i := 0
	for i < len(list) && list[i].ID != prev.ID {
		i++
	}
	if i == len(list) {
		return false
	}
	rest := append(list[:i:i], list[i+1:]...)
	if len(rest) == 0 {
		delete(c.plan.NodeUpdate, prev.NodeID)
	} else {
		c.plan.NodeUpdate[prev.NodeID] = rest
	}
	if prev.TerminalStatus() {
		return true // a failed allocation holds nothing
	}
	node := c.node(prev.NodeID)
	if node == nil {
		return true
	}
	proposed, err := c.ProposedAllocs(prev.NodeID)
	if fit, _, _ := structs.AllocsFit(node, proposed); err != nil || !fit {
		c.plan.NodeUpdate[prev.NodeID] = list
		return false
	}
	// It counts again for spread and distinct_property.
	c.notePlacement(prev.TaskGroup, node)
	return true
}
