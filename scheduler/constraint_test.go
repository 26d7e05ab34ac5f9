package scheduler

import (
	"testing"

	"github.com/droverhq/drover/structs"
)

// TestConstraint_Operators places a one-instance job with one constraint
// twice: next to a node that meets it (it must land there) and on only
// nodes that do not (it must fail, and the eval must name the
// constraint and count every node it filtered).
func TestConstraint_Operators(t *testing.T) {
	type nodeSpec func(*structs.Node)
	meta := func(k, v string) nodeSpec { return withMeta(k, v) }
	attr := func(k, v string) nodeSpec { return withAttr(k, v) }
	none := func(*structs.Node) {}
	cases := []struct {
		name    string
		con     structs.Constraint
		match   nodeSpec
		nomatch []nodeSpec
		// setup adjusts the job (datacenters, pool) for the targets.
		setup func(*structs.Job)
	}{
		{name: "equal attr", con: structs.Constraint{LTarget: "${attr.kernel.name}", Operand: "=", RTarget: "linux"},
			match: attr("kernel.name", "linux"), nomatch: []nodeSpec{attr("kernel.name", "windows"), func(n *structs.Node) { delete(n.Attributes, "kernel.name") }}},
		{name: "equal node.class", con: structs.Constraint{LTarget: "${node.class}", Operand: "=", RTarget: "gpu"},
			match: func(n *structs.Node) { n.NodeClass = "gpu" }, nomatch: []nodeSpec{func(n *structs.Node) { n.NodeClass = "cpu" }, none}},
		{name: "equal node.datacenter", con: structs.Constraint{LTarget: "${node.datacenter}", Operand: "=", RTarget: "dc2"},
			match: func(n *structs.Node) { n.Datacenter = "dc2" }, nomatch: []nodeSpec{none, func(n *structs.Node) { n.Datacenter = "dc3" }},
			setup: func(j *structs.Job) { j.Datacenters = []string{"dc1", "dc2", "dc3"} }},
		{name: "equal node.pool", con: structs.Constraint{LTarget: "${node.pool}", Operand: "=", RTarget: "default"},
			match: none, nomatch: []nodeSpec{func(n *structs.Node) { n.NodePool = "gpu" }},
			setup: func(j *structs.Job) { j.NodePool = "all" }},
		{name: "equal node.name", con: structs.Constraint{LTarget: "${node.unique.name}", Operand: "=", RTarget: "chosen"},
			match: func(n *structs.Node) { n.Name = "chosen" }, nomatch: []nodeSpec{none, none}},
		{name: "equal two node targets", con: structs.Constraint{LTarget: "${meta.zone}", Operand: "=", RTarget: "${meta.home_zone}"},
			match: withMeta("zone", "a", "home_zone", "a"), nomatch: []nodeSpec{withMeta("zone", "a", "home_zone", "b"), meta("zone", "a")}},
		{name: "not equal", con: structs.Constraint{LTarget: "${meta.env}", Operand: "!=", RTarget: "prod"},
			match: meta("env", "dev"), nomatch: []nodeSpec{meta("env", "prod"), meta("env", "prod")}},
		{name: "not equal matches a missing attribute", con: structs.Constraint{LTarget: "${meta.env}", Operand: "!=", RTarget: "prod"},
			match: none, nomatch: []nodeSpec{meta("env", "prod")}},
		{name: "less numeric", con: structs.Constraint{LTarget: "${attr.cpu.numcores}", Operand: "<", RTarget: "8"},
			match: attr("cpu.numcores", "4"), nomatch: []nodeSpec{attr("cpu.numcores", "8"), attr("cpu.numcores", "16"), none}},
		{name: "less equal numeric", con: structs.Constraint{LTarget: "${attr.cpu.numcores}", Operand: "<=", RTarget: "8"},
			match: attr("cpu.numcores", "8"), nomatch: []nodeSpec{attr("cpu.numcores", "9"), attr("cpu.numcores", "10")}},
		{name: "greater numeric", con: structs.Constraint{LTarget: "${meta.gen}", Operand: ">", RTarget: "2"},
			match: meta("gen", "10"), nomatch: []nodeSpec{meta("gen", "2"), meta("gen", "1.5")}},
		{name: "greater equal numeric", con: structs.Constraint{LTarget: "${meta.gen}", Operand: ">=", RTarget: "2"},
			match: meta("gen", "2"), nomatch: []nodeSpec{meta("gen", "1"), none}},
		{name: "greater lexical", con: structs.Constraint{LTarget: "${meta.zone}", Operand: ">", RTarget: "m"},
			match: meta("zone", "z1"), nomatch: []nodeSpec{meta("zone", "a9"), meta("zone", "m")}},
		{name: "regexp", con: structs.Constraint{LTarget: "${node.name}", Operand: "regexp", RTarget: "^web-[0-9]+$"},
			match: func(n *structs.Node) { n.Name = "web-12" }, nomatch: []nodeSpec{func(n *structs.Node) { n.Name = "db-1" }, func(n *structs.Node) { n.Name = "web-x" }}},
		{name: "set_contains", con: structs.Constraint{LTarget: "${meta.features}", Operand: "set_contains", RTarget: "ssd,gpu"},
			match: meta("features", "gpu, ssd,nvme"), nomatch: []nodeSpec{meta("features", "ssd"), none}},
		{name: "set_contains_any", con: structs.Constraint{LTarget: "${meta.features}", Operand: "set_contains_any", RTarget: "gpu,tpu"},
			match: meta("features", "cpu,tpu"), nomatch: []nodeSpec{meta("features", "cpu"), meta("features", ""), none}},
		{name: "version", con: structs.Constraint{LTarget: "${attr.kernel.version}", Operand: "version", RTarget: ">= 5.10, < 6"},
			match: attr("kernel.version", "5.15.0-1-amd64"), nomatch: []nodeSpec{attr("kernel.version", "4.19.0"), attr("kernel.version", "6.1"), none}},
		{name: "version pessimistic", con: structs.Constraint{LTarget: "${attr.driver.version}", Operand: "version", RTarget: "~> 1.6.0"},
			match: attr("driver.version", "1.6.9"), nomatch: []nodeSpec{attr("driver.version", "1.7.0"), attr("driver.version", "1.5.9")}},
		{name: "is_set", con: structs.Constraint{LTarget: "${meta.ssd}", Operand: "is_set"},
			match: meta("ssd", "true"), nomatch: []nodeSpec{none, meta("hdd", "true")}},
		{name: "is_not_set", con: structs.Constraint{LTarget: "${meta.tainted}", Operand: "is_not_set"},
			match: none, nomatch: []nodeSpec{meta("tainted", "yes"), meta("tainted", "")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			newJob := func() *structs.Job {
				job := smallJob(1)
				con := tc.con
				job.TaskGroups[0].Constraints = []*structs.Constraint{&con}
				if tc.setup != nil {
					tc.setup(job)
				}
				return job
			}

			// A matching node among non-matching ones gets the placement.
			h := NewHarness(t)
			match := namedNode("match", tc.match)
			h.addNodes(match)
			for _, spec := range tc.nomatch {
				h.addNodes(namedNode("other", spec))
			}
			job := newJob()
			h.Process(register(t, h, job))
			placed := Placed(h.LastPlan())
			if len(placed) != 1 || placed[0].NodeID != match.ID {
				t.Fatalf("want the alloc on the matching node, got %d placements %+v", len(placed), placed)
			}
			m := placed[0].Metrics
			if m.NodesFiltered != len(tc.nomatch) || m.ConstraintFiltered[tc.con.String()] != len(tc.nomatch) {
				t.Fatalf("placement metrics: filtered %d %v, want %d by %q", m.NodesFiltered, m.ConstraintFiltered, len(tc.nomatch), tc.con.String())
			}

			// Only non-matching nodes: the placement fails and says why.
			h = NewHarness(t)
			for _, spec := range tc.nomatch {
				h.addNodes(namedNode("other", spec))
			}
			job = newJob()
			h.Process(register(t, h, job))
			e := h.LastEval()
			f := e.FailedTGAllocs["web"]
			if f == nil {
				t.Fatalf("placement on non-matching nodes did not fail; plans %d", len(h.Plans))
			}
			if f.ConstraintFiltered[tc.con.String()] != len(tc.nomatch) || f.NodesFiltered != len(tc.nomatch) || f.NodesEvaluated != len(tc.nomatch) {
				t.Fatalf("failure metrics: evaluated %d filtered %d %v, want %d filtered by %q",
					f.NodesEvaluated, f.NodesFiltered, f.ConstraintFiltered, len(tc.nomatch), tc.con.String())
			}
			if e.QueuedAllocations["web"] != 1 || e.BlockedEval == "" {
				t.Fatalf("queued %v blocked %q", e.QueuedAllocations, e.BlockedEval)
			}
		})
	}
}

