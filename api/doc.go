// Package api is the Go client for Drover's HTTP API. It imports nothing
// internal: its types mirror the API's JSON, so programs outside this
// module can use it, and the CLI and the end-to-end tests exercise the
// API exactly as any other client does.
package api
