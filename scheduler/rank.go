package scheduler

import (
	"math"
	"strconv"
	"strings"

	"github.com/droverhq/drover/structs"
)

// Score components. Each ranker sets at most one; the final score is the
// mean of those set.
const (
	scoreBinPack = iota
	scoreJobAntiAffinity
	scoreNodeAffinity
	scoreSpread
	scoreReschedulePenalty
	scorePreemption
	numScores
)

// scoreNames name the components in placement explanations.
var scoreNames = [numScores]string{
	structs.ScoreBinpack, structs.ScoreJobAntiAffinity, structs.ScoreNodeAffinity,
	structs.ScoreSpread, structs.ScoreReschedulePenalty, structs.ScorePreemption,
}

// RankedNode is a feasible node with what the placement would get on it
// and how well it scores.
type RankedNode struct {
	Node *structs.Node
	// FinalScore is the mean of the scores set, in [-1, 1].
	FinalScore float64
	scores     [numScores]float64
	has        [numScores]bool
	// TaskResources and Ports are what the allocation would be given;
	// TaskResources is shared by every option of a group (read-only).
	TaskResources map[string]*structs.AllocatedTaskResources
	Ports         []structs.AllocatedPortMapping
	// Proposed is what runs on the node with the plan so far; Preempted
	// lists allocations the placement would evict.
	Proposed  []*structs.Allocation
	Preempted []*structs.Allocation
}

func (r *RankedNode) setScore(i int, v float64) {
	r.scores[i] = v
	r.has[i] = true
}

// Scores returns the components set, in scoreNames order.
func (r *RankedNode) Scores() structs.ScoreComponents {
	n := 0
	for i := 0; i < numScores; i++ {
		if r.has[i] {
			n++
		}
	}
	out := make(structs.ScoreComponents, 0, n)
	for i := 0; i < numScores; i++ {
		if r.has[i] {
			out = append(out, structs.ScoreComponent{Name: scoreNames[i], Score: r.scores[i]})
		}
	}
	return out
}

// RankIterator yields ranked nodes; Next returns nil when exhausted.
type RankIterator interface {
	Next() *RankedNode
	Reset()
}

// FeasibleRankIterator turns feasible nodes into unscored ranked nodes.
// The ranked nodes of one pass come from chunks reused by the next pass
// (a placement ranks tens of nodes; allocating each would make most of
// an evaluation's garbage): they are valid until the next Reset, and
// MaxScoreIterator hands out a copy of the winner.
type FeasibleRankIterator struct {
	source FeasibleIterator
	chunks [][]RankedNode
	used   int
}

// rankChunk is how many ranked nodes one chunk holds.
const rankChunk = 64

// Next implements RankIterator.
func (it *FeasibleRankIterator) Next() *RankedNode {
	n := it.source.Next()
	if n == nil {
		return nil
	}
	c, i := it.used/rankChunk, it.used%rankChunk
	if c == len(it.chunks) {
		it.chunks = append(it.chunks, make([]RankedNode, rankChunk))
	}
	it.used++
	r := &it.chunks[c][i]
	*r = RankedNode{Node: n}
	return r
}

// Reset implements RankIterator; it invalidates the ranked nodes of the
// previous pass.
func (it *FeasibleRankIterator) Reset() {
	it.source.Reset()
	it.used = 0
}

// BinPackIterator checks that the task group fits on each node next to
// what the node already runs (and what the plan already put there),
// assigns the group's ports, and scores the node by how full it would
// be: a fuller node scores higher, so work packs onto few nodes and big
// holes stay free for big allocations. With preemption enabled, a node
// the group does not fit on is still offered if evicting lower-priority
// allocations makes room; the evictions are recorded on the option.
type BinPackIterator struct {
	ctx      *EvalContext
	source   RankIterator
	tg       *structs.TaskGroup
	ask      structs.ComparableResources
	taskRes  map[string]*structs.AllocatedTaskResources
	job      structs.NamespacedID
	priority int
	preempt  bool
}

// NewBinPackIterator returns a bin-packing ranker over source.
func NewBinPackIterator(ctx *EvalContext, source RankIterator) *BinPackIterator {
	return &BinPackIterator{ctx: ctx, source: source}
}

// SetJob sets the job being placed and whether it may preempt.
func (it *BinPackIterator) SetJob(job *structs.Job, preempt bool) {
	it.job, it.priority, it.preempt = job.Key(), job.Priority, preempt
}

