package agent

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

func TestAuthToken_HeaderForms(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"none", nil, ""},
		{"X-Drover-Token", map[string]string{"X-Drover-Token": "d"}, "d"},
		{"X-Nomad-Token", map[string]string{"X-Nomad-Token": "n"}, "n"},
		{"bearer", map[string]string{"Authorization": "Bearer b"}, "b"},
		{"bearer any case, extra spaces", map[string]string{"Authorization": "  bearer   b2 "}, "b2"},
		{"basic auth is not a token", map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, ""},
		{"bearer without a value", map[string]string{"Authorization": "Bearer"}, ""},
		{"drover header first", map[string]string{"X-Drover-Token": "d", "X-Nomad-Token": "n", "Authorization": "Bearer b"}, "d"},
		{"nomad header before bearer", map[string]string{"X-Nomad-Token": "n", "Authorization": "Bearer b"}, "n"},
		{"blank drover header falls through", map[string]string{"X-Drover-Token": "  ", "X-Nomad-Token": "n"}, "n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/acl/token/self", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := authToken(r); got != tc.want {
				t.Fatalf("authToken = %q, want %q", got, tc.want)
			}
		})
	}
}

// aclAgent is an agent with only its HTTP routes and an in-process
// server, both with ACLs on (or off).
func aclAgent(t *testing.T, enabled bool) *Agent {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.NumSchedulers = 0
	cfg.ACLEnabled = enabled
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Warn})
	s, err := server.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return s.IsLeader(), nil })
	a := httpAgent(s)
	a.config.ACL = &ACLConfig{Enabled: enabled}
	return a
}

// call sends a request with headers and returns the status and the raw
// body; every answer must be JSON.
func call(t *testing.T, h http.Handler, method, path, body string, headers map[string]string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s %s: %d with a body that is not JSON: %q", method, path, rec.Code, rec.Body)
	}
	return rec.Code, rec.Body.String()
}

func decodeAs[T any](t *testing.T, body string) T {
	t.Helper()
	var out T
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return out
}

