package agent

import (
	"fmt"
	"net/http"

	"github.com/droverhq/drover/structs"
)

func (a *Agent) evalGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.EvalSpecificRequest{EvalID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleEvalResponse
	if err := a.RPC("Eval.GetEval", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Eval == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("evaluation %q not found", args.EvalID))
	}
	return resp.Eval, nil
}

func (a *Agent) evalAllocations(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.EvalSpecificRequest{EvalID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.JobAllocationsResponse
	if err := a.RPC("Eval.Allocations", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Allocations, nil
}