// SetTaskGroup sets the group being placed.
func (it *BinPackIterator) SetTaskGroup(tg *structs.TaskGroup) {
	it.tg = tg
	// Overflow-checked: an ask whose sum overflows fits on no node.
	it.ask = structs.AskOf(tg)
	it.taskRes = make(map[string]*structs.AllocatedTaskResources, len(tg.Tasks))
	for _, t := range tg.Tasks {
		if t.Resources == nil {
			continue
		}
		it.taskRes[t.Name] = &structs.AllocatedTaskResources{
			Cpu:    structs.AllocatedCpuResources{CpuShares: int64(t.Resources.CPU)},
			Memory: structs.AllocatedMemoryResources{MemoryMB: int64(t.Resources.MemoryMB)},
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
		entry, err := it.ctx.proposed(node)
		if err != nil {
			it.ctx.logger.Error("failed to read node allocations", "node", node.ID, "error", err)
			continue
		}
		proposed := entry.allocs
		capacity := node.CheckedCapacity()
		used := entry.used
		total := used
		total.Add(it.ask)
		var preempted []*structs.Allocation
		if ok, dim := capacity.Superset(total); !ok {
			if it.preempt {
				preempted = findPreemptions(proposed, capacity, used, it.ask, it.job, it.priority)
			}
			if preempted == nil {
				it.ctx.metrics.ExhaustedNode(node, dim)
				continue
			}
			proposed = without(proposed, preempted)
			used = sumResources(proposed)
			total = used
			total.Add(it.ask)
		}
		var ports []structs.AllocatedPortMapping
		if len(it.tg.Networks) > 0 {
			var ok bool
			ports, ok = assignPorts(it.ctx, node, it.tg, nodePorts(node, proposed))
			if !ok {
				it.ctx.metrics.ExhaustedNode(node, "ports")
				continue
			}
		}
		option.Proposed = proposed
		option.Preempted = preempted
		option.Ports = ports
		option.TaskResources = it.taskRes
		option.setScore(scoreBinPack, binPackScore(capacity, total))
		if len(preempted) > 0 {
			// Evicting is a last resort: always worse than a node with
			// room, and worse the more it evicts.
			option.setScore(scorePreemption, -math.Min(1, 0.5+0.1*float64(len(preempted))))
		}
		return option
	}
}

// Reset implements RankIterator.
func (it *BinPackIterator) Reset() { it.source.Reset() }

// sumResources adds up what allocs hold, overflow-checked (see
// structs.ComparableResources): an overflowed sum fits nowhere.
func sumResources(allocs []*structs.Allocation) structs.ComparableResources {
	return structs.SumUsage(allocs)
}

func nodePorts(node *structs.Node, allocs []*structs.Allocation) map[int]struct{} {
	ports := make(map[int]struct{})
	if node.ReservedResources != nil {
		for _, p := range node.ReservedResources.ReservedPorts {
			ports[p] = struct{}{}
		}
	}
	for _, a := range allocs {
		for _, p := range a.Ports() {
			ports[p] = struct{}{}
		}
	}
	return ports
}

func without(allocs, remove []*structs.Allocation) []*structs.Allocation {
	gone := make(map[string]bool, len(remove))
	for _, a := range remove {
		gone[a.ID] = true
	}
	out := make([]*structs.Allocation, 0, len(allocs))
	for _, a := range allocs {
		if !gone[a.ID] {
			out = append(out, a)
		}
	}
	return out
}

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
	sum := pow10(free(used.CPU, capacity.CPU)) + pow10(free(used.MemoryMB, capacity.MemoryMB))
	return math.Max(0, math.Min(1, (20-sum)/18))
}

// pow10 is 10^x, by exp (math.Pow is several times slower).
func pow10(x float64) float64 { return math.Exp(x * math.Ln10) }

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

// DistinctIterator drops nodes that would break distinct_hosts (another
// allocation of the job, or of the group, already there) or
// distinct_property (the node's value of the property already holds as
// many allocations as allowed).
type DistinctIterator struct {
	ctx        *EvalContext
	source     RankIterator
	job        *structs.Job
	tg         *structs.TaskGroup
	jobHosts   bool
	groupHosts bool
	properties []distinctProperty
}

type distinctProperty struct {
	constraint *structs.Constraint
	scope      string
	limit      int
}

// SetTaskGroup reads the distinct constraints of the job and group.
func (it *DistinctIterator) SetTaskGroup(job *structs.Job, tg *structs.TaskGroup) {
	it.job, it.tg = job, tg
	it.jobHosts, it.groupHosts = false, false
	it.properties = it.properties[:0]
	add := func(cs []*structs.Constraint, scope string) {
		for _, c := range cs {
			switch c.Operand {
			case structs.ConstraintDistinctHosts:
				// `distinct_hosts = false` (value "false") switches it off.
				if strings.EqualFold(strings.TrimSpace(c.RTarget), "false") {
					continue
				}
				if scope == "" {
					it.jobHosts = true
				} else {
					it.groupHosts = true
				}
			case structs.ConstraintDistinctProperty:
				limit := 1
				if n, err := strconv.Atoi(c.RTarget); err == nil && n > 0 {
					limit = n
				}
				it.properties = append(it.properties, distinctProperty{constraint: c, scope: scope, limit: limit})
			}
		}
	}
	add(job.Constraints, "")
	add(tg.Constraints, tg.Name)
}

