package sim

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// fakeCluster answers the client RPCs for many nodes in memory, checking
// that every node speaks only for itself with its own secret.
type fakeCluster struct {
	t testing.TB

	mu      sync.Mutex
	nodes   map[string]*structs.Node
	allocs  map[string]*structs.Allocation
	index   uint64
	changed chan struct{}
	// reports holds the last client status reported per allocation.
	reports map[string]string
}

func newFakeCluster(t testing.TB) *fakeCluster {
	return &fakeCluster{t: t, nodes: map[string]*structs.Node{}, allocs: map[string]*structs.Allocation{},
		index: 1, changed: make(chan struct{}), reports: map[string]string{}}
}

func (f *fakeCluster) authLocked(nodeID, secretID string) error {
	n, ok := f.nodes[nodeID]
	if !ok {
		return structs.NewError(structs.CodeNotFound, "node "+nodeID+" is not registered")
	}
	if n.SecretID != secretID {
		f.t.Errorf("node %s called with another node's secret", nodeID)
		return structs.NewError(structs.CodePermission, "secret ID does not match")
	}
	return nil
}

func (f *fakeCluster) RPC(method string, args, reply interface{}) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch method {
	case "Node.Register":
		n := args.(*structs.NodeRegisterRequest).Node
		f.nodes[n.ID] = n.Copy()
		reply.(*structs.NodeUpdateResponse).HeartbeatTTL = 2 * time.Second
	case "Node.UpdateStatus":
		req := args.(*structs.NodeUpdateStatusRequest)
		if err := f.authLocked(req.NodeID, req.SecretID); err != nil {
			return err
		}
		reply.(*structs.NodeUpdateResponse).HeartbeatTTL = 2 * time.Second
	case "Node.GetClientAllocs":
		req := args.(*structs.NodeSpecificRequest)
		if err := f.authLocked(req.NodeID, req.SecretID); err != nil {
			return err
		}
		if f.index <= req.MinQueryIndex {
			// Block until a change, briefly (tests end quickly).
			ch := f.changed
			f.mu.Unlock()
			select {
			case <-ch:
			case <-time.After(200 * time.Millisecond):
			}
			f.mu.Lock()
		}
		resp := reply.(*structs.NodeClientAllocsResponse)
		resp.Allocs = map[string]uint64{}
		for id, a := range f.allocs {
			if a.NodeID == req.NodeID {
				resp.Allocs[id] = a.AllocModifyIndex
			}
		}
		resp.Index = f.index
	case "Alloc.GetAllocs":
		req := args.(*structs.AllocsGetRequest)
		if err := f.authLocked(req.NodeID, req.SecretID); err != nil {
			return err
		}
		resp := reply.(*structs.AllocsGetResponse)
		for _, id := range req.AllocIDs {
			if a, ok := f.allocs[id]; ok && a.NodeID == req.NodeID {
				// As decoded from the wire: a copy with its own job.
				c := a.Copy()
				job := *a.Job
				c.Job = &job
				resp.Allocs = append(resp.Allocs, c)
			}
		}
		resp.Index = f.index
	case "Node.UpdateAlloc":
		req := args.(*structs.AllocUpdateRequest)
		if err := f.authLocked(req.NodeID, req.SecretID); err != nil {
			return err
		}
		for _, a := range req.Alloc {
			if a.NodeID != req.NodeID {
				f.t.Errorf("node %s reported allocation %s of node %s", req.NodeID, a.ID, a.NodeID)
				continue
			}
			f.reports[a.ID] = a.ClientStatus
		}
	default:
		return fmt.Errorf("unexpected %s", method)
	}
	return nil
}

// place puts alloc (already given a node) into the cluster.
func (f *fakeCluster) place(alloc *structs.Allocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	alloc.AllocModifyIndex = f.index
	f.allocs[alloc.ID] = alloc
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeCluster) stop(id string) {
	f.mu.Lock()
	a := f.allocs[id].Copy()
	f.mu.Unlock()
	a.DesiredStatus = structs.AllocDesiredStatusStop
	f.place(a)
}