func TestConstraint_JobGroupAndTaskLevels(t *testing.T) {
	for _, level := range []string{"job", "group", "task"} {
		t.Run(level, func(t *testing.T) {
			h := NewHarness(t)
			r1 := namedNode("r1", withMeta("rack", "r1"))
			r2 := namedNode("r2", withMeta("rack", "r2"))
			job := smallJob(2)
			con := &structs.Constraint{LTarget: "${meta.rack}", Operand: "=", RTarget: "r2"}
			switch level {
			case "job":
				job.Constraints = append(job.Constraints, con)
			case "group":
				job.TaskGroups[0].Constraints = append(job.TaskGroups[0].Constraints, con)
			case "task":
				job.TaskGroups[0].Tasks[0].Constraints = append(job.TaskGroups[0].Tasks[0].Constraints, con)
			}
			h.Process(register(t, h, job, r1, r2))
			if got := placedOn(Placed(h.LastPlan())); got[r2.ID] != 2 || len(got) != 1 {
				t.Fatalf("placements per node %v, want both on r2", got)
			}
		})
	}
}

func TestConstraint_DistinctHosts(t *testing.T) {
	twoGroups := func() *structs.Job {
		job := smallJob(2)
		g2 := job.TaskGroups[0].Copy()
		g2.Name = "api"
		job.TaskGroups = append(job.TaskGroups, g2)
		return job
	}

	t.Run("job level: one alloc of the job per node", func(t *testing.T) {
		h := NewHarness(t)
		nodes := []*structs.Node{namedNode("n1"), namedNode("n2"), namedNode("n3")}
		job := twoGroups()
		job.Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts}}
		h.Process(register(t, h, job, nodes...))
		placed := Placed(h.LastPlan())
		if len(placed) != 3 {
			t.Fatalf("placed %d of 4 on 3 nodes, want 3", len(placed))
		}
		for node, n := range placedOn(placed) {
			if n != 1 {
				t.Fatalf("node %s runs %d allocs of a distinct_hosts job", node, n)
			}
		}
		e := h.LastEval()
		var f *structs.AllocMetric
		for _, m := range e.FailedTGAllocs {
			f = m
		}
		if len(e.FailedTGAllocs) != 1 || f.ConstraintFiltered["distinct_hosts"] != 3 || f.NodesFiltered != 3 {
			t.Fatalf("failure metrics %+v", e.FailedTGAllocs)
		}
	})

	t.Run("group level: groups may share a node", func(t *testing.T) {
		h := NewHarness(t)
		n1, n2 := namedNode("n1"), namedNode("n2")
		job := twoGroups()
		for _, tg := range job.TaskGroups {
			tg.Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts}}
		}
		h.Process(register(t, h, job, n1, n2))
		placed := Placed(h.LastPlan())
		if len(placed) != 4 {
			t.Fatalf("placed %d, want 4", len(placed))
		}
		seen := map[string]bool{}
		for _, a := range placed {
			key := a.TaskGroup + "@" + a.NodeID
			if seen[key] {
				t.Fatalf("two allocs of group %s on one node", a.TaskGroup)
			}
			seen[key] = true
		}
	})

	t.Run("value false disables it", func(t *testing.T) {
		h := NewHarness(t)
		job := smallJob(3)
		job.Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts, RTarget: "false"}}
		h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
		if n := len(Placed(h.LastPlan())); n != 3 || len(h.LastEval().FailedTGAllocs) != 0 {
			t.Fatalf("placed %d, failures %v; distinct_hosts=false must not restrict", n, h.LastEval().FailedTGAllocs)
		}
	})

	t.Run("value true and existing allocations", func(t *testing.T) {
		h := NewHarness(t)
		nodes := []*structs.Node{namedNode("n1"), namedNode("n2"), namedNode("n3")}
		job := smallJob(2)
		job.Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts, RTarget: "true"}}
		h.Process(register(t, h, job, nodes...))
		used := placedOn(h.live(job.ID))
		bigger := job.Copy()
		bigger.TaskGroups[0].Count = 3
		h.Process(register(t, h, bigger))
		p := newAllocs(h.LastPlan())
		if len(p) != 1 || used[p[0].NodeID] != 0 {
			t.Fatalf("scale-up placed %+v; it must go to the node without an alloc", p)
		}
	})
}

