package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
)

// auditCounter reads one of the audit log's counters.
func auditCounter(t *testing.T, l *auditLog, name string) float64 {
	t.Helper()
	families, err := l.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

func readAuditFile(t *testing.T, path string) []auditEntry {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []auditEntry
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var e auditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line is not JSON: %q", sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// TestAudit_WritesAndDenials: one line per write (whatever its outcome)
// and per denied request, naming the token; none for a read that
// passed; never the secret or the query string.
func TestAudit_WritesAndDenials(t *testing.T) {
	f := newACLFixture(t)
	dir := filepath.Join(t.TempDir(), "audit")
	path := filepath.Join(dir, "audit.log")
	f.a.audit = newAuditLog(auditSettings{path: path, maxBytes: 1 << 20, maxFiles: 2}, hclog.NewNullLogger())
	f.h = f.a.routes() // as New does: the audit log before the routes
	secret := f.agentRead["X-Drover-Token"]
	mgmtSecret := f.mgmt["X-Drover-Token"]

	cases := []struct {
		method, path, body string
		headers            map[string]string
		status             int
		// want is the line expected, nil for none.
		want *auditEntry
	}{
		{"GET", "/v1/agent/self", "", nil, 403, &auditEntry{AccessorID: "anonymous", TokenName: "anonymous", Method: "GET", Path: "/v1/agent/self", Status: 403, Code: "permission_denied"}},
		{"GET", "/v1/agent/self?token=" + secret, "", f.agentRead, 200, nil},
		{"GET", "/v1/acl/policies", "", f.mgmt, 200, nil},
		{"PUT", "/v1/agent/leave?x=" + secret, "", f.agentRead, 403, &auditEntry{TokenName: "agent-reader", Method: "PUT", Path: "/v1/agent/leave", Status: 403, Code: "permission_denied"}},
		{"PUT", "/v1/acl/policy/extra", `{"Rules":"agent { policy = \"read\" }"}`, f.mgmt, 200, &auditEntry{TokenName: "Bootstrap Token", Method: "PUT", Path: "/v1/acl/policy/extra", Status: 200}},
		{"PUT", "/v1/acl/policy/extra", `{"Rules":`, f.mgmt, 400, &auditEntry{TokenName: "Bootstrap Token", Method: "PUT", Path: "/v1/acl/policy/extra", Status: 400, Code: "invalid_request"}},
		{"PUT", "/v1/acl/policy/other", `{"Rules":""}`, f.agentRead, 403, &auditEntry{TokenName: "agent-reader", Method: "PUT", Path: "/v1/acl/policy/other", Status: 403, Code: "permission_denied"}},
		{"GET", "/v1/metrics", "", map[string]string{"Authorization": "Bearer " + "wrong-" + secret}, 403, &auditEntry{Method: "GET", Path: "/v1/metrics", Status: 403, Code: "token_not_found"}},
		{"PUT", "/v1/validate/job?namespace=default", mockJobBody(t), nil, 403, &auditEntry{AccessorID: "anonymous", TokenName: "anonymous", Namespace: "default", Method: "PUT", Path: "/v1/validate/job", Status: 403, Code: "permission_denied"}},
		{"DELETE", "/v1/job/web?namespace=team-a", "", f.mgmt, 404, &auditEntry{TokenName: "Bootstrap Token", Namespace: "team-a", Method: "DELETE", Path: "/v1/job/web"}},
		{"GET", "/v1/agent/health", "", nil, 200, nil},
	}
	var want []auditEntry
	for _, tc := range cases {
		code, body := rawCall(t, f.h, tc.method, tc.path, tc.body, tc.headers)
		if tc.want != nil && tc.want.Status == 0 {
			// The server decides (a stop of a missing job).
			tc.want.Status = code
			if code >= 400 {
				tc.want.Code = decodeAs[errorBody](t, body).Code
			}
		} else if code != tc.status {
			t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.status)
		}
		if tc.want != nil {
			want = append(want, *tc.want)
		}
	}
	got := readAuditFile(t, path)
	if len(got) != len(want) {
		t.Fatalf("%d audit lines, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if _, err := time.Parse(time.RFC3339Nano, g.Time); err != nil {
			t.Fatalf("line %d: time %q: %v", i, g.Time, err)
		}
		g.Time = ""
		if w.AccessorID == "" && w.TokenName != "" && w.TokenName != "anonymous" {
			// Accessors are random: present, not compared.
			if g.AccessorID == "" {
				t.Fatalf("line %d has no accessor: %+v", i, g)
			}
			g.AccessorID = ""
		}
		if g != w {
			t.Fatalf("line %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	raw, _ := os.ReadFile(path)
	for _, s := range []string{secret, mgmtSecret, "token=", "?"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatalf("the audit log holds %q:\n%s", s, raw)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("audit log mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("audit dir mode %v, want 0700", st.Mode().Perm())
	}
	if n := auditCounter(t, f.a.audit, "drover_audit_lines_total"); int(n) != len(want) {
		t.Fatalf("drover_audit_lines_total = %v, want %d", n, len(want))
	}
	// The audit metrics are served with the agent's.
	if code, body := rawCall(t, f.h, "GET", "/v1/metrics", "", f.agentRead); code != 200 || !strings.Contains(body, "drover_audit_write_failures_total 0") {
		t.Fatalf("metrics: %d, audit counters missing", code)
	}
}

// TestAudit_RotatesBySize: past max size the file rotates; max_files
// rotated files are kept, the oldest dropped; no line is split or lost
// within what is kept.
func TestAudit_RotatesBySize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := newAuditLog(auditSettings{path: path, maxBytes: 400, maxFiles: 2}, hclog.NewNullLogger())
	defer l.close()
	for i := 0; i < 40; i++ {
		l.write(auditEntry{Time: "t", TokenName: "n" + strconv.Itoa(i), Method: "PUT", Path: "/v1/jobs", Status: 200})
	}
	var seen []string
	for _, p := range []string{path + ".2", path + ".1", path} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if st.Size() > 400 {
			t.Fatalf("%s is %d bytes, over max size 400", p, st.Size())
		}
		for _, e := range readAuditFile(t, p) {
			seen = append(seen, e.TokenName)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Fatalf("a third rotated file was kept (max_files 2): %v", err)
	}
	// The kept lines are the newest, in order, ending with the last.
	if len(seen) == 0 || seen[len(seen)-1] != "n39" {
		t.Fatalf("kept lines: %v", seen)
	}
	for i := 1; i < len(seen); i++ {
		a, _ := strconv.Atoi(strings.TrimPrefix(seen[i-1], "n"))
		b, _ := strconv.Atoi(strings.TrimPrefix(seen[i], "n"))
		if b != a+1 {
			t.Fatalf("lines out of order or lost within the kept files: %v", seen)
		}
	}
	// Reopening continues the live file.
	l.close()
	l2 := newAuditLog(auditSettings{path: path, maxBytes: 400, maxFiles: 2}, hclog.NewNullLogger())
	defer l2.close()
	before := len(readAuditFile(t, path))
	l2.write(auditEntry{TokenName: "again"})
	if after := readAuditFile(t, path); len(after) != before+1 && len(after) != 1 {
		t.Fatalf("after reopening: %d lines, had %d", len(after), before)
	}
}

// TestAudit_FailureDoesNotFailRequests: an audit log that cannot be
// written (its directory is a file) counts the failures and the
// requests are answered as usual.
func TestAudit_FailureDoesNotFailRequests(t *testing.T) {
	f := newACLFixture(t)
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.a.audit = newAuditLog(auditSettings{path: filepath.Join(blocker, "audit", "audit.log"), maxBytes: 1 << 20, maxFiles: 2}, hclog.NewNullLogger())
	f.h = f.a.routes()
	if code, body := rawCall(t, f.h, "PUT", "/v1/acl/policy/p2", `{"Rules":"agent { policy = \"read\" }"}`, f.mgmt); code != 200 {
		t.Fatalf("write with a broken audit log: %d %s", code, body)
	}
	if code, _ := rawCall(t, f.h, "PUT", "/v1/agent/leave", "", nil); code != 403 {
		t.Fatalf("denial with a broken audit log: %d", code)
	}
	if n := auditCounter(t, f.a.audit, "drover_audit_write_failures_total"); n != 2 {
		t.Fatalf("drover_audit_write_failures_total = %v, want 2", n)
	}
	if code, body := rawCall(t, f.h, "GET", "/v1/metrics", "", f.agentRead); code != 200 || !strings.Contains(body, "drover_audit_write_failures_total 2") {
		t.Fatalf("metrics: %d", code)
	}
	// The policy was written.
	if code, _ := rawCall(t, f.h, "GET", "/v1/acl/policy/p2", "", f.mgmt); code != 200 {
		t.Fatal("the write was lost")
	}
}

func TestConfig_AuditAndTokenTTL(t *testing.T) {
	c := DefaultConfig()
	c.Merge(&Config{Audit: &AuditConfig{Enabled: true}, ACL: &ACLConfig{TokenTTL: "5s"}})
	if !c.Audit.Enabled {
		t.Fatal("merge lost audit.enabled")
	}
	s := c.Audit.settings("/data")
	if s.path != "/data/audit/audit.log" || s.maxBytes != 100<<20 || s.maxFiles != 5 {
		t.Fatalf("defaults: %+v", s)
	}
	if d, err := c.ACL.tokenTTL(); err != nil || d != 5*time.Second {
		t.Fatalf("token_ttl: %v %v", d, err)
	}
	dir := t.TempDir()
	path := dir + "/agent.hcl"
	writeFile(t, path, "audit {\n  enabled = true\n  path = \"/var/log/drover/audit.log\"\n  max_size_mb = 10\n  max_files = 3\n}\nacl {\n  enabled = true\n  token_ttl = \"1m\"\n}\n")
	fc, err := LoadConfigFile(path)
	if err != nil || fc.Audit == nil || !fc.Audit.Enabled || fc.Audit.Path != "/var/log/drover/audit.log" || fc.Audit.MaxSizeMB != 10 || fc.Audit.MaxFiles != 3 || fc.ACL.TokenTTL != "1m" {
		t.Fatalf("from a file: %+v %+v %v", fc.Audit, fc.ACL, err)
	}
	for _, tc := range []struct {
		name string
		cfg  *Config
		want string
	}{
		{"bad ttl", &Config{ACL: &ACLConfig{TokenTTL: "soon"}}, `acl token_ttl = "soon": want a duration like "30s"`},
		{"negative ttl", &Config{ACL: &ACLConfig{TokenTTL: "-1s"}}, `acl token_ttl = "-1s"`},
		{"negative size", &Config{Audit: &AuditConfig{MaxSizeMB: -1}}, "audit max_size_mb = -1"},
		{"negative files", &Config{Audit: &AuditConfig{MaxFiles: -2}}, "audit max_files = -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DevConfig()
			c.Merge(tc.cfg)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAudit_HostileRequest: a request whose query and path carry
// newlines, quotes and kilobytes gets one bounded, valid JSON line.
func TestAudit_HostileRequest(t *testing.T) {
	f := newACLFixture(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	f.a.audit = newAuditLog(auditSettings{path: path, maxBytes: 1 << 20, maxFiles: 2}, hclog.NewNullLogger())
	f.h = f.a.routes()
	ns := strings.Repeat("x\"\n{", 500)
	r := httptest.NewRequest("PUT", "/v1/agent/leave", nil)
	r.URL.RawQuery = "namespace=" + url.QueryEscape(ns)
	r.URL.Path = "/v1/agent/leave"
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	if rec.Code != 403 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	lines := readAuditFile(t, path)
	if len(lines) != 1 {
		t.Fatalf("%d lines", len(lines))
	}
	if n := len(lines[0].Namespace); n > maxAuditNamespace {
		t.Fatalf("namespace of %d bytes logged", n)
	}
	if lines[0].TokenName != "anonymous" || lines[0].Path != "/v1/agent/leave" {
		t.Fatalf("line %+v", lines[0])
	}
}

// TestAgent_AuditAndACLsFromConfig: a real agent started with acl and
// audit blocks creates the audit log at its default path (0600 in a
// 0700 directory) and logs a refused request received over HTTP.
func TestAgent_AuditAndACLsFromConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BindAddr = "127.0.0.1"
	cfg.Ports = &Ports{HTTP: freePort(t), RPC: freePort(t), Gossip: freePort(t)}
	cfg.DataDir = t.TempDir()
	cfg.NodeName = "audit"
	cfg.Server.Enabled = true
	cfg.Merge(&Config{ACL: &ACLConfig{Enabled: true}, Audit: &AuditConfig{Enabled: true}})
	a, err := New(cfg, hclog.New(&hclog.LoggerOptions{Name: "agent", Level: hclog.Warn}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	path := filepath.Join(cfg.DataDir, "audit", "audit.log")
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("audit log at start: %v %v", st, err)
	}
	resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("anonymous metrics: %d", resp.StatusCode)
	}
	lines := readAuditFile(t, path)
	if len(lines) != 1 || lines[0].Path != "/v1/metrics" || lines[0].Status != 403 || lines[0].TokenName != "anonymous" || lines[0].Code != "permission_denied" {
		t.Fatalf("audit lines %+v", lines)
	}
}

// TestAudit_TokenDeletingItself: the line of a write names the token
// as it was when the write arrived.
func TestAudit_TokenDeletingItself(t *testing.T) {
	f := newACLFixture(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	f.a.audit = newAuditLog(auditSettings{path: path, maxBytes: 1 << 20, maxFiles: 2}, hclog.NewNullLogger())
	f.h = f.a.routes()
	_, body := call(t, f.h, "PUT", "/v1/acl/token", `{"Name":"short-lived","Type":"management"}`, f.mgmt)
	tok := decodeAs[aclTokenJSON](t, body)
	if code, body := call(t, f.h, "DELETE", "/v1/acl/token/"+tok.AccessorID, "", map[string]string{"X-Drover-Token": tok.SecretID}); code != 200 {
		t.Fatalf("self delete: %d %s", code, body)
	}
	lines := readAuditFile(t, path)
	last := lines[len(lines)-1]
	if last.TokenName != "short-lived" || last.AccessorID != tok.AccessorID || last.Method != "DELETE" || last.Status != 200 {
		t.Fatalf("line %+v", last)
	}
}
