package scheduler

import (
	"sort"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// namedNode returns a mock node (4000 MHz, 8192 MB, dc1, containerd)
// called name, changed by each of opts.
func namedNode(name string, opts ...func(*structs.Node)) *structs.Node {
	n := mock.Node()
	n.Name = name
	for _, o := range opts {
		o(n)
	}
	return n
}

// withMeta sets node meta key=value.
func withMeta(kv ...string) func(*structs.Node) {
	return func(n *structs.Node) {
		if n.Meta == nil {
			n.Meta = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Meta[kv[i]] = kv[i+1]
		}
	}
}

// withAttr sets node attribute key=value.
func withAttr(kv ...string) func(*structs.Node) {
	return func(n *structs.Node) {
		for i := 0; i+1 < len(kv); i += 2 {
			n.Attributes[kv[i]] = kv[i+1]
		}
	}
}

// withResources sets the node's CPU (MHz) and memory (MB).
func withResources(cpu, mem int64) func(*structs.Node) {
	return func(n *structs.Node) {
		n.NodeResources.Cpu.CpuShares = cpu
		n.NodeResources.Memory.MemoryMB = mem
	}
}

// addNodes registers nodes.
func (h *Harness) addNodes(nodes ...*structs.Node) {
	h.t.Helper()
	for _, n := range nodes {
		if err := h.State.UpsertNode(h.NextIndex(), n, h.Now.UnixNano(), nil); err != nil {
			h.t.Fatal(err)
		}
	}
}

// live returns the job's allocations that are not terminal, by name.
func (h *Harness) live(jobID string) []*structs.Allocation {
	h.t.Helper()
	all, err := h.State.AllocsByJob(nil, "", jobID)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*structs.Allocation
	for _, a := range all {
		if !a.TerminalStatus() {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].NodeName < out[j].NodeName
	})
	return out
}

// alloc returns the stored allocation, failing if it is missing.
func (h *Harness) alloc(id string) *structs.Allocation {
	h.t.Helper()
	a, err := h.State.AllocByID(nil, id)
	if err != nil || a == nil {
		h.t.Fatalf("allocation %s: %v (missing: %t)", id, err, a == nil)
	}
	return a
}

// clientUpdate applies a client status update to stored allocations,
// as the node's client would report it.
func (h *Harness) clientUpdate(change func(*structs.Allocation), allocs ...*structs.Allocation) {
	h.t.Helper()
	var updates []*structs.Allocation
	for _, a := range allocs {
		u := h.alloc(a.ID).Copy()
		change(u)
		updates = append(updates, u)
	}
	if err := h.State.UpdateAllocsFromClient(h.NextIndex(), updates, h.Now.UnixNano(), nil); err != nil {
		h.t.Fatal(err)
	}
}

// setRunning marks allocations running, and healthy in their deployment
// when healthy is set.
func (h *Harness) setRunning(healthy bool, allocs ...*structs.Allocation) {
	h.t.Helper()
	h.clientUpdate(func(a *structs.Allocation) {
		a.ClientStatus = structs.AllocClientStatusRunning
		if healthy && a.DeploymentID != "" {
			ds := a.DeploymentStatus.Copy()
			if ds == nil {
				ds = &structs.AllocDeploymentStatus{}
			}
			ok := true
			ds.Healthy = &ok
			ds.Timestamp = h.Now.UnixNano()
			a.DeploymentStatus = ds
		}
	}, allocs...)
}

// setFailed marks allocations failed with their task finishing at the
// harness clock.
func (h *Harness) setFailed(allocs ...*structs.Allocation) {
	h.t.Helper()
	h.clientUpdate(func(a *structs.Allocation) {
		a.ClientStatus = structs.AllocClientStatusFailed
		a.TaskStates = map[string]*structs.TaskState{"server": {State: structs.TaskStateDead, Failed: true, FinishedAt: h.Now}}
	}, allocs...)
}

// setPreemption stores a scheduler configuration.
func (h *Harness) setPreemption(service, batch, system bool) {
	h.t.Helper()
	c := &structs.SchedulerConfiguration{PreemptionConfig: structs.PreemptionConfig{
		ServiceSchedulerEnabled: service, BatchSchedulerEnabled: batch, SystemSchedulerEnabled: system,
	}}
	if err := h.State.SetSchedulerConfig(h.NextIndex(), c); err != nil {
		h.t.Fatal(err)
	}
}

// markMigrate sets DesiredTransition.Migrate on allocations, as the
// leader's drainer does.
func (h *Harness) markMigrate(allocs ...*structs.Allocation) {
	h.t.Helper()
	m := make(map[string]*structs.DesiredTransition)
	for _, a := range allocs {
		m[a.ID] = &structs.DesiredTransition{Migrate: true}
	}
	if err := h.State.UpdateAllocsDesiredTransitions(h.NextIndex(), m, nil); err != nil {
		h.t.Fatal(err)
	}
}

// deployment returns the job's newest deployment, failing if none.
func (h *Harness) deployment(jobID string) *structs.Deployment {
	h.t.Helper()
	d, err := h.State.LatestDeploymentByJobID(nil, "", jobID)
	if err != nil || d == nil {
		h.t.Fatalf("job %s has no deployment (err %v)", jobID, err)
	}
	return d
}

// placedOn maps node ID to the number of allocations of allocs on it.
func placedOn(allocs []*structs.Allocation) map[string]int {
	out := make(map[string]int)
	for _, a := range allocs {
		out[a.NodeID]++
	}
	return out
}

// byPrevious maps the plan's placements by the allocation they replace.
func byPrevious(p *structs.Plan) map[string]*structs.Allocation {
	out := make(map[string]*structs.Allocation)
	for _, a := range Placed(p) {
		if a.PreviousAllocation != "" {
			out[a.PreviousAllocation] = a
		}
	}
	return out
}

// stopsByID maps the plan's stops by allocation ID.
func stopsByID(p *structs.Plan) map[string]*structs.Allocation {
	out := make(map[string]*structs.Allocation)
	for _, a := range Stopped(p) {
		out[a.ID] = a
	}
	return out
}

// newAllocs returns the plan's placements that are new allocations (not
// in-place updates or annotations of stored ones).
func newAllocs(p *structs.Plan) []*structs.Allocation {
	var out []*structs.Allocation
	for _, a := range Placed(p) {
		if a.CreateIndex == 0 {
			out = append(out, a)
		}
	}
	return out
}

// sysJob returns a system job with one small task and no ports.
func sysJob() *structs.Job {
	j := mock.Job()
	j.ID = mock.Name("sys")
	j.Name = j.ID
	j.Type = structs.JobTypeSystem
	j.Priority = 80
	tg := j.TaskGroups[0]
	tg.Name = "agent"
	tg.Count = 1
	tg.Networks = nil
	tg.Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 128}
	j.Canonicalize()
	return j
}

// smallJob returns a service job with count and no ports.
func smallJob(count int) *structs.Job {
	j := mock.Job()
	j.TaskGroups[0].Count = count
	j.TaskGroups[0].Networks = nil
	return j
}
