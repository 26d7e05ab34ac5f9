package server

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// quotaFixture is a server with a big node and namespace team-a held to
// 1,000 MB, and a job in team-a.
func quotaFixture(t *testing.T) (*Server, *structs.Node, *structs.Job) {
	t.Helper()
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	node := mock.Node()
	node.NodeResources.Memory.MemoryMB = 100_000
	node.NodeResources.Cpu.CpuShares = 100_000
	registerNode(t, s, node)
	upsertNamespace(t, s, &structs.Namespace{Name: "team-a"})
	upsertQuota(t, s, &structs.QuotaSpec{Name: "team-a", Namespace: "team-a", Limits: structs.QuotaLimits{MemoryMB: 1000}})
	job := mock.Job()
	job.Namespace = "team-a"
	job.TaskGroups[0].Count = 0
	registerJob(t, s, job)
	stored, _ := s.State().JobByID(nil, "team-a", job.ID)
	return s, node, stored
}

// quotaPlan is a plan placing one allocation of memMB for job on node.
func quotaPlan(job *structs.Job, node *structs.Node, memMB int64) *structs.Plan {
	a := mock.Alloc(job, node, 0)
	a.Namespace = job.Namespace
	a.ClientStatus = structs.AllocClientStatusPending
	a.AllocatedResources.Tasks["server"].Memory.MemoryMB = memMB
	a.AllocatedResources.Shared.Ports = nil
	plan := &structs.Plan{EvalID: structs.GenerateUUID(), Job: job}
	plan.AppendAlloc(a)
	return plan
}

// TestPlanView_QuotaCountsEarlierPlansOfTheBatch: two plans that each
// fit the quota but not together, checked in one batch: the first is
// accepted, the second is refused naming the quota, and a plan that
// frees room is accepted again.
func TestPlanView_QuotaCountsEarlierPlansOfTheBatch(t *testing.T) {
	s, node, job := quotaFixture(t)
	view := s.newPlanView()

	first := quotaPlan(job, node, 600)
	res, reasons, err := evaluatePlan(view, first)
	if err != nil || len(res.RejectedNodes) != 0 || len(res.NodeAllocation[node.ID]) != 1 {
		t.Fatalf("first plan: %+v %v %v", res, reasons, err)
	}
	view.apply(&structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: res.NodeAllocation[node.ID]})

	second := quotaPlan(job, node, 600)
	res, reasons, err = evaluatePlan(view, second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RejectedNodes) != 1 || len(res.NodeAllocation) != 0 || res.RefreshIndex == 0 {
		t.Fatalf("second plan: %+v, want its node rejected with a refresh index", res)
	}
	if want := `quota "team-a" exhausted: memory 600/1000 MB`; reasons[node.ID] != want {
		t.Fatalf("reason %q, want %q", reasons[node.ID], want)
	}

	// The same placement with the first one stopped fits.
	third := quotaPlan(job, node, 600)
	stop := first.NodeAllocation[node.ID][0].Copy()
	third.AppendStoppedAlloc(stop, "replaced", "")
	res, _, err = evaluatePlan(view, third)
	if err != nil || len(res.RejectedNodes) != 0 || len(res.NodeAllocation[node.ID]) != 1 {
		t.Fatalf("a plan that stops as much as it places: %+v, %v", res, err)
	}
	// Other namespaces are not held to team-a's quota.
	def := mock.Job()
	def.TaskGroups[0].Count = 0
	registerJob(t, s, def)
	stored, _ := s.State().JobByID(nil, "", def.ID)
	res, _, err = evaluatePlan(view, quotaPlan(stored, node, 5000))
	if err != nil || len(res.RejectedNodes) != 0 {
		t.Fatalf("default namespace plan: %+v, %v", res, err)
	}
}

// TestServer_ConcurrentPlansNeverExceedQuota submits plans that each
// fit the quota alone but not together, all at once, through the plan
// queue: whatever the batching, the committed usage of the namespace
// stays within its quota.
func TestServer_ConcurrentPlansNeverExceedQuota(t *testing.T) {
	s, node, _ := quotaFixture(t)
	const plans = 6
	// What team-a held when each plan was answered (before its
	// submitter saw the answer).
	var (
		usedMu      sync.Mutex
		usedAtReply = map[*PlanFuture]int64{}
	)
	s.planAnswered = func(f *PlanFuture, _ *structs.PlanResult) {
		used, _ := s.State().NamespaceUsage(nil, "team-a")
		usedMu.Lock()
		usedAtReply[f] = used.MemoryMB
		usedMu.Unlock()
	}
	futures := make([]*PlanFuture, 0, plans)
	for i := 0; i < plans; i++ {
		// One job per plan: the broker hands out one evaluation per job.
		job := mock.Job()
		job.Namespace = "team-a"
		job.TaskGroups[0].Count = 0
		registerJob(t, s, job)
		job, _ = s.State().JobByID(nil, "team-a", job.ID)
		eval := mock.Eval(job)
		eval.Namespace = job.Namespace
		s.evalBroker.Enqueue(eval)
		got, token, err := s.evalBroker.Dequeue([]string{job.Type}, 10*time.Second, nil)
		if err != nil || got == nil {
			t.Fatalf("dequeue: %v", err)
		}
		plan := quotaPlan(job, node, 400) // two fit in 1,000 MB, three do not
		plan.EvalID, plan.EvalToken = got.ID, token
		f, err := s.planQueue.Enqueue(plan)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	// A plan refused for the quota is answered only once the plans that
	// took the quota are in the state, so its worker re-plans on a state
	// that explains the refusal (and does not use up its attempts
	// meeting it again).
	committed := 0
	for _, f := range futures {
		res, err := f.Wait(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.NodeAllocation[node.ID]) > 0 {
			committed++
		} else if len(res.RejectedNodes) != 1 || res.RefreshIndex == 0 {
			t.Fatalf("plan neither committed nor rejected with a refresh index: %+v", res)
		} else if used := func() int64 { usedMu.Lock(); defer usedMu.Unlock(); return usedAtReply[f] }(); used != 800 {
			t.Fatalf("a refused plan was answered while team-a held %d MB: before the plans that refused it committed", used)
		}
	}
	if committed != 2 {
		t.Fatalf("%d plans committed, want the 2 that fit the quota together", committed)
	}
	used, _ := s.State().NamespaceUsage(nil, "team-a")
	if used.MemoryMB != 800 || used.Allocations != 2 {
		t.Fatalf("team-a uses %+v, want 800 MB in 2 allocations", used)
	}
	var usage structs.QuotaUsageResponse
	if err := s.RPC("Quota.Usage", &structs.QuotaSpecificRequest{Name: "team-a"}, &usage); err != nil || !strings.Contains(usage.Usage.Namespace, "team-a") || usage.Usage.Used.MemoryMB != 800 {
		t.Fatalf("Quota.Usage: %+v, %v", usage.Usage, err)
	}
}
