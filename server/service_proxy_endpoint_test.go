package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// registerVIPJob registers, through Job.Register, a job in ns offering
// service "api" with a vip on port 80 and published port published (0:
// none), and places one running allocation of it on the world's node.
func (w *serviceWorld) registerVIPJob(t *testing.T, ns string, published int) *structs.Allocation {
	t.Helper()
	job := mock.Job()
	job.Namespace = ns
	job.TaskGroups[0].Services = []*structs.Service{{Name: "api", PortLabel: "http", VIP: &structs.ServiceVIP{Port: 80}, PublishedPort: published}}
	req := &structs.JobRegisterRequest{Job: job, WriteRequest: structs.WriteRequest{Namespace: ns, AuthToken: w.mgmt}}
	if err := w.s.RPC("Job.Register", req, &structs.JobRegisterResponse{}); err != nil {
		t.Fatal(err)
	}
	stored, err := w.s.State().JobByID(nil, ns, job.ID)
	if err != nil || stored == nil {
		t.Fatalf("registered job: %v", err)
	}
	a := mock.Alloc(stored, w.node, 0)
	a.Namespace = ns
	a.ClientStatus = structs.AllocClientStatusRunning
	if _, _, err := w.s.raftApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: stored, AllocsPlaced: []*structs.Allocation{a}}); err != nil {
		t.Fatal(err)
	}
	return a
}

func proxyRead(w *serviceWorld, req *structs.ServiceProxyRequest) (*structs.ServiceProxyResponse, error) {
	var resp structs.ServiceProxyResponse
	err := w.s.RPC("Service.Proxy", req, &resp)
	return &resp, err
}

// names renders the services as "ns/name=vip:port,published(instances)".
func names(list []*structs.ProxiedService) string {
	var out []string
	for _, p := range list {
		out = append(out, fmt.Sprintf("%s/%s=%s:%d,%d(%d)", p.Namespace, p.Name, p.VIP, p.VIPPort, p.PublishedPort, len(p.Instances)))
	}
	return strings.Join(out, " ")
}

func TestServiceProxy_NodeSecretReadsEveryNamespace(t *testing.T) {
	w := newServiceWorld(t, false, "default", "team-a")
	w.registerVIPJob(t, "team-a", 0)
	w.registerVIPJob(t, "default", 9090)
	resp, err := proxyRead(w, &structs.ServiceProxyRequest{NodeID: w.node.ID, SecretID: w.node.SecretID})
	if err != nil {
		t.Fatal(err)
	}
	// "web" has neither a vip nor a published port: not proxied.
	const want = "default/api=127.99.0.2:80,9090(1) team-a/api=127.99.0.1:80,0(1)"
	if got := names(resp.Services); got != want || resp.Index == 0 {
		t.Fatalf("services %s (index %d)\nwant %s", got, resp.Index, want)
	}
	for _, p := range resp.Services {
		if inst := p.Instances[0]; inst.VIP != p.VIP || inst.VIPPort != 80 || inst.Address != "10.1.2.3" {
			t.Fatalf("instance %+v", inst)
		}
	}
	if !ClientEndpoint("Service.Proxy") {
		t.Fatal("client certificates may not call Service.Proxy")
	}
}

