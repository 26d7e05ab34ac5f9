package agent

import (
	"net/http"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
)

func TestVariableHTTP_Routes(t *testing.T) {
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
	put := decodeAs[structs.VariableDecrypted](t, mustCall("PUT", "/v1/var/app/config?cas=0", `{"Namespace":"default","Path":"app/config","Items":{"greeting":"hello"}}`, http.StatusOK))
	if put.ModifyIndex == 0 || put.Items["greeting"] != "hello" || put.Namespace != "default" {
		t.Fatalf("put: %+v", put)
	}
	got := decodeAs[structs.VariableDecrypted](t, mustCall("GET", "/v1/var/app/config", "", http.StatusOK))
	if got.Items["greeting"] != "hello" || got.ModifyIndex != put.ModifyIndex || got.CreateIndex != put.CreateIndex {
		t.Fatalf("get: %+v", got)
	}
	// A stale check-and-set: 409, nothing changed.
	out := mustCall("PUT", "/v1/var/app/config?cas=1", `{"Items":{"greeting":"bye"}}`, http.StatusConflict)
	if !strings.Contains(out, `"Code":"conflict"`) || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("conflict body: %s", out)
	}
	mustCall("DELETE", "/v1/var/app/config?cas=1", "", http.StatusConflict)
	if got := decodeAs[structs.VariableDecrypted](t, mustCall("GET", "/v1/var/app/config", "", http.StatusOK)); got.Items["greeting"] != "hello" {
		t.Fatalf("after refused writes: %+v", got.Items)
	}
	mustCall("PUT", "/v1/var/app/other", `{"Items":{"a":"b"}}`, http.StatusOK)
	mustCall("PUT", "/v1/var/db/x", `{"Items":{"a":"b"}}`, http.StatusOK)
	list := decodeAs[[]*structs.VariableMetadata](t, mustCall("GET", "/v1/vars?prefix=app/", "", http.StatusOK))
	if len(list) != 2 || list[0].Path != "app/config" || list[1].Path != "app/other" {
		t.Fatalf("list app/: %+v", list)
	}
	if strings.Contains(mustCall("GET", "/v1/vars", "", http.StatusOK), "hello") {
		t.Fatal("a list returned items")
	}
	mustCall("DELETE", "/v1/var/app/other", "", http.StatusOK)
	mustCall("GET", "/v1/var/app/other", "", http.StatusNotFound)
	keys := decodeAs[[]*structs.RootKeyMeta](t, mustCall("GET", "/v1/operator/keyring/keys", "", http.StatusOK))
	if len(keys) != 1 || keys[0].State != structs.RootKeyActive || keys[0].Variables != 2 {
		t.Fatalf("keys: %+v", keys)
	}
	rot := decodeAs[structs.RootKeyMeta](t, mustCall("PUT", "/v1/operator/keyring/rotate", "", http.StatusOK))
	if rot.KeyID == keys[0].KeyID || rot.State != structs.RootKeyActive {
		t.Fatalf("rotate: %+v", rot)
	}
	if strings.Contains(mustCall("GET", "/v1/operator/keyring/keys", "", http.StatusOK), "Wrapped") {
		t.Fatal("the keyring list shows key material")
	}
}

