package server

import (
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// serviceWorld is a server with a node and, per namespace given, a job
// offering service "web" (one http check) with two allocations: the
// first running with its check passing, the second pending.
type serviceWorld struct {
	s      *Server
	mgmt   string
	node   *structs.Node
	allocs map[string][]*structs.Allocation
}

func newServiceWorld(t *testing.T, aclOn bool, namespaces ...string) *serviceWorld {
	t.Helper()
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0; c.ACLEnabled = aclOn })
	w := &serviceWorld{s: s, allocs: make(map[string][]*structs.Allocation)}
	if aclOn {
		w.mgmt = bootstrapACL(t, s)
	}
	w.node = mock.Node()
	w.node.HTTPAddr = "10.1.2.3:4646"
	registerNode(t, s, w.node)
	for _, ns := range namespaces {
		if ns != structs.DefaultNamespace {
			req := &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: ns}}}
			req.AuthToken = w.mgmt
			if err := s.RPC("Namespace.Upsert", req, &structs.GenericResponse{}); err != nil {
				t.Fatal(err)
			}
		}
		job := mock.Job()
		job.Namespace = ns
		job.TaskGroups[0].Services = []*structs.Service{{
			Name: "web", PortLabel: "http", Tags: []string{"v1"},
			Checks: []*structs.ServiceCheck{{Name: "alive", Type: structs.ServiceCheckHTTP, Interval: time.Second, Timeout: time.Second}},
		}}
		var placed []*structs.Allocation
		for i := 0; i < 2; i++ {
			a := mock.Alloc(job, w.node, i)
			a.Namespace = ns
			a.ClientStatus = structs.AllocClientStatusPending
			placed = append(placed, a)
		}
		if _, _, err := s.raftApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: placed}); err != nil {
			t.Fatal(err)
		}
		w.report(t, placed[0].ID, structs.ServiceStatusPassing)
		w.allocs[ns] = placed
	}
	return w
}

// report applies a client update: the allocation runs, its check has
// status.
func (w *serviceWorld) report(t *testing.T, allocID, status string) {
	t.Helper()
	u := &structs.Allocation{ID: allocID, NodeID: w.node.ID, ClientStatus: structs.AllocClientStatusRunning, Checks: map[string]*structs.CheckStatus{
		"web/alive": {Service: "web", Check: "alive", Status: status, Output: "HTTP 200"},
	}}
	if _, _, err := w.s.raftApply(structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{Alloc: []*structs.Allocation{u}}); err != nil {
		t.Fatal(err)
	}
}

func TestServiceEndpoint_ListAndInstances(t *testing.T) {
	w := newServiceWorld(t, false, "default", "team-a")
	var list structs.ServiceListResponse
	if err := w.s.RPC("Service.List", &structs.ServiceListRequest{QueryOptions: structs.QueryOptions{Namespace: "*"}}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Services) != 2 || list.Services[0].Namespace != "default" || list.Services[1].Namespace != "team-a" ||
		list.Services[0].Instances != 2 || list.Services[0].Passing != 1 || strings.Join(list.Services[0].Tags, ",") != "v1" || list.Index == 0 {
		t.Fatalf("list: %+v (index %d)", list.Services, list.Index)
	}
	if err := w.s.RPC("Service.List", &structs.ServiceListRequest{}, &list); err != nil || len(list.Services) != 1 || list.Services[0].Namespace != "default" {
		t.Fatalf("default namespace list: %+v, %v", list.Services, err)
	}

	cases := []struct {
		name, ns, svc, status string
		want                  int
	}{
		{"all", "team-a", "web", "", 2},
		{"passing only", "team-a", "web", structs.ServiceStatusPassing, 1},
		{"critical only", "", "web", structs.ServiceStatusCritical, 1},
		{"unknown service", "", "nope", "", 0},
		{"unknown namespace", "team-z", "web", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp structs.ServiceInstancesResponse
			req := &structs.ServiceInstancesRequest{ServiceName: tc.svc, Status: tc.status, QueryOptions: structs.QueryOptions{Namespace: tc.ns}}
			if err := w.s.RPC("Service.Instances", req, &resp); err != nil {
				t.Fatal(err)
			}
			if len(resp.Instances) != tc.want || resp.Instances == nil {
				t.Fatalf("%d instances, want %d", len(resp.Instances), tc.want)
			}
			for _, inst := range resp.Instances {
				if inst.Address != "10.1.2.3" || inst.Port < 20000 || inst.NodeID != w.node.ID {
					t.Fatalf("instance %+v", inst)
				}
			}
		})
	}
}

