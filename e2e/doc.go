// Package e2e holds Drover's black-box tests: they build the drover
// binary, start a private containerd (own root, state and socket in a
// temp dir) and real agent processes on their own 127.0.0.x addresses,
// and drive them through the CLI and the HTTP API (package api), with
// containerd's own API as the witness of what actually runs.
//
// e2e imports api and testutil; never the server or client packages.
// These tests need containerd, runc and busybox-static installed; they
// fail, never skip, when those are missing.
package e2e
