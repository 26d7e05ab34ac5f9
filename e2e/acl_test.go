package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// cliAs runs the drover CLI against this agent with an ACL token in
// DROVER_TOKEN ("" runs it with none).
func (a *agent) cliAs(token string, args ...string) result {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, droverBin, args...)
	cmd.Env = append(append(os.Environ(), a.cliEnv...), "DROVER_TOKEN="+token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		a.t.Fatalf("run drover %v: %v", args, err)
	}
	return r
}

// rawCall sends one HTTP request to the agent with token in
// X-Drover-Token (none when empty) and returns the status and body.
func (a *agent) rawCall(method, path, token string, body []byte) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url()+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Drover-Token", token)
	}
	resp, err := a.httpc.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wantDenied checks a 403 with the JSON error shape and a message
// containing each of want.
func wantDenied(t *testing.T, what string, status int, body, code string, want ...string) {
	t.Helper()
	if status != http.StatusForbidden {
		t.Fatalf("%s: HTTP %d %s, want 403", what, status, body)
	}
	var e struct{ Code, Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("%s: 403 body is not the JSON error shape: %q", what, body)
	}
	if e.Code != code {
		t.Fatalf("%s: code %q, want %q (body %s)", what, e.Code, code, body)
	}
	for _, w := range want {
		if !strings.Contains(e.Error, w) {
			t.Fatalf("%s: error %q does not say %q", what, e.Error, w)
		}
	}
}

// wantCLIDenied checks a CLI refusal: exit 1 and one stderr line saying
// each of want.
func wantCLIDenied(t *testing.T, what string, r result, want ...string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("%s: %s\nwant exit 1 (refused)", what, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("%s: stderr does not say %q:\n%s", what, w, r)
		}
	}
}

// auditLine is one line of an agent's audit log.
type auditLine struct {
	Time       string
	AccessorID string
	TokenName  string
	Namespace  string
	Method     string
	Path       string
	Status     int
	Code       string
}

// readAudit returns the lines of an agent's audit log (the default
// path under its data dir).
func readAudit(t *testing.T, a *agent) ([]auditLine, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(a.dataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatalf("audit log of %s: %v", a.name, err)
	}
	var out []auditLine
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit log of %s has a line that is not JSON: %q", a.name, sc.Text())
		}
		out = append(out, l)
	}
	return out, raw
}

// stableTables waits until the leader's state stops changing (a
// deployment settling, allocations reporting health) and returns it.
func stableTables(t *testing.T, h *haCluster) map[string]string {
	t.Helper()
	var last map[string]string
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		cur := stateTables(t, h)
		same := last != nil && reflect.DeepEqual(cur, last)
		last = cur
		if !same {
			time.Sleep(2 * time.Second)
			return false, fmt.Errorf("state still changing")
		}
		return true, nil
	})
	return last
}

