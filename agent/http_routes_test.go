package agent

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
)

// routeRPC answers Service.Routes with one route, or with none, and
// records the request.
type routeRPC struct {
	req   *structs.RouteListRequest
	empty bool
}

func (f *routeRPC) RPC(method string, args, reply interface{}) error {
	if method != "Service.Routes" {
		return structs.NewError(structs.CodeInvalid, "unexpected "+method)
	}
	f.req = args.(*structs.RouteListRequest)
	r := reply.(*structs.RouteListResponse)
	r.Index = 51
	if !f.empty {
		r.Routes = []*structs.RouteListStub{{Namespace: "default", ServiceName: "shop", JobID: "shop",
			Route:   &structs.ServiceRoute{Host: "shop.test", Path: "/api", Timeout: time.Minute},
			Passing: 2, Canary: 1, Backends: []string{"10.0.0.1:20000", "10.0.0.2:20001"}}}
	}
	return nil
}

func TestAgentHTTP_Routes(t *testing.T) {
	cases := []struct {
		name, path string
		empty      bool
		status     int
		body       string
	}{
		{"list", "/v1/routes?namespace=*&index=7&wait=5s", false, 200,
			`"ServiceName":"shop","JobID":"shop","Route":{"Host":"shop.test","Path":"/api","Timeout":60000000000},"Passing":2,"Canary":1,"Backends":["10.0.0.1:20000","10.0.0.2:20001"]`},
		{"none is an empty list", "/v1/routes", true, 200, `[]`},
		{"bad index", "/v1/routes?index=x", false, 400, `invalid_request`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rpc := &routeRPC{empty: tc.empty}
			a := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger(), rpc: rpc}
			r := httptest.NewRequest("GET", tc.path, nil)
			r.Header.Set("X-Nomad-Token", "s1")
			rec := httptest.NewRecorder()
			a.routes().ServeHTTP(rec, r)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("%d %s\nwant %d with %s", rec.Code, rec.Body, tc.status, tc.body)
			}
			if tc.status != 200 {
				return
			}
			if rec.Header().Get("X-Drover-Index") != "51" {
				t.Fatalf("X-Drover-Index %q", rec.Header().Get("X-Drover-Index"))
			}
			if rpc.req.AuthToken != "s1" {
				t.Fatalf("request %+v", rpc.req)
			}
			if tc.name == "list" && (rpc.req.Namespace != "*" || rpc.req.MinQueryIndex != 7 || rpc.req.MaxQueryTime != 5*time.Second) {
				t.Fatalf("request %+v", rpc.req)
			}
		})
	}
}
