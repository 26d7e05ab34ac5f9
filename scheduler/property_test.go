package scheduler

import (
	"fmt"
	"math"
	"math/big"
	"math/rand"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// TestProperty_PlansNeverOvercommitAndSystemJobsCoverEligibleNodes
// drives the scheduler through random clusters and random histories
// (nodes going down, coming back, turning ineligible, draining,
// joining; jobs registered, updated and stopped; allocations failing
// and finishing; time passing) and checks after every evaluation,
// through the state store, that:
//
//   - no node holds more than its capacity or a port twice;
//   - the evaluated job, if a system job, has exactly one live allocation per group on each
//     ready, eligible node it targets and whose constraints and driver
//     it meets (none only where it does not fit and cannot preempt),
//     and none on nodes it may not use, except one it already had on a
//     node that has since turned ineligible (left alone until drained);
//   - service and batch groups never run more live allocations than
//     their count, never two with one name, only on nodes that meet
//     their constraints, and never two on one node under distinct_hosts.
//
// The random source is seeded per case, and evaluation IDs (which seed
// the scheduler) derive from it, so a failing case replays.
func TestProperty_PlansNeverOvercommitAndSystemJobsCoverEligibleNodes(t *testing.T) {
	cases := 200
	if testing.Short() {
		cases = 40
	}
	for seed := int64(1); seed <= int64(cases); seed++ {
		p := newPropCase(t, seed)
		p.run()
		if t.Failed() {
			t.Fatalf("seed %d failed; history:\n%s", seed, p.history())
		}
	}
}

// TestProperty_HugeResourcesNeverOvercommit runs the same random
// histories with some nodes and tasks near math.MaxInt64 MHz or MiB
// (as a hostile job or a broken client would report them; jobs are put
// in the state store directly, past any admission check) and checks
// with exact arithmetic that no node ever holds more than its capacity:
// sums that overflow int64 must count as "does not fit", never wrap
// around into "fits".
func TestProperty_HugeResourcesNeverOvercommit(t *testing.T) {
	cases := 100
	if testing.Short() {
		cases = 20
	}
	for seed := int64(1); seed <= int64(cases); seed++ {
		p := newPropCase(t, seed)
		p.huge = true
		p.run()
		if t.Failed() {
			t.Fatalf("seed %d failed; history:\n%s", seed, p.history())
		}
	}
}

// hugeValues are resource amounts whose sums overflow int64: two of
// MaxInt64/2+1 already do, and MaxInt64 with anything.
var hugeValues = []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64/2 + 1, math.MaxInt64 / 3, 1 << 62}

type propCase struct {
	t    *testing.T
	seed int64
	rng  *rand.Rand
	h    *Harness
	// huge gives some nodes and tasks resources near math.MaxInt64.
	huge bool

	jobs   map[string]*structs.Job // registered definitions by ID
	jobIDs []string
	nodes  int
	evals  int
	// ineligibleSince is the index at which a node last stopped being
	// a valid target for new allocations (ineligible, draining, or
	// down); allocations it keeps must be older.
	ineligibleSince map[string]uint64
	// handled are created evaluations already processed.
	handled map[string]bool
	log     []string
}

func newPropCase(t *testing.T, seed int64) *propCase {
	return &propCase{
		t: t, seed: seed, rng: rand.New(rand.NewSource(seed)), h: NewHarness(t),
		jobs: map[string]*structs.Job{}, ineligibleSince: map[string]uint64{}, handled: map[string]bool{},
	}
}

func (p *propCase) logf(format string, args ...any) {
	p.log = append(p.log, fmt.Sprintf(format, args...))
}

func (p *propCase) history() string {
	out := ""
	for _, l := range p.log {
		out += "  " + l + "\n"
	}
	return out
}

func (p *propCase) pick(options ...string) string { return options[p.rng.Intn(len(options))] }

