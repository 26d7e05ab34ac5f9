package scheduler

import (
	"math"
	"sort"

	"github.com/droverhq/drover/structs"
)

// RankedNode is a feasible node with what the placement would get on it
// and how well it scores.
type RankedNode struct {
	Node *structs.Node
	// FinalScore is the mean of Scores, in [0, 1]; higher is better.
	FinalScore float64
	// Scores holds each ranker's score by name ("binpack", ...).
	Scores map[string]float64
	// TaskResources and Ports are what the allocation would be given.
	TaskResources map[string]*structs.AllocatedTaskResources
	Ports         []structs.AllocatedPortMapping
}

// RankIterator yields ranked nodes; Next returns nil when exhausted.
type RankIterator interface {
	Next() *RankedNode
	Reset()
}

// FeasibleRankIterator turns feasible nodes into unscored ranked nodes.
type FeasibleRankIterator struct {
	source FeasibleIterator
}

// Next implements RankIterator.
func (it *FeasibleRankIterator) Next() *RankedNode {
	n := it.source.Next()
	if n == nil {
		return nil
	}
	return &RankedNode{Node: n, Scores: make(map[string]float64, 2)}
}

// Reset implements RankIterator.
func (it *FeasibleRankIterator) Reset() { it.source.Reset() }

// BinPackIterator checks that the task group fits on each node next to
// what the node already runs (and what the plan already put there),
// assigns the group's ports, and scores the node by how full it would
// be: a fuller node scores higher, so work packs onto few nodes and big
// holes stay free for big allocations.
type BinPackIterator struct {
	ctx    *EvalContext
	source RankIterator
	tg     *structs.TaskGroup
	ask    structs.ComparableResources
}

// NewBinPackIterator returns a bin-packing ranker over source.
func NewBinPackIterator(ctx *EvalContext, source RankIterator) *BinPackIterator {
	return &BinPackIterator{ctx: ctx, source: source}
}

// SetTaskGroup sets the group being placed.
func (it *BinPackIterator) SetTaskGroup(tg *structs.TaskGroup) {
	it.tg = tg
	it.ask = structs.ComparableResources{}
	for _, t := range tg.Tasks {
		if t.Resources != nil {
			it.ask.CPU += int64(t.Resources.CPU)
			it.ask.MemoryMB += int64(t.Resources.MemoryMB)
		}
	}
}

// Next returns the next node the group fits on, scored.
func (it *BinPackIterator) Next() *RankedNode {
	for {
		option := it.source.Next()
		if option == nil {
			return nil
		}
		node := option.Node
		proposed, err := it.ctx.ProposedAllocs(node.ID)
		if err != nil {
			it.ctx.logger.Error("failed to read node allocations", "node", node.ID, "error", err)
			continue
		}
		used := structs.ComparableResources{}
		usedPorts := make(map[int]struct{})
		if node.ReservedResources != nil {
			for _, p := range node.ReservedResources.ReservedPorts {
				usedPorts[p] = struct{}{}
			}
		}
		for _, a := range proposed {
			used.Add(a.ComparableResources())
			for _, p := range a.Ports() {
				usedPorts[p] = struct{}{}
			}
		}
		total := used
		total.Add(it.ask)
		capacity := node.Capacity()
		if ok, dim := capacity.Superset(total); !ok {
			it.ctx.metrics.ExhaustedNode(node, dim)
			continue
		}
		ports, ok := assignPorts(it.ctx, node, it.tg, usedPorts)
		if !ok {
			it.ctx.metrics.ExhaustedNode(node, "ports")
			continue
		}
		option.Ports = ports
		option.TaskResources = make(map[string]*structs.AllocatedTaskResources, len(it.tg.Tasks))
		for _, t := range it.tg.Tasks {
			option.TaskResources[t.Name] = &structs.AllocatedTaskResources{
				Cpu:    structs.AllocatedCpuResources{CpuShares: int64(t.Resources.CPU)},
				Memory: structs.AllocatedMemoryResources{MemoryMB: int64(t.Resources.MemoryMB)},
			}
		}
		option.Scores["binpack"] = binPackScore(capacity, total)
		return option
	}
}

// Reset implements RankIterator.
func (it *BinPackIterator) Reset() { it.source.Reset() }

// binPackScore scores utilisation after placement in [0, 1]. Each
// dimension contributes 10^free, where free is its free fraction; the
// sum (2 for a full node, 20 for an empty one) is mapped linearly onto
// [1, 0]. The exponential makes a nearly full dimension count for much
// more than a half-full one, which is what keeps nodes packed.
func binPackScore(capacity, used structs.ComparableResources) float64 {
	free := func(used, total int64) float64 {
		if total <= 0 {
			return 0
		}
		f := 1 - float64(used)/float64(total)
		return math.Max(0, math.Min(1, f))
	}
	sum := math.Pow(10, free(used.CPU, capacity.CPU)) + math.Pow(10, free(used.MemoryMB, capacity.MemoryMB))
	return (20 - sum) / 18
}