func TestACLHTTP_Routes(t *testing.T) {
	a := aclAgent(t, true)
	h := a.routes()

	code, body := call(t, h, "PUT", "/v1/acl/bootstrap", "", nil)
	if code != 200 {
		t.Fatalf("bootstrap: %d %s", code, body)
	}
	boot := decodeAs[aclTokenJSON](t, body)
	if boot.SecretID == "" || boot.AccessorID == "" || boot.Type != "management" || strings.Contains(body, "SecretHash") {
		t.Fatalf("bootstrap answer: %s", body)
	}
	code, body = call(t, h, "POST", "/v1/acl/bootstrap", "", nil)
	if eb := decodeAs[errorBody](t, body); code != 409 || eb.Code != "conflict" || !strings.HasPrefix(eb.Error, "ACL bootstrap already done at index ") {
		t.Fatalf("second bootstrap: %d %s", code, body)
	}
	mgmt := map[string]string{"X-Drover-Token": boot.SecretID}

	rules := `namespace "prod" { policy = "read" }`
	code, body = call(t, h, "PUT", "/v1/acl/policy/ci", `{"Description":"CI","Rules":`+jsonString(rules)+`}`, mgmt)
	if code != 200 || !strings.Contains(body, `"Index"`) {
		t.Fatalf("policy apply: %d %s", code, body)
	}
	code, body = call(t, h, "GET", "/v1/acl/policies", "", mgmt)
	if stubs := decodeAs[[]structs.ACLPolicyListStub](t, body); code != 200 || len(stubs) != 1 || stubs[0].Name != "ci" || stubs[0].Description != "CI" {
		t.Fatalf("policy list: %d %s", code, body)
	}
	code, body = call(t, h, "GET", "/v1/acl/policy/ci", "", mgmt)
	if p := decodeAs[structs.ACLPolicy](t, body); code != 200 || p.Rules != rules {
		t.Fatalf("policy info: %d %s", code, body)
	}

	// Create with the bearer form, a TTL as a string.
	code, body = call(t, h, "PUT", "/v1/acl/token", `{"Name":"ci-deployer","Policies":["ci"],"ExpirationTTL":"1h"}`,
		map[string]string{"Authorization": "Bearer " + boot.SecretID})
	created := decodeAs[aclTokenJSON](t, body)
	if code != 200 || created.SecretID == "" || created.Type != "client" || created.ExpirationTime-created.CreateTime != int64(time.Hour) {
		t.Fatalf("token create: %d %s", code, body)
	}

	// Reads never show a secret.
	code, body = call(t, h, "GET", "/v1/acl/tokens", "", map[string]string{"X-Nomad-Token": boot.SecretID})
	if list := decodeAs[[]aclTokenJSON](t, body); code != 200 || len(list) != 2 {
		t.Fatalf("token list: %d %s", code, body)
	}
	for _, secret := range []string{boot.SecretID, created.SecretID} {
		if strings.Contains(body, secret) || strings.Contains(body, "SecretID") {
			t.Fatalf("token list shows a secret: %s", body)
		}
	}
	code, body = call(t, h, "GET", "/v1/acl/token/self", "", map[string]string{"X-Nomad-Token": created.SecretID})
	if self := decodeAs[aclTokenJSON](t, body); code != 200 || self.Name != "ci-deployer" || self.SecretID != "" {
		t.Fatalf("token self: %d %s", code, body)
	}
	code, body = call(t, h, "GET", "/v1/acl/token/"+created.AccessorID, "", mgmt)
	if got := decodeAs[aclTokenJSON](t, body); code != 200 || got.AccessorID != created.AccessorID || strings.Contains(body, created.SecretID) {
		t.Fatalf("token info: %d %s", code, body)
	}

	// The client token may not manage ACLs: the refusal names it.
	code, body = call(t, h, "GET", "/v1/acl/tokens", "", map[string]string{"X-Drover-Token": created.SecretID})
	if eb := decodeAs[errorBody](t, body); code != 403 || eb.Code != "permission_denied" ||
		eb.Error != `token "ci-deployer" is not a management token; ACL.ListTokens (drover acl token list) needs one` {
		t.Fatalf("client token listing tokens: %d %s", code, body)
	}

	// Deletes.
	if code, body = call(t, h, "DELETE", "/v1/acl/token/"+created.AccessorID, "", mgmt); code != 200 {
		t.Fatalf("token delete: %d %s", code, body)
	}
	code, body = call(t, h, "GET", "/v1/acl/token/self", "", map[string]string{"X-Drover-Token": created.SecretID})
	if eb := decodeAs[errorBody](t, body); code != 403 || eb.Code != "token_not_found" || eb.Error != "ACL token not found" {
		t.Fatalf("deleted token: %d %s", code, body)
	}
	if code, body = call(t, h, "DELETE", "/v1/acl/policy/ci", "", mgmt); code != 200 {
		t.Fatalf("policy delete: %d %s", code, body)
	}
	if code, body = call(t, h, "GET", "/v1/acl/policy/ci", "", mgmt); code != 404 {
		t.Fatalf("deleted policy: %d %s", code, body)
	}
}