func (p *propCase) run() {
	for i, n := 0, 3+p.rng.Intn(8); i < n; i++ {
		p.addNode()
	}
	p.h.setPreemption(p.rng.Intn(2) == 0, p.rng.Intn(3) == 0, p.rng.Intn(4) != 0)
	for i, n := 0, 2+p.rng.Intn(5); i < n; i++ {
		p.registerJob(p.randomJob(i))
	}
	for step := 0; step < 12 && !p.t.Failed(); step++ {
		p.randomEvent()
		p.evaluateAll()
	}
}

// addNode registers a random node.
func (p *propCase) addNode() {
	p.nodes++
	name := fmt.Sprintf("n%02d", p.nodes)
	n := namedNode(name)
	n.ID = fmt.Sprintf("%08d-%04d-node-%s", p.seed, p.nodes, name)
	n.NodeResources.Cpu.CpuShares = int64(1000 + 500*p.rng.Intn(7))
	n.NodeResources.Memory.MemoryMB = int64(1024 * (1 + p.rng.Intn(8)))
	if p.huge && p.rng.Intn(3) == 0 {
		n.NodeResources.Cpu.CpuShares = hugeValues[p.rng.Intn(len(hugeValues))]
		n.NodeResources.Memory.MemoryMB = hugeValues[p.rng.Intn(len(hugeValues))]
	}
	if p.rng.Intn(4) == 0 {
		n.ReservedResources = &structs.NodeReservedResources{
			Cpu: structs.NodeCpuResources{CpuShares: 200}, Memory: structs.NodeMemoryResources{MemoryMB: 256},
			ReservedPorts: []int{8080},
		}
	}
	// A narrow dynamic port range, so that ports run out too.
	n.NodeResources.MinDynamicPort, n.NodeResources.MaxDynamicPort = 20000, 20000+p.rng.Intn(6)
	n.Datacenter = p.pick("dc1", "dc1", "dc1", "dc2")
	if p.rng.Intn(8) == 0 {
		n.NodePool = "gpu"
	}
	n.NodeClass = p.pick("", "compute", "storage")
	n.Meta = map[string]string{"rack": p.pick("r1", "r2", "r3")}
	if p.rng.Intn(3) == 0 {
		n.Meta["ssd"] = "true"
	}
	n.Attributes["kernel.version"] = p.pick("4.19.0", "5.10.0", "5.15.0", "6.1.0")
	switch p.rng.Intn(10) {
	case 0:
		n.Status = structs.NodeStatusDown
	case 1:
		n.Status = structs.NodeStatusInit
	case 2:
		n.SchedulingEligibility = structs.NodeSchedulingIneligible
	case 3:
		n.SchedulingEligibility = structs.NodeSchedulingIneligible
		n.DrainStrategy = &structs.DrainStrategy{}
	case 4:
		n.Drivers["containerd"].Healthy = false
	}
	index := p.h.NextIndex()
	if err := p.h.State.UpsertNode(index, n, p.h.Now.UnixNano(), nil); err != nil {
		p.t.Fatal(err)
	}
	if !n.Ready() {
		p.ineligibleSince[n.ID] = index
	}
	p.logf("node %s: %s/%s %s pool=%q cpu=%d mem=%d rack=%s kernel=%s driver=%t", name, n.Status, n.SchedulingEligibility,
		n.Datacenter, n.NodePool, n.NodeResources.Cpu.CpuShares, n.NodeResources.Memory.MemoryMB, n.Meta["rack"],
		n.Attributes["kernel.version"], n.Drivers["containerd"].Healthy)
}

