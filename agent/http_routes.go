package agent

import (
	"net/http"

	"github.com/droverhq/drover/structs"
)

// Ingress routes over HTTP:
//
//	GET /v1/routes    the routes of the services of ?namespace=NAME|*,
//	                  with their passing backends, sorted by host then path
//
// A blocking query (?index=&wait=) with the X-Drover-Index headers of
// the other reads; the JSON is structs.RouteListStub.

func (a *Agent) routeList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.RouteListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.RouteListResponse
	if err := a.RPC("Service.Routes", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Routes == nil {
		resp.Routes = []*structs.RouteListStub{}
	}
	return resp.Routes, nil
}