// Next implements RankIterator.
func (it *DistinctIterator) Next() *RankedNode {
OUTER:
	for {
		option := it.source.Next()
		if option == nil {
			return nil
		}
		if it.jobHosts || it.groupHosts {
			for _, a := range option.Proposed {
				if a.JobID == it.job.ID && a.Namespace == it.job.Namespace && (it.jobHosts || a.TaskGroup == it.tg.Name) {
					it.ctx.metrics.FilterNode(option.Node, structs.ConstraintDistinctHosts)
					continue OUTER
				}
			}
		}
		for _, p := range it.properties {
			v, ok := resolveTarget(p.constraint.LTarget, option.Node)
			if !ok || it.ctx.valueCounts(it.job, p.scope, p.constraint.LTarget)[v] >= p.limit {
				it.ctx.metrics.FilterNode(option.Node, p.constraint.String())
				continue OUTER
			}
		}
		return option
	}
}

// Reset implements RankIterator.
func (it *DistinctIterator) Reset() { it.source.Reset() }

// JobAntiAffinityIterator penalizes nodes that already run allocations
// of the same group, so a job's instances spread over nodes for
// availability while different jobs still pack: the score is
// -(collisions+1)/count.
type JobAntiAffinityIterator struct {
	source RankIterator
	job    structs.NamespacedID
	tg     string
	count  int
}

// SetTaskGroup sets the group being placed, of job (namespace, ID):
// another namespace's job of the same ID is another job.
func (it *JobAntiAffinityIterator) SetTaskGroup(job structs.NamespacedID, tg *structs.TaskGroup) {
	it.job, it.tg, it.count = job, tg.Name, tg.Count
	if it.count < 1 {
		it.count = 1
	}
}

// Next implements RankIterator.
func (it *JobAntiAffinityIterator) Next() *RankedNode {
	option := it.source.Next()
	if option == nil {
		return nil
	}
	collisions := 0
	for _, a := range option.Proposed {
		if a.JobID == it.job.ID && a.Namespace == it.job.Namespace && a.TaskGroup == it.tg {
			collisions++
		}
	}
	if collisions > 0 {
		option.setScore(scoreJobAntiAffinity, math.Max(-1, -float64(collisions+1)/float64(it.count)))
	}
	return option
}

// Reset implements RankIterator.
func (it *JobAntiAffinityIterator) Reset() { it.source.Reset() }

// ReschedulePenaltyIterator scores -1 on nodes a rescheduled allocation
// already failed on, so it moves elsewhere when it can.
type ReschedulePenaltyIterator struct {
	source RankIterator
	nodes  map[string]bool
}

// SetPenaltyNodes sets the nodes to avoid (nil: none).
func (it *ReschedulePenaltyIterator) SetPenaltyNodes(nodes map[string]bool) { it.nodes = nodes }

// Next implements RankIterator.
func (it *ReschedulePenaltyIterator) Next() *RankedNode {
	option := it.source.Next()
	if option != nil && it.nodes[option.Node.ID] {
		option.setScore(scoreReschedulePenalty, -1)
	}
	return option
}

// Reset implements RankIterator.
func (it *ReschedulePenaltyIterator) Reset() { it.source.Reset() }

// NodeAffinityIterator scores nodes by the job's, group's and tasks'
// affinities: the sum of the weights of the affinities a node meets over
// the sum of all weights' magnitudes, in [-1, 1]. A node's score depends
// only on the node, so it is cached per group.
type NodeAffinityIterator struct {
	ctx        *EvalContext
	source     RankIterator
	affinities []*structs.Affinity
	total      float64
	cache      map[string]float64
}

// SetTaskGroup gathers the affinities that apply to the group.
func (it *NodeAffinityIterator) SetTaskGroup(job *structs.Job, tg *structs.TaskGroup) {
	it.affinities = append(append([]*structs.Affinity(nil), job.Affinities...), tg.Affinities...)
	for _, t := range tg.Tasks {
		it.affinities = append(it.affinities, t.Affinities...)
	}
	it.total = 0
	for _, a := range it.affinities {
		it.total += math.Abs(float64(a.Weight))
	}
	it.cache = make(map[string]float64)
}