// randomJob returns a random job of any type.
func (p *propCase) randomJob(i int) *structs.Job {
	typ := p.pick(structs.JobTypeService, structs.JobTypeService, structs.JobTypeBatch, structs.JobTypeSystem)
	job := &structs.Job{
		ID:          fmt.Sprintf("%s-%d", typ, i),
		Type:        typ,
		Priority:    10 * (1 + p.rng.Intn(10)),
		Datacenters: []string{"dc1"},
	}
	if p.rng.Intn(3) == 0 {
		job.Datacenters = []string{"dc1", "dc2"}
	}
	groups := 1 + p.rng.Intn(2)
	for g := 0; g < groups; g++ {
		tg := &structs.TaskGroup{
			Name:  "g" + strconv.Itoa(g),
			Count: 1 + p.rng.Intn(6),
			Tasks: []*structs.Task{{
				Name: "server", Driver: "containerd", Config: &structs.TaskConfig{Image: "busybox:1"},
				Env:       map[string]string{"V": "0"},
				Resources: &structs.Resources{CPU: 100 * (1 + p.rng.Intn(15)), MemoryMB: 64 * (1 + p.rng.Intn(24))},
			}},
			ReschedulePolicy: &structs.ReschedulePolicy{Attempts: p.rng.Intn(3), Interval: time.Hour, Delay: time.Duration(p.rng.Intn(3)) * 30 * time.Second,
				DelayFunction: p.pick("constant", "exponential", "fibonacci"), MaxDelay: 5 * time.Minute},
		}
		if p.huge && p.rng.Intn(3) == 0 {
			r := tg.Tasks[0].Resources
			r.CPU = int(hugeValues[p.rng.Intn(len(hugeValues))])
			if p.rng.Intn(2) == 0 {
				r.MemoryMB = int(hugeValues[p.rng.Intn(len(hugeValues))])
			}
			if p.rng.Intn(2) == 0 {
				// A second huge task: the group's own sum overflows.
				second := tg.Tasks[0].Copy()
				second.Name = "sidecar"
				tg.Tasks = append(tg.Tasks, second)
			}
		}
		switch p.rng.Intn(4) {
		case 0:
			tg.Networks = []*structs.NetworkResource{{DynamicPorts: []structs.Port{{Label: "http"}}}}
		case 1:
			if typ != structs.JobTypeSystem {
				// A static port: at most one per node, and never 8080
				// where the node reserves it.
				tg.Networks = []*structs.NetworkResource{{ReservedPorts: []structs.Port{{Label: "http", Value: p.pick2(8080, 9090)}}}}
			}
		}
		switch p.rng.Intn(6) {
		case 0:
			tg.Constraints = append(tg.Constraints, &structs.Constraint{LTarget: "${meta.rack}", Operand: "!=", RTarget: p.pick("r1", "r2", "r3")})
		case 1:
			tg.Constraints = append(tg.Constraints, &structs.Constraint{LTarget: "${attr.kernel.version}", Operand: "version", RTarget: ">= 5.10"})
		case 2:
			if typ != structs.JobTypeSystem {
				tg.Constraints = append(tg.Constraints, &structs.Constraint{Operand: structs.ConstraintDistinctHosts})
			}
		case 3:
			if typ != structs.JobTypeSystem {
				tg.Constraints = append(tg.Constraints, &structs.Constraint{LTarget: "${meta.rack}", Operand: structs.ConstraintDistinctProperty, RTarget: strconv.Itoa(1 + p.rng.Intn(3))})
			}
		}
		if p.rng.Intn(3) == 0 {
			tg.Affinities = []*structs.Affinity{{LTarget: "${meta.ssd}", Operand: "=", RTarget: "true", Weight: int8(p.pick2(-50, 80))}}
		}
		if p.rng.Intn(3) == 0 {
			tg.Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 50}}
		}
		if typ == structs.JobTypeService && p.rng.Intn(3) == 0 {
			tg.Migrate = &structs.MigrateStrategy{MaxParallel: 1 + p.rng.Intn(2)}
		}
		job.TaskGroups = append(job.TaskGroups, tg)
	}
	if p.rng.Intn(5) == 0 {
		job.Constraints = append(job.Constraints, &structs.Constraint{LTarget: "${node.class}", Operand: "!=", RTarget: "storage"})
	}
	job.Canonicalize()
	return job
}

func (p *propCase) pick2(a, b int) int {
	if p.rng.Intn(2) == 0 {
		return a
	}
	return b
}

