package agent

import (
	"fmt"
	"net/http"

	"github.com/droverhq/drover/structs"
)

func (a *Agent) deploymentList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.DeploymentListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.DeploymentListResponse
	if err := a.RPC("Deployment.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Deployments == nil {
		resp.Deployments = []*structs.Deployment{}
	}
	return resp.Deployments, nil
}

func (a *Agent) deploymentGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.DeploymentSpecificRequest{DeploymentID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleDeploymentResponse
	if err := a.RPC("Deployment.GetDeployment", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Deployment == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("deployment %q not found", args.DeploymentID))
	}
	return resp.Deployment, nil
}

func (a *Agent) deploymentAllocations(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.DeploymentSpecificRequest{DeploymentID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.JobAllocationsResponse
	if err := a.RPC("Deployment.Allocations", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Allocations == nil {
		resp.Allocations = []*structs.AllocListStub{}
	}
	return resp.Allocations, nil
}

// DeploymentPromoteBody is the body of PUT /v1/deployment/promote/<id>.
type DeploymentPromoteBody struct {
	DeploymentID string
	All          bool
	Groups       []string
}

func (a *Agent) deploymentPromote(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	// No body, or a body naming no groups, promotes every group.
	var body DeploymentPromoteBody
	if r.ContentLength != 0 {
		if err := a.decodeBody(w, r, &body); err != nil {
			return nil, err
		}
	}
	var resp structs.DeploymentUpdateResponse
	args := structs.DeploymentPromoteRequest{DeploymentID: r.PathValue("id"), All: body.All || len(body.Groups) == 0, Groups: body.Groups}
	if err := parseWriteRequest(r, &args.WriteRequest); err != nil {
		return nil, err
	}
	err := a.RPC("Deployment.Promote", &args, &resp)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (a *Agent) deploymentFail(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.DeploymentFailRequest{DeploymentID: r.PathValue("id")}
	if err := parseWriteRequest(r, &args.WriteRequest); err != nil {
		return nil, err
	}
	var resp structs.DeploymentUpdateResponse
	if err := a.RPC("Deployment.Fail", &args, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}
