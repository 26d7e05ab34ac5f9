package agent

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// gcAgent is an agent with its HTTP routes and an in-process server
// with a scheduler worker, holding one stopped job (count 0: both of
// its evaluations complete) that a forced collection deletes.
func gcAgent(t *testing.T) (*Agent, *server.Server, *structs.Job) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.NumSchedulers = 1
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Warn})
	s, err := server.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return s.IsLeader(), nil })
	job := mock.Job()
	job.TaskGroups[0].Count = 0
	var reg structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &reg); err != nil {
		t.Fatal(err)
	}
	var dereg structs.JobDeregisterResponse
	if err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: job.ID}, &dereg); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		for _, id := range []string{reg.EvalID, dereg.EvalID} {
			e, err := s.State().EvalByID(nil, id)
			if err != nil || e == nil || !e.TerminalStatus() {
				return false, err
			}
		}
		return true, nil
	})
	return httpAgent(s), s, job
}

func TestSystemGCHTTP_DryRunThenCollect(t *testing.T) {
	a, s, job := gcAgent(t)
	h := a.routes()
	code, body := call(t, h, "PUT", "/v1/system/gc", `{"DryRun": true}`, nil)
	dry := decodeAs[structs.SystemGCResponse](t, body)
	key := structs.NewNamespacedID(job.Namespace, job.ID).String()
	if code != 200 || !dry.DryRun || dry.Chosen.Jobs != 1 || dry.Chosen.Evals != 2 || dry.Deleted.Total() != 0 ||
		len(dry.Objects.Jobs) != 1 || dry.Objects.Jobs[0] != key {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if j, _ := s.State().JobByID(nil, job.Namespace, job.ID); j == nil {
		t.Fatal("a dry run deleted the job")
	}
	// Nomad's client sends no body.
	code, body = call(t, h, "PUT", "/v1/system/gc", "", nil)
	resp := decodeAs[structs.SystemGCResponse](t, body)
	if code != 200 || resp.DryRun || resp.Deleted.Jobs != 1 || resp.Deleted.Evals != 2 || resp.Index == 0 {
		t.Fatalf("collect: %d %s", code, body)
	}
	if j, _ := s.State().JobByID(nil, job.Namespace, job.ID); j != nil {
		t.Fatal("the stopped job is still there")
	}
}

// Bodies that are not {"DryRun": bool} are refused before anything
// runs: the job is still there after all of them.
func TestSystemGCHTTP_RefusesBadBodies(t *testing.T) {
	a, s, job := gcAgent(t)
	h := a.routes()
	cases := []struct {
		name, method, body string
		status             int
		code, substr       string
	}{
		{"not JSON", "PUT", `{"DryRun": `, http.StatusBadRequest, "invalid_request", "not valid JSON"},
		{"unknown field", "PUT", `{"DryRun": false, "Force": true}`, http.StatusBadRequest, "invalid_request", "Force"},
		{"wrong type", "PUT", `{"DryRun": "no"}`, http.StatusBadRequest, "invalid_request", "expected bool"},
		{"an array", "POST", `[{"DryRun": false}]`, http.StatusBadRequest, "invalid_request", ""},
		{"huge body", "PUT", `{"DryRun": false, "x": "` + strings.Repeat("A", 2<<20) + `"}`, http.StatusRequestEntityTooLarge, "request_too_large", "larger than the limit"},
		{"whitespace over the limit", "PUT", strings.Repeat(" ", maxSystemGCBody+1), http.StatusRequestEntityTooLarge, "request_too_large", ""},
		{"a read", "GET", "", http.StatusNotFound, "not_found", "no such endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, h, tc.method, "/v1/system/gc", tc.body, nil)
			if code != tc.status {
				t.Fatalf("%d %s, want %d", code, body, tc.status)
			}
			if tc.code == "" {
				return
			}
			eb := decodeAs[errorBody](t, body)
			if eb.Code != tc.code || !strings.Contains(body, tc.substr) {
				t.Fatalf("%d %s, want %s mentioning %q", code, body, tc.code, tc.substr)
			}
		})
	}
	if j, _ := s.State().JobByID(nil, job.Namespace, job.ID); j == nil {
		t.Fatal("a refused request collected the job")
	}
}

// With ACLs on, a collection needs operator:write; a dry run too.
func TestSystemGCHTTP_ACL(t *testing.T) {
	a := aclAgent(t, true)
	h := a.routes()
	code, body := call(t, h, "PUT", "/v1/acl/bootstrap", "", nil)
	if code != 200 {
		t.Fatalf("bootstrap: %d %s", code, body)
	}
	mgmt := map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
	if code, body := call(t, h, "PUT", "/v1/acl/policy/ops-read", `{"Rules":`+jsonString(`operator { policy = "read" }`)+`}`, mgmt); code != 200 {
		t.Fatalf("policy: %d %s", code, body)
	}
	code, body = call(t, h, "PUT", "/v1/acl/token", `{"Name":"ops","Policies":["ops-read"]}`, mgmt)
	if code != 200 {
		t.Fatalf("token: %d %s", code, body)
	}
	reader := map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
	for _, tc := range []struct {
		name    string
		headers map[string]string
		body    string
		status  int
		want    string
	}{
		{"anonymous", nil, "", 403, `token "anonymous" lacks operator:write`},
		{"operator read", reader, "", 403, `token "ops" lacks operator:write`},
		{"operator read, dry run", reader, `{"DryRun":true}`, 403, `token "ops" lacks operator:write`},
		{"management", mgmt, "", 200, `"Chosen"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, h, "PUT", "/v1/system/gc", tc.body, tc.headers)
			text := body
			if code != 200 {
				text = decodeAs[errorBody](t, body).Error
			}
			if code != tc.status || !strings.Contains(text, tc.want) {
				t.Fatalf("%d %s, want %d with %q", code, body, tc.status, tc.want)
			}
		})
	}
}
