// Package testutil holds helpers shared by Drover's tests: polling with
// a deadline (WaitFor), a private containerd daemon per test
// (StartContainerd) and a small OCI image built from the static busybox
// binary (ImportBusybox). It is imported only by _test.go files and by
// its own commands under testutil/cmd; imports_test.go enforces that.
//
// The machinery lives in non-test packages under internal/ (poll,
// privctrd, ociimage) because the bench harness, linked into the drover
// binary, needs it too, and the binary must not link package testing.
// testutil adds only the *testing.T parts (t.Helper, t.Fatal, t.Cleanup,
// t.TempDir) over them; its types are aliases of theirs.
//
// testutil imports internal/poll, internal/privctrd, internal/ociimage,
// the containerd client and package testing.
package testutil
