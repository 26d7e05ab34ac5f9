package agent

import (
	"fmt"
	"net"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/fakedriver"
	"github.com/droverhq/drover/testutil/mock"
)

// These tests run a real client against a real in-process server with a
// fake task driver: registration, allocation runners, restart policy,
// status reporting and re-attachment after a client restart. They live
// here because client must not import server.

// testServer starts a single in-process server.
func testServer(t *testing.T) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Warn})
	s, err := server.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return s.IsLeader(), nil })
	return s
}

func testClient(t *testing.T, s *server.Server, drv *fakedriver.Driver, dataDir string) *client.Client {
	t.Helper()
	c, err := client.New(&client.Config{
		DataDir:       dataDir,
		NodeName:      "test-node",
		RPC:           s,
		Drivers:       map[string]driver.Driver{"containerd": drv},
		CPUTotalMHz:   4000,
		MemoryTotalMB: 4096,
		Logger:        hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Warn}),

		// Fake tasks outlive the test: no tmpfs to leave mounted.
		SecretsOnDisk: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// registerJob registers job and returns its eval ID.
func registerJob(t *testing.T, s *server.Server, job *structs.Job) string {
	t.Helper()
	var resp structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.EvalID
}

// waitAllocs waits until the job's non-stopped allocations all have the
// client status want, and there are n of them.
func waitAllocs(t *testing.T, s *server.Server, jobID string, n int, want string) []*structs.Allocation {
	t.Helper()
	var out []*structs.Allocation
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		all, err := s.State().AllocsByJob(nil, "", jobID)
		if err != nil {
			return false, err
		}
		out = out[:0]
		for _, a := range all {
			if a.DesiredStatus == structs.AllocDesiredStatusRun {
				out = append(out, a)
			}
		}
		if len(out) != n {
			return false, fmt.Errorf("%d allocs, want %d", len(out), n)
		}
		for _, a := range out {
			if a.ClientStatus != want {
				return false, fmt.Errorf("alloc %s is %s, want %s", a.Name, a.ClientStatus, want)
			}
		}
		return true, nil
	})
	return out
}

func TestClientIntegration_RegistersAndFingerprints(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s, fakedriver.New(), t.TempDir())
	defer c.Shutdown()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		n, _ := s.State().NodeByID(nil, c.NodeID())
		return n != nil && n.Status == structs.NodeStatusReady, nil
	})
	n, _ := s.State().NodeByID(nil, c.NodeID())
	if n.NodeResources.Cpu.CpuShares != 4000 || n.NodeResources.Memory.MemoryMB != 4096 {
		t.Fatalf("resources %+v", n.NodeResources)
	}
	if !n.HasHealthyDriver("containerd") || n.Attributes["driver.fake"] != "1" || n.Attributes["kernel.name"] != "linux" {
		t.Fatalf("fingerprint: drivers %v attrs %v", n.Drivers, n.Attributes)
	}
}

func TestClientIntegration_RunsAllocationsAndStopsThem(t *testing.T) {
	s := testServer(t)
	drv := fakedriver.New()
	c := testClient(t, s, drv, t.TempDir())
	defer c.Shutdown()
	<-c.Registered()

	job := mock.Job()
	job.TaskGroups[0].Tasks[0].Config.Args = []string{"-p", "${DROVER_PORT_http}"}
	job.TaskGroups[0].Tasks[0].Env["NODE"] = "${node.unique.name}"
	registerJob(t, s, job)
	allocs := waitAllocs(t, s, job.ID, 3, structs.AllocClientStatusRunning)

	// The driver got the environment and interpolated args.
	for _, a := range allocs {
		cfg, _, ok := drv.Task(a.ID + "-server")
		if !ok {
			t.Fatalf("no task for %s", a.Name)
		}
		port := a.AllocatedResources.Shared.Ports[0].Value
		env := cfg.Env
		if env["DROVER_ALLOC_ID"] != a.ID || env["DROVER_TASK_NAME"] != "server" || env["DROVER_PORT_http"] != fmt.Sprint(port) || env["NODE"] != "test-node" {
			t.Fatalf("env %v", env)
		}
		if cfg.Args[1] != fmt.Sprint(port) || cfg.MemoryMB != 256 || cfg.CPUShares != 500 {
			t.Fatalf("config %+v", cfg)
		}
	}

	// Stopping the job stops the tasks and removes them.
	var resp structs.JobDeregisterResponse
	if err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: job.ID}, &resp); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		_, _, stops, _, live := drv.Counts()
		return live == 0 && stops == 3, fmt.Errorf("live %d stops %d", live, stops)
	})
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		all, _ := s.State().AllocsByJob(nil, "", job.ID)
		for _, a := range all {
			if a.ClientStatus != structs.AllocClientStatusComplete {
				return false, fmt.Errorf("%s is %s", a.Name, a.ClientStatus)
			}
		}
		return true, nil
	})
}