// TestACLHTTP_RefusesBadRequests: every refusal is JSON with a code and
// a message saying what was wrong, nothing is stored, and the agent
// keeps serving.
func TestACLHTTP_RefusesBadRequests(t *testing.T) {
	a := aclAgent(t, true)
	h := a.routes()
	_, body := call(t, h, "PUT", "/v1/acl/bootstrap", "", nil)
	mgmt := map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
	if code, body := call(t, h, "PUT", "/v1/acl/policy/ro", `{"Rules":"namespace \"*\" { policy = \"read\" }"}`, mgmt); code != 200 {
		t.Fatalf("policy apply: %d %s", code, body)
	}
	policiesBefore, _ := a.server.State().ACLPolicies(nil)
	tokensBefore, _ := a.server.State().ACLTokens(nil)

	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		headers map[string]string
		status  int
		code    string
		message string
	}{
		{"no token", "GET", "/v1/acl/policies", "", nil, 403, "permission_denied",
			`token "anonymous" is not a management token; ACL.ListPolicies (drover acl policy list) needs one (no token was sent: pass -token or set DROVER_TOKEN)`},
		{"unknown token", "GET", "/v1/acl/tokens", "", map[string]string{"X-Drover-Token": "0e5c7f1c-0000-4000-8000-000000000000"}, 403, "token_not_found", "ACL token not found"},
		{"self without a token", "GET", "/v1/acl/token/self", "", nil, 403, "token_not_found", "ACL token not found: no token was sent"},
		{"policy body not JSON", "PUT", "/v1/acl/policy/x", `{"Rules": `, mgmt, 400, "invalid_request", "request body is not valid JSON"},
		{"policy unknown field", "PUT", "/v1/acl/policy/x", `{"Rulez": "x"}`, mgmt, 400, "invalid_request", ""},
		{"policy name mismatch", "PUT", "/v1/acl/policy/x", `{"Name":"y","Rules":"node { policy = \"read\" }"}`, mgmt, 400, "invalid_request",
			`the body names policy "y" but the path names "x"; they must agree`},
		{"policy bad name", "PUT", "/v1/acl/policy/a.b", `{"Rules":"node { policy = \"read\" }"}`, mgmt, 400, "invalid_request", `policy name "a.b" is invalid`},
		{"policy bad rules", "PUT", "/v1/acl/policy/x", `{"Rules":"node { policy = \"root\" }"}`, mgmt, 400, "invalid_request",
			"policy \"x\": the rules do not parse:\nrules:1:17: unknown policy \"root\" in node; accepted: deny, read, write"},
		{"policy empty body", "PUT", "/v1/acl/policy/x", ``, mgmt, 400, "invalid_request", "request body is empty"},
		{"token bad TTL", "PUT", "/v1/acl/token", `{"Policies":["ro"],"ExpirationTTL":"soon"}`, mgmt, 400, "invalid_request",
			`cannot decode request body: ExpirationTTL "soon" is not a duration`},
		{"token unknown field", "PUT", "/v1/acl/token", `{"Policies":["ro"],"Global":true}`, mgmt, 400, "invalid_request", ""},
		{"token unknown policy", "PUT", "/v1/acl/token", `{"Policies":["nope"]}`, mgmt, 400, "invalid_request", `policy "nope" does not exist`},
		{"token unknown type", "PUT", "/v1/acl/token", `{"Type":"root"}`, mgmt, 400, "invalid_request", `token type "root" is invalid; accepted: client, management`},
		{"token unknown accessor", "GET", "/v1/acl/token/nope", "", mgmt, 404, "not_found", `no ACL token with accessor ID "nope"`},
		{"delete unknown token", "DELETE", "/v1/acl/token/nope", "", mgmt, 404, "not_found", `ACL token "nope": not found`},
		{"delete unknown policy", "DELETE", "/v1/acl/policy/nope", "", mgmt, 404, "not_found", `ACL policy "nope": not found`},
		{"bad index", "GET", "/v1/acl/tokens?index=x", "", mgmt, 400, "invalid_request", `index="x" is not a non-negative integer`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, h, tc.method, tc.path, tc.body, tc.headers)
			eb := decodeAs[errorBody](t, body)
			if code != tc.status || eb.Code != tc.code || !strings.HasPrefix(eb.Error, tc.message) {
				t.Fatalf("got %d %s %q\nwant %d %s %q...", code, eb.Code, eb.Error, tc.status, tc.code, tc.message)
			}
		})
	}
	policies, _ := a.server.State().ACLPolicies(nil)
	tokens, _ := a.server.State().ACLTokens(nil)
	if len(policies) != len(policiesBefore) || len(tokens) != len(tokensBefore) {
		t.Fatalf("refused requests stored something: %d policies, %d tokens", len(policies), len(tokens))
	}
	if code, _ := call(t, h, "GET", "/v1/acl/policies", "", mgmt); code != 200 {
		t.Fatal("the agent stopped serving")
	}
}