func (f *fakeCluster) statuses(ids []string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, id := range ids {
		if status, ok := f.reports[id]; ok {
			out[status]++
		}
	}
	return out
}

func TestSimulator_NodesAreDeterministicAndVaried(t *testing.T) {
	a := New(Config{Count: 200, Seed: 7, Datacenters: []string{"dc1", "dc2"}})
	b := New(Config{Count: 200, Seed: 7, Datacenters: []string{"dc1", "dc2"}})
	other := New(Config{Count: 200, Seed: 7, NamePrefix: "other"})
	classes, dcs, racks := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := range a.nodes {
		if a.nodes[i].ID != b.nodes[i].ID || a.nodes[i].SecretID != b.nodes[i].SecretID || a.nodes[i].NodeClass != b.nodes[i].NodeClass {
			t.Fatalf("node %d differs between two simulators with the same seed", i)
		}
		if a.nodes[i].ID == other.nodes[i].ID {
			t.Fatalf("node %d has the same ID under another prefix", i)
		}
		classes[a.nodes[i].NodeClass] = true
		dcs[a.nodes[i].Datacenter] = true
		racks[a.nodes[i].Meta["rack"]] = true
	}
	if len(classes) < 3 || len(dcs) != 2 || len(racks) != 25 {
		t.Fatalf("%d classes, %d datacenters, %d racks; want varied nodes over 2 datacenters and 25 racks", len(classes), len(dcs), len(racks))
	}
}

func TestSimulator_NodesRunTheRealClient(t *testing.T) {
	const count = 40
	f := newFakeCluster(t)
	s := New(Config{Count: count, RPC: f, NamePrefix: "t", BatchRuntime: 50 * time.Millisecond, UpdateCoalesce: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer s.Stop()
	var progress []int
	var pmu sync.Mutex
	if err := s.Run(ctx, func(done, total int) {
		pmu.Lock()
		progress = append(progress, done)
		pmu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Registered != count || len(progress) != count {
		t.Fatalf("%d registered, %d progress calls; want %d", st.Registered, len(progress), count)
	}

	// A service allocation on every node, a batch one on every other.
	service, batch := mock.Job(), mock.BatchJob()
	var serviceIDs, batchIDs []string
	for i, id := range s.Nodes() {
		node := &structs.Node{ID: id, Name: fmt.Sprintf("t-%05d", i)}
		a := mock.Alloc(service, node, i)
		a.ClientStatus, a.TaskStates = structs.AllocClientStatusPending, nil
		f.place(a)
		serviceIDs = append(serviceIDs, a.ID)
		if i%2 == 0 {
			b := mock.Alloc(batch, node, i)
			b.ClientStatus, b.TaskStates = structs.AllocClientStatusPending, nil
			f.place(b)
			batchIDs = append(batchIDs, b.ID)
		}
	}
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		sv, bt := f.statuses(serviceIDs), f.statuses(batchIDs)
		return sv[structs.AllocClientStatusRunning] == len(serviceIDs) && bt[structs.AllocClientStatusComplete] == len(batchIDs),
			fmt.Errorf("service %v, batch %v", sv, bt)
	})

	for _, id := range serviceIDs {
		f.stop(id)
	}
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		sv := f.statuses(serviceIDs)
		return sv[structs.AllocClientStatusComplete] == len(serviceIDs), fmt.Errorf("service after stop %v", sv)
	})
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		st := s.Stats()
		return st.AllocsRunning == 0 && st.AllocsComplete == int64(count+len(batchIDs)) && st.UpdatesSent > 0,
			fmt.Errorf("stats %+v", st)
	})
	// Every node's allocations share one copy of each job version.
	if n := s.jobs.Len(); n != 2 {
		t.Fatalf("%d jobs cached, want 2", n)
	}
}
