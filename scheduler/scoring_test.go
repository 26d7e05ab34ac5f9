package scheduler

import (
	"math"
	"testing"

	"github.com/droverhq/drover/structs"
)

// loadNode puts an allocation of another job using cpu/mem on node, so
// that bin-packing prefers it.
func (h *Harness) loadNode(node *structs.Node, cpu, mem int64) {
	h.t.Helper()
	other := smallJob(1)
	other.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: int(cpu), MemoryMB: int(mem)}
	h.Process(register(h.t, h, other))
	for _, a := range h.live(other.ID) {
		if a.NodeID != node.ID {
			h.t.Fatalf("load for %s landed on %s", node.Name, a.NodeName)
		}
	}
}

// scoreOf returns the named score component of node in a placement's
// metrics, and whether it was recorded.
func scoreOf(m *structs.AllocMetric, nodeID, component string) (float64, bool) {
	if m == nil {
		return 0, false
	}
	for _, s := range m.ScoreMetaData {
		if s.NodeID == nodeID {
			v, ok := s.Scores.Get(component)
			return v, ok
		}
	}
	return 0, false
}

func nodeValue(h *Harness, nodeID, key string) string {
	n, err := h.State.NodeByID(nil, nodeID)
	if err != nil || n == nil {
		h.t.Fatalf("node %s: %v", nodeID, err)
	}
	return n.Meta[key]
}

func TestAffinity_MovesPlacements(t *testing.T) {
	// Two nodes; "busy" is fuller, so bin-packing alone picks it. The
	// affinity decides which node wins.
	setup := func(t *testing.T) (*Harness, *structs.Node, *structs.Node) {
		h := NewHarness(t)
		busy := namedNode("busy", withMeta("rack", "r1"))
		idle := namedNode("idle", withMeta("rack", "r2"))
		h.addNodes(busy)
		h.loadNode(busy, 2000, 4096)
		h.addNodes(idle)
		return h, busy, idle
	}
	cases := []struct {
		name       string
		affinities []*structs.Affinity
		wantBusy   bool
		// score is the node-affinity component of the chosen node; nil
		// means none is recorded. A node meeting no affinity of a job
		// that has some scores 0, and the 0 counts in the mean.
		score *float64
	}{
		{name: "no affinity: bin-packing picks the fuller node", wantBusy: true},
		{name: "positive weight pulls to the idle node",
			affinities: []*structs.Affinity{{LTarget: "${meta.rack}", Operand: "=", RTarget: "r2", Weight: 100}}, score: ptr(1.0)},
		{name: "negative weight pushes off the busy node",
			affinities: []*structs.Affinity{{LTarget: "${meta.rack}", Operand: "=", RTarget: "r1", Weight: -100}}, score: ptr(0.0)},
		{name: "weights are normalized by their total",
			affinities: []*structs.Affinity{
				{LTarget: "${meta.rack}", Operand: "=", RTarget: "r2", Weight: 60},
				{LTarget: "${meta.rack}", Operand: "!=", RTarget: "r9", Weight: 20},
				{LTarget: "${meta.rack}", Operand: "=", RTarget: "r1", Weight: -20},
			}, score: ptr(0.8)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, busy, idle := setup(t)
			job := smallJob(1)
			job.TaskGroups[0].Affinities = tc.affinities
			h.Process(register(t, h, job))
			p := Placed(h.LastPlan())
			if len(p) != 1 {
				t.Fatalf("placed %d", len(p))
			}
			want := idle
			if tc.wantBusy {
				want = busy
			}
			if p[0].NodeID != want.ID {
				t.Fatalf("placed on %s, want %s", p[0].NodeName, want.Name)
			}
			got, ok := scoreOf(p[0].Metrics, p[0].NodeID, "node-affinity")
			switch {
			case tc.score == nil && ok:
				t.Fatalf("node-affinity %f recorded for the chosen node, want none", got)
			case tc.score != nil && (!ok || math.Abs(got-*tc.score) > 1e-9):
				t.Fatalf("node-affinity of the chosen node %f (recorded %t), want %f", got, ok, *tc.score)
			}
			if len(tc.affinities) == 1 && tc.affinities[0].Weight < 0 {
				// The avoided node is ranked too, with the penalty.
				if s, ok := scoreOf(p[0].Metrics, busy.ID, "node-affinity"); !ok || s != -1 {
					t.Fatalf("busy node's node-affinity %f (recorded %t), want -1", s, ok)
				}
			}
		})
	}
}

