package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Jobs returns the jobs endpoints.
func (c *Client) Jobs() *Jobs { return &Jobs{c: c} }

// Jobs is /v1/jobs and /v1/job/<id>.
type Jobs struct{ c *Client }

// RegisterOptions are optional registration parameters.
type RegisterOptions struct {
	// EnforceIndex with JobModifyIndex makes the registration fail if
	// the job changed since JobModifyIndex (0: it must not exist).
	EnforceIndex   bool
	JobModifyIndex uint64
}

// Register submits a job. job is anything that encodes to the job JSON
// (an *api.Job, or the CLI's parsed job).
func (j *Jobs) Register(job interface{}, opts *RegisterOptions) (*JobRegisterResponse, *WriteMeta, error) {
	body := map[string]interface{}{"Job": job}
	if opts != nil && opts.EnforceIndex {
		body["EnforceIndex"] = true
		body["JobModifyIndex"] = opts.JobModifyIndex
	}
	var resp JobRegisterResponse
	meta, err := j.c.write(http.MethodPut, "/v1/jobs", nil, body, &resp)
	if err != nil {
		return nil, nil, err
	}
	return &resp, meta, nil
}

// Validate checks a job without registering it; it returns the
// validation problems (empty when the job is valid).
func (j *Jobs) Validate(job interface{}) ([]FieldError, error) {
	var resp struct {
		Problems []FieldError
	}
	if _, err := j.c.write(http.MethodPut, "/v1/validate/job", nil, map[string]interface{}{"Job": job}, &resp); err != nil {
		return nil, err
	}
	return resp.Problems, nil
}

// List lists jobs.
func (j *Jobs) List(q *QueryOptions) ([]*JobListStub, *QueryMeta, error) {
	var out []*JobListStub
	meta, err := j.c.query("/v1/jobs", &out, q)
	return out, meta, err
}