func TestConstraint_DistinctProperty(t *testing.T) {
	rackNodes := func() []*structs.Node {
		var out []*structs.Node
		for _, rack := range []string{"r1", "r1", "r1", "r2", "r2", "r2"} {
			out = append(out, namedNode(rack, withMeta("rack", rack)))
		}
		// A node without the property never qualifies.
		return append(out, namedNode("norack"))
	}

	t.Run("limit per value", func(t *testing.T) {
		h := NewHarness(t)
		nodes := rackNodes()
		job := smallJob(5)
		con := &structs.Constraint{LTarget: "${meta.rack}", Operand: structs.ConstraintDistinctProperty, RTarget: "2"}
		job.TaskGroups[0].Constraints = []*structs.Constraint{con}
		h.Process(register(t, h, job, nodes...))
		perRack := map[string]int{}
		for _, a := range Placed(h.LastPlan()) {
			n, _ := h.State.NodeByID(nil, a.NodeID)
			perRack[n.Meta["rack"]]++
		}
		if perRack["r1"] != 2 || perRack["r2"] != 2 || len(perRack) != 2 {
			t.Fatalf("allocs per rack %v, want 2 in r1 and 2 in r2", perRack)
		}
		f := h.LastEval().FailedTGAllocs["web"]
		if f == nil || f.ConstraintFiltered[con.String()] != 7 {
			t.Fatalf("fifth alloc: failure %+v, want all 7 nodes filtered by %q", f, con.String())
		}
	})

	t.Run("default limit is one and counts existing allocations", func(t *testing.T) {
		h := NewHarness(t)
		job := smallJob(1)
		job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: structs.ConstraintDistinctProperty}}
		h.Process(register(t, h, job, rackNodes()...))
		first := Placed(h.LastPlan())[0]
		firstNode, _ := h.State.NodeByID(nil, first.NodeID)
		bigger := job.Copy()
		bigger.TaskGroups[0].Count = 3
		h.Process(register(t, h, bigger))
		p := newAllocs(h.LastPlan())
		if len(p) != 1 {
			t.Fatalf("placed %d, want 1 (one per rack, two racks)", len(p))
		}
		n, _ := h.State.NodeByID(nil, p[0].NodeID)
		if n.Meta["rack"] == firstNode.Meta["rack"] || n.Meta["rack"] == "" {
			t.Fatalf("second alloc in rack %q, first in %q", n.Meta["rack"], firstNode.Meta["rack"])
		}
	})

	t.Run("job level counts every group", func(t *testing.T) {
		h := NewHarness(t)
		job := smallJob(1)
		g2 := job.TaskGroups[0].Copy()
		g2.Name = "api"
		job.TaskGroups = append(job.TaskGroups, g2)
		job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: structs.ConstraintDistinctProperty}}
		h.Process(register(t, h, job, rackNodes()...))
		racks := map[string]int{}
		for _, a := range Placed(h.LastPlan()) {
			n, _ := h.State.NodeByID(nil, a.NodeID)
			racks[n.Meta["rack"]]++
		}
		if racks["r1"] != 1 || racks["r2"] != 1 {
			t.Fatalf("allocs per rack %v, want one in each across the two groups", racks)
		}
	})

	t.Run("system job", func(t *testing.T) {
		h := NewHarness(t)
		job := sysJob()
		job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: structs.ConstraintDistinctProperty}}
		h.Process(register(t, h, job, rackNodes()...))
		racks := map[string]int{}
		for _, a := range h.live(job.ID) {
			n, _ := h.State.NodeByID(nil, a.NodeID)
			racks[n.Meta["rack"]]++
		}
		if racks["r1"] != 1 || racks["r2"] != 1 || len(racks) != 2 {
			t.Fatalf("system allocs per rack %v, want exactly one per rack", racks)
		}
		// Nodes the constraint rules out are not placement failures.
		if e := h.LastEval(); len(e.FailedTGAllocs) != 0 || e.BlockedEval != "" {
			t.Fatalf("system eval failures %v blocked %q", e.FailedTGAllocs, e.BlockedEval)
		}

		// A destructive update replaces each of them on its node: the
		// allocation being replaced no longer counts for its rack.
		before := placedOn(h.live(job.ID))
		v2 := job.Copy()
		v2.TaskGroups[0].Tasks[0].Env = map[string]string{"V": "2"}
		h.Process(register(t, h, v2))
		after := h.live(job.ID)
		if len(after) != 2 {
			t.Fatalf("after the update %d live allocs, want 2", len(after))
		}
		for _, a := range after {
			if a.JobVersion != 1 || before[a.NodeID] != 1 {
				t.Fatalf("%s v%d on %s; want version 1 on the nodes that ran version 0", a.Name, a.JobVersion, a.NodeName)
			}
		}
	})
}
