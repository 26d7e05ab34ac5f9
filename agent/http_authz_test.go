package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// rawCall sends a request and returns the status and body, whatever
// the body is (pprof answers HTML, metrics text).
func rawCall(t *testing.T, h http.Handler, method, path, body string, headers map[string]string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Code, rec.Body.String()
}

// aclFixture is an ACL-enabled agent with a management token and
// tokens for the agent rules.
type aclFixture struct {
	a                           *Agent
	h                           http.Handler
	mgmt, agentRead, agentWrite map[string]string
	opRead                      map[string]string
}

func newACLFixture(t *testing.T) *aclFixture {
	t.Helper()
	a := aclAgent(t, true)
	a.config.EnableDebug = true
	h := a.routes()
	code, body := call(t, h, "PUT", "/v1/acl/bootstrap", "", nil)
	if code != 200 {
		t.Fatalf("bootstrap: %d %s", code, body)
	}
	f := &aclFixture{a: a, h: h, mgmt: map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}}
	token := func(name, rules string) map[string]string {
		t.Helper()
		if code, body := call(t, h, "PUT", "/v1/acl/policy/"+name, `{"Rules":`+jsonString(rules)+`}`, f.mgmt); code != 200 {
			t.Fatalf("policy %s: %d %s", name, code, body)
		}
		code, body := call(t, h, "PUT", "/v1/acl/token", `{"Name":"`+name+`","Policies":["`+name+`"]}`, f.mgmt)
		if code != 200 {
			t.Fatalf("token %s: %d %s", name, code, body)
		}
		return map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
	}
	f.agentRead = token("agent-reader", `agent { policy = "read" }`)
	f.agentWrite = token("agent-writer", `agent { policy = "write" }`)
	f.opRead = token("op-reader", `operator { policy = "read" }`)
	return f
}

const noTokenHint = " (no token was sent: pass -token or set DROVER_TOKEN)"

func ruleDenied(name, rule, policy, hint string) string {
	b, _ := json.Marshal(errorBody{Code: "permission_denied",
		Error: `token "` + name + `" lacks ` + rule + `:` + policy + ` (it needs a policy with ` + rule + ` { policy = "` + policy + `" })` + hint})
	return string(b) + "\n"
}

