package testutil

import (
	"errors"
	"testing"

	"github.com/droverhq/drover/internal/privctrd"
)

// Containerd is a private containerd daemon (see privctrd.Containerd):
// an alias, so tests keep naming it testutil.Containerd and reach its
// fields and methods (Address, Namespace, Client, Restart, Stop, ...).
type Containerd = privctrd.Containerd

// StartContainerd starts a private containerd for the test and registers
// its teardown with t.Cleanup. A missing containerd fails the test; it
// never skips, so CI cannot silently lose these tests.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	c, err := privctrd.Launch("")
	var missing *privctrd.MissingBinaryError
	if errors.As(err, &missing) {
		t.Fatalf("%v", err) // never t.Skip: CI must not lose these tests
	}
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log (%s), last lines:\n%s", c.LogPath, c.LogTail(60))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	return c
}

// LaunchContainerd starts a private containerd in dir without tying it
// to a test (privctrd.Launch); the caller calls Stop. Tests that need
// the daemon in a directory of their own, or to outlive a subtest, use
// it.
func LaunchContainerd(dir string) (*Containerd, error) {
	return privctrd.Launch(dir)
}

// MountsUnder returns the mount points at or below dir, deepest first.
// Tests use it to check that nothing is left mounted.
func MountsUnder(dir string) ([]string, error) {
	return privctrd.MountsUnder(dir)
}
