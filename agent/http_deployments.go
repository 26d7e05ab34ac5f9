package agent

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/droverhq/drover/structs"
)

// JobPlanBody is the body of PUT /v1/job/<id>/plan.
type JobPlanBody struct {
	Job  *structs.Job
	Diff bool
}

func (a *Agent) jobPlan(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body JobPlanBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	if body.Job == nil {
		return nil, &structs.ValidationError{Problems: []structs.FieldError{{Path: "Job", Message: `missing; send {"Job": {...}}`}}}
	}
	if body.Job.ID != r.PathValue("id") {
		return nil, badRequest("job ID %q in the body does not match %q in the path", body.Job.ID, r.PathValue("id"))
	}
	// The same checks (and limits) as a registration, with every
	// problem's field path, before the server plans anything.
	body.Job.Canonicalize()
	if err := a.validateJob(body.Job); err != nil {
		var verr *structs.ValidationError
		if errors.As(err, &verr) {
			for i := range verr.Problems {
				verr.Problems[i].Path = joinPath("Job", verr.Problems[i].Path)
			}
		}
		return nil, err
	}
	var resp structs.JobPlanResponse
	if err := a.RPC("Job.Plan", &structs.JobPlanRequest{Job: body.Job, Diff: body.Diff}, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// JobRevertBody is the body of PUT /v1/job/<id>/revert.
type JobRevertBody struct {
	JobID               string
	JobVersion          uint64
	EnforcePriorVersion *uint64
}

func (a *Agent) jobRevert(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body JobRevertBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	var resp structs.JobRegisterResponse
	err := a.RPC("Job.Revert", &structs.JobRevertRequest{JobID: r.PathValue("id"), JobVersion: body.JobVersion, EnforcePriorVersion: body.EnforcePriorVersion}, &resp)
	if err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return resp, nil
}

// JobStableBody is the body of PUT /v1/job/<id>/stable.
type JobStableBody struct {
	JobID      string
	JobVersion uint64
	Stable     bool
}

func (a *Agent) jobStable(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body JobStableBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	var resp structs.GenericResponse
	if err := a.RPC("Job.Stable", &structs.JobStabilityRequest{JobID: r.PathValue("id"), JobVersion: body.JobVersion, Stable: body.Stable}, &resp); err != nil {
		return nil, err
	}
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) jobDeployments(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.DeploymentListResponse
	if err := a.RPC("Job.Deployments", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Deployments == nil {
		resp.Deployments = []*structs.Deployment{}
	}
	return resp.Deployments, nil
}

func (a *Agent) jobLatestDeployment(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleDeploymentResponse
	if err := a.RPC("Job.LatestDeployment", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Deployment, nil
}

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
	err := a.RPC("Deployment.Promote", &structs.DeploymentPromoteRequest{DeploymentID: r.PathValue("id"), All: body.All || len(body.Groups) == 0, Groups: body.Groups}, &resp)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (a *Agent) deploymentFail(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var resp structs.DeploymentUpdateResponse
	if err := a.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: r.PathValue("id")}, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

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
	var resp structs.GenericResponse
	if err := a.RPC("Node.UpdateEligibility", &structs.NodeUpdateEligibilityRequest{NodeID: r.PathValue("id"), Eligibility: body.Eligibility}, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) schedulerConfigGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.GenericRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SchedulerConfigResponse
	if err := a.RPC("Operator.SchedulerGetConfiguration", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return map[string]interface{}{"SchedulerConfig": resp.Config, "Index": resp.Index}, nil
}

func (a *Agent) schedulerConfigSet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body structs.SchedulerConfiguration
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	var resp structs.GenericResponse
	if err := a.RPC("Operator.SchedulerSetConfiguration", &structs.SchedulerSetConfigRequest{Config: body}, &resp); err != nil {
		return nil, err
	}
	return map[string]interface{}{"Updated": true, "Index": resp.Index}, nil
}
