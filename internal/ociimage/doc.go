// Package ociimage builds a small OCI image from the host's static
// busybox binary (an OCI image layout tarball, byte-for-byte the same
// for the same binary and reference) and imports such a tarball into a
// containerd namespace, named and unpacked, so tasks can run without a
// registry.
//
// It is not test-only: the bench harness (linked into the drover
// binary) and the demo's busybox-image command use it, and testutil
// wraps it for tests (ImportBusybox adds t.TempDir and t.Fatal). So it
// must never import package testing; imports_test.go enforces that.
//
// ociimage imports the containerd Go client, the OCI image-spec and
// go-digest modules and the standard library, and no Drover package.
package ociimage