// TestACL_DefaultDenyCluster is the ACL issue's end-to-end check on a
// three-server cluster and one client on real containerd, every agent
// with ACLs on: bootstrap works once; anonymous requests are refused
// (CLI and HTTP) with nothing changed; a write token on team-a runs a
// job there and reads its logs but is refused in team-b and on operator
// endpoints; a read token lists but cannot stop; no token secret is in
// any server's raft.db or in a Raft snapshot; the audit log has one
// line per write and per denied request, with the token's name.
func TestACL_DefaultDenyCluster(t *testing.T) {
	// Snapshots every few entries so that one exists after the tokens
	// are made; the audit log at its default path.
	cfg := writeFile(t, "acl.hcl", `
audit {
  enabled = true
}
server {
  raft_snapshot_threshold = 4
  raft_snapshot_interval  = "1s"
}
`)
	h := startServers(t, 3, nil, nil, "-acl-enabled", "-config", cfg)
	s1 := h.servers[0]

	// Bootstrap: once.
	boot := s1.cli("acl", "bootstrap", "-json")
	if boot.code != 0 {
		t.Fatalf("acl bootstrap: %s", boot)
	}
	var mgmt api.ACLToken
	if err := json.Unmarshal([]byte(boot.stdout), &mgmt); err != nil || mgmt.SecretID == "" || mgmt.Type != "management" {
		t.Fatalf("acl bootstrap printed no management token (%v): %s", err, boot.stdout)
	}
	if again := s1.cli("acl", "bootstrap"); again.code == 0 {
		t.Fatalf("a second acl bootstrap succeeded: %s", again)
	}
	if st, body := s1.rawCall("PUT", "/v1/acl/bootstrap", "", nil); st != 400 && st != 409 {
		t.Fatalf("second PUT /v1/acl/bootstrap: HTTP %d %s, want 400 or 409", st, body)
	}
	h.token = mgmt.SecretID
	for _, s := range h.servers {
		s.useToken(mgmt.SecretID)
	}
	c1 := h.addClient("c1", "-acl-enabled")

	// Namespaces, policies and tokens, made with the management token.
	for _, ns := range []string{"team-a", "team-b"} {
		if r := s1.cliAs(mgmt.SecretID, "namespace", "apply", ns); r.code != 0 {
			t.Fatalf("namespace apply %s: %s", ns, r)
		}
	}
	writeA := writeFile(t, "team-a-write.hcl", `namespace "team-a" {
  policy = "write"
}
`)
	readA := writeFile(t, "team-a-read.hcl", `namespace "team-a" {
  policy = "read"
}
`)
	for name, file := range map[string]string{"team-a-write": writeA, "team-a-read": readA} {
		if r := s1.cliAs(mgmt.SecretID, "acl", "policy", "apply", name, file); r.code != 0 {
			t.Fatalf("acl policy apply %s: %s", name, r)
		}
	}
	mkToken := func(name, policy string) api.ACLToken {
		t.Helper()
		// -token on the command line this time, not DROVER_TOKEN.
		r := s1.cliAs("", "acl", "token", "create", "-token", mgmt.SecretID, "-name", name, "-policy", policy, "-json")
		var tok api.ACLToken
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tok) != nil || tok.SecretID == "" {
			t.Fatalf("acl token create %s: %s", name, r)
		}
		return tok
	}
	deployer := mkToken("team-a-deployer", "team-a-write")
	reader := mkToken("team-a-reader", "team-a-read")
	if r := s1.cliAs(deployer.SecretID, "acl", "token", "self"); r.code != 0 || !strings.Contains(r.stdout, "team-a-deployer") || strings.Contains(r.stdout, deployer.SecretID) {
		t.Fatalf("acl token self (must name the token and not print its secret): %s", r)
	}

	// The deployer runs a job in team-a on real containerd and reads
	// its logs.
	jobFile := writeFile(t, "web.hcl", webJob("web", testutil.BusyboxRef, 1, 32))
	run := s1.cliAs(deployer.SecretID, "job", "run", "-namespace", "team-a", jobFile)
	if run.code != 0 || !strings.Contains(run.stdout, "All 1 allocations") {
		t.Fatalf("job run -namespace team-a with the deployer's token: %s", run)
	}
	allocs, _, err := s1.api.WithNamespace("team-a").Jobs().Allocations("web", nil)
	if err != nil || len(allocs) != 1 {
		t.Fatalf("team-a's web allocations: %v %v", allocs, err)
	}
	allocID := allocs[0].ID
	ctr, err := h.ctrd.ctrd.Client(h.clientNamespace(c1))
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Close()
	if _, err := ctr.LoadContainer(nsContext(h.clientNamespace(c1)), allocID+"-server"); err != nil {
		t.Fatalf("containerd has no container for allocation %s: %v", allocID, err)
	}
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		r := s1.cliAs(deployer.SecretID, "alloc", "logs", "-namespace", "team-a", allocID, "server")
		return r.code == 0 && strings.Contains(r.stdout, "serving on"), fmt.Errorf("alloc logs: %s", r)
	})
	// The logs through the client agent itself, which checks read-logs
	// too.
	if st, body := c1.rawCall("GET", "/v1/client/fs/logs/"+allocID+"?task=server&type=stdout&namespace=team-a", deployer.SecretID, nil); st != 200 || !strings.Contains(body, "serving on") {
		t.Fatalf("logs from the client agent with the deployer's token: HTTP %d %q", st, body)
	}
	if st, body := c1.rawCall("GET", "/v1/client/fs/logs/"+allocID+"?task=server&type=stdout&namespace=team-a", "", nil); st != 403 {
		t.Fatalf("logs from the client agent with no token: HTTP %d %q, want 403", st, body)
	} else {
		wantDenied(t, "anonymous logs on the client agent", st, body, "permission_denied", "read-logs")
	}

	// Anonymous: every command and endpoint is refused, and nothing
	// changes.
	before := stableTables(t, h)
	peersBefore := s1.cliAs(mgmt.SecretID, "operator", "raft", "list-peers")
	if peersBefore.code != 0 || strings.Count(peersBefore.stdout, "true") < 3 {
		t.Fatalf("operator raft list-peers with the management token: %s", peersBefore)
	}
	anonJob := writeFile(t, "anon.hcl", webJob("anon", testutil.BusyboxRef, 1, 32))
	anon := "no token was sent"
	wantCLIDenied(t, "anonymous job run", s1.cliAs("", "job", "run", anonJob), "submit-job", anon)
	wantCLIDenied(t, "anonymous job status", s1.cliAs("", "job", "status"), "list-jobs", anon)
	wantCLIDenied(t, "anonymous job status -namespace team-a web", s1.cliAs("", "job", "status", "-namespace", "team-a", "web"), `lacks capability list-jobs in namespace "team-a"`, anon)
	wantCLIDenied(t, "anonymous node status", s1.cliAs("", "node", "status"), "node:read", anon)
	wantCLIDenied(t, "anonymous alloc logs", s1.cliAs("", "alloc", "logs", "-namespace", "team-a", allocID, "server"), "lacks", anon)
	st, body := s1.rawCall("PUT", "/v1/agent/leave", "", nil)
	wantDenied(t, "anonymous PUT /v1/agent/leave", st, body, "permission_denied", "agent:write", anon)
	peerAddr := h.servers[2].host + ":4647"
	st, body = s1.rawCall("DELETE", "/v1/operator/raft/peer?address="+peerAddr, "", nil)
	wantDenied(t, "anonymous DELETE /v1/operator/raft/peer", st, body, "permission_denied", "operator:write", anon)
	st, body = s1.rawCall("GET", "/v1/metrics", "", nil)
	wantDenied(t, "anonymous GET /v1/metrics", st, body, "permission_denied", "agent:read")
	st, body = s1.rawCall("GET", "/v1/jobs", "not-a-real-token-0000", nil)
	wantDenied(t, "unknown token", st, body, "token_not_found")
	if st, _ := s1.rawCall("GET", "/v1/agent/health", "", nil); st != 200 {
		t.Fatalf("GET /v1/agent/health with no token: HTTP %d, want 200 (load balancers probe it)", st)
	}
	if after := stateTables(t, h); !reflect.DeepEqual(before, after) {
		t.Fatalf("state changed after refused anonymous requests:\nbefore %v\nafter  %v", before, after)
	}
	if !s1.alive() {
		t.Fatal("s1 stopped after a refused PUT /v1/agent/leave")
	}
	if p := s1.cliAs(mgmt.SecretID, "operator", "raft", "list-peers"); p.code != 0 || p.stdout != peersBefore.stdout {
		t.Fatalf("raft peers changed after refused requests:\nbefore:\n%s\nafter:\n%s", peersBefore.stdout, p)
	}

	// The deployer, outside team-a: refused, naming the capability.
	wantCLIDenied(t, "deployer job run in team-b", s1.cliAs(deployer.SecretID, "job", "run", "-namespace", "team-b", anonJob),
		`token "team-a-deployer" lacks capability submit-job in namespace "team-b"`)
	wantCLIDenied(t, "deployer operator raft list-peers", s1.cliAs(deployer.SecretID, "operator", "raft", "list-peers"),
		`token "team-a-deployer" lacks operator:read`)
	st, body = s1.rawCall("DELETE", "/v1/operator/raft/peer?address="+peerAddr, deployer.SecretID, nil)
	wantDenied(t, "deployer DELETE /v1/operator/raft/peer", st, body, "permission_denied", `token "team-a-deployer" lacks operator:write`)
	st, body = s1.rawCall("PUT", "/v1/agent/leave", deployer.SecretID, nil)
	wantDenied(t, "deployer PUT /v1/agent/leave", st, body, "permission_denied", `token "team-a-deployer" lacks agent:write`)
	if js, _, err := s1.api.WithNamespace("team-b").Jobs().List(nil); err != nil || len(js) != 0 {
		t.Fatalf("team-b holds jobs after the deployer's refused run: %v %v", js, err)
	}

	// The reader lists but cannot stop.
	if r := s1.cliAs(reader.SecretID, "job", "status", "-namespace", "team-a"); r.code != 0 || !strings.Contains(r.stdout, "web") {
		t.Fatalf("reader job status -namespace team-a: %s", r)
	}
	wantCLIDenied(t, "reader job stop", s1.cliAs(reader.SecretID, "job", "stop", "-namespace", "team-a", "web"),
		`token "team-a-reader" lacks capability submit-job in namespace "team-a"`)
	// A * list holds only what the reader may see.
	if r := s1.cliAs(reader.SecretID, "job", "status", "-namespace", "*"); r.code != 0 || !strings.Contains(r.stdout, "web") || strings.Contains(r.stdout, "team-b") {
		t.Fatalf("reader job status -namespace '*': %s", r)
	}
	if cont, err := ctr.LoadContainer(nsContext(h.clientNamespace(c1)), allocID+"-server"); err != nil {
		t.Fatalf("the reader's refused stop stopped the container: %v", err)
	} else if task, err := cont.Task(nsContext(h.clientNamespace(c1)), nil); err != nil {
		t.Fatalf("the reader's refused stop: task: %v", err)
	} else if s, err := task.Status(nsContext(h.clientNamespace(c1))); err != nil || s.Status != "running" {
		t.Fatalf("the reader's refused stop: task status %v %v", s.Status, err)
	}

	// The audit log: exactly one line per write and per denied request,
	// for a controlled run of raw requests.
	lines, _ := readAudit(t, s1)
	mark := len(lines)
	jobJSON, _, err := s1.api.WithNamespace("team-a").Jobs().Info("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := json.Marshal(map[string]any{"Job": jobJSON})
	type call struct {
		method, path, token string
		body                []byte
		status              int
		// logged: the line the audit log must gain (nil: none).
		logged *auditLine
	}
	calls := []call{
		{"GET", "/v1/jobs", "", nil, 403, &auditLine{TokenName: "anonymous", Method: "GET", Path: "/v1/jobs", Status: 403, Code: "permission_denied"}},
		{"GET", "/v1/jobs?namespace=team-a", deployer.SecretID, nil, 200, nil},
		{"DELETE", "/v1/job/web?namespace=team-a", reader.SecretID, nil, 403, &auditLine{AccessorID: reader.AccessorID, TokenName: "team-a-reader", Namespace: "team-a", Method: "DELETE", Path: "/v1/job/web", Status: 403, Code: "permission_denied"}},
		{"PUT", "/v1/jobs?namespace=team-a", deployer.SecretID, reg, 200, &auditLine{AccessorID: deployer.AccessorID, TokenName: "team-a-deployer", Namespace: "team-a", Method: "PUT", Path: "/v1/jobs", Status: 200}},
		{"PUT", "/v1/namespace/team-c", deployer.SecretID, []byte(`{"Name":"team-c"}`), 403, &auditLine{AccessorID: deployer.AccessorID, TokenName: "team-a-deployer", Method: "PUT", Path: "/v1/namespace/team-c", Status: 403, Code: "permission_denied"}},
		{"PUT", "/v1/namespace/team-c", mgmt.SecretID, []byte(`{"Name":"team-c"}`), 200, &auditLine{AccessorID: mgmt.AccessorID, TokenName: mgmt.Name, Method: "PUT", Path: "/v1/namespace/team-c", Status: 200}},
	}
	var want []auditLine
	for _, c := range calls {
		st, body := s1.rawCall(c.method, c.path, c.token, c.body)
		if st != c.status {
			t.Fatalf("%s %s: HTTP %d %s, want %d", c.method, c.path, st, body, c.status)
		}
		if c.logged != nil {
			want = append(want, *c.logged)
		}
	}
	lines, raw := readAudit(t, s1)
	got := lines[mark:]
	if len(got) != len(want) {
		t.Fatalf("audit log gained %d lines for %d writes and denials:\n%s", len(got), len(want), raw)
	}
	for i, w := range want {
		g := got[i]
		if g.Time == "" || g.TokenName != w.TokenName || g.Method != w.Method || g.Path != w.Path || g.Status != w.Status || g.Code != w.Code ||
			(w.AccessorID != "" && g.AccessorID != w.AccessorID) || (w.Namespace != "" && g.Namespace != w.Namespace) {
			t.Fatalf("audit line %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	// Earlier, through the CLI: the denials named above are there, with
	// their tokens' names.
	for _, w := range []auditLine{
		{TokenName: "anonymous", Method: "PUT", Path: "/v1/agent/leave", Status: 403},
		{TokenName: "anonymous", Method: "DELETE", Path: "/v1/operator/raft/peer", Status: 403},
		{TokenName: "team-a-deployer", Method: "PUT", Path: "/v1/agent/leave", Status: 403},
		{TokenName: "team-a-deployer", Method: "PUT", Path: "/v1/jobs", Namespace: "team-b", Status: 403},
		{TokenName: "team-a-reader", Method: "DELETE", Path: "/v1/job/web", Namespace: "team-a", Status: 403},
		{TokenName: "team-a-deployer", Method: "PUT", Path: "/v1/jobs", Namespace: "team-a", Status: 200},
	} {
		found := false
		for _, g := range lines[:mark] {
			if g.TokenName == w.TokenName && g.Method == w.Method && g.Path == w.Path && g.Status == w.Status && (w.Namespace == "" || g.Namespace == w.Namespace) {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("audit log has no line %+v:\n%s", w, raw)
		}
	}
	// A read that passed is not a write: no line for GETs with 200.
	for _, g := range lines {
		if g.Method == "GET" && g.Status < 400 {
			t.Fatalf("audit log holds a successful read: %+v", g)
		}
	}

	// No secret on disk: not in any server's raft.db, not in a Raft
	// snapshot, not in the audit log; the token itself is there (its
	// accessor ID), so the files searched are the right ones.
	secrets := map[string]string{"management": mgmt.SecretID, "team-a-deployer": deployer.SecretID, "team-a-reader": reader.SecretID}
	var snapshot string
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		for _, s := range h.servers {
			metas, _ := filepath.Glob(filepath.Join(s.dataDir, "raft", "snapshots", "*", "state.bin"))
			for _, m := range metas {
				b, err := os.ReadFile(m)
				if err == nil && bytes.Contains(b, []byte(reader.AccessorID)) {
					snapshot = m
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("no Raft snapshot holding the tokens yet")
	})
	files := []string{snapshot, filepath.Join(s1.dataDir, "audit", "audit.log")}
	for _, s := range h.servers {
		db := filepath.Join(s.dataDir, "raft", "raft.db")
		b, err := os.ReadFile(db)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !bytes.Contains(b, []byte(deployer.AccessorID)) {
			t.Fatalf("%s holds no trace of the deployer's token (accessor %s): wrong file?", db, deployer.AccessorID)
		}
		files = append(files, db)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for name, secret := range secrets {
			if bytes.Contains(b, []byte(secret)) {
				t.Fatalf("%s holds the %s token's secret", f, name)
			}
		}
	}
}