func (p *propCase) registerJob(job *structs.Job) {
	if _, known := p.jobs[job.ID]; !known {
		p.jobIDs = append(p.jobIDs, job.ID)
	}
	p.jobs[job.ID] = job
	e := p.newEval(job, structs.EvalTriggerJobRegister)
	if err := p.h.State.UpsertJob(p.h.NextIndex(), job, p.h.Now.UnixNano(), e); err != nil {
		p.t.Fatal(err)
	}
	var groups []string
	for _, tg := range job.TaskGroups {
		groups = append(groups, fmt.Sprintf("%s count=%d cpu=%d mem=%d constraints=%v ports=%d", tg.Name, tg.Count,
			tg.Tasks[0].Resources.CPU, tg.Tasks[0].Resources.MemoryMB, tg.Constraints, len(tg.Networks)))
	}
	p.logf("register %s priority=%d dcs=%v stop=%t %v", job.ID, job.Priority, job.Datacenters, job.Stop, groups)
	p.process(e)
}

func (p *propCase) newEval(job *structs.Job, trigger string) *structs.Evaluation {
	p.evals++
	return &structs.Evaluation{
		ID:       fmt.Sprintf("prop-%d-eval-%d", p.seed, p.evals),
		Priority: job.Priority, Type: job.Type, TriggeredBy: trigger, JobID: job.ID, Status: structs.EvalStatusPending,
	}
}

// process runs an evaluation and checks the invariants: capacity on
// every node, and the evaluated job's placement (other jobs may lag
// until their own evaluation runs).
func (p *propCase) process(e *structs.Evaluation) {
	p.h.Process(e)
	p.check(fmt.Sprintf("after eval %s (%s) of %s", e.ID, e.TriggeredBy, e.JobID), e.JobID)
}

// evaluateAll evaluates every job, then the evaluations the scheduler
// created that are due, until none is left.
func (p *propCase) evaluateAll() {
	for _, id := range p.jobIDs {
		job := p.stored(id)
		e := p.newEval(job, structs.EvalTriggerNodeUpdate)
		if err := p.h.State.UpsertEvals(p.h.NextIndex(), []*structs.Evaluation{e}); err != nil {
			p.t.Fatal(err)
		}
		p.process(e)
	}
	for round := 0; round < 10; round++ {
		ran := false
		for _, c := range append([]*structs.Evaluation(nil), p.h.CreateEvals...) {
			if p.handled[c.ID] || (c.Status != structs.EvalStatusBlocked && c.WaitUntil > p.h.Now.UnixNano()) {
				continue
			}
			p.handled[c.ID] = true
			ran = true
			// A copy with a reproducible ID stands in for it.
			done := c.Copy()
			done.Status = structs.EvalStatusComplete
			e := c.Copy()
			p.evals++
			e.ID = fmt.Sprintf("prop-%d-created-%d", p.seed, p.evals)
			if err := p.h.State.UpsertEvals(p.h.NextIndex(), []*structs.Evaluation{done, e}); err != nil {
				p.t.Fatal(err)
			}
			p.process(e)
		}
		if !ran {
			return
		}
	}
}

func (p *propCase) stored(id string) *structs.Job {
	j, err := p.h.State.JobByID(nil, "", id)
	if err != nil || j == nil {
		p.t.Fatalf("job %s: %v", id, err)
	}
	return j
}

// randomNode returns a random node from the store.
func (p *propCase) randomNode() *structs.Node {
	nodes, _ := p.h.State.Nodes(nil)
	return nodes[p.rng.Intn(len(nodes))]
}

// randomLive returns a random live allocation, or nil.
func (p *propCase) randomLive() *structs.Allocation {
	all, _ := p.h.State.Allocs(nil)
	var live []*structs.Allocation
	for _, a := range all {
		if !a.TerminalStatus() {
			live = append(live, a)
		}
	}
	if len(live) == 0 {
		return nil
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Name+live[i].NodeID < live[j].Name+live[j].NodeID })
	return live[p.rng.Intn(len(live))]
}

