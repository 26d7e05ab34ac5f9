package scheduler

import (
	"math"

	"github.com/droverhq/drover/structs"
)

// SpreadIterator scores nodes by how much placing there moves each of
// the job's and group's spreads towards its targets. For a spread with
// targets, a value's desired count is its percentage of the group's
// count (values without a target share what the targets leave); without
// targets, every value seen among the candidate nodes should get an
// equal share. A node's boost is (desired - current) / desired, in
// (0, 1], for its value; a node without the attribute, with a value
// that should get nothing, or with a value that already has its share,
// scores -1. Spreads are combined by weight.
//
// Current counts come from the context's tracker, updated after each
// placement, so scoring a node costs O(spreads) whatever the count.
type SpreadIterator struct {
	ctx     *EvalContext
	source  RankIterator
	job     *structs.Job
	tg      *structs.TaskGroup
	spreads []*spreadState
	weights float64
}

type spreadState struct {
	spread *structs.Spread
	counts map[string]int
	// desired count per explicit target value.
	desired map[string]float64
	// implicitDesired is shared by the values without a target;
	// implicitShare is true when such values may get anything.
	implicitDesired float64
	implicitShare   bool
	// even is set for a spread without targets: desired per value.
	even bool
	// perValue is the even share.
	perValue float64
}

// SetTaskGroup prepares the group's spreads. nodes are the candidate
// nodes, whose attribute values an even spread divides the count over.
func (it *SpreadIterator) SetTaskGroup(job *structs.Job, tg *structs.TaskGroup, nodes []*structs.Node) {
	it.job, it.tg = job, tg
	it.spreads = it.spreads[:0]
	it.weights = 0
	all := append(append([]*structs.Spread(nil), job.Spreads...), tg.Spreads...)
	count := float64(tg.Count)
	for _, sp := range all {
		st := &spreadState{spread: sp, counts: it.ctx.valueCounts(job, tg.Name, sp.Attribute)}
		if len(sp.SpreadTarget) == 0 {
			values := make(map[string]bool)
			for _, n := range nodes {
				if v, ok := resolveTarget(sp.Attribute, n); ok {
					values[v] = true
				}
			}
			st.even = true
			if len(values) > 0 {
				st.perValue = count / float64(len(values))
			}
		} else {
			st.desired = make(map[string]float64, len(sp.SpreadTarget))
			sum := 0
			for _, t := range sp.SpreadTarget {
				st.desired[t.Value] = float64(t.Percent) / 100 * count
				sum += int(t.Percent)
			}
			if sum < 100 {
				st.implicitShare = true
				st.implicitDesired = float64(100-sum) / 100 * count
			}
		}
		it.spreads = append(it.spreads, st)
		it.weights += float64(sp.Weight)
	}
}

// Next implements RankIterator.
func (it *SpreadIterator) Next() *RankedNode {
	option := it.source.Next()
	if option == nil || len(it.spreads) == 0 || it.weights == 0 {
		return option
	}
	var total float64
	for _, st := range it.spreads {
		total += st.boost(option.Node) * float64(st.spread.Weight)
	}
	option.setScore(scoreSpread, total/it.weights)
	return option
}

func (st *spreadState) boost(node *structs.Node) float64 {
	v, ok := resolveTarget(st.spread.Attribute, node)
	if !ok {
		return -1
	}
	var desired, current float64
	switch {
	case st.even:
		desired, current = st.perValue, float64(st.counts[v])
	default:
		if d, targeted := st.desired[v]; targeted {
			desired, current = d, float64(st.counts[v])
		} else {
			if !st.implicitShare {
				return -1
			}
			desired = st.implicitDesired
			for value, n := range st.counts {
				if _, targeted := st.desired[value]; !targeted {
					current += float64(n)
				}
			}
		}
	}
	if desired <= 0 || current >= desired {
		// The value has its share: another allocation there would go
		// over it, which is as bad as a value that should get none.
		return -1
	}
	return math.Min(1, (desired-current)/desired)
}

// Reset implements RankIterator.
func (it *SpreadIterator) Reset() { it.source.Reset() }