func TestAffinity_JobAndTaskLevels(t *testing.T) {
	for _, level := range []string{"job", "task"} {
		t.Run(level, func(t *testing.T) {
			h := NewHarness(t)
			busy := namedNode("busy", withMeta("rack", "r1"))
			idle := namedNode("idle", withMeta("rack", "r2"))
			h.addNodes(busy)
			h.loadNode(busy, 2000, 4096)
			h.addNodes(idle)
			job := smallJob(1)
			aff := &structs.Affinity{LTarget: "${meta.rack}", Operand: "=", RTarget: "r2", Weight: 50}
			if level == "job" {
				job.Affinities = []*structs.Affinity{aff}
			} else {
				job.TaskGroups[0].Tasks[0].Affinities = []*structs.Affinity{aff}
			}
			h.Process(register(t, h, job))
			if p := Placed(h.LastPlan()); len(p) != 1 || p[0].NodeID != idle.ID {
				t.Fatalf("placement %+v, want the idle node", p)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// rackCluster returns nodes over racks: counts[i] nodes in rack i+1.
func rackCluster(counts ...int) []*structs.Node {
	var out []*structs.Node
	for i, c := range counts {
		rack := "r" + itoa(i+1)
		for j := 0; j < c; j++ {
			out = append(out, namedNode(rack+"-"+itoa(j), withMeta("rack", rack)))
		}
	}
	return out
}

func allocsPerRack(h *Harness, allocs []*structs.Allocation) map[string]int {
	out := map[string]int{}
	for _, a := range allocs {
		out[nodeValue(h, a.NodeID, "rack")]++
	}
	return out
}

func TestSpread_Even(t *testing.T) {
	h := NewHarness(t)
	// Rack r1 has three nodes, r2 two, r3 one: without the spread,
	// per-node anti-affinity would put about half the allocations in r1.
	job := smallJob(6)
	job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100}}
	h.Process(register(t, h, job, rackCluster(3, 2, 1)...))
	placed := Placed(h.LastPlan())
	got := allocsPerRack(h, placed)
	if got["r1"] != 2 || got["r2"] != 2 || got["r3"] != 2 {
		t.Fatalf("allocs per rack %v, want 2 each", got)
	}
	for _, a := range placed {
		if _, ok := scoreOf(a.Metrics, a.NodeID, "spread"); !ok {
			t.Fatalf("%s: no spread score recorded for its node: %+v", a.Name, a.Metrics.ScoreMetaData)
		}
	}
	// The first placement sees every rack empty: a full boost.
	for _, a := range placed {
		if a.Name == job.ID+".web[0]" {
			if s, _ := scoreOf(a.Metrics, a.NodeID, "spread"); s != 1 {
				t.Fatalf("first placement's spread score %f, want 1", s)
			}
		}
	}
}

func TestSpread_Targets(t *testing.T) {
	cases := []struct {
		name    string
		targets []*structs.SpreadTarget
		count   int
		want    map[string]int
	}{
		{name: "70/30", count: 10, targets: []*structs.SpreadTarget{{Value: "r1", Percent: 70}, {Value: "r2", Percent: 30}},
			want: map[string]int{"r1": 7, "r2": 3}},
		{name: "rest shared by untargeted values", count: 8,
			targets: []*structs.SpreadTarget{{Value: "r1", Percent: 50}},
			want:    map[string]int{"r1": 4, "rest": 4}},
		{name: "zero percent keeps a value empty", count: 4,
			targets: []*structs.SpreadTarget{{Value: "r1", Percent: 50}, {Value: "r2", Percent: 50}, {Value: "r3", Percent: 0}},
			want:    map[string]int{"r1": 2, "r2": 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHarness(t)
			job := smallJob(tc.count)
			job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100, SpreadTarget: tc.targets}}
			h.Process(register(t, h, job, rackCluster(3, 3, 3)...))
			got := allocsPerRack(h, Placed(h.LastPlan()))
			if _, pooled := tc.want["rest"]; pooled {
				// Untargeted values share their part as a pool.
				pooled := map[string]int{}
				for rack, n := range got {
					if rack == "r1" {
						pooled[rack] += n
					} else {
						pooled["rest"] += n
					}
				}
				got = pooled
			}
			for rack := range got {
				if got[rack] != tc.want[rack] {
					t.Fatalf("allocs per rack %v, want %v", got, tc.want)
				}
			}
			for rack, n := range tc.want {
				if got[rack] != n {
					t.Fatalf("allocs per rack %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestSpread_CountsExistingAllocations(t *testing.T) {
	h := NewHarness(t)
	job := smallJob(2)
	job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100}}
	h.Process(register(t, h, job, rackCluster(2, 2)...))
	if got := allocsPerRack(h, h.live(job.ID)); got["r1"] != 1 || got["r2"] != 1 {
		t.Fatalf("initial %v", got)
	}
	bigger := job.Copy()
	bigger.TaskGroups[0].Count = 4
	h.Process(register(t, h, bigger))
	if got := allocsPerRack(h, h.live(job.ID)); got["r1"] != 2 || got["r2"] != 2 {
		t.Fatalf("after scaling to 4: %v, want 2 per rack", got)
	}
}

func TestSpread_NodeWithoutAttributeAvoided(t *testing.T) {
	h := NewHarness(t)
	bare := namedNode("bare")
	h.addNodes(bare)
	h.loadNode(bare, 2000, 4096) // bin-packing alone would pick it
	racked := namedNode("racked", withMeta("rack", "r1"))
	h.addNodes(racked)
	job := smallJob(1)
	job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100}}
	h.Process(register(t, h, job))
	p := Placed(h.LastPlan())
	if len(p) != 1 || p[0].NodeID != racked.ID {
		t.Fatalf("placed %+v, want the node with the attribute", p)
	}
	// The exact spread ranks only the nodes of the value it fills, so
	// the bare node is not even scored; if it were, it would be -1.
	if s, ok := scoreOf(p[0].Metrics, bare.ID, "spread"); ok && s != -1 {
		t.Fatalf("bare node spread score %f, want -1", s)
	}
}

func TestJobAntiAffinity_ScoreRecorded(t *testing.T) {
	h := NewHarness(t)
	node := namedNode("only")
	job := smallJob(2)
	h.Process(register(t, h, job, node))
	var second *structs.Allocation
	for _, a := range Placed(h.LastPlan()) {
		if a.Name == job.ID+".web[1]" {
			second = a
		}
	}
	// Placing the second instance next to the first: -(1+1)/2.
	if s, ok := scoreOf(second.Metrics, node.ID, "job-anti-affinity"); !ok || s != -1 {
		t.Fatalf("job-anti-affinity %f (recorded %t), want -1", s, ok)
	}
	if _, ok := scoreOf(second.Metrics, node.ID, "binpack"); !ok {
		t.Fatalf("no binpack score recorded")
	}
}

func TestSpread_ValueWithItsShareLosesToBinPacking(t *testing.T) {
	// busy is much fuller than the rest, so bin-packing pulls every
	// placement to it; once its rack has its share (2 of 6), the spread
	// must keep further allocations out of that rack.
	h := NewHarness(t)
	busy := namedNode("busy", withMeta("rack", "r1"))
	h.addNodes(busy)
	h.loadNode(busy, 2500, 5000)
	h.addNodes(namedNode("r1b", withMeta("rack", "r1")), namedNode("r2a", withMeta("rack", "r2")),
		namedNode("r2b", withMeta("rack", "r2")), namedNode("r3a", withMeta("rack", "r3")))
	job := smallJob(6)
	job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64}
	job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100}}
	h.Process(register(t, h, job))
	if got := allocsPerRack(h, Placed(h.LastPlan())); got["r1"] != 2 || got["r2"] != 2 || got["r3"] != 2 {
		t.Fatalf("allocs per rack %v, want 2 each", got)
	}
}
