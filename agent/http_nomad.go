package agent

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/jobspec"
	"github.com/droverhq/drover/structs"
)

// Endpoints that Nomad's tools and Go API client call and Drover
// answers in Nomad's shapes (issue 19; docs/nomad-compatibility.md).
// They are built from Drover's own RPCs, so the servers authorize them
// as they do those RPCs (the request's token is carried through).

// nomadRegion is Drover's one region, under the name Nomad gives a
// cluster that names none.
const nomadRegion = "global"

// NomadJobSummary is Nomad's JobSummary: per task group, how many of
// the job's allocations are in each client state.
type NomadJobSummary struct {
	JobID       string
	Namespace   string
	Summary     map[string]NomadTaskGroupSummary
	Children    *NomadJobChildrenSummary
	CreateIndex uint64
	ModifyIndex uint64
}

// NomadTaskGroupSummary counts one group's allocations by state.
// Queued is what the newest evaluation could not place yet.
type NomadTaskGroupSummary struct {
	Queued   int
	Complete int
	Failed   int
	Running  int
	Starting int
	Lost     int
	Unknown  int
}

// NomadJobChildrenSummary counts child jobs; Drover has none (no
// periodic or parameterized jobs), so it is always zero.
type NomadJobChildrenSummary struct {
	Pending int64
	Running int64
	Dead    int64
}

// jobSummary answers GET /v1/job/<id>/summary from the job's
// allocations (a blocking query on them) and its newest evaluation.
func (a *Agent) jobSummary(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var allocs structs.JobAllocationsResponse
	if err := a.RPC("Job.Allocations", &args, &allocs); err != nil {
		return nil, err
	}
	// The job and its evaluations as of now, without blocking again.
	now := args
	now.MinQueryIndex = 0
	var job structs.SingleJobResponse
	if err := a.RPC("Job.GetJob", &now, &job); err != nil {
		return nil, err
	}
	if job.Job == nil {
		return nil, nomadJobNotFound(args.JobID, args.RequestNamespace())
	}
	var evals structs.JobEvaluationsResponse
	if err := a.RPC("Job.Evaluations", &now, &evals); err != nil {
		return nil, err
	}
	meta := allocs.QueryMeta
	meta.Index = max(meta.Index, job.Index, evals.Index)
	setMeta(w, meta)
	return buildJobSummary(job.Job, allocs.Allocations, evals.Evaluations), nil
}

// buildJobSummary counts allocations per group and state (every group
// of the job appears, with zeros if it has no allocations); Queued comes
// from the newest evaluation.
func buildJobSummary(job *structs.Job, allocs []*structs.AllocListStub, evals []*structs.Evaluation) *NomadJobSummary {
	sum := &NomadJobSummary{
		JobID: job.ID, Namespace: job.Namespace,
		Summary:     map[string]NomadTaskGroupSummary{},
		Children:    &NomadJobChildrenSummary{},
		CreateIndex: job.CreateIndex, ModifyIndex: job.ModifyIndex,
	}
	for _, tg := range job.TaskGroups {
		sum.Summary[tg.Name] = NomadTaskGroupSummary{}
	}
	for _, al := range allocs {
		s := sum.Summary[al.TaskGroup]
		switch al.ClientStatus {
		case structs.AllocClientStatusPending:
			s.Starting++
		case structs.AllocClientStatusRunning:
			s.Running++
		case structs.AllocClientStatusComplete:
			s.Complete++
		case structs.AllocClientStatusFailed:
			s.Failed++
		case structs.AllocClientStatusLost:
			s.Lost++
		default:
			s.Unknown++
		}
		sum.Summary[al.TaskGroup] = s
	}
	var newest *structs.Evaluation
	for _, e := range evals {
		if newest == nil || e.CreateIndex > newest.CreateIndex {
			newest = e
		}
	}
	if newest != nil {
		for group, n := range newest.QueuedAllocations {
			if s, ok := sum.Summary[group]; ok {
				s.Queued = n
				sum.Summary[group] = s
			}
		}
	}
	return sum
}

// NomadScaleBody is Nomad's ScalingRequest, the body of PUT
// /v1/job/<id>/scale.
type NomadScaleBody struct {
	// Count is the group's new count. Nomad also takes a request
	// without one (it only records a scaling event); Drover keeps no
	// scaling events, so Count is required.
	Count *int64
	// Target names the group: {"Group": "web"}.
	Target map[string]string
	// Message, Error and Meta describe Nomad's scaling event; Drover
	// keeps no events: Message and Meta are accepted and dropped, Error
	// (an event recording a failure) is refused.
	Message string
	Error   bool
	Meta    map[string]interface{}
	// JobModifyIndex, when not 0, makes the change fail unless the job's
	// spec is still at that index.
	JobModifyIndex uint64
	PolicyOverride bool
	// Nomad's WriteRequest.
	Region    string
	Namespace string
	SecretID  string
}

