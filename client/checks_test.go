package client

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/driver/fake"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// checkKey is the key of the http check checkedJob gives its service.
var checkKey = structs.CheckKey("web", "web-http")

// checkServer is an httptest server answering the checks with a code
// the test changes.
type checkServer struct {
	*httptest.Server
	code atomic.Int64
}

func newCheckServer(t *testing.T, code int) *checkServer {
	t.Helper()
	s := &checkServer{}
	s.code.Store(int64(code))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(s.code.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *checkServer) port(t *testing.T) int {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkedJob returns mock.Job with a group service "web" on the http
// port, with an http check every 20ms.
func checkedJob() *structs.Job {
	job := mock.Job()
	job.TaskGroups[0].Services = []*structs.Service{{
		Name: "web", PortLabel: "http",
		Checks: []*structs.ServiceCheck{{Name: "web-http", Type: structs.ServiceCheckHTTP, Path: "/health", Interval: 20 * time.Millisecond, Timeout: time.Second}},
	}}
	return job
}

// onPort gives alloc's http port the value port (the check server's:
// the checks dial the node's address, 127.0.0.1 for mock.Node).
func onPort(alloc *structs.Allocation, port int) *structs.Allocation {
	alloc.AllocatedResources.Shared.Ports[0].Value = port
	return alloc
}

// checkIs is a report whose check has the status (and output, if set).
func checkIs(status, output string) func(*structs.Allocation) bool {
	return func(a *structs.Allocation) bool {
		st := a.Checks[checkKey]
		return st != nil && st.Status == status && (output == "" || st.Output == output)
	}
}

func TestClient_ReportsServiceChecksInUpdates(t *testing.T) {
	srv, _, node, c := disklessSetup(t, fake.Config{})
	checks := newCheckServer(t, http.StatusOK)
	alloc := onPort(mock.Alloc(checkedJob(), node, 0), checks.port(t))
	c.applyAlloc(alloc)

	a := srv.waitReport(t, alloc.ID, checkIs(structs.ServiceStatusPassing, "HTTP 200"))
	if a.ClientStatus != structs.AllocClientStatusRunning {
		t.Fatalf("checks passing while the allocation is %s", a.ClientStatus)
	}
	if st := a.Checks[checkKey]; st.Service != "web" || st.Check != "web-http" || st.Timestamp == 0 {
		t.Fatalf("check status %+v", st)
	}
	checks.code.Store(http.StatusServiceUnavailable)
	srv.waitReport(t, alloc.ID, checkIs(structs.ServiceStatusCritical, "HTTP 503"))
	checks.code.Store(http.StatusTooManyRequests)
	srv.waitReport(t, alloc.ID, checkIs(structs.ServiceStatusWarning, "HTTP 429"))

	// Once stopped, the checks end: no goroutine of theirs is left to
	// report.
	stopped := alloc.Copy()
	stopped.DesiredStatus, stopped.AllocModifyIndex = structs.AllocDesiredStatusStop, 11
	c.applyAlloc(stopped)
	srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusComplete))
	ar, err := c.runner(alloc.ID)
	if err != nil {
		t.Fatal(err)
	}
	ar.mu.Lock()
	running, stoppedForGood := ar.checks != nil, ar.checksStopped
	ar.mu.Unlock()
	if running || !stoppedForGood {
		t.Fatalf("checks runner %v, stopped %v after the allocation completed", running, stoppedForGood)
	}
}

func TestClient_DeploymentHealthWaitsForChecks(t *testing.T) {
	const minHealthy = 200 * time.Millisecond
	srv, _, node, c := disklessSetup(t, fake.Config{})
	checks := newCheckServer(t, http.StatusServiceUnavailable)
	alloc := onPort(deploymentAlloc(checkedJob(), node, &structs.UpdateStrategy{MaxParallel: 1, MinHealthyTime: minHealthy, HealthyDeadline: time.Minute}), checks.port(t))
	c.applyAlloc(alloc)

	running := srv.waitReport(t, alloc.ID, checkIs(structs.ServiceStatusCritical, "HTTP 503"))
	started := running.TaskStates["server"].StartedAt
	// The task runs past min_healthy_time: task states alone would be
	// healthy, but the check fails.
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		if a := srv.report(alloc.ID); healthDecided(a) {
			return false, fmt.Errorf("health decided (%v) while the check fails", *a.DeploymentStatus.Healthy)
		}
		return time.Since(started) > 2*minHealthy, fmt.Errorf("task started %s ago", time.Since(started))
	})
	if a := srv.report(alloc.ID); healthDecided(a) {
		t.Fatalf("health decided (%v) while the check fails", *a.DeploymentStatus.Healthy)
	}

	passingFrom := time.Now()
	checks.code.Store(http.StatusOK)
	a := srv.waitReport(t, alloc.ID, healthDecided)
	if !*a.DeploymentStatus.Healthy {
		t.Fatalf("deployment status %+v, want healthy", a.DeploymentStatus)
	}
	if decided := time.Unix(0, a.DeploymentStatus.Timestamp); decided.Before(passingFrom.Add(minHealthy)) {
		t.Fatalf("healthy at %s, before the check had passed for min_healthy_time (from %s)", decided, passingFrom)
	}
	if st := a.Checks[checkKey]; st == nil || st.Status != structs.ServiceStatusPassing {
		t.Fatalf("decided healthy with check %+v", st)
	}
}

