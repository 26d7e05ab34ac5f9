package scheduler

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// placedPerValue runs one evaluation of job on st and counts its placed
// allocations per value of attribute.
func placedPerValue(t *testing.T, st *state.StateStore, job *structs.Job, attribute string) map[string]int {
	t.Helper()
	snap := st.Snapshot()
	if err := snap.UpsertJob(1_000_000, job, 0, nil); err != nil {
		t.Fatal(err)
	}
	stored, _ := snap.JobByID(nil, job.Namespace, job.ID)
	planner := &recordingPlanner{}
	s := NewServiceScheduler(Config{}, snap.Snapshot(), planner)
	if err := s.Process(mock.Eval(stored)); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for nodeID, allocs := range planner.placed {
		node, _ := snap.NodeByID(nil, nodeID)
		v, ok := resolveTarget(attribute, node)
		if !ok {
			v = "<none>"
		}
		counts[v] += allocs
	}
	return counts
}

type recordingPlanner struct{ placed map[string]int }

func (p *recordingPlanner) SubmitPlan(plan *structs.Plan) (*structs.PlanResult, State, error) {
	if p.placed == nil {
		p.placed = map[string]int{}
	}
	for node, allocs := range plan.NodeAllocation {
		p.placed[node] += len(allocs)
	}
	return &structs.PlanResult{NodeUpdate: plan.NodeUpdate, NodeAllocation: plan.NodeAllocation, NodePreemptions: plan.NodePreemptions,
		Deployment: plan.Deployment, DeploymentUpdates: plan.DeploymentUpdates, AllocIndex: 1}, nil, nil
}
func (p *recordingPlanner) UpdateEval(*structs.Evaluation) error  { return nil }
func (p *recordingPlanner) CreateEval(*structs.Evaluation) error  { return nil }
func (p *recordingPlanner) ReblockEval(*structs.Evaluation) error { return nil }

func spreadOf(counts map[string]int) (lo, hi int, line string) {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lo = -1
	var parts []string
	for _, k := range keys {
		c := counts[k]
		parts = append(parts, fmt.Sprintf("%s=%d", k, c))
		if lo < 0 || c < lo {
			lo = c
		}
		if c > hi {
			hi = c
		}
	}
	return lo, hi, strings.Join(parts, " ")
}

// TestSpread_BenchScenarioIsExact is the scheduler benchmark's scenario
// (5,000 nodes over 25 racks, a job constrained to the 13 even racks,
// spread over meta.rack): at counts 300, 600 and 1200 every eligible
// rack gets its share, largest minus smallest at most 1.
func TestSpread_BenchScenarioIsExact(t *testing.T) {
	st := benchCluster(t, 5000, 25)
	for _, count := range []int{300, 600, 1200} {
		counts := placedPerValue(t, st, benchJob(count, 25, true), "${meta.rack}")
		lo, hi, line := spreadOf(counts)
		t.Logf("count %d: %d racks, %d..%d per rack: %s", count, len(counts), lo, hi, line)
		if len(counts) != 13 || hi-lo > 1 {
			t.Errorf("count %d: %d racks, largest minus smallest %d (want 13 racks, at most 1)", count, len(counts), hi-lo)
		}
	}
}

