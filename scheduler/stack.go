package scheduler

import (
	"math"
	"strings"

	"github.com/droverhq/drover/structs"
)

// Limits on how many feasible nodes one placement ranks. Small clusters
// are ranked exhaustively, so bin-packing finds the fullest node that
// fits; in large clusters a placement ranks 2*log2(n) nodes (26 of
// 5,000), which keeps placement cost flat while the shuffled source
// spreads the choice.
const (
	minRankLimit    = 16
	rankLimitFactor = 2
)

// SelectOptions adjust one placement.
type SelectOptions struct {
	// PenaltyNodes are nodes a rescheduled allocation failed on.
	PenaltyNodes map[string]bool
}

// GenericStack is the placement pipeline:
//
//	StaticIterator          the candidate nodes (ready, eligible, in the
//	                        job's datacenters and node pool), shuffled
//	                        with the eval's seed
//	FeasibilityWrapper      drops nodes without the tasks' drivers or
//	                        failing a constraint (cached per group)
//	FeasibleRankIterator    turns nodes into ranked options
//	BinPackIterator         drops nodes the group does not fit (cpu,
//	                        memory, ports) unless preemption makes room;
//	                        assigns ports; scores fullness
//	DistinctIterator        distinct_hosts and distinct_property
//	JobAntiAffinity         penalizes nodes running the same group
//	ReschedulePenalty       penalizes nodes a rescheduled alloc failed on
//	NodeAffinity            scores affinities
//	Spread                  scores spreads
//	ScoreNormalization      final score = mean of the scores set
//	LimitIterator           stops after rankLimit options
//	MaxScoreIterator        picks the best
type GenericStack struct {
	ctx          *EvalContext
	job          *structs.Job
	nodes        []*structs.Node
	source       *StaticIterator
	drivers      *DriverChecker
	constraints  *ConstraintChecker
	feasible     *FeasibilityWrapper
	binPack      *BinPackIterator
	distinct     *DistinctIterator
	antiAffinity *JobAntiAffinityIterator
	penalty      *ReschedulePenaltyIterator
	affinity     *NodeAffinityIterator
	spread       *SpreadIterator
	limit        *LimitIterator
	maxScore     *MaxScoreIterator
	// configured is the group the stack is set up for.
	configured *structs.TaskGroup
}

// NewGenericStack wires the pipeline.
func NewGenericStack(ctx *EvalContext) *GenericStack {
	s := &GenericStack{ctx: ctx}
	s.source = NewStaticIterator(ctx, nil)
	s.drivers = &DriverChecker{}
	s.constraints = &ConstraintChecker{ctx: ctx}
	s.feasible = NewFeasibilityWrapper(ctx, s.source, s.drivers, s.constraints)
	ranked := &FeasibleRankIterator{source: s.feasible}
	s.binPack = NewBinPackIterator(ctx, ranked)
	s.distinct = &DistinctIterator{ctx: ctx, source: s.binPack}
	s.antiAffinity = &JobAntiAffinityIterator{source: s.distinct}
	s.penalty = &ReschedulePenaltyIterator{source: s.antiAffinity}
	s.affinity = &NodeAffinityIterator{ctx: ctx, source: s.penalty}
	s.spread = &SpreadIterator{ctx: ctx, source: s.affinity}
	normalized := &ScoreNormalizationIterator{source: s.spread}
	s.limit = &LimitIterator{source: normalized, limit: minRankLimit}
	s.maxScore = &MaxScoreIterator{ctx: ctx, source: s.limit}
	return s
}

// SetJob sets the job; preempt says whether its placements may evict.
func (s *GenericStack) SetJob(job *structs.Job, preempt bool) {
	s.job = job
	s.binPack.SetJob(job, preempt)
	s.configured = nil
}

// SetNodes sets the candidate nodes and shuffles them.
func (s *GenericStack) SetNodes(nodes []*structs.Node) {
	shuffleNodes(s.ctx, nodes)
	s.nodes = nodes
	s.source.SetNodes(nodes)
	limit := minRankLimit
	if n := len(nodes); n > 1 {
		if l := rankLimitFactor * int(math.Ceil(math.Log2(float64(n)))); l > limit {
			limit = l
		}
	}
	s.limit.SetLimit(limit)
}

// setTaskGroup configures the iterators for a group, once per group.
func (s *GenericStack) setTaskGroup(tg *structs.TaskGroup) {
	if s.configured == tg {
		return
	}
	s.configured = tg
	s.drivers.SetTaskGroup(tg)
	cs := append(append([]*structs.Constraint(nil), s.job.Constraints...), tg.Constraints...)
	for _, t := range tg.Tasks {
		cs = append(cs, t.Constraints...)
	}
	s.constraints.SetConstraints(cs)
	s.feasible.SetTaskGroup(tg.Name)
	s.binPack.SetTaskGroup(tg)
	s.distinct.SetTaskGroup(s.job, tg)
	s.antiAffinity.SetTaskGroup(s.job.Key(), tg)
	s.affinity.SetTaskGroup(s.job, tg)
	s.spread.SetTaskGroup(s.job, tg, s.nodes)
}

