package agent

import (
	"fmt"
	"net/http"
	"time"

	"github.com/droverhq/drover/structs"
)

// DrainSpec is how a drain is asked for over HTTP (Nomad's shape).
type DrainSpec struct {
	// Deadline in nanoseconds; 0 none, negative: force now.
	Deadline         time.Duration
	IgnoreSystemJobs bool
}

// NodeDrainBody is the body of PUT /v1/node/<id>/drain; a null
// DrainSpec stops the drain.
type NodeDrainBody struct {
	NodeID       string
	DrainSpec    *DrainSpec
	MarkEligible bool
}

func (a *Agent) nodeDrain(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body NodeDrainBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	req := structs.NodeUpdateDrainRequest{NodeID: r.PathValue("id"), MarkEligible: body.MarkEligible}
	req.AuthToken = authToken(r)
	if body.DrainSpec != nil {
		req.DrainStrategy = &structs.DrainStrategy{Deadline: body.DrainSpec.Deadline, IgnoreSystemJobs: body.DrainSpec.IgnoreSystemJobs}
	}
	var resp structs.GenericResponse
	if err := a.RPC("Node.UpdateDrain", &req, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}

// NodeEligibilityBody is the body of PUT /v1/node/<id>/eligibility.
type NodeEligibilityBody struct {
	NodeID      string
	Eligibility string
}

func (a *Agent) nodeEligibility(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body NodeEligibilityBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	args := structs.NodeUpdateEligibilityRequest{NodeID: r.PathValue("id"), Eligibility: body.Eligibility}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("Node.UpdateEligibility", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) nodeList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.NodeListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.NodeListResponse
	if err := a.RPC("Node.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Nodes, nil
}

func (a *Agent) nodeGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.NodeSpecificRequest{NodeID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleNodeResponse
	if err := a.RPC("Node.GetNode", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Node == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("node %q not found", args.NodeID))
	}
	return resp.Node, nil
}

func (a *Agent) nodeAllocations(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.NodeSpecificRequest{NodeID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.NodeAllocsResponse
	if err := a.RPC("Node.GetAllocs", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Allocs, nil
}
