package agent

import (
	"net/http/httptest"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
)

// serviceRPC answers the service RPCs with fixed data and records the
// requests.
type serviceRPC struct {
	calls map[string]interface{}
}

func (f *serviceRPC) RPC(method string, args, reply interface{}) error {
	f.calls[method] = args
	switch method {
	case "Service.List":
		r := reply.(*structs.ServiceListResponse)
		r.Index = 42
		r.Services = []*structs.ServiceListStub{{Name: "web", Namespace: "default", Tags: []string{"v1"}, Instances: 2, Passing: 1}}
	case "Service.Instances":
		req := args.(*structs.ServiceInstancesRequest)
		r := reply.(*structs.ServiceInstancesResponse)
		r.Index = 43
		if req.ServiceName == "web" {
			r.Instances = []*structs.ServiceInstance{{ID: "a1-web", ServiceName: "web", Namespace: "default", NodeID: "n1", AllocID: "a1",
				Address: "10.0.0.1", Port: 20000, Status: structs.ServiceStatusPassing}}
		}
	case "Alloc.Checks":
		req := args.(*structs.AllocChecksRequest)
		if req.AllocID != "a1" {
			return structs.NewError(structs.CodeNotFound, "allocation not found")
		}
		r := reply.(*structs.AllocChecksResponse)
		r.Index = 44
		r.Checks = map[string]*structs.CheckStatus{"web/alive": {Service: "web", Check: "alive", Status: "passing"}}
	}
	return nil
}

func TestAgentHTTP_Services(t *testing.T) {
	cases := []struct {
		name, path string
		status     int
		body       string // a substring of the body
		index      string
	}{
		{"list", "/v1/services?namespace=*", 200, `"Name":"web","Namespace":"default","Tags":["v1"],"Instances":2,"Passing":1`, "42"},
		{"instances", "/v1/service/web?status=passing", 200, `"ServiceName":"web","Namespace":"default"`, "43"},
		{"unknown service is empty", "/v1/service/nope", 200, `[]`, "43"},
		{"bad status", "/v1/service/web?status=healthy", 400, `invalid_request`, ""},
		{"instances of every namespace", "/v1/service/web?namespace=*", 400, `invalid_request`, ""},
		{"huge name", "/v1/service/" + strings.Repeat("w", 300), 400, `invalid_request`, ""},
		{"bad index", "/v1/service/web?index=x", 400, `invalid_request`, ""},
		{"checks", "/v1/allocation/a1/checks", 200, `"web/alive":{"Service":"web","Check":"alive","Status":"passing"`, "44"},
		{"checks of unknown alloc", "/v1/allocation/zz/checks", 404, `not_found`, ""},
		{"checks of a huge alloc id", "/v1/allocation/" + strings.Repeat("f", 300) + "/checks", 400, `invalid_request`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rpc := &serviceRPC{calls: map[string]interface{}{}}
			a := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger(), rpc: rpc}
			r := httptest.NewRequest("GET", tc.path, nil)
			rec := httptest.NewRecorder()
			a.routes().ServeHTTP(rec, r)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("%d %s\nwant %d with %s", rec.Code, rec.Body, tc.status, tc.body)
			}
			if tc.index != "" && rec.Header().Get("X-Drover-Index") != tc.index {
				t.Fatalf("X-Drover-Index %q, want %s", rec.Header().Get("X-Drover-Index"), tc.index)
			}
		})
	}
}

// TestAgentHTTP_ServicesBlockingAndToken: ?index, ?wait, ?status and
// the token reach the RPC.
func TestAgentHTTP_ServicesBlockingAndToken(t *testing.T) {
	rpc := &serviceRPC{calls: map[string]interface{}{}}
	a := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger(), rpc: rpc}
	code, body := call(t, a.routes(), "GET", "/v1/service/web?index=7&wait=5s&status=critical&namespace=team-a", "", map[string]string{"X-Nomad-Token": "s1"})
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	req := rpc.calls["Service.Instances"].(*structs.ServiceInstancesRequest)
	if req.MinQueryIndex != 7 || req.MaxQueryTime.Seconds() != 5 || req.Status != "critical" || req.Namespace != "team-a" || req.AuthToken != "s1" {
		t.Fatalf("request %+v", req)
	}
}

// TestAgentHTTP_ServicesNeedAToken: with ACLs on, an anonymous request
// is refused (403) by the servers.
func TestAgentHTTP_ServicesNeedAToken(t *testing.T) {
	a := aclAgent(t, true)
	h := a.routes()
	for _, path := range []string{"/v1/services", "/v1/service/web", "/v1/services?namespace=default"} {
		code, body := call(t, h, "GET", path, "", nil)
		if code != 403 {
			t.Fatalf("anonymous GET %s: %d %s", path, code, body)
		}
	}
	// A list of "*" is filtered, not refused: anonymous sees nothing.
	code, body := call(t, h, "GET", "/v1/services?namespace=*", "", nil)
	if code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("anonymous list of *: %d %s", code, body)
	}
}