// jobScale answers PUT /v1/job/<id>/scale: the job is read, the group's
// count changed, and the job registered again, enforcing the index it
// was read at, so a concurrent change of the job is not overwritten (it
// gets a 409 to retry).
func (a *Agent) jobScale(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body NomadScaleBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	var problems []structs.FieldError
	group := body.Target["Group"]
	for k, v := range body.Target {
		switch k {
		case "Group":
		case "Job":
			// Nomad's client names the job here as well as in the path.
			if v != r.PathValue("id") {
				problems = append(problems, structs.FieldError{Path: `Target["Job"]`, Message: fmt.Sprintf("%q does not match job %q in the path", v, r.PathValue("id"))})
			}
		case "Namespace":
			// The namespace is the request's (?namespace=); a target
			// naming another one is refused by the check below.
		default:
			problems = append(problems, structs.FieldError{Path: fmt.Sprintf("Target[%q]", k), Message: `unknown scaling target; accepted: "Job", "Group", "Namespace"`})
		}
	}
	if group == "" {
		problems = append(problems, structs.FieldError{Path: `Target["Group"]`, Message: `missing; name the task group to scale: {"Target": {"Group": "web"}}`})
	}
	switch {
	case body.Count == nil:
		problems = append(problems, structs.FieldError{Path: "Count", Message: "missing; Drover records no scaling events, so a scale request must set the new count"})
	case *body.Count < 0 || *body.Count > math.MaxInt32:
		// The job's limits (max_count_per_group) are checked on the
		// scaled job below.
		problems = append(problems, structs.FieldError{Path: "Count", Message: fmt.Sprintf("%d is out of range; use 0 or more", *body.Count)})
	}
	if body.Error {
		problems = append(problems, structs.FieldError{Path: "Error", Message: "scaling events (with or without an error) are not supported"})
	}
	if body.PolicyOverride {
		problems = append(problems, structs.FieldError{Path: "PolicyOverride", Message: "Sentinel policy overrides are not supported (Drover has no Sentinel policies)"})
	}
	if body.Region != "" && body.Region != nomadRegion {
		problems = append(problems, structs.FieldError{Path: "Region", Message: `regions other than "global" are not supported (Drover has one region)`})
	}
	if body.Namespace != "" || body.SecretID != "" {
		problems = append(problems, structs.FieldError{Path: "Namespace", Message: "a namespace or token in the request body is not supported; use ?namespace= and the X-Nomad-Token header"})
	}
	if len(problems) > 0 {
		return nil, &structs.ValidationError{Problems: problems}
	}

	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	if ns, ok := body.Target["Namespace"]; ok && ns != args.RequestNamespace() {
		return nil, &structs.ValidationError{Problems: []structs.FieldError{{Path: `Target["Namespace"]`, Message: fmt.Sprintf("%q does not match the request's namespace %q (?namespace=)", ns, args.RequestNamespace())}}}
	}
	var cur structs.SingleJobResponse
	if err := a.RPC("Job.GetJob", &args, &cur); err != nil {
		return nil, err
	}
	if cur.Job == nil {
		return nil, nomadJobNotFound(args.JobID, args.RequestNamespace())
	}
	job := cur.Job.Copy()
	if body.JobModifyIndex != 0 && body.JobModifyIndex != job.JobModifyIndex {
		return nil, structs.NewError(structs.CodeConflict, fmt.Sprintf("job %q is at modify index %d, not %d: it changed since it was read; read it again and retry", job.ID, job.JobModifyIndex, body.JobModifyIndex))
	}
	if job.Stop {
		return nil, badRequest("job %q is stopped; start it again (job run) before scaling it", job.ID)
	}
	var tg *structs.TaskGroup
	names := make([]string, 0, len(job.TaskGroups))
	for _, g := range job.TaskGroups {
		names = append(names, g.Name)
		if g.Name == group {
			tg = g
		}
	}
	if tg == nil {
		sort.Strings(names)
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("job %q has no task group %q; its groups: %v", job.ID, group, names))
	}
	tg.Count = int(*body.Count)
	job.Canonicalize()
	if err := a.validateJob(job); err != nil {
		var verr *structs.ValidationError
		if errors.As(err, &verr) {
			for i := range verr.Problems {
				verr.Problems[i].Path = joinPath("Job", verr.Problems[i].Path)
			}
		}
		return nil, err
	}
	var resp structs.JobRegisterResponse
	err := a.RPC("Job.Register", &structs.JobRegisterRequest{
		Job: job, EnforceIndex: true, JobModifyIndex: cur.Job.JobModifyIndex,
		WriteRequest: structs.WriteRequest{Namespace: job.Namespace, AuthToken: authToken(r)},
	}, &resp)
	if err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return resp, nil
}

// NomadJobScaleStatus is Nomad's JobScaleStatusResponse.
type NomadJobScaleStatus struct {
	JobID          string
	Namespace      string
	JobCreateIndex uint64
	JobModifyIndex uint64
	JobStopped     bool
	TaskGroups     map[string]NomadTaskGroupScaleStatus
}

