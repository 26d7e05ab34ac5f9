// Package testutil holds helpers shared by Drover's tests: polling with
// a deadline, a private containerd daemon per test, and a small OCI
// image built from the static busybox binary. It is imported only by
// tests (and by the demo's image builder under testutil/cmd).
package testutil
