// Package privctrd runs a private containerd daemon: its own root,
// state, config, log and socket in one directory, its own namespace
// name, started from the host's containerd binary and torn down so that
// no task, shim, mount, runc state or cgroup it created is left behind.
//
// It is not test-only: the bench harness (drover bench, linked into the
// drover binary) starts one for its latency scenario, and testutil
// wraps it for tests (StartContainerd adds t.Cleanup and t.Fatal). So it
// must never import package testing, which would link it into the
// binary; imports_test.go enforces that.
//
// privctrd imports the containerd Go client and the standard library,
// and no Drover package.
package privctrd
