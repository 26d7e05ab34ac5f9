package agent

import (
	"net/http"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
)

func TestQuotaHTTP_Routes(t *testing.T) {
	a := aclAgent(t, false)
	h := a.routes()
	mustCall := func(method, path, body string, want int) string {
		t.Helper()
		code, out := call(t, h, method, path, body, nil)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
		}
		return out
	}
	mustCall("PUT", "/v1/namespace/team-a", `{}`, http.StatusOK)
	mustCall("PUT", "/v1/quota/team-a", `{"Description":"A","Namespace":"team-a","Limits":{"MemoryMB":1024,"CPU":4000}}`, http.StatusOK)
	mustCall("POST", "/v1/quota/open", `{"Name":"open"}`, http.StatusOK)

	got := decodeAs[structs.QuotaSpec](t, mustCall("GET", "/v1/quota/team-a", "", http.StatusOK))
	if got.Namespace != "team-a" || got.Limits.MemoryMB != 1024 || got.Limits.CPU != 4000 || got.Description != "A" {
		t.Fatalf("team-a: %+v", got)
	}
	list := decodeAs[[]*structs.QuotaSpec](t, mustCall("GET", "/v1/quotas", "", http.StatusOK))
	if len(list) != 2 || list[0].Name != "open" || list[1].Name != "team-a" {
		t.Fatalf("quotas: %+v", list)
	}
	usage := decodeAs[structs.QuotaUsage](t, mustCall("GET", "/v1/quota/usage/team-a", "", http.StatusOK))
	if usage.Namespace != "team-a" || usage.Limits.MemoryMB != 1024 || !usage.Used.IsZero() {
		t.Fatalf("usage: %+v", usage)
	}
	mustCall("DELETE", "/v1/quota/open", "", http.StatusOK)
	mustCall("GET", "/v1/quota/open", "", http.StatusNotFound)
	mustCall("GET", "/v1/quota/usage/open", "", http.StatusNotFound)
}

// TestQuotaHTTP_RefusesBadInput: malformed and hostile requests get a
// 4xx with a JSON error saying what was wrong; nothing is stored.
func TestQuotaHTTP_RefusesBadInput(t *testing.T) {
	a := aclAgent(t, false)
	h := a.routes()
	cases := []struct {
		name, method, path, body string
		want                     int
		substr                   string
	}{
		{"not JSON", "PUT", "/v1/quota/a", `{"Limits":`, http.StatusBadRequest, ""},
		{"names disagree", "PUT", "/v1/quota/a", `{"Name":"b"}`, http.StatusBadRequest, `they must agree`},
		{"bad path name", "PUT", "/v1/quota/a%20b", `{}`, http.StatusBadRequest, "is invalid"},
		{"negative", "PUT", "/v1/quota/a", `{"Limits":{"MemoryMB":-1}}`, http.StatusBadRequest, "limit memory is -1"},
		{"wrong type", "PUT", "/v1/quota/a", `{"Limits":{"MemoryMB":"lots"}}`, http.StatusBadRequest, ""},
		{"unknown namespace binding is fine but * is not", "PUT", "/v1/quota/a", `{"Namespace":"*"}`, http.StatusBadRequest, "means every namespace"},
		{"delete unknown", "DELETE", "/v1/quota/nope", "", http.StatusNotFound, `not found`},
		{"usage bad name", "GET", "/v1/quota/usage/" + strings.Repeat("x", 300), "", http.StatusBadRequest, "bytes long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := call(t, h, tc.method, tc.path, tc.body, nil)
			if code != tc.want || !strings.Contains(out, tc.substr) {
				t.Fatalf("%d %s, want %d containing %q", code, out, tc.want, tc.substr)
			}
		})
	}
	if list := decodeAs[[]*structs.QuotaSpec](t, func() string { _, out := call(t, h, "GET", "/v1/quotas", "", nil); return out }()); len(list) != 0 {
		t.Fatalf("refused requests stored %+v", list)
	}
}

// TestQuotaHTTP_ACL: with ACLs on, an anonymous quota write is a 403
// naming the rule.
func TestQuotaHTTP_ACL(t *testing.T) {
	a := aclAgent(t, true)
	h := a.routes()
	code, out := call(t, h, "PUT", "/v1/quota/a", `{}`, nil)
	if code != http.StatusForbidden || !strings.Contains(out, `"Code":"permission_denied"`) || !strings.Contains(out, "lacks quota:write") {
		t.Fatalf("anonymous write: %d %s", code, out)
	}
	code, out = call(t, h, "GET", "/v1/quotas", "", nil)
	if code != http.StatusForbidden || !strings.Contains(out, "lacks quota:read") {
		t.Fatalf("anonymous list: %d %s", code, out)
	}
}