// TestAgentACL_OwnEndpoints: the endpoints the agent answers itself
// are refused without the agent (or operator) rule they need, with the
// exact JSON error; the health check stays open.
func TestAgentACL_OwnEndpoints(t *testing.T) {
	f := newACLFixture(t)
	anon := map[string]string(nil)
	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		headers map[string]string
		status  int
		// want is the exact body of a refusal; "" checks the status only.
		want string
	}{
		{"self anonymous", "GET", "/v1/agent/self", "", anon, 403, ruleDenied("anonymous", "agent", "read", noTokenHint)},
		{"self agent:read", "GET", "/v1/agent/self", "", f.agentRead, 200, ""},
		{"self operator:read only", "GET", "/v1/agent/self", "", f.opRead, 403, ruleDenied("op-reader", "agent", "read", "")},
		{"members anonymous", "GET", "/v1/agent/members", "", anon, 403, ruleDenied("anonymous", "agent", "read", noTokenHint)},
		{"metrics anonymous", "GET", "/v1/metrics", "", anon, 403, ruleDenied("anonymous", "agent", "read", noTokenHint)},
		{"metrics agent:read", "GET", "/v1/metrics", "", f.agentRead, 200, ""},
		{"metrics management", "GET", "/v1/metrics", "", f.mgmt, 200, ""},
		{"leave anonymous", "PUT", "/v1/agent/leave", "", anon, 403, ruleDenied("anonymous", "agent", "write", noTokenHint)},
		{"leave POST agent:read", "POST", "/v1/agent/leave", "", f.agentRead, 403, ruleDenied("agent-reader", "agent", "write", "")},
		{"keyring list anonymous", "GET", "/v1/agent/keyring/list", "", anon, 403, ruleDenied("anonymous", "agent", "read", noTokenHint)},
		{"keyring install agent:read", "PUT", "/v1/agent/keyring/install", `{"Key":"x"}`, f.agentRead, 403, ruleDenied("agent-reader", "agent", "write", "")},
		{"keyring use anonymous", "POST", "/v1/agent/keyring/use", `{"Key":"x"}`, anon, 403, ruleDenied("anonymous", "agent", "write", noTokenHint)},
		{"keyring remove agent:read", "PUT", "/v1/agent/keyring/remove", `{"Key":"x"}`, f.agentRead, 403, ruleDenied("agent-reader", "agent", "write", "")},
		{"pprof anonymous", "GET", "/debug/pprof/", "", anon, 403, ruleDenied("anonymous", "agent", "write", noTokenHint)},
		{"pprof agent:read", "GET", "/debug/pprof/cmdline", "", f.agentRead, 403, ruleDenied("agent-reader", "agent", "write", "")},
		{"pprof agent:write", "GET", "/debug/pprof/", "", f.agentWrite, 200, ""},
		{"state-hash anonymous", "GET", "/v1/operator/state-hash", "", anon, 403, ruleDenied("anonymous", "operator", "read", noTokenHint)},
		{"state-hash agent:write", "GET", "/v1/operator/state-hash", "", f.agentWrite, 403, ruleDenied("agent-writer", "operator", "read", "")},
		{"state-hash management", "GET", "/v1/operator/state-hash", "", f.mgmt, 200, ""},
		{"health open", "GET", "/v1/agent/health", "", anon, 200, ""},
		{"status leader open", "GET", "/v1/status/leader", "", anon, 200, ""},
		{"unknown token", "GET", "/v1/agent/self", "", map[string]string{"X-Drover-Token": "not-a-token"}, 403, `{"Code":"token_not_found","Error":"ACL token not found"}` + "\n"},
		{"unknown bearer token on metrics", "GET", "/v1/metrics", "", map[string]string{"Authorization": "Bearer nope"}, 403, `{"Code":"token_not_found","Error":"ACL token not found"}` + "\n"},
		{"validate anonymous", "PUT", "/v1/validate/job", mockJobBody(t), anon, 403, ""},
		{"validate management", "PUT", "/v1/validate/job", mockJobBody(t), f.mgmt, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawCall(t, f.h, tc.method, tc.path, tc.body, tc.headers)
			if code != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.status)
			}
			if tc.want != "" && body != tc.want {
				t.Fatalf("%s %s:\n got %s\nwant %s", tc.method, tc.path, body, tc.want)
			}
			if code == 403 && !json.Valid([]byte(body)) {
				t.Fatalf("a refusal that is not JSON: %q", body)
			}
		})
	}
	// The refused leave left the agent in the cluster.
	select {
	case <-f.a.LeaveCh():
		t.Fatal("a refused leave made the agent leave")
	default:
	}
	// The validate refusal names the capability and the namespace.
	_, body := call(t, f.h, "PUT", "/v1/validate/job", mockJobBody(t), nil)
	if eb := decodeAs[errorBody](t, body); eb.Error != `token "anonymous" lacks capability read-job in namespace "default"`+noTokenHint {
		t.Fatalf("validate refusal: %s", body)
	}
}

// TestAgentACL_Disabled: with ACLs off the agent's own endpoints are
// open, as before.
func TestAgentACL_Disabled(t *testing.T) {
	a := aclAgent(t, false)
	h := a.routes()
	for _, path := range []string{"/v1/agent/self", "/v1/metrics", "/v1/operator/state-hash"} {
		if code, body := rawCall(t, h, "GET", path, "", nil); code != 200 {
			t.Fatalf("GET %s with ACLs off: %d %s", path, code, body)
		}
	}
}

func mockJobBody(t *testing.T) string {
	t.Helper()
	job := mock.Job()
	job.Namespace = ""
	b, err := json.Marshal(map[string]interface{}{"Job": job})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// recordingRPC answers every call with an error after recording it.
type recordingRPC struct {
	mu    sync.Mutex
	calls map[string]interface{}
}

var errRecorded = structs.NewError(structs.CodeUnavailable, "recorded")

func (r *recordingRPC) RPC(method string, args, reply interface{}) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[method] = args
	return errRecorded
}

