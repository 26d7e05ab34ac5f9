package state

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// routeJob is a job of namespace ns offering service name with routes
// of the given host+path keys ("shop.test/api").
func routeJob(ns, name string, routes ...string) *structs.Job {
	job := mock.Job()
	job.Namespace = ns
	svc := &structs.Service{Name: name, PortLabel: "http"}
	for _, r := range routes {
		i := strings.IndexByte(r, '/')
		svc.Routes = append(svc.Routes, &structs.ServiceRoute{Host: r[:i], Path: r[i:], Timeout: structs.DefaultRouteTimeout})
	}
	job.TaskGroups[0].Services = []*structs.Service{svc}
	return job
}

func routeKeys(rs []*structs.ServiceRoute) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, structs.RouteKey(r.Host, r.Path))
	}
	return out
}

func proxied(t *testing.T, s *StateStore, ws memdb.WatchSet, ns, name string) *structs.ProxiedService {
	t.Helper()
	all, _, err := s.ProxiedServices(ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	return nil
}

// TestProxiedServices_Routes: a service with routes and no VIP or
// published port is proxied; its routes are the union of the jobs'
// (one copy of a route two jobs declare); a stopped job's stay (the
// gateways answer 503 for them) unless a running job claims the same
// host and path.
func TestProxiedServices_Routes(t *testing.T) {
	s := NewStateStore()
	blue := routeJob("default", "shop", "shop.test/api", "shop.test/")
	green := routeJob("default", "shop", "shop.test/api", "*.shop.test/")
	old := routeJob("default", "shop", "old.test/")
	other := routeJob("team-a", "shop", "a.test/")
	// A stopped job whose route a running job took over meanwhile.
	gone := routeJob("default", "gone", "gone.test/")
	for i, j := range []*structs.Job{blue, green, old, other, gone} {
		register(t, s, uint64(10+i), j, "")
	}
	stoppedGone := gone.Copy()
	stoppedGone.Stop = true
	if err := s.UpsertJob(16, stoppedGone, 0, nil); err != nil {
		t.Fatal(err)
	}
	register(t, s, 17, routeJob("default", "new", "gone.test/"), "")
	if p := proxied(t, s, nil, "default", "gone"); p != nil && len(p.Routes) != 0 {
		t.Fatalf("a stopped job's route claimed by a running job is still served: %+v", p.Routes)
	}
	stopped := old.Copy()
	stopped.Stop = true
	ws := memdb.NewWatchSet()
	if p := proxied(t, s, ws, "default", "shop"); p == nil || len(p.Routes) != 4 {
		t.Fatalf("before the stop: %+v", p)
	}
	if err := s.UpsertJob(20, stopped, 0, nil); err != nil {
		t.Fatal(err)
	}
	if ws.Watch(time.After(time.Second)) {
		t.Fatal("a job's stop did not wake the watch")
	}
	p := proxied(t, s, nil, "default", "shop")
	if p == nil {
		t.Fatal("service with routes not proxied")
	}
	// Jobs in ID order; the routes of each in block order.
	want := map[string]bool{"shop.test/api": true, "shop.test/": true, "*.shop.test/": true, "old.test/": true}
	got := routeKeys(p.Routes)
	if len(got) != len(want) {
		t.Fatalf("routes %v, want the keys of %v", got, want)
	}
	for _, k := range got {
		if !want[k] {
			t.Fatalf("routes %v, want the keys of %v", got, want)
		}
	}
	if p := proxied(t, s, nil, "team-a", "shop"); p == nil || !reflect.DeepEqual(routeKeys(p.Routes), []string{"a.test/"}) {
		t.Fatalf("team-a: %+v", p)
	}
	_, index, err := s.ProxiedServices(nil)
	if err != nil || index != 20 {
		t.Fatalf("index %d (%v), want 20 (the stop)", index, err)
	}
}

// TestRoutes_ConflictAcrossJobs: a route another job's service of the
// has is refused by the leader's check and by RegisterJob (the FSM's)
// alike; the same service name of the same namespace may share it; in
// another namespace it is refused without naming what that namespace
// runs (the gateways serve every namespace); stopped jobs do not hold
// it.
func TestRoutes_ConflictAcrossJobs(t *testing.T) {
	s := NewStateStore()
	api := routeJob("default", "api", "shop.test/api")
	api.ID = "api"
	register(t, s, 10, api, "")
	// The same job updated keeps its route.
	register(t, s, 11, api.Copy(), "")
	// Another job offering the same name may declare it.
	register(t, s, 12, routeJob("default", "api", "shop.test/api"), "")
	// Another namespace cannot take it, and is not told whose it is.
	other := routeJob("team-a", "web", "shop.test/api")
	if err := s.RegisterJob(13, other, 0, nil, ""); err == nil || !strings.Contains(err.Error(), "already used by a service in another namespace") || strings.Contains(err.Error(), `"api"`) {
		t.Fatalf("another namespace's route: %v", err)
	}
	register(t, s, 13, routeJob("team-a", "web", "team-a.test/api"), "")

	web := routeJob("default", "web", "shop.test/", "shop.test/api")
	const want = `route shop.test/api is already used by service "api" of job "api" in namespace "default"`
	for what, err := range map[string]error{
		"check":    s.CheckJobServices(web, ""),
		"register": s.RegisterJob(14, web, 0, nil, ""),
	} {
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, structs.NewError(structs.CodeConflict, "")) {
			t.Fatalf("%s: %v, want a conflict with %q", what, err, want)
		}
	}
	if got, _ := s.JobByID(nil, "default", web.ID); got != nil {
		t.Fatal("refused job was written")
	}
	// Stopped jobs do not hold their routes.
	jobs, err := s.Jobs(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range jobs {
		if j.Namespace != "default" {
			continue
		}
		stopped := j.Copy()
		stopped.Stop = true
		if err := s.UpsertJob(uint64(15+i), stopped, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	register(t, s, 30, web, "")
}

// canaryFixture places a canary of a running deployment that needs
// promotion.
func canaryFixture(t *testing.T) (*svcFixture, *structs.Deployment) {
	t.Helper()
	job := routeJob("default", "web", "/")
	f := newSvcFixture(t, job)
	d := &structs.Deployment{
		ID: structs.GenerateUUID(), JobID: job.ID, Namespace: "default",
		Status: structs.DeploymentStatusRunning, StatusDescription: structs.DeploymentDescRunningNeedsPromote,
		TaskGroups: map[string]*structs.DeploymentState{job.TaskGroups[0].Name: {DesiredCanaries: 1, DesiredTotal: 2}},
	}
	a := mock.Alloc(job, f.node, 0)
	a.ClientStatus = structs.AllocClientStatusRunning
	a.Namespace = "default"
	a.DeploymentID = d.ID
	a.DeploymentStatus = &structs.AllocDeploymentStatus{Canary: true}
	plain := mock.Alloc(job, f.node, 1)
	plain.ClientStatus = structs.AllocClientStatusRunning
	plain.Namespace = "default"
	if err := f.s.UpsertPlanResults(10, &structs.ApplyPlanResultsRequest{Job: job, Deployment: d, AllocsPlaced: []*structs.Allocation{a, plain}}); err != nil {
		t.Fatal(err)
	}
	return f, d
}

// canaries returns the alloc IDs of the canary instances.
func canaries(t *testing.T, f *svcFixture) []string {
	t.Helper()
	var out []string
	for _, inst := range f.instances(t) {
		if inst.Canary {
			out = append(out, inst.AllocID)
		}
	}
	return out
}

func TestServiceInstances_CanaryClearedOnPromotion(t *testing.T) {
	f, d := canaryFixture(t)
	if got := canaries(t, f); len(got) != 1 {
		t.Fatalf("canary instances %v, want 1", got)
	}
	ws := memdb.NewWatchSet()
	if _, _, err := f.s.ProxiedServices(ws); err != nil {
		t.Fatal(err)
	}
	if err := f.s.PromoteDeployment(11, &structs.DeploymentPromoteRequest{DeploymentID: d.ID, All: true}); err != nil {
		t.Fatal(err)
	}
	if ws.Watch(time.After(time.Second)) {
		t.Fatal("the promotion did not wake a watch on the proxied services")
	}
	if got := canaries(t, f); len(got) != 0 {
		t.Fatalf("canary instances %v after promotion, want none", got)
	}
	if idx, _ := f.s.Index(TableServiceInstances); idx != 11 {
		t.Fatalf("instances index %d, want 11", idx)
	}
}

func TestServiceInstances_CanaryClearedWhenDeploymentEnds(t *testing.T) {
	f, d := canaryFixture(t)
	// An unrelated deployment write leaves the instances alone.
	up := d.Copy()
	up.StatusDescription = "still going"
	if err := f.s.UpsertDeployment(11, up); err != nil {
		t.Fatal(err)
	}
	if idx, _ := f.s.Index(TableServiceInstances); idx != 10 {
		t.Fatalf("instances index %d after an unrelated deployment write, want 10", idx)
	}
	if got := canaries(t, f); len(got) != 1 {
		t.Fatalf("canary instances %v, want 1", got)
	}
	err := f.s.UpdateDeploymentStatus(12, &structs.DeploymentStatusUpdateRequest{DeploymentUpdate: &structs.DeploymentStatusUpdate{
		DeploymentID: d.ID, Status: structs.DeploymentStatusFailed, StatusDescription: structs.DeploymentDescFailedByUser,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := canaries(t, f); len(got) != 0 {
		t.Fatalf("canary instances %v after the deployment failed, want none", got)
	}
}

func TestServiceRoutes_ListsWithBackends(t *testing.T) {
	f, _ := canaryFixture(t)
	other := routeJob("team-a", "api", "api.test/")
	register(t, f.s, 20, other, "")
	routes, index, err := f.s.ServiceRoutes(nil, structs.AllNamespaces)
	if err != nil {
		t.Fatal(err)
	}
	if index != 20 || len(routes) != 2 {
		t.Fatalf("index %d, %d routes, want 20 and 2", index, len(routes))
	}
	// "" (any host) sorts first.
	web := routes[0]
	if web.Namespace != "default" || web.ServiceName != "web" || web.JobID != f.job.ID || web.Route.Path != "/" ||
		web.Passing != 2 || web.Canary != 1 || len(web.Backends) != 2 || !strings.HasPrefix(web.Backends[0], "10.0.0.7:") {
		t.Fatalf("web route %+v", web)
	}
	if api := routes[1]; api.Route.Host != "api.test" || api.Passing != 0 || len(api.Backends) != 0 {
		t.Fatalf("api route %+v", api)
	}
	if only, _, _ := f.s.ServiceRoutes(nil, "team-a"); len(only) != 1 || only[0].ServiceName != "api" {
		t.Fatalf("team-a routes %+v", only)
	}
}