// TestSpread_PropertyEvenAndTargets: on random clusters (racks of random
// sizes, some racks too small for the count, some excluded by a
// constraint), an even spread leaves the racks that still have room
// within 1 of each other, and a full rack at most 1 above them; with
// targets (and room everywhere), each value is within 1 of its share.
func TestSpread_PropertyEvenAndTargets(t *testing.T) {
	for seed := int64(1); seed <= 60; seed++ {
		rng := rand.New(rand.NewSource(seed))
		racks := 2 + rng.Intn(8)
		st := state.NewStateStore()
		perNodeSlots := 1 + rng.Intn(3)
		capacity := map[string]int{}
		idx := uint64(10)
		excluded := ""
		if rng.Intn(2) == 0 {
			excluded = fmt.Sprintf("r%d", rng.Intn(racks))
		}
		for r := 0; r < racks; r++ {
			nodes := 1 + rng.Intn(12)
			rack := fmt.Sprintf("r%d", r)
			for i := 0; i < nodes; i++ {
				n := mock.Node()
				n.NodeResources.Cpu.CpuShares = int64(1000 * perNodeSlots)
				n.NodeResources.Memory.MemoryMB = int64(1000 * perNodeSlots)
				n.Meta = map[string]string{"rack": rack}
				idx++
				if err := st.UpsertNode(idx, n, 0, nil); err != nil {
					t.Fatal(err)
				}
			}
			if rack != excluded {
				capacity[rack] = nodes * perNodeSlots
			}
		}
		total := 0
		for _, c := range capacity {
			total += c
		}
		count := 1 + rng.Intn(total+5)
		job := mock.Job()
		job.ID, job.Name = fmt.Sprintf("p%d", seed), fmt.Sprintf("p%d", seed)
		tg := job.TaskGroups[0]
		tg.Count = count
		tg.Networks = nil
		tg.Tasks[0].Resources = &structs.Resources{CPU: 900, MemoryMB: 900}
		tg.Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100}}
		if excluded != "" {
			job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", RTarget: excluded, Operand: "!="}}
		}
		job.Canonicalize()
		counts := placedPerValue(t, st, job, "${meta.rack}")
		_, _, line := spreadOf(counts)
		// Racks with room left must be within 1 of each other; a full
		// rack may be below them, never more than 1 above (it may have
		// filled with the last placement).
		lo, hi := -1, 0
		for rack, c := range capacity {
			got := counts[rack]
			if got > c {
				t.Fatalf("seed %d: rack %s has %d over its capacity %d", seed, rack, got, c)
			}
			if got < c {
				if lo < 0 || got < lo {
					lo = got
				}
				if got > hi {
					hi = got
				}
			}
		}
		if lo >= 0 && hi-lo > 1 {
			t.Fatalf("seed %d (count %d, capacity %v): racks with room differ by %d: %s", seed, count, capacity, hi-lo, line)
		}
		for rack, c := range capacity {
			if counts[rack] == c && lo >= 0 && c > hi+1 {
				t.Fatalf("seed %d (count %d, capacity %v, slots/node %d): full rack %s holds %d, above the racks with room (%d): %s", seed, count, capacity, perNodeSlots, rack, c, hi, line)
			}
		}
		if counts[excluded] != 0 && excluded != "" {
			t.Fatalf("seed %d: excluded rack %s got %d", seed, excluded, counts[excluded])
		}

		// Targets, with room everywhere.
		tst := state.NewStateStore()
		for r := 0; r < 4; r++ {
			for i := 0; i < 10; i++ {
				n := mock.Node()
				n.NodeResources.Cpu.CpuShares, n.NodeResources.Memory.MemoryMB = 100000, 100000
				n.Meta = map[string]string{"rack": fmt.Sprintf("r%d", r)}
				idx++
				if err := tst.UpsertNode(idx, n, 0, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		a := rng.Intn(60)
		b := rng.Intn(100 - a)
		targets := []*structs.SpreadTarget{{Value: "r0", Percent: uint8(a)}, {Value: "r1", Percent: uint8(b)}}
		if rng.Intn(2) == 0 {
			targets = append(targets, &structs.SpreadTarget{Value: "r2", Percent: uint8(100 - a - b)})
		}
		tjob := mock.Job()
		tjob.ID, tjob.Name = fmt.Sprintf("t%d", seed), fmt.Sprintf("t%d", seed)
		tcount := 10 + rng.Intn(300)
		ttg := tjob.TaskGroups[0]
		ttg.Count = tcount
		ttg.Networks = nil
		ttg.Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 100}
		ttg.Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100, SpreadTarget: targets}}
		tjob.Canonicalize()
		tcounts := placedPerValue(t, tst, tjob, "${meta.rack}")
		sum := 0
		shares := map[string]float64{}
		for _, tt := range targets {
			shares[tt.Value] = float64(tt.Percent) / 100 * float64(tcount)
			sum += int(tt.Percent)
		}
		var others []string
		for r := 0; r < 4; r++ {
			v := fmt.Sprintf("r%d", r)
			if _, ok := shares[v]; !ok {
				others = append(others, v)
			}
		}
		for _, v := range others {
			shares[v] = float64(100-sum) / 100 * float64(tcount) / float64(len(others))
		}
		_, _, tline := spreadOf(tcounts)
		for v, share := range shares {
			if d := float64(tcounts[v]) - share; d > 1 || d < -1 {
				t.Fatalf("seed %d: targets %v count %d: %s gets %d, share %.1f: %s", seed, targetsString(targets), tcount, v, tcounts[v], share, tline)
			}
		}
	}
}

func targetsString(ts []*structs.SpreadTarget) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s:%d%%", t.Value, t.Percent))
	}
	return strings.Join(parts, ",")
}
