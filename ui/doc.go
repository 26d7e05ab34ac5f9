// Package ui is Drover's web UI: plain HTML, CSS and JavaScript (ES
// modules, no bundler, nothing fetched at build time) embedded in the
// binary, and the http.Handler every agent serves them with at /ui/.
//
// The UI is a client of the HTTP API and nothing more: the browser
// calls the same /v1/ endpoints as the CLI, with the ACL token the user
// typed (kept in the tab's sessionStorage, sent only in the
// X-Drover-Token header, never in a URL). The handler serves files
// only; it reads no state and holds no token. Its headers keep the
// pages from running anything but these files (a Content-Security-
// Policy without inline scripts or styles, connections to this origin
// only) and keep browsers from caching index.html across upgrades.
//
// ui imports nothing internal; agent mounts the handler.
package ui