// Next implements RankIterator.
func (it *NodeAffinityIterator) Next() *RankedNode {
	option := it.source.Next()
	if option == nil || len(it.affinities) == 0 {
		return option
	}
	score, ok := it.cache[option.Node.ID]
	if !ok {
		var sum float64
		for _, a := range it.affinities {
			if it.ctx.matcher.meets(a.Operand, a.LTarget, a.RTarget, option.Node) {
				sum += float64(a.Weight)
			}
		}
		score = sum / it.total
		it.cache[option.Node.ID] = score
	}
	// Set even when zero: a node that meets no affinity must count it
	// in the mean, or its other scores alone would beat a node that
	// meets a positive one (Nomad #25621).
	option.setScore(scoreNodeAffinity, score)
	return option
}

// Reset implements RankIterator.
func (it *NodeAffinityIterator) Reset() { it.source.Reset() }

// ScoreNormalizationIterator sets FinalScore to the mean of the scores
// set.
type ScoreNormalizationIterator struct {
	source RankIterator
}

// Next implements RankIterator.
func (it *ScoreNormalizationIterator) Next() *RankedNode {
	option := it.source.Next()
	if option == nil {
		return nil
	}
	var sum float64
	n := 0
	for i := 0; i < numScores; i++ {
		if option.has[i] {
			sum += option.scores[i]
			n++
		}
	}
	if n > 0 {
		option.FinalScore = sum / float64(n)
	}
	return option
}

// Reset implements RankIterator.
func (it *ScoreNormalizationIterator) Reset() { it.source.Reset() }

// maxSkip is how many negatively scored options the limit iterator sets
// aside hoping for better ones.
const maxSkip = 3

// LimitIterator stops a pass after limit options, bounding the work per
// placement in large clusters. Options with a negative score (a node
// that already runs the group, one the allocation failed on, one that
// needs evictions) are set aside, up to maxSkip, and only returned if
// the pass runs out of others.
type LimitIterator struct {
	source  RankIterator
	limit   int
	seen    int
	skipped []*RankedNode
}

// Next implements RankIterator.
func (it *LimitIterator) Next() *RankedNode {
	for it.seen < it.limit {
		option := it.source.Next()
		if option == nil {
			break
		}
		if option.FinalScore < 0 && len(it.skipped) < maxSkip {
			it.skipped = append(it.skipped, option)
			continue
		}
		it.seen++
		return option
	}
	if it.seen < it.limit && len(it.skipped) > 0 {
		option := it.skipped[0]
		it.skipped = it.skipped[1:]
		it.seen++
		return option
	}
	return nil
}

// Reset implements RankIterator.
func (it *LimitIterator) Reset() {
	it.source.Reset()
	it.seen = 0
	it.skipped = it.skipped[:0]
}

// SetLimit changes the limit.
func (it *LimitIterator) SetLimit(limit int) { it.limit = limit }

// maxScoreMeta is how many top nodes a placement's metrics keep: three
// explain a choice, and every one costs ~500 bytes on each allocation in
// the Raft log and in every server's memory.
const maxScoreMeta = 3

// MaxScoreIterator drains its source and returns the best option. Ties go
// to the option seen first, which the shuffled source made random. The
// best maxScoreMeta options are recorded in the placement metrics.
type MaxScoreIterator struct {
	ctx    *EvalContext
	source RankIterator
	max    *RankedNode
	done   bool
	// top holds the best options so far, best first.
	top []*RankedNode
}

// Next returns the best option once, then nil until Reset. The option
// is the caller's: it stays valid after later passes.
func (it *MaxScoreIterator) Next() *RankedNode {
	if it.done {
		return nil
	}
	it.done = true
	it.top = it.top[:0]
	for option := it.source.Next(); option != nil; option = it.source.Next() {
		if it.max == nil || option.FinalScore > it.max.FinalScore {
			it.max = option
		}
		it.keepTop(option)
	}
	for _, o := range it.top {
		it.ctx.metrics.ScoreMetaData = append(it.ctx.metrics.ScoreMetaData, &structs.NodeScoreMeta{
			NodeID: o.Node.ID, Scores: o.Scores(), NormScore: o.FinalScore,
		})
	}
	if it.max == nil {
		return nil
	}
	best := *it.max
	return &best
}

// keepTop inserts option into the top list (stable: an option ties
// below the ones seen before it).
func (it *MaxScoreIterator) keepTop(option *RankedNode) {
	n := len(it.top)
	if n == maxScoreMeta && option.FinalScore <= it.top[n-1].FinalScore {
		return
	}
	i := n
	for i > 0 && option.FinalScore > it.top[i-1].FinalScore {
		i--
	}
	if n < maxScoreMeta {
		it.top = append(it.top, nil)
	} else {
		n--
	}
	copy(it.top[i+1:n+1], it.top[i:n])
	it.top[i] = option
}

// Reset implements RankIterator.
func (it *MaxScoreIterator) Reset() {
	it.source.Reset()
	it.max = nil
	it.done = false
}