func TestServiceProxy_ACL(t *testing.T) {
	w := newServiceWorld(t, true, "team-a", "team-b")
	w.registerVIPJob(t, "team-a", 0)
	w.registerVIPJob(t, "team-b", 0)
	upsertPolicy(t, w.s, w.mgmt, "team-a-read", `namespace "team-a" { policy = "read" }`)
	reader := createToken(t, w.s, w.mgmt, &structs.ACLTokenCreateRequest{Name: "reader", Policies: []string{"team-a-read"}}).SecretID

	cases := []struct {
		name string
		req  *structs.ServiceProxyRequest
		want string // "" : refused with code
		code string
	}{
		{"node secret", &structs.ServiceProxyRequest{NodeID: w.node.ID, SecretID: w.node.SecretID}, "team-a/api team-b/api", ""},
		{"management token", &structs.ServiceProxyRequest{QueryOptions: query(w.mgmt, "")}, "team-a/api team-b/api", ""},
		{"team-a reader", &structs.ServiceProxyRequest{QueryOptions: query(reader, "team-b")}, "team-a/api", ""},
		{"anonymous", &structs.ServiceProxyRequest{}, "-", ""},
		{"wrong node secret", &structs.ServiceProxyRequest{NodeID: w.node.ID, SecretID: structs.GenerateUUID(), QueryOptions: query(w.mgmt, "")}, "", structs.CodePermission},
		{"unknown node", &structs.ServiceProxyRequest{NodeID: structs.GenerateUUID(), SecretID: w.node.SecretID}, "", structs.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := proxyRead(w, tc.req)
			if tc.want == "" {
				if codeOf(err) != tc.code {
					t.Fatalf("got %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range resp.Services {
				got = append(got, p.Namespace+"/"+p.Name)
			}
			if g := strings.Join(got, " "); g != strings.TrimPrefix(tc.want, "-") {
				t.Fatalf("services %q, want %q", g, strings.TrimPrefix(tc.want, "-"))
			}
		})
	}
}

// TestServiceProxy_BlockingQuery: a blocking read returns when a
// proxied service's instances change.
func TestServiceProxy_BlockingQuery(t *testing.T) {
	w := newServiceWorld(t, false, "default")
	a := w.registerVIPJob(t, "default", 0)
	base := structs.ServiceProxyRequest{NodeID: w.node.ID, SecretID: w.node.SecretID}
	first, err := proxyRead(w, &base)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *structs.ServiceProxyResponse, 1)
	errs := make(chan error, 1)
	go func() {
		req := base
		req.MinQueryIndex, req.MaxQueryTime = first.Index, 10*time.Second
		resp, err := proxyRead(w, &req)
		if err != nil {
			errs <- err
			return
		}
		done <- resp
	}()
	upsertNamespace(t, w.s, &structs.Namespace{Name: "unrelated"})
	select {
	case r := <-done:
		t.Fatalf("woke without a change: index %d", r.Index)
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(100 * time.Millisecond):
	}
	// The client reports the allocation failed: its instance goes.
	u := &structs.Allocation{ID: a.ID, NodeID: w.node.ID, ClientStatus: structs.AllocClientStatusFailed}
	if _, _, err := w.s.raftApply(structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{Alloc: []*structs.Allocation{u}}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Index <= first.Index || len(r.Services) != 1 || len(r.Services[0].Instances) != 0 || r.Services[0].VIP == "" {
			t.Fatalf("after the change: %s, index %d after %d", names(r.Services), r.Index, first.Index)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query did not return after the change")
	}
}

func TestJobRegister_RefusesServiceConflicts(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0; c.ServiceVIPRange = "127.99.0.0/28" })
	register := func(ns, name string, vip bool, published int) error {
		job := mock.Job()
		job.Namespace = ns
		svc := &structs.Service{Name: name, PortLabel: "http", PublishedPort: published}
		if vip {
			svc.VIP = &structs.ServiceVIP{Port: 80}
		}
		job.TaskGroups[0].Services = []*structs.Service{svc}
		return s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job, WriteRequest: structs.WriteRequest{Namespace: ns}}, &structs.JobRegisterResponse{})
	}
	if err := register("default", "web", false, 8080); err != nil {
		t.Fatal(err)
	}
	err := register("default", "api", false, 8080)
	if codeOf(err) != structs.CodeConflict || !strings.Contains(err.Error(), `published_port 8080 is already used by service "web" in namespace "default"`) {
		t.Fatalf("published port in use: %v", err)
	}
	for i := 0; i < 14; i++ {
		if err := register("default", fmt.Sprintf("s%d", i), true, 0); err != nil {
			t.Fatalf("vip %d: %v", i, err)
		}
	}
	jobsBefore, _ := s.State().Index("jobs")
	err = register("default", "one-more", true, 0)
	if codeOf(err) != structs.CodeConflict || !strings.Contains(err.Error(), "no free virtual address in 127.99.0.0/28 (14 in use)") {
		t.Fatalf("range full: %v", err)
	}
	if after, _ := s.State().Index("jobs"); after != jobsBefore {
		t.Fatal("a refused register was written")
	}
	if v, _ := s.State().ServiceVIP(nil, "default", "s13"); v == nil || v.Address != "127.99.0.14" {
		t.Fatalf("last vip: %+v", v)
	}
}

func TestConfig_ServiceVIPRange(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/16", "127.99.0.0/29", "::1/128", "banana"} {
		c := &Config{ServiceVIPRange: bad, DataDir: t.TempDir()}
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "service_vip_range") {
			t.Fatalf("%s: %v", bad, err)
		}
	}
}
