package agent

import (
	"fmt"
	"net/http"

	"github.com/droverhq/drover/structs"
)

func (a *Agent) allocList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.AllocListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.AllocListResponse
	if err := a.RPC("Alloc.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Allocations, nil
}

func (a *Agent) allocGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.AllocSpecificRequest{AllocID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleAllocResponse
	if err := a.RPC("Alloc.GetAlloc", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Alloc == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("allocation %q not found", args.AllocID))
	}
	return resp.Alloc, nil
}