// authTokenOf returns the AuthToken of an RPC request (promoted from
// its QueryOptions or WriteRequest).
func authTokenOf(args interface{}) (string, bool) {
	v := reflect.Indirect(reflect.ValueOf(args))
	if v.Kind() != reflect.Struct {
		return "", false
	}
	f := v.FieldByName("AuthToken")
	if !f.IsValid() {
		return "", false
	}
	return f.String(), true
}

// TestAgentHTTP_CarriesTheTokenToTheServers: every handler that
// forwards to the servers puts the request's token in the RPC's
// AuthToken, whichever header carried it, so the servers can authorize
// it.
func TestAgentHTTP_CarriesTheTokenToTheServers(t *testing.T) {
	job := mock.Job()
	job.Namespace = ""
	jobBody, _ := json.Marshal(map[string]interface{}{"Job": job})
	cases := []struct {
		method, path, body, rpc string
	}{
		{"GET", "/v1/jobs", "", "Job.List"},
		{"PUT", "/v1/jobs", string(jobBody), "Job.Register"},
		{"POST", "/v1/job/" + job.ID, string(jobBody), "Job.Register"},
		{"GET", "/v1/job/web", "", "Job.GetJob"},
		{"DELETE", "/v1/job/web", "", "Job.Deregister"},
		{"GET", "/v1/job/web/allocations", "", "Job.Allocations"},
		{"GET", "/v1/job/web/evaluations", "", "Job.Evaluations"},
		{"GET", "/v1/job/web/versions", "", "Job.Versions"},
		{"PUT", "/v1/job/" + job.ID + "/plan", string(jobBody), "Job.Plan"},
		{"PUT", "/v1/job/web/revert", `{"JobVersion":1}`, "Job.Revert"},
		{"PUT", "/v1/job/web/stable", `{"JobVersion":1,"Stable":true}`, "Job.Stable"},
		{"GET", "/v1/job/web/deployments", "", "Job.Deployments"},
		{"GET", "/v1/job/web/deployment", "", "Job.LatestDeployment"},
		{"GET", "/v1/deployments", "", "Deployment.List"},
		{"GET", "/v1/deployment/d1", "", "Deployment.GetDeployment"},
		{"GET", "/v1/deployment/allocations/d1", "", "Deployment.Allocations"},
		{"PUT", "/v1/deployment/promote/d1", "", "Deployment.Promote"},
		{"PUT", "/v1/deployment/fail/d1", "", "Deployment.Fail"},
		{"GET", "/v1/allocations", "", "Alloc.List"},
		{"GET", "/v1/allocation/a1", "", "Alloc.GetAlloc"},
		{"GET", "/v1/client/fs/logs/a1?task=server", "", "Alloc.GetAlloc"},
		{"GET", "/v1/nodes", "", "Node.List"},
		{"GET", "/v1/node/n1", "", "Node.GetNode"},
		{"GET", "/v1/node/n1/allocations", "", "Node.GetAllocs"},
		{"PUT", "/v1/node/n1/drain", `{"DrainSpec":{"Deadline":0}}`, "Node.UpdateDrain"},
		{"PUT", "/v1/node/n1/eligibility", `{"Eligibility":"eligible"}`, "Node.UpdateEligibility"},
		{"GET", "/v1/evaluations", "", "Eval.List"},
		{"GET", "/v1/evaluation/e1", "", "Eval.GetEval"},
		{"GET", "/v1/evaluation/e1/allocations", "", "Eval.Allocations"},
		{"GET", "/v1/operator/raft/configuration", "", "Operator.RaftGetConfiguration"},
		{"DELETE", "/v1/operator/raft/peer?id=s3", "", "Operator.RaftRemovePeer"},
		{"GET", "/v1/operator/scheduler/configuration", "", "Operator.SchedulerGetConfiguration"},
		{"PUT", "/v1/operator/scheduler/configuration", `{}`, "Operator.SchedulerSetConfiguration"},
		{"GET", "/v1/namespaces", "", "Namespace.List"},
		{"GET", "/v1/namespace/team-a", "", "Namespace.Get"},
		{"PUT", "/v1/namespace/team-a", `{}`, "Namespace.Upsert"},
		{"DELETE", "/v1/namespace/team-a", "", "Namespace.Delete"},
		{"GET", "/v1/acl/policies", "", "ACL.ListPolicies"},
		{"GET", "/v1/acl/policy/p", "", "ACL.GetPolicy"},
		{"PUT", "/v1/acl/policy/p", `{"Rules":""}`, "ACL.UpsertPolicies"},
		{"DELETE", "/v1/acl/policy/p", "", "ACL.DeletePolicies"},
		{"GET", "/v1/acl/tokens", "", "ACL.ListTokens"},
		{"GET", "/v1/acl/token/self", "", "ACL.GetTokenSelf"},
		{"GET", "/v1/acl/token/acc", "", "ACL.GetToken"},
		{"PUT", "/v1/acl/token", `{"Name":"x","Policies":["p"]}`, "ACL.CreateToken"},
		{"DELETE", "/v1/acl/token/acc", "", "ACL.DeleteTokens"},
		{"GET", "/v1/quotas", "", "Quota.List"},
		{"GET", "/v1/quota/team-a", "", "Quota.Get"},
		{"GET", "/v1/quota/usage/team-a", "", "Quota.Usage"},
		{"DELETE", "/v1/quota/team-a", "", "Quota.Delete"},
	}
	headers := []map[string]string{
		{"X-Drover-Token": "secret-1"},
		{"X-Nomad-Token": "secret-1"},
		{"Authorization": "Bearer secret-1"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			for _, hdr := range headers {
				rec := &recordingRPC{calls: map[string]interface{}{}}
				a := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger(), rpc: rec}
				code, body := rawCall(t, a.routes(), tc.method, tc.path, tc.body, hdr)
				args, ok := rec.calls[tc.rpc]
				if !ok {
					t.Fatalf("%s %s made no %s call (HTTP %d %s; calls %v)", tc.method, tc.path, tc.rpc, code, body, rec.calls)
				}
				if tok, ok := authTokenOf(args); !ok || tok != "secret-1" {
					t.Fatalf("%s %s with %v: %s carried AuthToken %q", tc.method, tc.path, hdr, tc.rpc, tok)
				}
				if code != 503 || !strings.Contains(body, "recorded") {
					t.Fatalf("%s %s: %d %s", tc.method, tc.path, code, body)
				}
			}
		})
	}
}

