package client

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/driver/fake"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// These tests run a Client the way the node simulator does: a given
// node, in-memory state, no data dir, the product fake driver. The
// servers are a fake that records the reports and never answers the
// allocation watch, so a test hands allocations to the client itself.

// reportServers answers registration and heartbeats, holds the watch,
// and records the latest report per allocation.
type reportServers struct {
	block chan struct{}

	mu      sync.Mutex
	reports map[string]*structs.Allocation
}

func newReportServers(t *testing.T) *reportServers {
	r := &reportServers{block: make(chan struct{}), reports: map[string]*structs.Allocation{}}
	t.Cleanup(func() { close(r.block) })
	return r
}

func (r *reportServers) RPC(method string, args, reply interface{}) error {
	switch method {
	case "Node.Register", "Node.UpdateStatus":
		reply.(*structs.NodeUpdateResponse).HeartbeatTTL = time.Hour
	case "Node.GetClientAllocs":
		<-r.block
		return errors.New("test over")
	case "Node.UpdateAlloc":
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, a := range args.(*structs.AllocUpdateRequest).Alloc {
			r.reports[a.ID] = a
		}
	}
	return nil
}

func (r *reportServers) report(id string) *structs.Allocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reports[id]
}

// waitReport waits until the latest report of id satisfies ok.
func (r *reportServers) waitReport(t *testing.T, id string, ok func(a *structs.Allocation) bool) *structs.Allocation {
	t.Helper()
	var last *structs.Allocation
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		last = r.report(id)
		if last == nil {
			return false, fmt.Errorf("no report of %s yet", id)
		}
		return ok(last), fmt.Errorf("last report of %s: %s (%s)", id, last.ClientStatus, last.ClientDescription)
	})
	return last
}

func status(want string) func(*structs.Allocation) bool {
	return func(a *structs.Allocation) bool { return a.ClientStatus == want }
}

func disklessClient(t *testing.T, rpc RPCer, node *structs.Node, state StateStore, drv driver.Driver) *Client {
	t.Helper()
	c, err := New(&Config{
		Node: node, State: state, RPC: rpc,
		Drivers:             map[string]driver.Driver{drv.Name(): drv},
		AllocUpdateCoalesce: time.Millisecond,
		Logger:              hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// disklessSetup starts a diskless client with the fake driver (cfg)
// against report servers; the client is shut down when the test ends.
func disklessSetup(t *testing.T, cfg fake.Config) (*reportServers, *fake.Driver, *structs.Node, *Client) {
	t.Helper()
	srv := newReportServers(t)
	drv := fake.New(cfg)
	node := mock.Node()
	c := disklessClient(t, srv, node, NewMemoryState(), drv)
	t.Cleanup(func() { _ = c.Shutdown() })
	return srv, drv, node, c
}

// deploymentAlloc returns an allocation of job placed by a deployment.
func deploymentAlloc(job *structs.Job, node *structs.Node, update *structs.UpdateStrategy) *structs.Allocation {
	job.TaskGroups[0].Update = update
	alloc := mock.Alloc(job, node, 0)
	alloc.DeploymentID = structs.GenerateUUID()
	return alloc
}

// healthDecided is a report that carries a health decision.
func healthDecided(a *structs.Allocation) bool {
	return a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil
}

func TestClient_DisklessRunsAndStopsAllocations(t *testing.T) {
	srv, _, node, c := disklessSetup(t, fake.Config{})
	<-c.Registered()

	alloc := mock.Alloc(mock.Job(), node, 0)
	alloc.AllocModifyIndex = 10
	c.applyAlloc(alloc)
	srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusRunning))
	if _, err := c.LogPath(alloc.ID, "server", "stdout"); !errors.Is(err, ErrNoLogs) {
		t.Fatalf("LogPath on a client without a data dir: %v, want ErrNoLogs", err)
	}

	stopped := alloc.Copy()
	stopped.DesiredStatus, stopped.AllocModifyIndex = structs.AllocDesiredStatusStop, 11
	c.applyAlloc(stopped)
	srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusComplete))
	if st := c.Stats(); st.AllocsRunning != 0 || st.AllocsComplete != 1 {
		t.Fatalf("stats: %d running, %d complete; want 0 and 1", st.AllocsRunning, st.AllocsComplete)
	}
}

func TestClient_BatchTaskCompletesOnTheFakeDriver(t *testing.T) {
	srv, _, node, c := disklessSetup(t, fake.Config{RunFor: func(*driver.TaskConfig) time.Duration { return 20 * time.Millisecond }})

	alloc := mock.Alloc(mock.BatchJob(), node, 0)
	c.applyAlloc(alloc)
	a := srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusComplete))
	if ts := a.TaskStates["server"]; ts == nil || ts.Failed || ts.Restarts != 0 {
		t.Fatalf("task state %+v, want dead, not failed, never restarted", ts)
	}
}