// NomadTaskGroupScaleStatus is one group's scale status. Events is
// always empty: Drover records no scaling events.
type NomadTaskGroupScaleStatus struct {
	Desired   int
	Placed    int
	Running   int
	Healthy   int
	Unhealthy int
	Events    []struct{}
}

// jobScaleStatus answers GET /v1/job/<id>/scale.
func (a *Agent) jobScaleStatus(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	if err := parseSingleQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var job structs.SingleJobResponse
	if err := a.RPC("Job.GetJob", &args, &job); err != nil {
		return nil, err
	}
	if job.Job == nil {
		return nil, nomadJobNotFound(args.JobID, args.RequestNamespace())
	}
	now := args
	now.MinQueryIndex = 0
	var allocs structs.JobAllocationsResponse
	if err := a.RPC("Job.Allocations", &now, &allocs); err != nil {
		return nil, err
	}
	meta := job.QueryMeta
	meta.Index = max(meta.Index, allocs.Index)
	setMeta(w, meta)
	out := &NomadJobScaleStatus{
		JobID: job.Job.ID, Namespace: job.Job.Namespace,
		JobCreateIndex: job.Job.CreateIndex, JobModifyIndex: job.Job.JobModifyIndex,
		JobStopped: job.Job.Stop, TaskGroups: map[string]NomadTaskGroupScaleStatus{},
	}
	for _, tg := range job.Job.TaskGroups {
		out.TaskGroups[tg.Name] = NomadTaskGroupScaleStatus{Desired: tg.Count, Events: []struct{}{}}
	}
	for _, al := range allocs.Allocations {
		s, ok := out.TaskGroups[al.TaskGroup]
		if !ok || al.DesiredStatus != structs.AllocDesiredStatusRun || al.JobVersion != job.Job.Version {
			continue
		}
		s.Placed++
		if al.ClientStatus == structs.AllocClientStatusRunning {
			s.Running++
		}
		if ds := al.DeploymentStatus; ds != nil && ds.Healthy != nil {
			if *ds.Healthy {
				s.Healthy++
			} else {
				s.Unhealthy++
			}
		}
		out.TaskGroups[al.TaskGroup] = s
	}
	return out, nil
}

// regions answers GET /v1/regions: Drover has one region.
func (a *Agent) regions(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	return []string{nomadRegion}, nil
}

// agentServers answers GET /v1/agent/servers: the RPC addresses of the
// servers this agent knows, as Nomad lists them (the Raft peers).
func (a *Agent) agentServers(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var peers []string
	if err := a.RPC("Status.Peers", &structs.GenericRequest{}, &peers); err != nil {
		return nil, err
	}
	if peers == nil {
		peers = []string{}
	}
	sort.Strings(peers)
	return peers, nil
}

// nomadJobNotFound is the 404 of a job read: Nomad's text ("job not
// found"), with which job and namespace.
func nomadJobNotFound(id, ns string) error {
	return structs.NewError(structs.CodeNotFound, fmt.Sprintf("job not found: %q in namespace %q", id, ns))
}

// NomadParseBody is Nomad's JobsParseRequest, the body of PUT
// /v1/jobs/parse.
type NomadParseBody struct {
	// JobHCL is a job file in Drover's HCL (Nomad's job language, the
	// subset Drover supports).
	JobHCL string
	// Variables (an HCL variables file) are refused unless empty:
	// Drover's job files take no input variables.
	Variables string
	// Canonicalize fills in defaults before the job is returned.
	Canonicalize bool
	// HCLv1 (Nomad's old parser) is refused unless false.
	HCLv1 bool `json:"hclv1"`
}

// jobsParse answers PUT /v1/jobs/parse: the HCL job as JSON, the shape
// PUT /v1/jobs takes. As with validate, nothing reaches the servers, so
// the agent authorizes it: read-job in the job's namespace (Nomad's
// parse-job is implied by read-job).
func (a *Agent) jobsParse(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body NomadParseBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	if body.HCLv1 {
		return nil, &structs.ValidationError{Problems: []structs.FieldError{{Path: "hclv1", Message: "Nomad's HCL1 parser is not supported; send HCL2 (Drover's job files)"}}}
	}
	if body.Variables != "" {
		return nil, &structs.ValidationError{Problems: []structs.FieldError{{Path: "Variables", Message: "HCL variables are not supported; Drover's job files take no input variables"}}}
	}
	if body.JobHCL == "" {
		return nil, &structs.ValidationError{Problems: []structs.FieldError{{Path: "JobHCL", Message: "missing; send the job file's text"}}}
	}
	job, err := jobspec.Parse("job.hcl", []byte(body.JobHCL))
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if err := jobNamespace(r, job); err != nil {
		return nil, err
	}
	setRequestNamespace(r, job.Namespace)
	if err := a.requireNamespace(r, job.Namespace, acl.CapabilityReadJob); err != nil {
		return nil, err
	}
	if body.Canonicalize {
		job.Canonicalize()
	}
	return job, nil
}