// TestVariableHTTP_RefusesBadInput: malformed and hostile requests get a
// 4xx saying what was wrong, and nothing is stored.
func TestVariableHTTP_RefusesBadInput(t *testing.T) {
	a := aclAgent(t, false)
	a.config.MaxRequestBytes = 256 << 10
	h := a.routes()
	huge := `{"Items":{"k":"` + strings.Repeat("x", 300<<10) + `"}}`
	big := `{"Items":{"k":"` + strings.Repeat("x", structs.MaxVariableSize+1) + `"}}`
	many := `{"Items":{` + strings.TrimSuffix(strings.Repeat(`"k":"v",`, 1), ",")
	for i := 0; i < structs.MaxVariableItems+1; i++ {
		many += `,"k` + strings.Repeat("0", 3) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":"v"`
	}
	many += `}}`
	cases := []struct {
		name, method, path, body string
		want                     int
		substr                   string
	}{
		{"not JSON", "PUT", "/v1/var/a", `{"Items":`, http.StatusBadRequest, "not valid JSON"},
		{"no items", "PUT", "/v1/var/a", `{"Items":{}}`, http.StatusBadRequest, "at least one item"},
		{"items not strings", "PUT", "/v1/var/a", `{"Items":{"k":1}}`, http.StatusBadRequest, ""},
		{"unknown field", "PUT", "/v1/var/a", `{"Items":{"k":"v"},"Secret":1}`, http.StatusBadRequest, "Secret"},
		{"paths disagree", "PUT", "/v1/var/a", `{"Path":"b","Items":{"k":"v"}}`, http.StatusBadRequest, "must agree"},
		{"namespaces disagree", "PUT", "/v1/var/a?namespace=x", `{"Namespace":"y","Items":{"k":"v"}}`, http.StatusBadRequest, "must agree"},
		{"namespace star", "PUT", "/v1/var/a?namespace=*", `{"Items":{"k":"v"}}`, http.StatusBadRequest, "one namespace"},
		{"escaped dot-dot path", "PUT", "/v1/var/a/%2E%2E/b", `{"Items":{"k":"v"}}`, http.StatusBadRequest, "is not a path segment"},
		{"bad path chars", "PUT", "/v1/var/a%20b", `{"Items":{"k":"v"}}`, http.StatusBadRequest, "is invalid"},
		{"long path", "GET", "/v1/var/" + strings.Repeat("a", 300), "", http.StatusBadRequest, "bytes long"},
		{"bad cas", "PUT", "/v1/var/a?cas=x", `{"Items":{"k":"v"}}`, http.StatusBadRequest, "cas="},
		{"negative cas", "DELETE", "/v1/var/a?cas=-1", ``, http.StatusBadRequest, "cas="},
		{"bad key", "PUT", "/v1/var/a", `{"Items":{"a b":"v"}}`, http.StatusBadRequest, "is invalid"},
		{"over 64 KiB", "PUT", "/v1/var/a", big, http.StatusBadRequest, "64 KiB"},
		{"too many items", "PUT", "/v1/var/a", many, http.StatusBadRequest, "items; the limit is"},
		{"over the body limit", "PUT", "/v1/var/a", huge, http.StatusRequestEntityTooLarge, "larger than the limit"},
		{"missing namespace", "PUT", "/v1/var/a?namespace=nope", `{"Items":{"k":"v"}}`, http.StatusNotFound, "does not exist"},
		{"get missing", "GET", "/v1/var/nope", "", http.StatusNotFound, "not found"},
		{"bad per_page", "GET", "/v1/vars?per_page=0", "", http.StatusBadRequest, "per_page"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := call(t, h, tc.method, tc.path, tc.body, nil)
			if code != tc.want || !strings.Contains(out, tc.substr) {
				t.Fatalf("%d %s, want %d containing %q", code, out, tc.want, tc.substr)
			}
		})
	}
	_, out := call(t, h, "GET", "/v1/vars", "", nil)
	if list := decodeAs[[]*structs.VariableMetadata](t, out); len(list) != 0 {
		t.Fatalf("refused requests stored %+v", list)
	}
}

// TestVariableHTTP_ACL: with ACLs on, anonymous variable and keyring
// requests are 403s naming what is missing.
func TestVariableHTTP_ACL(t *testing.T) {
	a := aclAgent(t, true)
	h := a.routes()
	for _, c := range []struct{ method, path, body, want string }{
		{"PUT", "/v1/var/a", `{"Items":{"k":"v"}}`, `lacks capability variables write on path \"a\"`},
		{"GET", "/v1/var/a", "", `lacks capability variables read on path \"a\"`},
		{"DELETE", "/v1/var/a", "", `lacks capability variables destroy`},
		{"GET", "/v1/vars", "", `lacks capability variables list`},
		{"GET", "/v1/operator/keyring/keys", "", "lacks operator:read"},
		{"PUT", "/v1/operator/keyring/rotate", "", "lacks operator:write"},
	} {
		code, out := call(t, h, c.method, c.path, c.body, nil)
		if code != http.StatusForbidden || !strings.Contains(out, c.want) {
			t.Errorf("anonymous %s %s: %d %s, want 403 with %s", c.method, c.path, code, out, c.want)
		}
	}
}