func (p *propCase) randomEvent() {
	h := p.h
	switch p.rng.Intn(11) {
	case 0:
		n := p.randomNode()
		index := h.NextIndex()
		if err := h.State.UpdateNodeStatus(index, n.ID, structs.NodeStatusDown, h.Now.UnixNano(), nil); err != nil {
			p.t.Fatal(err)
		}
		if _, ok := p.ineligibleSince[n.ID]; !ok || n.Ready() {
			p.ineligibleSince[n.ID] = index
		}
		p.logf("node %s down", n.Name)
	case 1:
		n := p.randomNode()
		if err := h.State.UpdateNodeStatus(h.NextIndex(), n.ID, structs.NodeStatusReady, h.Now.UnixNano(), nil); err != nil {
			p.t.Fatal(err)
		}
		p.logf("node %s ready", n.Name)
	case 2:
		n := p.randomNode()
		if n.DrainStrategy != nil {
			return
		}
		eligibility := structs.NodeSchedulingIneligible
		if n.SchedulingEligibility == eligibility {
			eligibility = structs.NodeSchedulingEligible
		}
		index := h.NextIndex()
		if err := h.State.UpdateNodeEligibility(index, n.ID, eligibility, nil); err != nil {
			p.t.Fatal(err)
		}
		if eligibility == structs.NodeSchedulingIneligible && n.Ready() {
			p.ineligibleSince[n.ID] = index
		}
		p.logf("node %s %s", n.Name, eligibility)
	case 3:
		// Drain: the node turns ineligible and some of its allocations
		// are marked to migrate, as the drainer would.
		n := p.randomNode()
		index := h.NextIndex()
		if err := h.State.UpdateNodeDrain(index, n.ID, &structs.DrainStrategy{StartedAt: h.Now.UnixNano()}, false, h.Now.UnixNano()); err != nil {
			p.t.Fatal(err)
		}
		if n.Ready() {
			p.ineligibleSince[n.ID] = index
		}
		all, _ := h.State.AllocsByNode(nil, n.ID)
		sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
		var mark []*structs.Allocation
		for _, a := range all {
			if !a.TerminalStatus() && p.rng.Intn(2) == 0 {
				mark = append(mark, a)
			}
		}
		if len(mark) > 0 {
			h.markMigrate(mark...)
		}
		p.logf("node %s draining, %d allocations marked", n.Name, len(mark))
	case 4:
		p.addNode()
		p.logf("node joined")
	case 5, 6:
		// A job update: count (in place), env or resources
		// (destructive), datacenters, or stop.
		id := p.jobIDs[p.rng.Intn(len(p.jobIDs))]
		job := p.jobs[id].Copy()
		tg := job.TaskGroups[p.rng.Intn(len(job.TaskGroups))]
		switch p.rng.Intn(5) {
		case 0:
			tg.Count = 1 + p.rng.Intn(7)
		case 1:
			tg.Tasks[0].Env["V"] = strconv.Itoa(p.rng.Intn(1000))
		case 2:
			if tg.Tasks[0].Resources.MemoryMB <= math.MaxInt-64 {
				tg.Tasks[0].Resources.MemoryMB += 64
			}
		case 3:
			job.Stop = !job.Stop
		case 4:
			if len(job.Datacenters) == 1 {
				job.Datacenters = []string{"dc1", "dc2"}
			} else {
				job.Datacenters = []string{p.pick("dc1", "dc2")}
			}
		}
		p.registerJob(job)
	case 7:
		if a := p.randomLive(); a != nil {
			h.setFailed(a)
			p.logf("%s on %s failed", a.Name, a.NodeName)
		}
	case 8:
		if a := p.randomLive(); a != nil {
			h.clientUpdate(func(a *structs.Allocation) { a.ClientStatus = structs.AllocClientStatusComplete }, a)
			p.logf("%s on %s complete", a.Name, a.NodeName)
		}
	case 9:
		if a := p.randomLive(); a != nil {
			h.setRunning(false, a)
		}
	case 10:
		h.Now = h.Now.Add(time.Duration(1+p.rng.Intn(3)) * time.Minute)
		p.logf("time %s", h.Now.Format(time.TimeOnly))
	}
}

