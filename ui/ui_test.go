package ui

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func newHandler(t *testing.T) *Handler {
	t.Helper()
	h, err := New(Options{EventStream: true})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestHandler_ServesIndexWithHeaders: /ui/ is index.html, never cached,
// under a Content-Security-Policy that allows no inline script.
func TestHandler_ServesIndexWithHeaders(t *testing.T) {
	rec := get(t, newHandler(t), "/ui/", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /ui/: %d", rec.Code)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `<script type="module" src="/ui/assets/js/main.js">`) {
		t.Fatalf("GET /ui/ is not index.html:\n%s", body)
	}
	want := map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
	}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows inline code", csp)
	}
}

// TestHandler_IndexHasNoInlineCode: the CSP forbids inline scripts and
// styles, so index.html must not need them (a page that did would be
// blank, with a console error, in every browser).
func TestHandler_IndexHasNoInlineCode(t *testing.T) {
	body := get(t, newHandler(t), "/ui/", nil).Body.String()
	for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1) {
		if !strings.Contains(m, `src="/ui/assets/`) {
			t.Errorf("inline or foreign script tag %s", m)
		}
	}
	for _, bad := range []string{"<style", " style=", " onclick=", " onload=", "javascript:"} {
		if strings.Contains(body, bad) {
			t.Errorf("index.html contains %q, which the CSP blocks", bad)
		}
	}
}

// TestHandler_AssetsHaveTheirContentTypes: every asset index.html and
// the modules load is served with its own type (a module script served
// as text/plain is refused under nosniff).
func TestHandler_AssetsHaveTheirContentTypes(t *testing.T) {
	h := newHandler(t)
	cases := []struct{ path, ctype, contains string }{
		{"/ui/assets/app.css", "text/css; charset=utf-8", ":root"},
		{"/ui/assets/js/main.js", "text/javascript; charset=utf-8", "import "},
		{"/ui/assets/js/pages/jobs.js", "text/javascript; charset=utf-8", "export const jobsPage"},
		{"/ui/assets/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			rec := get(t, h, c.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("%d", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != c.ctype {
				t.Errorf("Content-Type %q, want %q", got, c.ctype)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache (revalidate: names carry no version)", got)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			if !strings.Contains(rec.Body.String(), c.contains) {
				t.Errorf("body does not contain %q", c.contains)
			}
		})
	}
}

// TestHandler_AssetRevalidates: an asset's ETag answers If-None-Match
// with 304, so revalidating costs no body.
func TestHandler_AssetRevalidates(t *testing.T) {
	h := newHandler(t)
	first := get(t, h, "/ui/assets/app.css", nil)
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	again := get(t, h, "/ui/assets/app.css", map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Fatalf("If-None-Match %s: %d with %d bytes, want 304 and no body", etag, again.Code, again.Body.Len())
	}
}

// TestHandler_UnknownPathsFallBackToIndex: the UI routes in the
// browser, so a reload of /ui/jobs/web must get index.html; a missing
// asset is a 404, not HTML under a script's name.
func TestHandler_UnknownPathsFallBackToIndex(t *testing.T) {
	h := newHandler(t)
	index := get(t, h, "/ui/", nil).Body.String()
	for _, p := range []string{"/ui/jobs", "/ui/jobs/web", "/ui/allocations/0b1c", "/ui/variables/app/config", "/ui/no/such/page"} {
		rec := get(t, h, p, nil)
		if rec.Code != http.StatusOK || rec.Body.String() != index {
			t.Errorf("GET %s: %d, index.html: %v", p, rec.Code, rec.Body.String() == index)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", p, rec.Header().Get("Cache-Control"))
		}
	}
	rec := get(t, h, "/ui/assets/js/nosuch.js", nil)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("missing asset: %d, want 404", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); strings.Contains(ct, "html") || strings.Contains(ct, "javascript") {
		t.Fatalf("missing asset served as %q", ct)
	}
}

// TestHandler_TellsThePagesAboutTheEventStream: index.html says whether
// the agent serves the event stream, so a client agent's pages do not
// try it (a failed request is a console error).
func TestHandler_TellsThePagesAboutTheEventStream(t *testing.T) {
	for _, on := range []bool{true, false} {
		h, err := New(Options{EventStream: on})
		if err != nil {
			t.Fatal(err)
		}
		body := get(t, h, "/ui/", nil).Body.String()
		want := fmt.Sprintf(`<meta name="drover-event-stream" content="%t">`, on)
		if !strings.Contains(body, want) {
			t.Errorf("EventStream %t: index.html lacks %s", on, want)
		}
	}
}

// TestHandler_OnlyReads: the handler serves files; a write is 405.
func TestHandler_OnlyReads(t *testing.T) {
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := httptest.NewRecorder()
		newHandler(t).ServeHTTP(rec, httptest.NewRequest(m, "/ui/jobs", strings.NewReader("{}")))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /ui/jobs: %d, want 405", m, rec.Code)
		}
	}
}

// TestHandler_EveryModuleIsEmbedded: each relative import in the
// JavaScript names an embedded file, so no page fails to load in the
// browser over a typo.
func TestHandler_EveryModuleIsEmbedded(t *testing.T) {
	h := newHandler(t)
	imp := regexp.MustCompile(`(?m)^import [^;]*? from '(\.[^']+)';`)
	n := 0
	err := fs.WalkDir(static, "static/assets/js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		dir := strings.TrimPrefix(p[:strings.LastIndex(p, "/")], "static/assets/")
		for _, m := range imp.FindAllStringSubmatch(string(src), -1) {
			n++
			target := joinRel(dir, m[1])
			if _, ok := h.assets[target]; !ok {
				t.Errorf("%s imports %s (%s), which is not embedded", p, m[1], target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("found only %d imports; is the pattern stale?", n)
	}
}

func joinRel(dir, rel string) string {
	parts := strings.Split(dir, "/")
	for _, seg := range strings.Split(rel, "/") {
		switch seg {
		case ".":
		case "..":
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, seg)
		}
	}
	return strings.Join(parts, "/")
}