func TestClientIntegration_RestartPolicyThenFailed(t *testing.T) {
	s := testServer(t)
	drv := fakedriver.New()
	c := testClient(t, s, drv, t.TempDir())
	defer c.Shutdown()
	<-c.Registered()

	job := mock.Job()
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].Tasks[0].Config.Command = "exit:3"
	job.TaskGroups[0].RestartPolicy = &structs.RestartPolicy{Attempts: 2, Interval: time.Hour, Delay: 10 * time.Millisecond, Mode: structs.RestartPolicyModeFail}
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Attempts: 0, Interval: time.Hour, DelayFunction: structs.DelayFunctionConstant}
	registerJob(t, s, job)

	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		all, _ := s.State().AllocsByJob(nil, "", job.ID)
		if len(all) != 1 {
			return false, fmt.Errorf("%d allocs", len(all))
		}
		a := all[0]
		ts := a.TaskStates["server"]
		if a.ClientStatus != structs.AllocClientStatusFailed || ts == nil {
			return false, fmt.Errorf("alloc is %s", a.ClientStatus)
		}
		if ts.Restarts != 2 || !ts.Failed || ts.State != structs.TaskStateDead {
			return false, fmt.Errorf("task state %+v", ts)
		}
		return true, nil
	})
	starts, _, _, _, _ := drv.Counts()
	if starts != 3 {
		t.Fatalf("started %d times, want 1 + 2 restarts", starts)
	}
}

func TestClientIntegration_BatchCompletes(t *testing.T) {
	s := testServer(t)
	drv := fakedriver.New()
	c := testClient(t, s, drv, t.TempDir())
	defer c.Shutdown()
	<-c.Registered()

	job := mock.BatchJob()
	job.TaskGroups[0].Tasks[0].Config.Command = "exit:0"
	registerJob(t, s, job)
	waitAllocs(t, s, job.ID, 2, structs.AllocClientStatusComplete)
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		j, _ := s.State().JobByID(nil, "", job.ID)
		return j.Status == structs.JobStatusDead, fmt.Errorf("job is %s", j.Status)
	})
	if starts, _, _, _, _ := drv.Counts(); starts != 2 {
		t.Fatalf("batch tasks started %d times, want 2", starts)
	}
}

func TestClientIntegration_StartFailureReported(t *testing.T) {
	s := testServer(t)
	drv := fakedriver.New()
	drv.FailStarts("server")
	c := testClient(t, s, drv, t.TempDir())
	defer c.Shutdown()
	<-c.Registered()

	job := mock.Job()
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].RestartPolicy = &structs.RestartPolicy{Attempts: 1, Interval: time.Hour, Delay: 10 * time.Millisecond, Mode: structs.RestartPolicyModeFail}
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Interval: time.Hour, DelayFunction: structs.DelayFunctionConstant}
	registerJob(t, s, job)
	allocs := waitAllocs(t, s, job.ID, 1, structs.AllocClientStatusFailed)
	events := allocs[0].TaskStates["server"].Events
	found := false
	for _, e := range events {
		if e.Type == structs.TaskEventDriverError && e.Message == `image "localhost/drover/busybox:latest" not found` {
			found = true
		}
	}
	if !found {
		t.Fatalf("driver failure not reported in task events: %+v", events)
	}
}

func TestClientIntegration_RestartReattachesWithoutRestartingTasks(t *testing.T) {
	s := testServer(t)
	drv := fakedriver.New()
	dir := t.TempDir()
	c := testClient(t, s, drv, dir)
	<-c.Registered()
	job := mock.Job()
	registerJob(t, s, job)
	waitAllocs(t, s, job.ID, 3, structs.AllocClientStatusRunning)
	nodeID := c.NodeID()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	startsBefore, _, _, _, live := drv.Counts()
	if live != 3 {
		t.Fatalf("tasks stopped when the client shut down: %d live", live)
	}

	c2 := testClient(t, s, drv, dir)
	defer c2.Shutdown()
	if c2.NodeID() != nodeID {
		t.Fatalf("node ID changed across a restart")
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		_, recovers, _, _, _ := drv.Counts()
		return recovers == 3, fmt.Errorf("%d recovered", recovers)
	})
	starts, _, stops, _, live := drv.Counts()
	if starts != startsBefore || stops != 0 || live != 3 {
		t.Fatalf("after restart: starts %d (before %d), stops %d, live %d", starts, startsBefore, stops, live)
	}
	// The restarted client still follows its tasks: one exits and is
	// restarted per policy.
	victim := drv.TaskIDs()[0]
	drv.Exit(victim, &driver.ExitResult{ExitCode: 1})
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		starts, _, _, _, live := drv.Counts()
		return starts == startsBefore+1 && live == 3, fmt.Errorf("starts %d live %d", starts, live)
	})
}

func TestClientIntegration_FailedTaskStopsItsSiblings(t *testing.T) {
	s := testServer(t)
	drv := fakedriver.New()
	c := testClient(t, s, drv, t.TempDir())
	defer c.Shutdown()
	<-c.Registered()

	job := mock.Job()
	tg := job.TaskGroups[0]
	tg.Count = 1
	tg.RestartPolicy = &structs.RestartPolicy{Attempts: 0, Interval: time.Hour, Delay: 10 * time.Millisecond, Mode: structs.RestartPolicyModeFail}
	tg.ReschedulePolicy = &structs.ReschedulePolicy{Interval: time.Hour, DelayFunction: structs.DelayFunctionConstant}
	sidecar := tg.Tasks[0].Copy()
	sidecar.Name = "sidecar"
	tg.Tasks[0].Config.Command = "exit:1"
	tg.Tasks = append(tg.Tasks, sidecar)
	registerJob(t, s, job)

	allocs := waitAllocs(t, s, job.ID, 1, structs.AllocClientStatusFailed)
	// The allocation is failed, so the server counts its resources as
	// free: its other task must be gone too.
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		_, _, ok := drv.Task(allocs[0].ID + "-sidecar")
		return !ok, fmt.Errorf("the sidecar of a failed allocation still runs")
	})
}