// check verifies the invariants against the store.
func (p *propCase) check(when, jobID string) {
	t := p.t
	t.Helper()
	h := p.h
	nodes, _ := h.State.Nodes(nil)
	_, config, _ := h.State.SchedulerConfig()
	liveOn := map[string][]*structs.Allocation{}
	for _, n := range nodes {
		all, _ := h.State.AllocsByNode(nil, n.ID)
		for _, a := range all {
			if !a.TerminalStatus() {
				liveOn[n.ID] = append(liveOn[n.ID], a)
			}
		}
		if fit, dim, used := structs.AllocsFit(n, liveOn[n.ID]); !fit {
			t.Errorf("%s: node %s over-committed (%s): %+v used of %+v", when, n.Name, dim, used, n.CheckedCapacity())
		}
		p.checkExactCapacity(when, n, liveOn[n.ID])
	}
	m := newMatcher()
	for _, id := range []string{jobID} {
		job := p.stored(id)
		allocs, _ := h.State.AllocsByJob(nil, "", id)
		var live []*structs.Allocation
		for _, a := range allocs {
			if !a.TerminalStatus() {
				live = append(live, a)
			}
		}
		if job.Stopped() {
			if len(live) > 0 {
				t.Errorf("%s: stopped job %s has %d live allocations", when, id, len(live))
			}
			continue
		}
		for _, tg := range job.TaskGroups {
			cons := append(append([]*structs.Constraint(nil), job.Constraints...), tg.Constraints...)
			meets := func(n *structs.Node) bool {
				for _, c := range cons {
					if !m.meets(c.Operand, c.LTarget, c.RTarget, n) {
						return false
					}
				}
				return n.HasHealthyDriver("containerd")
			}
			perNode := map[string]int{}
			names := map[string]bool{}
			for _, a := range live {
				if a.TaskGroup != tg.Name {
					continue
				}
				perNode[a.NodeID]++
				if job.Type != structs.JobTypeSystem {
					if names[a.Name] {
						t.Errorf("%s: job %s has two live allocations named %s", when, id, a.Name)
					}
					names[a.Name] = true
				}
			}
			if job.Type != structs.JobTypeSystem {
				if n := len(names); n > tg.Count {
					t.Errorf("%s: group %s/%s runs %d live allocations, count %d", when, id, tg.Name, n, tg.Count)
				}
				for nodeID, n := range perNode {
					node, _ := h.State.NodeByID(nil, nodeID)
					if node != nil && !meets(node) {
						t.Errorf("%s: group %s/%s runs on %s, which fails its constraints", when, id, tg.Name, node.Name)
					}
					if n > 1 && hasDistinctHosts(tg) {
						t.Errorf("%s: group %s/%s runs %d allocations on %s despite distinct_hosts", when, id, tg.Name, n, nodeID)
					}
				}
				continue
			}
			for _, n := range nodes {
				count := perNode[n.ID]
				targeted := n.Ready() && inPool(job, n) && inDatacenters(job, n) && meets(n)
				switch {
				case count > 1:
					t.Errorf("%s: system group %s/%s has %d allocations on %s", when, id, tg.Name, count, n.Name)
				case targeted && count == 0 && p.couldPlace(job, tg, n, liveOn[n.ID], config):
					t.Errorf("%s: system group %s/%s has no allocation on eligible node %s, which has room", when, id, tg.Name, n.Name)
				case !targeted && count == 1:
					// Allowed only on a node that turned ineligible (or
					// draining) after the allocation was placed: the
					// scheduler leaves those alone until they are marked
					// to migrate, even if the job no longer targets
					// them (as Nomad does). A down node's allocation, or
					// one on a ready node the job does not target, must
					// go.
					var a *structs.Allocation
					for _, x := range live {
						if x.NodeID == n.ID && x.TaskGroup == tg.Name {
							a = x
						}
					}
					since, ok := p.ineligibleSince[n.ID]
					if n.Status != structs.NodeStatusReady || n.SchedulingEligibility != structs.NodeSchedulingIneligible ||
						!ok || a.CreateIndex >= since {
						t.Errorf("%s: system group %s/%s has an allocation on %s (%s/%s), which it may not use",
							when, id, tg.Name, n.Name, n.Status, n.SchedulingEligibility)
					}
				}
			}
		}
	}
}

