package server

import (
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// registerRouteJob registers, through Job.Register, job id in ns
// offering service name (on port "http") with routes host+path.
func (w *serviceWorld) registerRouteJob(id, ns, name string, routes ...[2]string) error {
	job := mock.Job()
	job.ID, job.Name, job.Namespace = id, id, ns
	svc := &structs.Service{Name: name, PortLabel: "http"}
	for _, r := range routes {
		svc.Routes = append(svc.Routes, &structs.ServiceRoute{Host: r[0], Path: r[1], Timeout: structs.DefaultRouteTimeout})
	}
	job.TaskGroups[0].Services = []*structs.Service{svc}
	req := &structs.JobRegisterRequest{Job: job, WriteRequest: structs.WriteRequest{Namespace: ns, AuthToken: w.mgmt}}
	return w.s.RPC("Job.Register", req, &structs.JobRegisterResponse{})
}

func routesRead(w *serviceWorld, req *structs.RouteListRequest) (*structs.RouteListResponse, error) {
	var resp structs.RouteListResponse
	err := w.s.RPC("Service.Routes", req, &resp)
	return &resp, err
}

// routeNames renders routes as "ns/service:host+path".
func routeNames(list []*structs.RouteListStub) string {
	var out []string
	for _, r := range list {
		out = append(out, r.Namespace+"/"+r.ServiceName+":"+structs.RouteKey(r.Route.Host, r.Route.Path))
	}
	return strings.Join(out, " ")
}

func TestServiceRoutes_ListSortedWithBackends(t *testing.T) {
	w := newServiceWorld(t, false, "default")
	if err := w.registerRouteJob("shop", "default", "web", [2]string{"shop.test", "/api"}, [2]string{"a.test", "/"}); err != nil {
		t.Fatal(err)
	}
	resp, err := routesRead(w, &structs.RouteListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := routeNames(resp.Routes), "default/web:a.test/ default/web:shop.test/api"; got != want || resp.Index == 0 {
		t.Fatalf("routes %q (index %d), want %q", got, resp.Index, want)
	}
	// The world's "web" has one passing instance of two.
	if r := resp.Routes[1]; r.JobID != "shop" || r.Passing != 1 || len(r.Backends) != 1 || !strings.HasPrefix(r.Backends[0], "10.1.2.3:") {
		t.Fatalf("route %+v", r)
	}

	// A blocking read wakes on a change of the instances.
	done := make(chan *structs.RouteListResponse, 1)
	go func() {
		r, err := routesRead(w, &structs.RouteListRequest{QueryOptions: structs.QueryOptions{MinQueryIndex: resp.Index, MaxQueryTime: 10 * time.Second}})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	w.report(t, w.allocs["default"][1].ID, structs.ServiceStatusPassing)
	select {
	case r := <-done:
		if r == nil || r.Index <= resp.Index || r.Routes[0].Passing != 2 {
			t.Fatalf("after the change: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query did not return after the change")
	}
}

func TestServiceRoutes_ACL(t *testing.T) {
	w := newServiceWorld(t, true, "team-a", "team-b")
	for _, ns := range []string{"team-a", "team-b"} {
		if err := w.registerRouteJob("shop", ns, "web", [2]string{ns + ".test", "/"}); err != nil {
			t.Fatal(err)
		}
	}
	upsertPolicy(t, w.s, w.mgmt, "team-a-read", `namespace "team-a" { policy = "read" }`)
	reader := createToken(t, w.s, w.mgmt, &structs.ACLTokenCreateRequest{Name: "reader", Policies: []string{"team-a-read"}}).SecretID
	cases := []struct {
		name string
		req  *structs.RouteListRequest
		want string
		code string
	}{
		{"management of *", &structs.RouteListRequest{QueryOptions: query(w.mgmt, "*")}, "team-a/web:team-a.test/ team-b/web:team-b.test/", ""},
		{"reader of *", &structs.RouteListRequest{QueryOptions: query(reader, "*")}, "team-a/web:team-a.test/", ""},
		{"reader of team-a", &structs.RouteListRequest{QueryOptions: query(reader, "team-a")}, "team-a/web:team-a.test/", ""},
		{"reader of team-b", &structs.RouteListRequest{QueryOptions: query(reader, "team-b")}, "", structs.CodePermission},
		{"anonymous of *", &structs.RouteListRequest{QueryOptions: query("", "*")}, "", ""},
		{"anonymous of team-a", &structs.RouteListRequest{QueryOptions: query("", "team-a")}, "", structs.CodePermission},
		{"unknown token", &structs.RouteListRequest{QueryOptions: query(structs.GenerateUUID(), "*")}, "", structs.CodeTokenNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := routesRead(w, tc.req)
			if tc.code != "" {
				if codeOf(err) != tc.code {
					t.Fatalf("got %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := routeNames(resp.Routes); got != tc.want {
				t.Fatalf("routes %q, want %q", got, tc.want)
			}
		})
	}
}

// TestJobRegister_RefusesRouteConflicts: the leader refuses a route
// another job's service has, with nothing written; an entry that
// reaches the log anyway (registered before the other committed) is
// refused by the FSM alike.
func TestJobRegister_RefusesRouteConflicts(t *testing.T) {
	w := newServiceWorld(t, false)
	if err := w.registerRouteJob("api", "default", "api", [2]string{"shop.test", "/api"}); err != nil {
		t.Fatal(err)
	}
	const want = `route shop.test/api is already used by service "api" of job "api" in namespace "default"`
	before, _ := w.s.State().Index("jobs")
	err := w.registerRouteJob("web", "default", "web", [2]string{"shop.test", "/"}, [2]string{"shop.test", "/api"})
	if codeOf(err) != structs.CodeConflict || !strings.Contains(err.Error(), want) {
		t.Fatalf("leader: %v, want a conflict with %q", err, want)
	}
	if after, _ := w.s.State().Index("jobs"); after != before {
		t.Fatal("a refused register was written")
	}
	// The same service name in another job shares the route.
	if err := w.registerRouteJob("api-green", "default", "api", [2]string{"shop.test", "/api"}); err != nil {
		t.Fatal(err)
	}

	job := mock.Job()
	job.ID = "web"
	job.TaskGroups[0].Services = []*structs.Service{{Name: "web", PortLabel: "http", Routes: []*structs.ServiceRoute{{Host: "shop.test", Path: "/api", Timeout: time.Second}}}}
	_, _, err = w.s.raftApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job})
	if codeOf(err) != structs.CodeConflict || !strings.Contains(err.Error(), want) {
		t.Fatalf("FSM: %v, want a conflict with %q", err, want)
	}
	if j, _ := w.s.State().JobByID(nil, "default", "web"); j != nil {
		t.Fatal("the FSM wrote the refused job")
	}
}
