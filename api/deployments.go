package api

import (
	"net/http"
	"time"
)

// Revert registers an earlier version of a job again. enforcePrior, when
// not nil, makes it fail unless the job is at that version.
func (j *Jobs) Revert(id string, version uint64, enforcePrior *uint64) (*JobRegisterResponse, error) {
	var resp JobRegisterResponse
	body := map[string]interface{}{"JobID": id, "JobVersion": version}
	if enforcePrior != nil {
		body["EnforcePriorVersion"] = *enforcePrior
	}
	if _, err := j.c.write(http.MethodPut, "/v1/job/"+escape(id)+"/revert", nil, body, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Stable marks a job version stable or not.
func (j *Jobs) Stable(id string, version uint64, stable bool) error {
	_, err := j.c.write(http.MethodPut, "/v1/job/"+escape(id)+"/stable", nil, map[string]interface{}{"JobID": id, "JobVersion": version, "Stable": stable}, nil)
	return err
}

// Deployments lists a job's deployments, newest first.
func (j *Jobs) Deployments(id string, q *QueryOptions) ([]*Deployment, *QueryMeta, error) {
	var out []*Deployment
	meta, err := j.c.query("/v1/job/"+escape(id)+"/deployments", &out, q)
	return out, meta, err
}

// LatestDeployment returns a job's newest deployment, nil if none.
func (j *Jobs) LatestDeployment(id string, q *QueryOptions) (*Deployment, *QueryMeta, error) {
	var out *Deployment
	meta, err := j.c.query("/v1/job/"+escape(id)+"/deployment", &out, q)
	return out, meta, err
}

// Deployments returns the deployment endpoints.
func (c *Client) Deployments() *Deployments { return &Deployments{c: c} }

// Deployments is /v1/deployments and /v1/deployment.
type Deployments struct{ c *Client }

// List lists deployments.
func (d *Deployments) List(q *QueryOptions) ([]*Deployment, *QueryMeta, error) {
	var out []*Deployment
	meta, err := d.c.query("/v1/deployments", &out, q)
	return out, meta, err
}

// Info reads a deployment.
func (d *Deployments) Info(id string, q *QueryOptions) (*Deployment, *QueryMeta, error) {
	var out Deployment
	meta, err := d.c.query("/v1/deployment/"+escape(id), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Allocations lists a deployment's allocations.
func (d *Deployments) Allocations(id string, q *QueryOptions) ([]*AllocationListStub, *QueryMeta, error) {
	var out []*AllocationListStub
	meta, err := d.c.query("/v1/deployment/allocations/"+escape(id), &out, q)
	return out, meta, err
}

// Promote promotes canaries: every group's, or the named groups'.
func (d *Deployments) Promote(id string, groups []string) (*DeploymentUpdateResponse, error) {
	var resp DeploymentUpdateResponse
	body := map[string]interface{}{"DeploymentID": id, "All": len(groups) == 0, "Groups": groups}
	if _, err := d.c.write(http.MethodPut, "/v1/deployment/promote/"+escape(id), nil, body, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Fail fails a running deployment (reverting the job if it asks for it).
func (d *Deployments) Fail(id string) (*DeploymentUpdateResponse, error) {
	var resp DeploymentUpdateResponse
	if _, err := d.c.write(http.MethodPut, "/v1/deployment/fail/"+escape(id), nil, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Drain starts a drain (deadline 0: none; negative: force at once), or
// stops it when enable is false (markEligible makes the node eligible).
func (n *Nodes) Drain(id string, enable bool, deadline time.Duration, ignoreSystem, markEligible bool) error {
	body := map[string]interface{}{"NodeID": id, "MarkEligible": markEligible}
	if enable {
		body["DrainSpec"] = map[string]interface{}{"Deadline": deadline, "IgnoreSystemJobs": ignoreSystem}
	} else {
		body["DrainSpec"] = nil
	}
	_, err := n.c.write(http.MethodPut, "/v1/node/"+escape(id)+"/drain", nil, body, nil)
	return err
}

// Eligibility makes a node eligible or ineligible for new allocations.
func (n *Nodes) Eligibility(id string, eligible bool) error {
	e := "ineligible"
	if eligible {
		e = "eligible"
	}
	_, err := n.c.write(http.MethodPut, "/v1/node/"+escape(id)+"/eligibility", nil, map[string]interface{}{"NodeID": id, "Eligibility": e}, nil)
	return err
}

// SchedulerGetConfiguration returns the scheduler configuration.
func (o *Operator) SchedulerGetConfiguration() (*SchedulerConfiguration, error) {
	var out struct{ SchedulerConfig *SchedulerConfiguration }
	if _, err := o.c.query("/v1/operator/scheduler/configuration", &out, nil); err != nil {
		return nil, err
	}
	return out.SchedulerConfig, nil
}

// SchedulerSetConfiguration replaces the scheduler configuration.
func (o *Operator) SchedulerSetConfiguration(c *SchedulerConfiguration) error {
	_, err := o.c.write(http.MethodPut, "/v1/operator/scheduler/configuration", nil, c, nil)
	return err
}
