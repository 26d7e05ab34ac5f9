package state

import (
	"reflect"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// serviceJob is mock.Job with a group service "web" on port "http"
// (tags a, b) and, with checks, an http and a tcp check.
func serviceJob(checks bool, shutdownDelay time.Duration) *structs.Job {
	job := mock.Job()
	svc := &structs.Service{Name: "web", PortLabel: "http", Tags: []string{"b", "a"}, ShutdownDelay: shutdownDelay}
	if checks {
		svc.Checks = []*structs.ServiceCheck{
			{Name: "alive", Type: structs.ServiceCheckHTTP, Interval: time.Second, Timeout: time.Second},
			{Name: "port", Type: structs.ServiceCheckTCP, Interval: time.Second, Timeout: time.Second},
		}
	}
	job.TaskGroups[0].Services = []*structs.Service{svc}
	return job
}

// svcFixture is a store with a node and a job with services.
type svcFixture struct {
	s    *StateStore
	node *structs.Node
	job  *structs.Job
}

func newSvcFixture(t *testing.T, job *structs.Job) *svcFixture {
	t.Helper()
	s := NewStateStore()
	node := mock.Node()
	node.HTTPAddr = "10.0.0.7:4646"
	if err := s.UpsertNode(1, node, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertJob(2, job, 0, nil); err != nil {
		t.Fatal(err)
	}
	return &svcFixture{s: s, node: node, job: job}
}

// place commits a pending allocation of the job at index.
func (f *svcFixture) place(t *testing.T, index uint64, i int) *structs.Allocation {
	t.Helper()
	a := mock.Alloc(f.job, f.node, i)
	a.ClientStatus = structs.AllocClientStatusPending
	a.Namespace = structs.NamespaceOrDefault(f.job.Namespace)
	if err := f.s.UpsertPlanResults(index, &structs.ApplyPlanResultsRequest{Job: f.job, AllocsPlaced: []*structs.Allocation{a}}); err != nil {
		t.Fatal(err)
	}
	return a
}

// report applies a client update of the allocation at index.
func (f *svcFixture) report(t *testing.T, index uint64, id, status string, checks map[string]*structs.CheckStatus) {
	t.Helper()
	u := &structs.Allocation{ID: id, ClientStatus: status, Checks: checks}
	if err := f.s.UpdateAllocsFromClient(index, []*structs.Allocation{u}, 0, nil); err != nil {
		t.Fatal(err)
	}
}

func (f *svcFixture) stop(t *testing.T, index uint64, id, clientStatus string) {
	t.Helper()
	stop := &structs.Allocation{ID: id, DesiredStatus: structs.AllocDesiredStatusStop, ClientStatus: clientStatus}
	if err := f.s.UpsertPlanResults(index, &structs.ApplyPlanResultsRequest{Job: f.job, AllocsStopped: []*structs.Allocation{stop}}); err != nil {
		t.Fatal(err)
	}
}

func (f *svcFixture) instances(t *testing.T) []*structs.ServiceInstance {
	t.Helper()
	out, err := f.s.ServiceInstancesByName(nil, "", "web")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *svcFixture) statusOf(t *testing.T) string {
	t.Helper()
	list := f.instances(t)
	if len(list) != 1 {
		t.Fatalf("%d instances, want 1", len(list))
	}
	return list[0].Status
}

func TestServiceInstances_PlacedAllocationRegisters(t *testing.T) {
	f := newSvcFixture(t, serviceJob(false, 0))
	a := f.place(t, 10, 3)
	list := f.instances(t)
	if len(list) != 1 {
		t.Fatalf("%d instances, want 1", len(list))
	}
	got := list[0]
	want := &structs.ServiceInstance{
		ID: a.ID + "-web", ServiceName: "web", Namespace: structs.DefaultNamespace, JobID: f.job.ID,
		NodeID: f.node.ID, AllocID: a.ID, Address: "10.0.0.7", Port: 20003, Tags: []string{"b", "a"},
		Status: structs.ServiceStatusCritical, CreateIndex: 10, ModifyIndex: 10,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("instance\n got %+v\nwant %+v", got, want)
	}
	if idx, _ := f.s.Index(TableServiceInstances); idx != 10 {
		t.Fatalf("table index %d, want 10", idx)
	}
	f.report(t, 11, a.ID, structs.AllocClientStatusRunning, nil)
	if got := f.instances(t)[0]; got.Status != structs.ServiceStatusPassing || got.CreateIndex != 10 || got.ModifyIndex != 11 {
		t.Fatalf("running: %+v", got)
	}
	if byAlloc, _ := f.s.ServiceInstancesByAlloc(nil, a.ID); len(byAlloc) != 1 || byAlloc[0].ID != a.ID+"-web" {
		t.Fatalf("by alloc: %+v", byAlloc)
	}
}

func TestServiceInstances_StopDeregisters(t *testing.T) {
	cases := []struct {
		name         string
		delay        time.Duration
		clientStatus string // set by the stop itself ("" keeps running)
		wantAfter    string // "" no instance
	}{
		{"stop", 0, "", ""},
		{"lost with its node", 0, structs.AllocClientStatusLost, ""},
		{"shutdown delay: terminating while running", 5 * time.Second, "", structs.ServiceStatusTerminating},
		{"shutdown delay but lost", 5 * time.Second, structs.AllocClientStatusLost, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newSvcFixture(t, serviceJob(false, tc.delay))
			a := f.place(t, 10, 0)
			f.report(t, 11, a.ID, structs.AllocClientStatusRunning, nil)
			f.stop(t, 12, a.ID, tc.clientStatus)
			list := f.instances(t)
			if tc.wantAfter == "" {
				if len(list) != 0 {
					t.Fatalf("instance survived the stop: %+v", list[0])
				}
				return
			}
			if len(list) != 1 || list[0].Status != tc.wantAfter || list[0].ModifyIndex != 12 {
				t.Fatalf("after stop: %+v", list)
			}
			// Gone once the client says the task stopped.
			f.report(t, 13, a.ID, structs.AllocClientStatusComplete, nil)
			if list := f.instances(t); len(list) != 0 {
				t.Fatalf("instance survived completion: %+v", list[0])
			}
			if idx, _ := f.s.Index(TableServiceInstances); idx != 13 {
				t.Fatalf("table index %d, want 13", idx)
			}
		})
	}
}

func TestServiceInstances_ClientTerminalDeregisters(t *testing.T) {
	f := newSvcFixture(t, serviceJob(false, time.Second))
	a := f.place(t, 10, 0)
	f.report(t, 11, a.ID, structs.AllocClientStatusFailed, nil)
	if list := f.instances(t); len(list) != 0 {
		t.Fatalf("failed allocation kept its instance: %+v", list[0])
	}
}

func TestServiceInstances_StatusFromChecks(t *testing.T) {
	check := func(name, status string) *structs.CheckStatus {
		return &structs.CheckStatus{Service: "web", Check: name, Status: status, Output: "HTTP 200", Timestamp: 1}
	}
	cases := []struct {
		name   string
		checks []*structs.CheckStatus
		want   string
	}{
		{"none reported", nil, structs.ServiceStatusCritical},
		{"one missing", []*structs.CheckStatus{check("alive", "passing")}, structs.ServiceStatusCritical},
		{"all passing", []*structs.CheckStatus{check("alive", "passing"), check("port", "passing")}, structs.ServiceStatusPassing},
		{"one warning", []*structs.CheckStatus{check("alive", "warning"), check("port", "passing")}, structs.ServiceStatusWarning},
		{"warning and critical", []*structs.CheckStatus{check("alive", "warning"), check("port", "critical")}, structs.ServiceStatusCritical},
		{"another service's check", []*structs.CheckStatus{check("alive", "passing"), {Service: "other", Check: "port", Status: "passing"}}, structs.ServiceStatusCritical},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newSvcFixture(t, serviceJob(true, 0))
			a := f.place(t, 10, 0)
			m := make(map[string]*structs.CheckStatus)
			for _, c := range tc.checks {
				m[structs.CheckKey(c.Service, c.Check)] = c
			}
			f.report(t, 11, a.ID, structs.AllocClientStatusRunning, m)
			if got := f.statusOf(t); got != tc.want {
				t.Fatalf("status %s, want %s", got, tc.want)
			}
		})
	}
}