// Info reads a job.
func (j *Jobs) Info(id string, q *QueryOptions) (*Job, *QueryMeta, error) {
	var out Job
	meta, err := j.c.query("/v1/job/"+escape(id), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Deregister stops a job; purge removes it entirely.
func (j *Jobs) Deregister(id string, purge bool) (*JobDeregisterResponse, *WriteMeta, error) {
	var resp JobDeregisterResponse
	params := url.Values{}
	if purge {
		params.Set("purge", "true")
	}
	meta, err := j.c.write(http.MethodDelete, "/v1/job/"+escape(id), params, nil, &resp)
	if err != nil {
		return nil, nil, err
	}
	return &resp, meta, nil
}

// Allocations lists a job's allocations.
func (j *Jobs) Allocations(id string, q *QueryOptions) ([]*AllocationListStub, *QueryMeta, error) {
	var out []*AllocationListStub
	meta, err := j.c.query("/v1/job/"+escape(id)+"/allocations", &out, q)
	return out, meta, err
}

// Evaluations lists a job's evaluations.
func (j *Jobs) Evaluations(id string, q *QueryOptions) ([]*Evaluation, *QueryMeta, error) {
	var out []*Evaluation
	meta, err := j.c.query("/v1/job/"+escape(id)+"/evaluations", &out, q)
	return out, meta, err
}

// Versions lists a job's kept versions, newest first.
func (j *Jobs) Versions(id string, q *QueryOptions) ([]*Job, *QueryMeta, error) {
	var out struct{ Versions []*Job }
	meta, err := j.c.query("/v1/job/"+escape(id)+"/versions", &out, q)
	return out.Versions, meta, err
}

// VersionsWithDiffs lists a job's kept versions, newest first, with what
// changed in each: diffs[i] is the change from the version before
// versions[i] (nil for the oldest kept version).
func (j *Jobs) VersionsWithDiffs(id string, q *QueryOptions) ([]*Job, []*JobDiff, *QueryMeta, error) {
	var out struct {
		Versions []*Job
		Diffs    []*JobDiff
	}
	meta, err := j.c.queryParams("/v1/job/"+escape(id)+"/versions", url.Values{"diffs": {"true"}}, &out, q)
	return out.Versions, out.Diffs, meta, err
}

// Allocations returns the allocation endpoints.
func (c *Client) Allocations() *Allocations { return &Allocations{c: c} }

// Allocations is /v1/allocations and /v1/allocation/<id>.
type Allocations struct{ c *Client }

// List lists allocations.
func (a *Allocations) List(q *QueryOptions) ([]*AllocationListStub, *QueryMeta, error) {
	var out []*AllocationListStub
	meta, err := a.c.query("/v1/allocations", &out, q)
	return out, meta, err
}

// Info reads an allocation.
func (a *Allocations) Info(id string, q *QueryOptions) (*Allocation, *QueryMeta, error) {
	var out Allocation
	meta, err := a.c.query("/v1/allocation/"+escape(id), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// LogOptions select a log stream.
type LogOptions struct {
	Task string
	// Stderr selects stderr instead of stdout.
	Stderr bool
	// Follow streams new output until the task dies or the body is
	// closed.
	Follow bool
	// Offset counts bytes from Origin ("start" or "end").
	Offset int64
	Origin string
}

// Logs streams a task's output. The caller closes the reader.
func (a *Allocations) Logs(allocID string, opts LogOptions, q *QueryOptions) (io.ReadCloser, error) {
	r := a.c.newRequest(http.MethodGet, "/v1/client/fs/logs/"+escape(allocID), q)
	if opts.Task != "" {
		r.params.Set("task", opts.Task)
	}
	r.params.Set("type", "stdout")
	if opts.Stderr {
		r.params.Set("type", "stderr")
	}
	if opts.Follow {
		r.params.Set("follow", "true")
	}
	if opts.Offset > 0 {
		r.params.Set("offset", strconv.FormatInt(opts.Offset, 10))
	}
	if opts.Origin != "" {
		r.params.Set("origin", opts.Origin)
	}
	r.params.Set("plain", "true")
	resp, err := a.c.do(r)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Nodes returns the node endpoints.
func (c *Client) Nodes() *Nodes { return &Nodes{c: c} }

// Nodes is /v1/nodes and /v1/node/<id>.
type Nodes struct{ c *Client }

// List lists nodes.
func (n *Nodes) List(q *QueryOptions) ([]*NodeListStub, *QueryMeta, error) {
	var out []*NodeListStub
	meta, err := n.c.query("/v1/nodes", &out, q)
	return out, meta, err
}

// Info reads a node.
func (n *Nodes) Info(id string, q *QueryOptions) (*Node, *QueryMeta, error) {
	var out Node
	meta, err := n.c.query("/v1/node/"+escape(id), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Allocations lists a node's allocations.
func (n *Nodes) Allocations(id string, q *QueryOptions) ([]*AllocationListStub, *QueryMeta, error) {
	var out []*AllocationListStub
	meta, err := n.c.query("/v1/node/"+escape(id)+"/allocations", &out, q)
	return out, meta, err
}

// Evaluations returns the evaluation endpoints.
func (c *Client) Evaluations() *Evaluations { return &Evaluations{c: c} }

// Evaluations is /v1/evaluation/<id>.
type Evaluations struct{ c *Client }

// Info reads an evaluation.
func (e *Evaluations) Info(id string, q *QueryOptions) (*Evaluation, *QueryMeta, error) {
	var out Evaluation
	meta, err := e.c.query("/v1/evaluation/"+escape(id), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// List lists evaluations (of the client's namespace, or
// QueryOptions.Namespace; "*" for every namespace).
func (e *Evaluations) List(q *QueryOptions) ([]*Evaluation, *QueryMeta, error) {
	var out []*Evaluation
	meta, err := e.c.query("/v1/evaluations", &out, q)
	return out, meta, err
}

// Allocations lists the allocations an evaluation placed.
func (e *Evaluations) Allocations(id string, q *QueryOptions) ([]*AllocationListStub, *QueryMeta, error) {
	var out []*AllocationListStub
	meta, err := e.c.query("/v1/evaluation/"+escape(id)+"/allocations", &out, q)
	return out, meta, err
}

// Status returns the status endpoints.
func (c *Client) Status() *Status { return &Status{c: c} }

// Status is /v1/status.
type Status struct{ c *Client }

// Leader returns the leader's RPC address.
func (s *Status) Leader() (string, error) {
	var out string
	_, err := s.c.query("/v1/status/leader", &out, nil)
	return out, err
}

// Peers returns the servers' RPC addresses.
func (s *Status) Peers() ([]string, error) {
	var out []string
	_, err := s.c.query("/v1/status/peers", &out, nil)
	return out, err
}

// Agent returns the agent endpoints.
func (c *Client) Agent() *Agent { return &Agent{c: c} }

// Agent is /v1/agent.
type Agent struct{ c *Client }

// Self describes the agent answering.
func (a *Agent) Self() (map[string]interface{}, error) {
	var out map[string]interface{}
	_, err := a.c.query("/v1/agent/self", &out, nil)
	return out, err
}

// Gateway returns the live status of the ingress gateway of the client
// agent answering (GET /v1/client/gateway) as JSON: its listeners and
// routes with their backends and counts.
func (a *Agent) Gateway() (json.RawMessage, error) {
	var out json.RawMessage
	_, err := a.c.query("/v1/client/gateway", &out, nil)
	return out, err
}

// Proxy returns the live status of the services proxy of the client
// agent answering (GET /v1/client/proxy) as JSON.
func (a *Agent) Proxy() (json.RawMessage, error) {
	var out json.RawMessage
	_, err := a.c.query("/v1/client/proxy", &out, nil)
	return out, err
}

// Health returns nil when the agent is healthy.
func (a *Agent) Health() error {
	var out map[string]interface{}
	if _, err := a.c.query("/v1/agent/health", &out, nil); err != nil {
		return fmt.Errorf("agent unhealthy: %w", err)
	}
	return nil
}

// Member is a gossip member as an agent sees it.
type Member struct {
	Name   string
	Addr   string
	Port   int
	Status string
	Tags   map[string]string
	Leader bool
}

// Members lists the gossip members the agent knows.
func (a *Agent) Members() ([]*Member, error) {
	var out struct {
		ServerName string
		Members    []*Member
	}
	_, err := a.c.query("/v1/agent/members", &out, nil)
	return out.Members, err
}

// Leave makes the agent leave the cluster gracefully and shut down.
func (a *Agent) Leave() error {
	_, err := a.c.write(http.MethodPut, "/v1/agent/leave", nil, nil, nil)
	return err
}

// Operator returns the operator endpoints.
func (c *Client) Operator() *Operator { return &Operator{c: c} }

// Operator is /v1/operator.
type Operator struct{ c *Client }

// RaftServer is a server of the Raft configuration.
type RaftServer struct {
	ID      string
	Node    string
	Address string
	Leader  bool
	Voter   bool
}

// RaftConfiguration is the Raft configuration.
type RaftConfiguration struct {
	Servers []*RaftServer
	Index   uint64
}

// RaftGetConfiguration returns the Raft configuration, from the leader
// (or, with AllowStale, from the agent's server).
func (o *Operator) RaftGetConfiguration(q *QueryOptions) (*RaftConfiguration, error) {
	var out RaftConfiguration
	if _, err := o.c.query("/v1/operator/raft/configuration", &out, q); err != nil {
		return nil, err
	}
	return &out, nil
}

// RaftRemovePeerByAddress removes a server from Raft by its address.
func (o *Operator) RaftRemovePeerByAddress(addr string) error {
	_, err := o.c.write(http.MethodDelete, "/v1/operator/raft/peer", url.Values{"address": {addr}}, nil, nil)
	return err
}

// RaftRemovePeerByID removes a server from Raft by its ID.
func (o *Operator) RaftRemovePeerByID(id string) error {
	_, err := o.c.write(http.MethodDelete, "/v1/operator/raft/peer", url.Values{"id": {id}}, nil, nil)
	return err
}

// StateHash fingerprints the agent's own server state.
type StateHash struct {
	Server string
	Index  uint64
	Tables map[string]string
	// Rows counts the rows of every table, derived ones included.
	Rows map[string]int
}

// StateHash returns the agent's server's state fingerprint.
func (o *Operator) StateHash() (*StateHash, error) {
	var out StateHash
	if _, err := o.c.query("/v1/operator/state-hash", &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}
