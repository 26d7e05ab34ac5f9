package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// Prefix is the path the UI is served under; every other path below it
// that is not an asset is a page of the UI (client-side routing), so
// it gets index.html.
const Prefix = "/ui/"

// assetsDir is where, below Prefix, the static files are; a missing
// file there is a 404, never index.html (a script tag naming a missing
// file should fail loudly, not parse HTML as JavaScript).
const assetsDir = "assets/"

// ContentSecurityPolicy lets the pages load only this agent's own
// scripts, styles and images and connect only to its API: no inline
// script or style, no eval, no framing, no form posts anywhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// contentTypes are the types of the files the UI ships, by extension.
// New refuses a file with another extension, so adding one means
// deciding its type here rather than trusting the host's mime table.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".txt":  "text/plain; charset=utf-8",
}

// file is one embedded file, ready to serve.
type file struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// Options describe the agent serving the UI, for the pages to know
// without asking (a request that fails is an error in the browser's
// console).
type Options struct {
	// EventStream is true on agents that serve /v1/event/stream
	// (servers); the pages of other agents follow with blocking
	// queries.
	EventStream bool
}

// eventStreamMeta is the tag in index.html that New fills in from
// Options.EventStream.
const eventStreamMeta = `<meta name="drover-event-stream" content="">`

// Handler serves the UI. It is immutable after New and safe for
// concurrent use.
type Handler struct {
	index  file
	assets map[string]file // by path below Prefix+assetsDir
}

// New reads the embedded files. It fails only when the embedded tree
// is broken (no index.html or its event-stream tag, a file type not in
// contentTypes): a build problem, caught by this package's tests.
func New(opts Options) (*Handler, error) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	h := &Handler{assets: map[string]file{}}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("ui: embedded file %s has no content type; add %q to contentTypes", p, path.Ext(p))
		}
		if p == "index.html" {
			if !bytes.Contains(body, []byte(eventStreamMeta)) {
				return fmt.Errorf("ui: index.html lacks %s", eventStreamMeta)
			}
			filled := strings.Replace(eventStreamMeta, `content=""`, fmt.Sprintf("content=%q", strconv.FormatBool(opts.EventStream)), 1)
			body = bytes.Replace(body, []byte(eventStreamMeta), []byte(filled), 1)
		}
		sum := sha256.Sum256(body)
		f := file{name: p, body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		switch {
		case p == "index.html":
			h.index = f
		case strings.HasPrefix(p, assetsDir):
			h.assets[strings.TrimPrefix(p, assetsDir)] = f
		default:
			return fmt.Errorf("ui: embedded file %s is neither index.html nor under %s", p, assetsDir)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if h.index.body == nil {
		return nil, fmt.Errorf("ui: no index.html embedded")
	}
	return h, nil
}

// ServeHTTP answers GET and HEAD below Prefix: an asset, a 404 for a
// missing asset, and index.html for every other path. Other methods
// are 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "the UI is read with GET", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name, isAsset := strings.CutPrefix(rest, assetsDir); isAsset {
		f, ok := h.assets[name]
		if !ok {
			http.Error(w, fmt.Sprintf("no UI asset %q", name), http.StatusNotFound)
			return
		}
		// Asset names carry no version, so a browser revalidates each
		// use (a cheap 304 by ETag) and picks up an upgraded agent's
		// files at once.
		hdr.Set("Cache-Control", "no-cache")
		serve(w, r, f)
		return
	}
	// index.html names the assets; it is never stored, so a reload
	// after an upgrade always gets the new one.
	hdr.Set("Cache-Control", "no-store")
	serve(w, r, h.index)
}

func serve(w http.ResponseWriter, r *http.Request, f file) {
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("ETag", f.etag)
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
}

// Redirect sends a request for the agent's root to the UI.
func Redirect(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, Prefix, http.StatusFound)
}