func TestACLHTTP_DisabledSaysSo(t *testing.T) {
	h := aclAgent(t, false).routes()
	for _, path := range []string{"/v1/acl/bootstrap", "/v1/acl/token"} {
		code, body := call(t, h, "PUT", path, `{}`, nil)
		eb := decodeAs[errorBody](t, body)
		if code != 400 || eb.Code != "invalid_request" || !strings.HasPrefix(eb.Error, "ACL support disabled: set acl { enabled = true }") {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
}

// TestAgent_ResolveToken: a server agent resolves in its own state, an
// agent without a server through ACL.ResolveToken; both give the same
// answer.
func TestAgent_ResolveToken(t *testing.T) {
	a := aclAgent(t, true)
	h := a.routes()
	_, body := call(t, h, "PUT", "/v1/acl/bootstrap", "", nil)
	boot := decodeAs[aclTokenJSON](t, body)
	mgmt := map[string]string{"X-Drover-Token": boot.SecretID}
	call(t, h, "PUT", "/v1/acl/policy/logs", `{"Rules":"namespace \"prod\" { capabilities = [\"read-logs\"] }\nagent { policy = \"read\" }"}`, mgmt)
	_, body = call(t, h, "PUT", "/v1/acl/token", `{"Name":"reader","Policies":["logs"]}`, mgmt)
	reader := decodeAs[aclTokenJSON](t, body)

	remote := &Agent{config: a.config, logger: hclog.NewNullLogger(), rpc: a.server}
	for name, ag := range map[string]*Agent{"server agent": a, "agent without a server": remote} {
		t.Run(name, func(t *testing.T) {
			got, tok, err := ag.resolveToken(reader.SecretID)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Name != "reader" || !got.AllowNamespace("prod", acl.CapabilityReadLogs) || got.AllowNamespace("prod", acl.CapabilityReadJob) ||
				!got.AllowAgentRead() || got.AllowAgentWrite() {
				t.Fatalf("resolved %+v", tok)
			}
			if m, _, err := ag.resolveToken(boot.SecretID); err != nil || !m.IsManagement() {
				t.Fatalf("management token: %v", err)
			}
			anon, tok, err := ag.resolveToken("")
			if err != nil || !tok.IsAnonymous() || anon.AllowNamespace("default", acl.CapabilityListJobs) {
				t.Fatalf("anonymous: %+v %v", tok, err)
			}
			_, _, err = ag.resolveToken("nope")
			if ce := structs.ParseCodedError(err); ce == nil || ce.Code != structs.CodeTokenNotFound {
				t.Fatalf("unknown token: %v", err)
			}
		})
	}
	// ACLs off: everything allowed.
	off := &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger()}
	if m, tok, err := off.resolveToken("whatever"); err != nil || !m.IsManagement() || tok != nil {
		t.Fatalf("ACLs off: %v %v", tok, err)
	}
}

func TestConfig_ACLBlock(t *testing.T) {
	c := DefaultConfig()
	if c.ACL == nil || c.ACL.Enabled {
		t.Fatal("ACLs are on by default")
	}
	c.Merge(&Config{ACL: &ACLConfig{Enabled: true}})
	if !c.ACL.Enabled {
		t.Fatal("merge lost acl.enabled")
	}
	c.Merge(&Config{})
	if !c.ACL.Enabled {
		t.Fatal("a config without an acl block turned ACLs off")
	}
	sc, err := c.serverConfig()
	if err != nil || !sc.ACLEnabled {
		t.Fatalf("server config: %v %v", sc.ACLEnabled, err)
	}
	// From a file.
	dir := t.TempDir()
	path := dir + "/agent.hcl"
	writeFile(t, path, "acl {\n  enabled = true\n}\n")
	fc, err := LoadConfigFile(path)
	if err != nil || fc.ACL == nil || !fc.ACL.Enabled {
		t.Fatalf("acl block from a file: %+v %v", fc.ACL, err)
	}
	writeFile(t, path, "acl {\n  enabeld = true\n}\n")
	if _, err := LoadConfigFile(path); err == nil || !strings.Contains(err.Error(), "agent.hcl:2,3") {
		t.Fatalf("a misspelled acl setting: %v", err)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
