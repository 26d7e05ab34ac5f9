package agent

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/structs"
)

// JobRegisterBody is the body of PUT /v1/jobs, as in Nomad: the job in
// "Job", with optional optimistic concurrency.
type JobRegisterBody struct {
	Job *structs.Job
	// EnforceIndex makes the registration fail unless the job's current
	// JobModifyIndex equals JobModifyIndex (0: the job must not exist).
	EnforceIndex   bool
	JobModifyIndex uint64
}

// decodeJobBody reads a JobRegisterBody, places the job in its
// namespace (see jobNamespace), canonicalizes and validates it.
// Validation problems come back as a *structs.ValidationError with
// paths under "Job.".
//
// authorize, when not nil, is called with the job's namespace before
// the job is validated (jobValidate checks read-job there).
func (a *Agent) decodeJobBody(w http.ResponseWriter, r *http.Request, authorize func(ns string) error) (*JobRegisterBody, error) {
	var body JobRegisterBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	if body.Job == nil {
		return nil, &structs.ValidationError{Problems: []structs.FieldError{{Path: "Job", Message: `missing; send {"Job": {...}}`}}}
	}
	if err := jobNamespace(r, body.Job); err != nil {
		return nil, err
	}
	setRequestNamespace(r, body.Job.Namespace)
	if authorize != nil {
		if err := authorize(body.Job.Namespace); err != nil {
			return nil, err
		}
	}
	translateNomadJob(body.Job)
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
	if id := r.PathValue("id"); id != "" && id != body.Job.ID {
		return nil, badRequest("job ID %q in the body does not match %q in the path", body.Job.ID, id)
	}
	return &body, nil
}

// jobNamespace settles the namespace of a job sent for registration or
// planning before Canonicalize would put a job without one in the
// default namespace: the job's own, else ?namespace=, else the default;
// a job and a request naming different namespaces are refused (400).
// The server decides the same way (structs.JobNamespace) for RPC
// callers.
func jobNamespace(r *http.Request, job *structs.Job) error {
	reqNS, err := queryNamespace(r, false)
	if err != nil {
		return err
	}
	ns, err := structs.JobNamespace(job.Namespace, reqNS)
	if err != nil {
		return err
	}
	job.Namespace = ns
	return nil
}

// validateJob checks a canonicalized job: Job.Validate, and on an agent
// that runs a server, that server's admission limits too. The server
// checks the limits again when the RPC arrives (this agent's server may
// not be the leader, and the nodes may change); checking here as well
// lets the refusal carry its problems as a list (net/rpc passes errors
// as strings).
func (a *Agent) validateJob(job *structs.Job) error {
	if a.server == nil {
		return job.Validate()
	}
	err := a.server.CheckJobLimits(job)
	var verr *structs.ValidationError
	if err != nil && !errors.As(err, &verr) {
		// The state could not be read; leave the limits to the server.
		return job.Validate()
	}
	return err
}

func (a *Agent) jobRegister(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	body, err := a.decodeJobBody(w, r, nil)
	if err != nil {
		return nil, err
	}
	var resp structs.JobRegisterResponse
	err = a.RPC("Job.Register", &structs.JobRegisterRequest{
		Job: body.Job, EnforceIndex: body.EnforceIndex, JobModifyIndex: body.JobModifyIndex,
		WriteRequest: structs.WriteRequest{Namespace: body.Job.Namespace, AuthToken: authToken(r)},
	}, &resp)
	if err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return resp, nil
}

// jobValidate checks a job without registering it. It is answered by
// this agent (the servers are not asked), so it is authorized here: as
// in Nomad, read-job in the job's namespace.
func (a *Agent) jobValidate(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	authorize := func(ns string) error { return a.requireNamespace(r, ns, acl.CapabilityReadJob) }
	if _, err := a.decodeJobBody(w, r, authorize); err != nil {
		var verr *structs.ValidationError
		if errors.As(err, &verr) {
			msgs := make([]string, len(verr.Problems))
			for i, p := range verr.Problems {
				msgs[i] = p.Error()
			}
			return map[string]interface{}{"ValidationErrors": msgs, "Problems": verr.Problems, "Error": err.Error()}, nil
		}
		return nil, err
	}
	return map[string]interface{}{"ValidationErrors": []string{}, "Error": ""}, nil
}

func (a *Agent) jobList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.JobListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.JobListResponse
	if err := a.RPC("Job.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Jobs, nil
}

func (a *Agent) jobGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleJobResponse
	if err := a.RPC("Job.GetJob", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Job == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("job %q not found in namespace %q", args.JobID, args.RequestNamespace()))
	}
	return resp.Job, nil
}

func (a *Agent) jobDeregister(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobDeregisterRequest{JobID: r.PathValue("id")}
	if err := parseWriteRequest(r, &args.WriteRequest); err != nil {
		return nil, err
	}
	if s := r.URL.Query().Get("purge"); s != "" {
		purge, err := strconv.ParseBool(s)
		if err != nil {
			return nil, badRequest("purge=%q is not a boolean", s)
		}
		args.Purge = purge
	}
	var resp structs.JobDeregisterResponse
	if err := a.RPC("Job.Deregister", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return resp, nil
}

func (a *Agent) jobAllocations(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.JobAllocationsResponse
	if err := a.RPC("Job.Allocations", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Allocations, nil
}

func (a *Agent) jobEvaluations(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.JobEvaluationsResponse
	if err := a.RPC("Job.Evaluations", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Evaluations, nil
}

func (a *Agent) jobVersions(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.JobVersionsResponse
	if err := a.RPC("Job.Versions", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	out := map[string]interface{}{"Versions": resp.Versions}
	if r.URL.Query().Get("diffs") == "true" {
		// Diffs[i] is what changed from the version before Versions[i]
		// (newest first); the oldest kept version has no diff.
		diffs := make([]*structs.JobDiff, len(resp.Versions))
		for i := 0; i+1 < len(resp.Versions); i++ {
			d, err := resp.Versions[i+1].Diff(resp.Versions[i], false)
			if err != nil {
				return nil, err
			}
			diffs[i] = d
		}
		out["Diffs"] = diffs
	}
	return out, nil
}

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
	if err := jobNamespace(r, body.Job); err != nil {
		return nil, err
	}
	setRequestNamespace(r, body.Job.Namespace)
	// The same checks (and limits) as a registration, with every
	// problem's field path, before the server plans anything.
	translateNomadJob(body.Job)
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
	if err := a.RPC("Job.Plan", &structs.JobPlanRequest{Job: body.Job, Diff: body.Diff, WriteRequest: structs.WriteRequest{Namespace: body.Job.Namespace, AuthToken: authToken(r)}}, &resp); err != nil {
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
	args := structs.JobRevertRequest{JobID: r.PathValue("id"), JobVersion: body.JobVersion, EnforcePriorVersion: body.EnforcePriorVersion}
	if err := parseWriteRequest(r, &args.WriteRequest); err != nil {
		return nil, err
	}
	var resp structs.JobRegisterResponse
	err := a.RPC("Job.Revert", &args, &resp)
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
	args := structs.JobStabilityRequest{JobID: r.PathValue("id"), JobVersion: body.JobVersion, Stable: body.Stable}
	if err := parseWriteRequest(r, &args.WriteRequest); err != nil {
		return nil, err
	}
	var resp structs.GenericResponse
	if err := a.RPC("Job.Stable", &args, &resp); err != nil {
		return nil, err
	}
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) jobDeployments(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
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
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.SingleDeploymentResponse
	if err := a.RPC("Job.LatestDeployment", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	return resp.Deployment, nil
}
