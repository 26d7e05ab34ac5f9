package agent

import (
	"fmt"
	"net/http"

	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
)

// Service discovery over HTTP:
//
//	GET /v1/services                   stubs per (namespace, name); ?namespace=NAME|*
//	GET /v1/service/{name}             the name's instances; ?status=passing|warning|critical|terminating
//	GET /v1/allocation/{id}/checks     an allocation's check results, by "<service>/<check>"
//
// All are blocking queries (?index=&wait=) with the X-Drover-Index
// headers of the other reads. The paths are Nomad's; the JSON is
// Drover's own (ServiceListStub, ServiceInstance), whoever asks: a
// Nomad client reading them gets the same fields (ServiceName,
// Namespace, NodeID, AllocID, Address, Port, Tags, Status, Checks, ID).

// maxPathID bounds a name or ID taken from a path before any RPC.
const maxPathID = 253

func (a *Agent) serviceList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.ServiceListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.ServiceListResponse
	if err := a.RPC("Service.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Services == nil {
		resp.Services = []*structs.ServiceListStub{}
	}
	return resp.Services, nil
}

func (a *Agent) serviceInstances(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.ServiceInstancesRequest{ServiceName: r.PathValue("name"), Status: r.URL.Query().Get("status")}
	if args.ServiceName == "" || len(args.ServiceName) > maxPathID {
		return nil, badRequest("service name must be 1 to %d bytes", maxPathID)
	}
	if err := server.ValidServiceStatus(args.Status); err != nil {
		return nil, err
	}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.ServiceInstancesResponse
	if err := a.RPC("Service.Instances", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Instances == nil {
		// An unknown service has no instances: [], not null or a 404.
		resp.Instances = []*structs.ServiceInstance{}
	}
	return resp.Instances, nil
}

func (a *Agent) allocChecks(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.AllocChecksRequest{AllocID: r.PathValue("id")}
	if args.AllocID == "" || len(args.AllocID) > maxPathID {
		return nil, badRequest("allocation ID must be 1 to %d bytes", maxPathID)
	}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.AllocChecksResponse
	if err := a.RPC("Alloc.Checks", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Checks == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("allocation %q not found", args.AllocID))
	}
	return resp.Checks, nil
}
