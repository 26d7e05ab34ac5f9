package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestUIRoutes: the agent's root sends browsers to /ui/, the UI's pages
// are served with its headers, and the API's own 404 is unchanged for
// every other path.
func TestUIRoutes(t *testing.T) {
	h := httpAgent(nil).routes()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/"); rec.Code != http.StatusFound || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /: %d to %q, want 302 to /ui/", rec.Code, rec.Header().Get("Location"))
	}
	if rec := get("/ui"); rec.Code/100 != 3 || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d to %q, want a redirect to /ui/", rec.Code, rec.Header().Get("Location"))
	}
	rec := get("/ui/jobs/web")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /ui/jobs/web: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /ui/jobs/web: no Content-Security-Policy: %v", rec.Header())
	}
	rec = get("/v1/no-such-endpoint")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"Code":"not_found"`) {
		t.Fatalf("GET /v1/no-such-endpoint: %d %s, want the API's JSON 404", rec.Code, rec.Body.String())
	}
	rec = get("/favicon.ico")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("GET /favicon.ico: %d, want 404 (only / itself redirects)", rec.Code)
	}
}
