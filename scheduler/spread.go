package scheduler

import (
	"math"
	"sort"

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

	// exact is the spread the stack places exactly (the heaviest): each
	// placement goes to the value with the largest deficit (see
	// exactOrder); nil without spreads.
	exact *spreadState
	// values are exact's values among the candidate nodes, in the order
	// of their first node in the shuffled list (the tie-break), with
	// each value's node positions.
	values  []string
	cursors map[string]*nodeCursor
	// exhausted are values on which a placement found no feasible node
	// this evaluation: capacity only shrinks while it places, so they
	// are not tried again.
	exhausted map[string]bool
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
		if it.exact == nil || sp.Weight > it.exact.spread.Weight {
			it.exact = st
		}
	}
	it.values, it.cursors, it.exhausted = nil, nil, nil
	if it.exact == nil {
		return
	}
	it.cursors = make(map[string]*nodeCursor)
	it.exhausted = make(map[string]bool)
	for pos, n := range nodes {
		v, ok := resolveTarget(it.exact.spread.Attribute, n)
		if !ok {
			continue
		}
		c := it.cursors[v]
		if c == nil {
			c = &nodeCursor{}
			it.cursors[v] = c
			it.values = append(it.values, v)
		}
		c.pos = append(c.pos, pos)
	}
}

// exactOrder returns the exact spread's values to try for the next
// placement, best first: for an even spread, by fewest allocations; with
// targets, by largest deficit against the value's share (values without
// a target share what the targets leave, evenly). Values already at or
// over their share, values that should get nothing and exhausted values
// are left out; an empty order means the stack places as it would
// without the spread's restriction.
func (it *SpreadIterator) exactOrder() []string {
	st := it.exact
	if st == nil {
		return nil
	}
	type cand struct {
		v       string
		deficit float64
		rank    int
	}
	var implicitValues int
	if !st.even && st.implicitShare {
		for _, v := range it.values {
			if _, targeted := st.desired[v]; !targeted {
				implicitValues++
			}
		}
	}
	cands := make([]cand, 0, len(it.values))
	for rank, v := range it.values {
		if it.exhausted[v] {
			continue
		}
		current := float64(st.counts[v])
		var deficit float64
		switch {
		case st.even:
			deficit = -current
		default:
			if d, targeted := st.desired[v]; targeted {
				deficit = d - current
			} else if st.implicitShare && implicitValues > 0 {
				deficit = st.implicitDesired/float64(implicitValues) - current
			} else {
				continue
			}
			if deficit <= 0 {
				continue
			}
		}
		cands = append(cands, cand{v, deficit, rank})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].deficit != cands[j].deficit {
			return cands[i].deficit > cands[j].deficit
		}
		return cands[i].rank < cands[j].rank
	})
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.v
	}
	return out
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