// Select returns the best node for one allocation of tg, or nil when no
// node fits; the context's metrics explain either outcome.
func (s *GenericStack) Select(tg *structs.TaskGroup, opts *SelectOptions) *RankedNode {
	s.setTaskGroup(tg)
	var penalty map[string]bool
	if opts != nil {
		penalty = opts.PenaltyNodes
	}
	s.penalty.SetPenaltyNodes(penalty)
	if order := s.spread.exactOrder(); len(order) > 0 {
		if best := s.selectExact(order, len(penalty) > 0); best != nil {
			return best
		}
	}
	s.maxScore.Reset()
	best := s.maxScore.Next()
	s.feasible.Flush()
	return best
}

// selectExact places on the exact spread's values in order: the first
// value with a feasible node wins, ranked among that value's nodes only.
// A value without one is exhausted for the evaluation (unless penalty
// nodes, which only this placement avoids, may be why). When no value
// takes it, the metrics of the attempts are dropped and the caller
// ranks every node as usual, so a failure explains itself as before.
func (s *GenericStack) selectExact(order []string, penalized bool) *RankedNode {
	saved := s.ctx.metrics.Copy()
	defer s.source.Restrict(nil)
	for _, v := range order {
		s.source.Restrict(s.spread.cursors[v])
		s.maxScore.Reset()
		best := s.maxScore.Next()
		s.feasible.Flush()
		if best != nil {
			return best
		}
		if !penalized {
			s.spread.exhausted[v] = true
		}
	}
	s.ctx.metrics = saved
	return nil
}

// readyNodes returns the nodes that may take new allocations of a job:
// ready, eligible, in one of its datacenters and its node pool. It also
// returns how many such nodes each datacenter has, for the placement
// metrics.
func readyNodes(state State, job *structs.Job) ([]*structs.Node, map[string]int, error) {
	// The list depends only on the nodes and on the job's datacenters
	// and pool, so it is computed once per change of the nodes table
	// and shared by every evaluation: walking thousands of nodes per
	// evaluation was a third of the leader's CPU under load.
	pool := job.NodePool
	if pool == "" {
		pool = structs.DefaultNodePool
	}
	key := "ready\x00" + pool + "\x00" + strings.Join(job.Datacenters, "\x00")
	raw, err := state.NodesDerived(key, func(all []*structs.Node) interface{} {
		return filterReadyNodes(all, job)
	})
	if err != nil {
		return nil, nil, err
	}
	ready := raw.(*readyNodeList)
	// The caller shuffles its list and may keep the counts: copies.
	out := append([]*structs.Node(nil), ready.nodes...)
	byDC := make(map[string]int, len(ready.byDC))
	for dc, n := range ready.byDC {
		byDC[dc] = n
	}
	return out, byDC, nil
}

// readyNodeList is the memoized result of filterReadyNodes.
type readyNodeList struct {
	nodes []*structs.Node
	byDC  map[string]int
}

// filterReadyNodes keeps the nodes job may be placed on by status,
// eligibility, datacenter and pool, and counts them per datacenter.
func filterReadyNodes(all []*structs.Node, job *structs.Job) *readyNodeList {
	dcs := make(map[string]bool, len(job.Datacenters))
	anyDC := false
	for _, dc := range job.Datacenters {
		if dc == "*" {
			anyDC = true
		}
		dcs[dc] = true
	}
	byDC := make(map[string]int)
	out := make([]*structs.Node, 0, len(all))
	for _, n := range all {
		if !n.Ready() || (!anyDC && !dcs[n.Datacenter]) || !inPool(job, n) {
			continue
		}
		out = append(out, n)
		byDC[n.Datacenter]++
	}
	return &readyNodeList{nodes: out, byDC: byDC}
}

// inDatacenters reports whether a node is in one of the job's
// datacenters ("*" matches every one).
func inDatacenters(job *structs.Job, n *structs.Node) bool {
	for _, dc := range job.Datacenters {
		if dc == "*" || dc == n.Datacenter {
			return true
		}
	}
	return false
}

// inPool reports whether a node belongs to the job's node pool.
func inPool(job *structs.Job, n *structs.Node) bool {
	pool := job.NodePool
	if pool == "" {
		pool = structs.DefaultNodePool
	}
	if pool == "all" {
		return true
	}
	np := n.NodePool
	if np == "" {
		np = structs.DefaultNodePool
	}
	return np == pool
}
