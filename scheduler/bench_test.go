package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// dryPlanner accepts every plan without committing it: the benchmark
// measures one evaluation's scheduling from a state snapshot, not Raft.
type dryPlanner struct {
	placed int
}

func (p *dryPlanner) SubmitPlan(plan *structs.Plan) (*structs.PlanResult, State, error) {
	for _, allocs := range plan.NodeAllocation {
		p.placed += len(allocs)
	}
	return &structs.PlanResult{
		NodeUpdate: plan.NodeUpdate, NodeAllocation: plan.NodeAllocation, NodePreemptions: plan.NodePreemptions,
		Deployment: plan.Deployment, DeploymentUpdates: plan.DeploymentUpdates, AllocIndex: 1,
	}, nil, nil
}
func (p *dryPlanner) UpdateEval(*structs.Evaluation) error  { return nil }
func (p *dryPlanner) CreateEval(*structs.Evaluation) error  { return nil }
func (p *dryPlanner) ReblockEval(*structs.Evaluation) error { return nil }

// benchCluster is a state store with n nodes of 14,000 MHz and 32 GB
// spread round-robin over racks r0..r(racks-1) (meta.rack).
func benchCluster(b testing.TB, n, racks int) *state.StateStore {
	b.Helper()
	st := state.NewStateStore()
	for i := 0; i < n; i++ {
		node := mock.Node()
		node.Name = fmt.Sprintf("node-%05d", i)
		node.NodeResources.Cpu.CpuShares = 14000
		node.NodeResources.Memory.MemoryMB = 32 * 1024
		node.Meta = map[string]string{"rack": fmt.Sprintf("r%d", i%racks)}
		if err := st.UpsertNode(uint64(10+i), node, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// benchJob is a service job of count allocations of 6,000 MHz and
// 6,000 MB, constrained to the even-numbered half of the racks, with an
// even spread over the racks when spread is set.
func benchJob(count, racks int, spread bool) *structs.Job {
	job := mock.Job()
	job.ID = "bench"
	job.Name = "bench"
	eligible := make([]string, 0, racks/2+1)
	for r := 0; r < racks; r += 2 {
		eligible = append(eligible, fmt.Sprintf("r%d", r))
	}
	job.Constraints = []*structs.Constraint{{
		LTarget: "${meta.rack}", RTarget: strings.Join(eligible, ","), Operand: structs.ConstraintSetContainsAny,
	}}
	tg := job.TaskGroups[0]
	tg.Count = count
	tg.Networks = nil
	tg.Tasks[0].Resources = &structs.Resources{CPU: 6000, MemoryMB: 6000}
	if spread {
		tg.Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100}}
	}
	job.Canonicalize()
	return job
}

// BenchmarkServiceScheduler runs one full service-job evaluation (a new
// job: reconcile, feasibility, ranking, placement of every allocation,
// plan submission) from a state snapshot, without Raft and without
// committing the plan. Nodes: N in {500, 1000, 5000, 10000}, 14,000 MHz
// and 32 GB each, over R in {25, 50, 75} racks; the job's constraint
// leaves half of the racks eligible; it asks for C in {50, 300, 600, 900,
// 1200} allocations of 6,000 MHz and 6,000 MB, with and without a spread
// over the racks.
//
//	go test ./scheduler -run '^$' -bench BenchmarkServiceScheduler
//
// narrows with e.g. -bench 'BenchmarkServiceScheduler/nodes=5000/racks=25/.*/allocs=1200'.
func BenchmarkServiceScheduler(b *testing.B) {
	for _, n := range []int{500, 1000, 5000, 10000} {
		for _, racks := range []int{25, 50, 75} {
			b.Run(fmt.Sprintf("nodes=%d/racks=%d", n, racks), func(b *testing.B) {
				var st *state.StateStore // built on first use: -bench filters skip it
				for _, spread := range []bool{false, true} {
					for _, count := range []int{50, 300, 600, 900, 1200} {
						name := fmt.Sprintf("spread=%t/allocs=%d", spread, count)
						b.Run(name, func(b *testing.B) {
							if st == nil {
								st = benchCluster(b, n, racks)
							}
							benchEval(b, st, count, racks, spread)
						})
					}
				}
			})
		}
	}
}

func benchEval(b *testing.B, base *state.StateStore, count, racks int, spread bool) {
	// Each case registers its own job on a copy-on-write snapshot of the
	// shared cluster, so cases do not see each other's jobs.
	snap := base.Snapshot()
	job := benchJob(count, racks, spread)
	if err := snap.UpsertJob(1_000_000, job, 0, nil); err != nil {
		b.Fatal(err)
	}
	job, err := snap.JobByID(nil, "", job.ID)
	if err != nil {
		b.Fatal(err)
	}
	eval := mock.Eval(job)
	b.ReportAllocs()
	b.ResetTimer()
	var placed int
	for i := 0; i < b.N; i++ {
		planner := &dryPlanner{}
		s := NewServiceScheduler(Config{}, snap.Snapshot(), planner)
		if err := s.Process(eval.Copy()); err != nil {
			b.Fatal(err)
		}
		placed = planner.placed
	}
	b.StopTimer()
	b.ReportMetric(float64(placed), "placed/op")
	want := count
	if capacity := eligibleCapacity(base, racks); capacity < want {
		want = capacity
	}
	if placed != want {
		b.Fatalf("placed %d allocations, want %d", placed, want)
	}
}

// eligibleCapacity is how many 6,000 MHz allocations fit the nodes of the
// even-numbered racks (two per node).
func eligibleCapacity(st *state.StateStore, racks int) int {
	nodes, _ := st.Nodes(nil)
	n := 0
	for _, node := range nodes {
		var r int
		fmt.Sscanf(node.Meta["rack"], "r%d", &r)
		if r%2 == 0 {
			n += 2
		}
	}
	return n
}