func TestServiceEndpoint_RefusesBadRequests(t *testing.T) {
	w := newServiceWorld(t, false, "default")
	for name, req := range map[string]*structs.ServiceInstancesRequest{
		"no name":       {},
		"huge name":     {ServiceName: strings.Repeat("a", 10000)},
		"bad status":    {ServiceName: "web", Status: "healthy"},
		"all namespace": {ServiceName: "web", QueryOptions: structs.QueryOptions{Namespace: "*"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := w.s.RPC("Service.Instances", req, &structs.ServiceInstancesResponse{})
			if codeOf(err) != structs.CodeInvalid {
				t.Fatalf("got %v, want %s", err, structs.CodeInvalid)
			}
		})
	}
	for name, id := range map[string]string{"empty": "", "huge": strings.Repeat("f", 4096)} {
		err := w.s.RPC("Alloc.Checks", &structs.AllocChecksRequest{AllocID: id}, &structs.AllocChecksResponse{})
		if codeOf(err) != structs.CodeInvalid {
			t.Fatalf("%s alloc ID: %v", name, err)
		}
	}
	err := w.s.RPC("Alloc.Checks", &structs.AllocChecksRequest{AllocID: structs.GenerateUUID()}, &structs.AllocChecksResponse{})
	if codeOf(err) != structs.CodeNotFound {
		t.Fatalf("unknown alloc: %v", err)
	}
}

func TestServiceEndpoint_AllocChecks(t *testing.T) {
	w := newServiceWorld(t, false, "default")
	a := w.allocs["default"][0]
	var resp structs.AllocChecksResponse
	if err := w.s.RPC("Alloc.Checks", &structs.AllocChecksRequest{AllocID: a.ID}, &resp); err != nil {
		t.Fatal(err)
	}
	if c := resp.Checks["web/alive"]; len(resp.Checks) != 1 || c == nil || c.Status != structs.ServiceStatusPassing || resp.Index == 0 {
		t.Fatalf("checks: %+v", resp.Checks)
	}
}

