package main

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/droverhq/drover"

// allowedImports are the internal packages each package may import
// directly (shared/ARCHITECTURE.md, "Package layout and imports").
// Test files are not checked: the scheduler's tests, for one, use state.
var allowedImports = map[string][]string{
	"structs":           {},
	"state":             {"structs"},
	"fsm":               {"structs", "state"},
	"scheduler":         {"structs"},
	"rpcpool":           {"structs"},
	"gossip":            {},
	"tlsutil":           {},
	"connlimit":         {},
	"acl":               {},
	"snapshot":          {"structs", "state", "fsm"},
	"server":            {"structs", "state", "fsm", "scheduler", "rpcpool", "gossip", "connlimit", "tlsutil", "server/drainer", "server/deploymentwatcher", "server/heartbeat", "server/keyring", "server/gc", "acl", "snapshot"},
	"driver":            {"structs"},
	"driver/containerd": {"structs", "driver"},
	"driver/fake":       {"structs", "driver"},
	"client":            {"structs", "driver", "client/checks", "client/template"},
	"client/checks":     {"structs"},
	"client/dns":        {"structs"},
	"client/proxy":      {"structs"},
	"client/gateway":    {"structs"},
	"client/template":   {"structs"},
	"jobspec":           {"structs"},
	"api":               {},
	"client/sim":        {"structs", "client", "driver", "driver/fake"},
	"agent":             {"server", "client", "client/sim", "client/dns", "client/proxy", "client/gateway", "driver", "driver/containerd", "structs", "rpcpool", "gossip", "connlimit", "tlsutil", "acl", "jobspec", "ui"},
	"ui":                {}, // the web UI's embedded files and handler, mounted by agent
	"bench":             {"api", "jobspec", "internal/poll", "internal/privctrd", "internal/ociimage"},
	// Non-test helpers the binary needs (bench) and testutil wraps for
	// tests; they import no Drover package and never package testing.
	"internal/poll":     {},
	"internal/privctrd": {},
	"internal/ociimage": {},
	"command":           {"api", "jobspec", "agent", "bench", "tlsutil", "snapshot"},
	".":                 {"command", "driver/containerd"},

	// The leader's controllers: each reads a state view and writes
	// through a Raft interface it defines itself, never *Server.
	"server/drainer":           {"structs"},
	"server/deploymentwatcher": {"structs"},
	"server/heartbeat":         {"structs"},
	"server/keyring":           {"structs"},
	"server/gc":                {"structs"},
}

// TestImportRules fails when a package imports an internal package the
// architecture does not allow, or when a package is missing from the
// rules (so a new package has to state its place).
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		if pkg == "" {
			pkg = "."
		}
		if strings.HasPrefix(pkg, "testutil") || strings.HasPrefix(pkg, "e2e") {
			continue // test support, imported only by tests
		}
		allowed, known := allowedImports[pkg]
		if !known {
			t.Errorf("package %s has no import rule; add it to allowedImports and ARCHITECTURE.md", pkg)
			continue
		}
		ok := map[string]bool{}
		for _, a := range allowed {
			ok[a] = true
		}
		var bad []string
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if dep := strings.TrimPrefix(imp, module+"/"); !ok[dep] {
				bad = append(bad, dep)
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("package %s imports %v; allowed: %v", pkg, bad, allowed)
		}
	}
}

// goListPackages runs `go list` with format over ./... and returns one
// line per package, split into fields.
func goListPackages(t *testing.T, format string) [][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", format, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkgs = append(pkgs, strings.Fields(line))
	}
	return pkgs
}

// TestImportRules_TestutilOnlyInTests fails when a package's non-test
// files import testutil (or a package under it): testutil imports
// testing, and whatever imports it could end up in the drover binary.
// Only testutil's own packages (its commands, fakedriver, mock) may.
func TestImportRules_TestutilOnlyInTests(t *testing.T) {
	const testutilPath = module + "/testutil"
	for _, fields := range goListPackages(t, "{{.ImportPath}} {{join .Imports \" \"}}") {
		pkg := fields[0]
		if pkg == testutilPath || strings.HasPrefix(pkg, testutilPath+"/") {
			continue
		}
		for _, imp := range fields[1:] {
			if imp == testutilPath || strings.HasPrefix(imp, testutilPath+"/") {
				t.Errorf("package %s imports %s outside its _test.go files; non-test code uses internal/poll, internal/privctrd or internal/ociimage", pkg, imp)
			}
		}
	}
}

// TestImportRules_InternalWithoutTesting fails when a package under
// internal/ depends on package testing, directly or through any of its
// imports: these packages exist so that non-test code (bench, in the
// drover binary) can share testutil's machinery without linking testing.
func TestImportRules_InternalWithoutTesting(t *testing.T) {
	const internalPath = module + "/internal/"
	seen := 0
	for _, fields := range goListPackages(t, "{{.ImportPath}} {{join .Deps \" \"}}") {
		if !strings.HasPrefix(fields[0], internalPath) {
			continue
		}
		seen++
		for _, dep := range fields[1:] {
			if dep == "testing" {
				t.Errorf("package %s depends on testing; internal packages are linked into the binary and must not", fields[0])
			}
		}
	}
	if seen == 0 {
		t.Fatal("go list found no package under internal/; the rule checks nothing")
	}
}
