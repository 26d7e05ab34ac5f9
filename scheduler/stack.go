package scheduler

import (
	"math"

	"github.com/droverhq/drover/structs"
)

// Limits on how many feasible nodes one placement ranks. Small clusters
// are ranked exhaustively, so bin-packing finds the fullest node that
// fits; in large clusters a placement ranks 4*log2(n) nodes (52 of
// 5,000), which keeps placement cost flat while the shuffled source
// spreads the choice.
const (
	minRankLimit    = 16
	rankLimitFactor = 4
)

// GenericStack is the placement pipeline for service and batch jobs:
//
//	StaticIterator         every ready node in the job's datacenters,
//	                       shuffled with the eval's seed
//	FeasibilityWrapper     drops nodes without the tasks' drivers
//	FeasibleRankIterator   turns nodes into ranked options
//	BinPackIterator        drops nodes the group does not fit (cpu,
//	                       memory, ports), assigns ports, scores fullness
//	ScoreNormalization     final score = mean of the scores
//	LimitIterator          stops after rankLimit options
//	MaxScoreIterator       picks the best
type GenericStack struct {
	ctx      *EvalContext
	source   *StaticIterator
	drivers  *DriverChecker
	binPack  *BinPackIterator
	limit    *LimitIterator
	maxScore *MaxScoreIterator
}

// NewGenericStack wires the pipeline.
func NewGenericStack(ctx *EvalContext) *GenericStack {
	s := &GenericStack{ctx: ctx}
	s.source = NewStaticIterator(ctx, nil)
	s.drivers = &DriverChecker{}
	feasible := NewFeasibilityWrapper(ctx, s.source, s.drivers)
	ranked := &FeasibleRankIterator{source: feasible}
	s.binPack = NewBinPackIterator(ctx, ranked)
	normalized := &ScoreNormalizationIterator{source: s.binPack}
	s.limit = &LimitIterator{source: normalized, limit: minRankLimit}
	s.maxScore = &MaxScoreIterator{ctx: ctx, source: s.limit}
	return s
}

// SetNodes sets the candidate nodes (already filtered to ready nodes in
// the job's datacenters) and shuffles them.
func (s *GenericStack) SetNodes(nodes []*structs.Node) {
	shuffleNodes(s.ctx, nodes)
	s.source.SetNodes(nodes)
	limit := minRankLimit
	if n := len(nodes); n > 1 {
		if l := rankLimitFactor * int(math.Ceil(math.Log2(float64(n)))); l > limit {
			limit = l
		}
	}
	s.limit.SetLimit(limit)
}

// Select returns the best node for one allocation of tg, or nil when no
// node fits; the context's metrics explain either outcome.
func (s *GenericStack) Select(tg *structs.TaskGroup) *RankedNode {
	s.maxScore.Reset()
	s.drivers.SetTaskGroup(tg)
	s.binPack.SetTaskGroup(tg)
	return s.maxScore.Next()
}

// readyNodes returns the nodes that may take new allocations of a job:
// ready, eligible, in one of its datacenters. It also returns how many
// such nodes each datacenter has, for the placement metrics.
func readyNodes(state State, datacenters []string) ([]*structs.Node, map[string]int, error) {
	all, err := state.Nodes(nil)
	if err != nil {
		return nil, nil, err
	}
	dcs := make(map[string]bool, len(datacenters))
	for _, dc := range datacenters {
		dcs[dc] = true
	}
	byDC := make(map[string]int)
	out := make([]*structs.Node, 0, len(all))
	for _, n := range all {
		if !n.Ready() || !dcs[n.Datacenter] {
			continue
		}
		out = append(out, n)
		byDC[n.Datacenter]++
	}
	return out, byDC, nil
}