func TestClient_RestartOnTheSameMemoryStateReattaches(t *testing.T) {
	srv := newReportServers(t)
	drv := fake.New(fake.Config{})
	node := mock.Node()
	state := NewMemoryState()
	c := disklessClient(t, srv, node, state, drv)
	alloc := mock.Alloc(mock.Job(), node, 0)
	c.applyAlloc(alloc)
	srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusRunning))
	before, err := drv.InspectTask(t.Context(), alloc.ID+"-server")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}

	c2 := disklessClient(t, srv, node, state, drv)
	defer c2.Shutdown()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		ts, err := c2.TaskState(alloc.ID, "server")
		if err != nil {
			return false, err
		}
		for _, e := range ts.Events {
			if e.Type == structs.TaskEventReattached {
				return true, nil
			}
		}
		return false, fmt.Errorf("task %s, no re-attach event yet", ts.State)
	})
	after, err := drv.InspectTask(t.Context(), alloc.ID+"-server")
	if err != nil || after.PID != before.PID || drv.Tasks() != 1 {
		t.Fatalf("after the restart: %+v (%v), %d tasks; want the same task (pid %d), not a new one", after, err, drv.Tasks(), before.PID)
	}
}

func TestClient_DeploymentAllocBecomesHealthyAfterMinHealthyTime(t *testing.T) {
	srv, _, node, c := disklessSetup(t, fake.Config{})
	alloc := deploymentAlloc(mock.Job(), node, &structs.UpdateStrategy{MaxParallel: 1, MinHealthyTime: 200 * time.Millisecond, HealthyDeadline: time.Minute})
	c.applyAlloc(alloc)
	running := srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusRunning))
	a := srv.waitReport(t, alloc.ID, healthDecided)
	if !*a.DeploymentStatus.Healthy {
		t.Fatalf("deployment status %+v, want healthy", a.DeploymentStatus)
	}
	started := running.TaskStates["server"].StartedAt
	if decided := time.Unix(0, a.DeploymentStatus.Timestamp); decided.Before(started.Add(200 * time.Millisecond)) {
		t.Fatalf("healthy at %s, before the task had run min_healthy_time (started %s)", decided, started)
	}
}

func TestClient_DeploymentAllocUnhealthyWhenATaskFails(t *testing.T) {
	srv, drv, node, c := disklessSetup(t, fake.Config{})
	job := mock.Job()
	job.TaskGroups[0].RestartPolicy = &structs.RestartPolicy{Attempts: 0, Interval: time.Minute, Delay: time.Millisecond, Mode: structs.RestartPolicyModeFail}
	alloc := deploymentAlloc(job, node, &structs.UpdateStrategy{MaxParallel: 1, MinHealthyTime: time.Hour, HealthyDeadline: time.Hour})
	c.applyAlloc(alloc)
	srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusRunning))
	// The task dies on its own: with no restarts left it fails.
	if err := drv.StopTask(t.Context(), alloc.ID+"-server", 0, ""); err != nil {
		t.Fatal(err)
	}
	a := srv.waitReport(t, alloc.ID, healthDecided)
	if *a.DeploymentStatus.Healthy || a.ClientStatus != structs.AllocClientStatusFailed {
		t.Fatalf("%s, healthy %v; want failed and unhealthy", a.ClientStatus, *a.DeploymentStatus.Healthy)
	}
}

// A malformed allocation from the servers (no job, or a driver this
// node lacks) is refused: reported failed with the reason, nothing kept
// in the state store, and the client goes on running the next one.
func TestClient_MalformedAllocationIsReportedFailed(t *testing.T) {
	srv, _, node, c := disklessSetup(t, fake.Config{})

	noJob := mock.Alloc(mock.Job(), node, 0)
	noJob.Job = nil
	otherDriver := mock.Alloc(mock.Job(), node, 1)
	otherDriver.Job.TaskGroups[0].Tasks[0].Driver = "qemu"
	cases := []struct {
		name  string
		alloc *structs.Allocation
		want  string
	}{
		{"no job", noJob, "has no job"},
		{"unknown driver", otherDriver, `needs driver "qemu"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.applyAlloc(tc.alloc)
			a := srv.waitReport(t, tc.alloc.ID, status(structs.AllocClientStatusFailed))
			if !strings.Contains(a.ClientDescription, tc.want) {
				t.Fatalf("description %q, want it to say %q", a.ClientDescription, tc.want)
			}
			if _, err := c.AllocTasks(tc.alloc.ID); !errors.Is(err, ErrUnknownAlloc) {
				t.Fatalf("the refused allocation is held: %v", err)
			}
		})
	}
	saved, _ := c.db.LoadAllocs()
	if len(saved) != 0 {
		t.Fatalf("%d allocations saved, want none", len(saved))
	}
	good := mock.Alloc(mock.Job(), node, 2)
	c.applyAlloc(good)
	srv.waitReport(t, good.ID, status(structs.AllocClientStatusRunning))
}

func TestJobCache_AllocationsOfOneVersionShareTheJob(t *testing.T) {
	c := NewJobCache()
	j1 := mock.Job()
	j1.JobModifyIndex = 10
	decoded := *j1 // another decoded copy of the same version
	if got := c.share(&decoded); got != &decoded {
		t.Fatal("first copy not kept")
	}
	if got := c.share(j1); got != &decoded {
		t.Fatal("a second copy of the same version was not replaced by the first")
	}
	next := *j1
	next.JobModifyIndex, next.Version = 20, 1
	if got := c.share(&next); got != &next {
		t.Fatal("a new version was replaced by an old one")
	}
	if c.Len() != 2 {
		t.Fatalf("%d entries, want 2", c.Len())
	}
}
