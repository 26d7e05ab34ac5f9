package agent

import (
	"net/http"

	"github.com/droverhq/drover/ui"
)

// mountUI serves the web UI (package ui) at /ui/ and sends / there.
// The UI is static files calling this same API with the user's token,
// so its routes need no authorization of their own: every request it
// makes is authorized as the CLI's are.
func (a *Agent) mountUI(mux *http.ServeMux) {
	// Only servers serve the event stream (http_events.go).
	h, err := ui.New(ui.Options{EventStream: a.server != nil})
	if err != nil {
		// The embedded files are part of the build; ui's tests fail
		// on a tree New refuses, so this is a broken build.
		a.logger.Error("web UI not served", "error", err)
		return
	}
	mux.Handle("GET "+ui.Prefix, h)
	mux.HandleFunc("GET /{$}", ui.Redirect)
}