func TestClient_DeploymentHealthByChecks(t *testing.T) {
	cases := []struct {
		name        string
		healthCheck string
		node        func(*structs.Node)
		healthy     bool
	}{
		// The check never passes: unhealthy at healthy_deadline.
		{name: "checks by default", healthy: false},
		{name: "checks", healthCheck: structs.UpdateHealthCheckChecks, healthy: false},
		// Task states alone are judged.
		{name: "task_states", healthCheck: structs.UpdateHealthCheckTaskStates, healthy: true},
		// A simulated node runs no checks: task states are all there is.
		{name: "simulated node", node: func(n *structs.Node) { n.Attributes["simulated"] = "true" }, healthy: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newReportServers(t)
			node := mock.Node()
			if tc.node != nil {
				tc.node(node)
			}
			c := disklessClient(t, srv, node, NewMemoryState(), fake.New(fake.Config{}))
			defer c.Shutdown()
			checks := newCheckServer(t, http.StatusInternalServerError)
			alloc := onPort(deploymentAlloc(checkedJob(), node, &structs.UpdateStrategy{
				MaxParallel: 1, HealthCheck: tc.healthCheck, MinHealthyTime: 50 * time.Millisecond, HealthyDeadline: 500 * time.Millisecond,
			}), checks.port(t))
			c.applyAlloc(alloc)
			a := srv.waitReport(t, alloc.ID, healthDecided)
			if *a.DeploymentStatus.Healthy != tc.healthy || a.ClientStatus != structs.AllocClientStatusRunning {
				t.Fatalf("%s, healthy %v; want running, healthy %v", a.ClientStatus, *a.DeploymentStatus.Healthy, tc.healthy)
			}
			simulated := tc.node != nil
			if st := a.Checks[checkKey]; simulated != (st == nil) {
				t.Fatalf("check status %+v on a simulated node: %v", st, simulated)
			}
		})
	}
}

// killedAt returns when the task was told to stop (its Killing event).
func killedAt(ts *structs.TaskState) time.Time {
	for _, e := range ts.Events {
		if e.Type == structs.TaskEventKilling {
			return time.Unix(0, e.Time)
		}
	}
	return time.Time{}
}

func TestClient_ShutdownDelayWaitsBeforeStoppingTheTasks(t *testing.T) {
	const delay = 300 * time.Millisecond
	srv, _, node, c := disklessSetup(t, fake.Config{})
	job := mock.Job()
	job.TaskGroups[0].Services = []*structs.Service{{Name: "web", PortLabel: "http", ShutdownDelay: delay}}
	alloc := mock.Alloc(job, node, 0)
	c.applyAlloc(alloc)
	srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusRunning))

	stopAt := time.Now()
	stopped := alloc.Copy()
	stopped.DesiredStatus, stopped.AllocModifyIndex = structs.AllocDesiredStatusStop, 11
	c.applyAlloc(stopped)
	a := srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusComplete))
	if killed := killedAt(a.TaskStates["server"]); killed.IsZero() || killed.Before(stopAt.Add(delay)) {
		t.Fatalf("task signalled at %s, want at least %s after the stop (%s)", killed, delay, stopAt)
	}
}

// A client restarting while it waits out a shutdown_delay neither hangs
// in Shutdown nor forgets the stop: the next client stops the tasks.
func TestClient_RestartDuringShutdownDelay(t *testing.T) {
	const delay = 500 * time.Millisecond
	srv := newReportServers(t)
	drv := fake.New(fake.Config{})
	node := mock.Node()
	state := NewMemoryState()
	c := disklessClient(t, srv, node, state, drv)
	job := mock.Job()
	job.TaskGroups[0].Services = []*structs.Service{{Name: "web", PortLabel: "http", ShutdownDelay: delay}}
	alloc := mock.Alloc(job, node, 0)
	c.applyAlloc(alloc)
	srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusRunning))
	stopped := alloc.Copy()
	stopped.DesiredStatus, stopped.AllocModifyIndex = structs.AllocDesiredStatusStop, 11
	c.applyAlloc(stopped)

	done := make(chan error, 1)
	go func() { done <- c.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hung in the shutdown_delay")
	}
	if st, err := drv.InspectTask(t.Context(), alloc.ID+"-server"); err != nil || st.State != "running" {
		t.Fatalf("after the client stopped: task %+v (%v), want it still running", st, err)
	}

	c2 := disklessClient(t, srv, node, state, drv)
	defer c2.Shutdown()
	a := srv.waitReport(t, alloc.ID, status(structs.AllocClientStatusComplete))
	if killedAt(a.TaskStates["server"]).IsZero() {
		t.Fatalf("task state %+v, want it stopped by the restarted client", a.TaskStates["server"])
	}
}