// TestAgentHTTP_AnswersAreNeverEmpty: a refusal from the servers (the
// RPC's coded error) reaches the caller as the JSON error with its
// status, never a 500 or an empty body.
func TestAgentHTTP_AnswersAreNeverEmpty(t *testing.T) {
	for _, err := range []error{
		structs.NewNamespaceDeniedError(&structs.ACLToken{Name: "ci-deployer"}, "submit-job", "prod"),
		errors.New(structs.NewNamespaceDeniedError(&structs.ACLToken{Name: "ci-deployer"}, "submit-job", "prod").Error()),
		structs.ErrACLTokenNotFound,
	} {
		rec := httptest.NewRecorder()
		status := writeError(rec, err)
		var eb errorBody
		if jerr := json.Unmarshal(rec.Body.Bytes(), &eb); jerr != nil || status != 403 || rec.Code != 403 || eb.Code == "" || eb.Error == "" {
			t.Fatalf("%v: %d %q", err, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	writeError(rec, structs.NewNamespaceDeniedError(&structs.ACLToken{Name: "ci-deployer"}, "submit-job", "prod"))
	want := `{"Code":"permission_denied","Error":"token \"ci-deployer\" lacks capability submit-job in namespace \"prod\""}` + "\n"
	if got, _ := io.ReadAll(bytes.NewReader(rec.Body.Bytes())); string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}