// assignPorts grants the group's static ports (failing if one is taken)
// and picks each dynamic port at random from the node's dynamic range
// among the free ones. usedPorts is updated with the grants.
func assignPorts(ctx *EvalContext, node *structs.Node, tg *structs.TaskGroup, usedPorts map[int]struct{}) ([]structs.AllocatedPortMapping, bool) {
	if len(tg.Networks) == 0 {
		return nil, true
	}
	hostIP := node.Attributes["unique.network.ip-address"]
	var out []structs.AllocatedPortMapping
	for _, nw := range tg.Networks {
		for _, p := range nw.ReservedPorts {
			if _, taken := usedPorts[p.Value]; taken {
				return nil, false
			}
			usedPorts[p.Value] = struct{}{}
			out = append(out, structs.AllocatedPortMapping{Label: p.Label, Value: p.Value, To: p.To, HostIP: hostIP})
		}
	}
	lo, hi := node.DynamicPortRange()
	for _, nw := range tg.Networks {
		for _, p := range nw.DynamicPorts {
			port, ok := pickDynamicPort(ctx, lo, hi, usedPorts)
			if !ok {
				return nil, false
			}
			usedPorts[port] = struct{}{}
			to := p.To
			if to == 0 {
				to = port
			}
			out = append(out, structs.AllocatedPortMapping{Label: p.Label, Value: port, To: to, HostIP: hostIP})
		}
	}
	return out, true
}

// maxRandomPortTries bounds random probing before falling back to a scan
// of the range, which only matters on nodes with nearly every dynamic
// port taken.
const maxRandomPortTries = 20

func pickDynamicPort(ctx *EvalContext, lo, hi int, used map[int]struct{}) (int, bool) {
	if hi < lo {
		return 0, false
	}
	span := hi - lo + 1
	for i := 0; i < maxRandomPortTries; i++ {
		p := lo + ctx.rng.Intn(span)
		if _, taken := used[p]; !taken {
			return p, true
		}
	}
	start := ctx.rng.Intn(span)
	for i := 0; i < span; i++ {
		p := lo + (start+i)%span
		if _, taken := used[p]; !taken {
			return p, true
		}
	}
	return 0, false
}

// ScoreNormalizationIterator sets FinalScore to the mean of the scores.
type ScoreNormalizationIterator struct {
	source RankIterator
}

// Next implements RankIterator.
func (it *ScoreNormalizationIterator) Next() *RankedNode {
	option := it.source.Next()
	if option == nil || len(option.Scores) == 0 {
		return option
	}
	var sum float64
	for _, s := range option.Scores {
		sum += s
	}
	option.FinalScore = sum / float64(len(option.Scores))
	return option
}

// Reset implements RankIterator.
func (it *ScoreNormalizationIterator) Reset() { it.source.Reset() }

// LimitIterator stops a pass after limit options, bounding the work per
// placement in large clusters.
type LimitIterator struct {
	source RankIterator
	limit  int
	seen   int
}

// Next implements RankIterator.
func (it *LimitIterator) Next() *RankedNode {
	if it.seen >= it.limit {
		return nil
	}
	option := it.source.Next()
	if option != nil {
		it.seen++
	}
	return option
}

// Reset implements RankIterator.
func (it *LimitIterator) Reset() {
	it.source.Reset()
	it.seen = 0
}

// SetLimit changes the limit.
func (it *LimitIterator) SetLimit(limit int) { it.limit = limit }

// maxScoreMeta is how many top nodes a placement's metrics keep.
const maxScoreMeta = 5

// MaxScoreIterator drains its source and returns the best option. Ties go
// to the option seen first, which the shuffled source made random.
type MaxScoreIterator struct {
	ctx    *EvalContext
	source RankIterator
	max    *RankedNode
	done   bool
}

// Next returns the best option once, then nil until Reset.
func (it *MaxScoreIterator) Next() *RankedNode {
	if it.done {
		return nil
	}
	it.done = true
	var top []*RankedNode
	for option := it.source.Next(); option != nil; option = it.source.Next() {
		if it.max == nil || option.FinalScore > it.max.FinalScore {
			it.max = option
		}
		top = append(top, option)
	}
	sort.SliceStable(top, func(i, j int) bool { return top[i].FinalScore > top[j].FinalScore })
	if len(top) > maxScoreMeta {
		top = top[:maxScoreMeta]
	}
	for _, o := range top {
		scores := make(map[string]float64, len(o.Scores))
		for k, v := range o.Scores {
			scores[k] = v
		}
		it.ctx.metrics.ScoreMetaData = append(it.ctx.metrics.ScoreMetaData, &structs.NodeScoreMeta{
			NodeID: o.Node.ID, Scores: scores, NormScore: o.FinalScore,
		})
	}
	return it.max
}

// Reset implements RankIterator.
func (it *MaxScoreIterator) Reset() {
	it.source.Reset()
	it.max = nil
	it.done = false
}