// checkExactCapacity checks with big integers, independently of the
// scheduler's int64 arithmetic, that the live allocations on n hold at
// most its capacity, and that none holds a negative amount.
func (p *propCase) checkExactCapacity(when string, n *structs.Node, live []*structs.Allocation) {
	capCPU, capMem := new(big.Int), new(big.Int)
	if r := n.NodeResources; r != nil {
		capCPU.SetInt64(r.Cpu.CpuShares)
		capMem.SetInt64(r.Memory.MemoryMB)
	}
	if r := n.ReservedResources; r != nil {
		capCPU.Sub(capCPU, big.NewInt(r.Cpu.CpuShares))
		capMem.Sub(capMem, big.NewInt(r.Memory.MemoryMB))
	}
	usedCPU, usedMem := new(big.Int), new(big.Int)
	for _, a := range live {
		if a.AllocatedResources == nil {
			continue
		}
		for name, tr := range a.AllocatedResources.Tasks {
			if tr.Cpu.CpuShares < 0 || tr.Memory.MemoryMB < 0 {
				p.t.Errorf("%s: %s on %s holds negative resources for task %s: %+v", when, a.Name, n.Name, name, tr)
			}
			usedCPU.Add(usedCPU, big.NewInt(tr.Cpu.CpuShares))
			usedMem.Add(usedMem, big.NewInt(tr.Memory.MemoryMB))
		}
	}
	if usedCPU.Cmp(capCPU) > 0 || usedMem.Cmp(capMem) > 0 {
		p.t.Errorf("%s: node %s over capacity (exact): cpu %s of %s MHz, memory %s of %s MiB, %d allocations",
			when, n.Name, usedCPU, capCPU, usedMem, capMem, len(live))
	}
}

// couldPlace reports whether one allocation of tg fits on the node next
// to live, or would after evicting every allocation the job may preempt.
// Its sums are overflow-checked like the scheduler's: one that overflows
// cannot be placed.
func (p *propCase) couldPlace(job *structs.Job, tg *structs.TaskGroup, n *structs.Node, live []*structs.Allocation, config *structs.SchedulerConfiguration) bool {
	ask := structs.AskOf(tg)
	used := sumResources(live)
	if config.PreemptionEnabled(job.Type) {
		for _, a := range live {
			if a.Job != nil && a.JobID != job.ID && a.Job.Priority <= job.Priority-preemptionPriorityDelta {
				used.Subtract(a.Usage())
			}
		}
	}
	used.Add(ask)
	if ok, _ := n.CheckedCapacity().Superset(used); !ok {
		return false
	}
	// Dynamic ports: a free one in the node's range.
	if len(tg.Networks) > 0 {
		lo, hi := n.DynamicPortRange()
		taken := nodePorts(n, live)
		free := 0
		for port := lo; port <= hi; port++ {
			if _, ok := taken[port]; !ok {
				free++
			}
		}
		need := 0
		for _, nw := range tg.Networks {
			need += len(nw.DynamicPorts)
		}
		if free < need {
			return false
		}
	}
	return true
}

func hasDistinctHosts(tg *structs.TaskGroup) bool {
	for _, c := range tg.Constraints {
		if c.Operand == structs.ConstraintDistinctHosts && c.RTarget != "false" {
			return true
		}
	}
	return false
}
