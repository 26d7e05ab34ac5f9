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
	"server":            {"structs", "state", "fsm", "scheduler", "rpcpool", "gossip"},
	"driver":            {"structs"},
	"driver/containerd": {"structs", "driver"},
	"client":            {"structs", "driver"},
	"jobspec":           {"structs"},
	"api":               {},
	"client/sim":        {"structs"},
	"agent":             {"server", "client", "client/sim", "driver", "driver/containerd", "structs", "rpcpool", "gossip"},
	"bench":             {"api", "jobspec", "testutil"},
	"command":           {"api", "jobspec", "agent", "bench"},
	".":                 {"command", "driver/containerd"},
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