// TestServiceInstances_UnrelatedChangesDoNotBump: writes to the
// allocation that do not change its instance leave the instance, its
// ModifyIndex, the table index and watches alone.
func TestServiceInstances_UnrelatedChangesDoNotBump(t *testing.T) {
	f := newSvcFixture(t, serviceJob(false, 0))
	a := f.place(t, 10, 0)
	f.report(t, 11, a.ID, structs.AllocClientStatusRunning, nil)
	before := f.instances(t)[0]

	ws := memdb.NewWatchSet()
	if _, err := f.s.ServiceInstancesByName(ws, "", "web"); err != nil {
		t.Fatal(err)
	}
	listWS := memdb.NewWatchSet()
	if _, err := f.s.ServiceNames(listWS, structs.AllNamespaces); err != nil {
		t.Fatal(err)
	}
	// A task event, a desired transition, a node status change, and
	// another job's allocation without services.
	f.report(t, 12, a.ID, structs.AllocClientStatusRunning, nil)
	if err := f.s.UpdateAllocsDesiredTransitions(13, map[string]*structs.DesiredTransition{a.ID: {Migrate: true}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.s.UpdateNodeStatus(14, f.node.ID, structs.NodeStatusReady, 0, nil); err != nil {
		t.Fatal(err)
	}
	plain := mock.Job()
	if err := f.s.UpsertPlanResults(15, &structs.ApplyPlanResultsRequest{Job: plain, AllocsPlaced: []*structs.Allocation{mock.Alloc(plain, f.node, 0)}}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.UpsertNode(16, f.node, 0, nil); err != nil {
		t.Fatal(err)
	}
	after := f.instances(t)[0]
	if after != before {
		t.Fatalf("instance rewritten: %+v -> %+v", before, after)
	}
	if idx, _ := f.s.Index(TableServiceInstances); idx != 11 {
		t.Fatalf("table index %d, want 11", idx)
	}
	if fired := !ws.Watch(time.After(10 * time.Millisecond)); fired {
		t.Fatal("the service's watch fired")
	}
	if fired := !listWS.Watch(time.After(10 * time.Millisecond)); fired {
		t.Fatal("the list's watch fired")
	}
}

func TestServiceInstances_NodeAddressChange(t *testing.T) {
	f := newSvcFixture(t, serviceJob(false, 0))
	f.place(t, 10, 0)
	moved := f.node.Copy()
	moved.HTTPAddr = "[fd00::9]:4646"
	if err := f.s.UpsertNode(11, moved, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.instances(t)[0]; got.Address != "fd00::9" || got.ModifyIndex != 11 || got.CreateIndex != 10 {
		t.Fatalf("after re-registration: %+v", got)
	}
	if err := f.s.DeleteNode(12, f.node.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.instances(t)[0]; got.Address != "" {
		t.Fatalf("after node delete: %+v", got)
	}
}

func TestServiceInstances_JobUpdateChangesServices(t *testing.T) {
	f := newSvcFixture(t, serviceJob(false, 0))
	a := f.place(t, 10, 0)
	// An in-place update to a version without services drops the
	// instance; one with a renamed service registers the new name.
	for i, name := range []string{"", "api"} {
		job := f.job.Copy()
		job.TaskGroups[0].Services = nil
		if name != "" {
			job.TaskGroups[0].Services = []*structs.Service{{Name: name, PortLabel: "http"}}
		}
		up := a.Copy()
		up.Job = job
		if err := f.s.UpsertPlanResults(uint64(11+i), &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{up}}); err != nil {
			t.Fatal(err)
		}
		if list := f.instances(t); len(list) != 0 {
			t.Fatalf("web survived the update: %+v", list[0])
		}
	}
	if list, _ := f.s.ServiceInstancesByName(nil, "", "api"); len(list) != 1 || list[0].Port != 20000 {
		t.Fatalf("api: %+v", list)
	}
}

func TestServiceInstances_ListStubs(t *testing.T) {
	f := newSvcFixture(t, serviceJob(false, 0))
	a := f.place(t, 10, 0)
	f.place(t, 11, 1)
	f.report(t, 12, a.ID, structs.AllocClientStatusRunning, nil)
	other := serviceJob(false, 0)
	other.Namespace = "team-a"
	other.TaskGroups[0].Services[0].Tags = []string{"c", "a"}
	f.job = other
	f.place(t, 13, 0)
	all, err := f.s.ServiceNames(nil, structs.AllNamespaces)
	if err != nil {
		t.Fatal(err)
	}
	want := []*structs.ServiceListStub{
		{Name: "web", Namespace: "default", Tags: []string{"a", "b"}, Instances: 2, Passing: 1},
		{Name: "web", Namespace: "team-a", Tags: []string{"a", "c"}, Instances: 1},
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("stubs %+v\nwant %+v", all, want)
	}
	one, _ := f.s.ServiceNames(nil, "team-a")
	if len(one) != 1 || one[0].Namespace != "team-a" {
		t.Fatalf("team-a: %+v", one)
	}
	if none, _ := f.s.ServiceNames(nil, "team"); len(none) != 0 {
		t.Fatalf("a namespace prefix matched: %+v", none)
	}
}

// TestServiceInstances_RestoreRebuilds: a store restored from another's
// nodes, allocations and indexes has the same instances.
func TestServiceInstances_RestoreRebuilds(t *testing.T) {
	f := newSvcFixture(t, serviceJob(true, 0))
	a := f.place(t, 10, 0)
	f.place(t, 11, 1)
	f.report(t, 12, a.ID, structs.AllocClientStatusRunning, map[string]*structs.CheckStatus{
		"web/alive": {Service: "web", Check: "alive", Status: "passing"},
		"web/port":  {Service: "web", Check: "port", Status: "warning"},
	})

	restored := NewStateStore()
	r := restored.Restore()
	entries, _ := f.s.IndexEntries()
	for _, e := range entries {
		if err := r.IndexRestore(e); err != nil {
			t.Fatal(err)
		}
	}
	nodes, _ := f.s.Nodes(nil)
	for _, n := range nodes {
		if err := r.NodeRestore(n); err != nil {
			t.Fatal(err)
		}
	}
	allocs, _ := f.s.Allocs(nil)
	for _, al := range allocs {
		if err := r.AllocRestore(al); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	before, _ := f.s.ServiceInstances(nil, structs.AllNamespaces)
	after, _ := restored.ServiceInstances(nil, structs.AllNamespaces)
	if len(before) != 2 || !reflect.DeepEqual(before, after) {
		t.Fatalf("instances before\n%+v\nafter restore\n%+v", before, after)
	}
	bi, _ := f.s.Index(TableServiceInstances)
	ai, _ := restored.Index(TableServiceInstances)
	if bi != 12 || ai != bi {
		t.Fatalf("table index %d before, %d after", bi, ai)
	}
}