// TestServiceEndpoint_BlockingQuery: a blocking read of a service
// returns when its instances change, not before.
func TestServiceEndpoint_BlockingQuery(t *testing.T) {
	w := newServiceWorld(t, false, "default")
	var first structs.ServiceInstancesResponse
	req := &structs.ServiceInstancesRequest{ServiceName: "web"}
	if err := w.s.RPC("Service.Instances", req, &first); err != nil {
		t.Fatal(err)
	}
	done := make(chan *structs.ServiceInstancesResponse, 1)
	errs := make(chan error, 1)
	go func() {
		var resp structs.ServiceInstancesResponse
		blocking := &structs.ServiceInstancesRequest{ServiceName: "web", QueryOptions: structs.QueryOptions{MinQueryIndex: first.Index, MaxQueryTime: 10 * time.Second}}
		if err := w.s.RPC("Service.Instances", blocking, &resp); err != nil {
			errs <- err
			return
		}
		done <- &resp
	}()
	// An unrelated write (a namespace) does not wake it.
	upsertNamespace(t, w.s, &structs.Namespace{Name: "unrelated"})
	select {
	case r := <-done:
		t.Fatalf("woke without a change: index %d", r.Index)
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(100 * time.Millisecond):
	}
	w.report(t, w.allocs["default"][1].ID, structs.ServiceStatusPassing)
	select {
	case r := <-done:
		if r.Index <= first.Index {
			t.Fatalf("index %d after %d", r.Index, first.Index)
		}
		passing := 0
		for _, inst := range r.Instances {
			if inst.Status == structs.ServiceStatusPassing {
				passing++
			}
		}
		if passing != 2 {
			t.Fatalf("%d passing after the report", passing)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query did not return after the change")
	}
	if idx, _ := w.s.State().Index(state.TableServiceInstances); idx == first.Index {
		t.Fatal("table index did not move")
	}
}

func TestServiceEndpoint_ACL(t *testing.T) {
	w := newServiceWorld(t, true, "team-a", "team-b")
	upsertPolicy(t, w.s, w.mgmt, "team-a-read", `namespace "team-a" { policy = "read" }`)
	reader := createToken(t, w.s, w.mgmt, &structs.ACLTokenCreateRequest{Name: "reader", Policies: []string{"team-a-read"}}).SecretID

	instances := func(token, ns string) (*structs.ServiceInstancesResponse, error) {
		var resp structs.ServiceInstancesResponse
		err := w.s.RPC("Service.Instances", &structs.ServiceInstancesRequest{ServiceName: "web", QueryOptions: query(token, ns)}, &resp)
		return &resp, err
	}
	if _, err := instances("", "team-a"); codeOf(err) != structs.CodePermission {
		t.Fatalf("anonymous: %v", err)
	}
	if _, err := instances(reader, "team-b"); codeOf(err) != structs.CodePermission {
		t.Fatalf("reader in team-b: %v", err)
	}
	if r, err := instances(reader, "team-a"); err != nil || len(r.Instances) != 2 {
		t.Fatalf("reader in team-a: %v", err)
	}
	var list structs.ServiceListResponse
	if err := w.s.RPC("Service.List", &structs.ServiceListRequest{QueryOptions: query(reader, "*")}, &list); err != nil || len(list.Services) != 1 || list.Services[0].Namespace != "team-a" {
		t.Fatalf("reader's list of *: %+v, %v", list.Services, err)
	}
	if err := w.s.RPC("Service.List", &structs.ServiceListRequest{QueryOptions: query("", "*")}, &list); err != nil || len(list.Services) != 0 {
		t.Fatalf("anonymous list of *: %+v, %v", list.Services, err)
	}
	if err := w.s.RPC("Service.List", &structs.ServiceListRequest{QueryOptions: query("", "team-b")}, &list); codeOf(err) != structs.CodePermission {
		t.Fatalf("anonymous list of team-b: %v", err)
	}
	a := w.allocs["team-b"][0]
	if err := w.s.RPC("Alloc.Checks", &structs.AllocChecksRequest{AllocID: a.ID, QueryOptions: query(reader, "")}, &structs.AllocChecksResponse{}); codeOf(err) != structs.CodePermission {
		t.Fatalf("reader's checks of a team-b allocation: %v", err)
	}

	// A client node reads every namespace with its secret, and only
	// with the right one.
	node := structs.ServiceListRequest{NodeID: w.node.ID, SecretID: w.node.SecretID, QueryOptions: query("", "*")}
	if err := w.s.RPC("Service.List", &node, &list); err != nil || len(list.Services) != 2 {
		t.Fatalf("node's list: %+v, %v", list.Services, err)
	}
	var resp structs.ServiceInstancesResponse
	if err := w.s.RPC("Service.Instances", &structs.ServiceInstancesRequest{ServiceName: "web", NodeID: w.node.ID, SecretID: w.node.SecretID, QueryOptions: query("", "team-b")}, &resp); err != nil || len(resp.Instances) != 2 {
		t.Fatalf("node's instances: %v", err)
	}
	bad := structs.ServiceListRequest{NodeID: w.node.ID, SecretID: structs.GenerateUUID(), QueryOptions: query(w.mgmt, "*")}
	if err := w.s.RPC("Service.List", &bad, &list); codeOf(err) != structs.CodePermission {
		t.Fatalf("wrong node secret: %v", err)
	}
}
