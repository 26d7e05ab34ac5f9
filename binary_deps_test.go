package main

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// knownTestingImporters are the third-party packages of the drover
// binary that import package testing from non-test files, with why they
// stay. (go-abnf's fuzz helpers did until v0.5.5.) None is reachable through Drover code we can change without
// replacing the module (go.mod), so they are named here rather than
// hidden: any other package that brings testing in fails the test, and
// an entry that no longer does fails it too, so this list only shrinks.
// When it is empty the test is exactly `go list -deps . | grep -x
// testing` printing nothing.
var knownTestingImporters = map[string]string{
	"github.com/hashicorp/raft": "raft's own testing.go (in-memory cluster helpers) is a non-test file of package raft, which fsm and server need",
}

// binaryDeps returns the import graph of the drover binary: every
// package `go list -deps .` lists, with the packages it imports.
func binaryDeps(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps .: %v", err)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		graph[fields[0]] = fields[1:]
	}
	if _, ok := graph[module]; !ok {
		t.Fatalf("go list -deps . did not list %s itself", module)
	}
	return graph
}

// importChain returns the shortest chain of imports from the binary's
// main package to pkg, for a failure message that says where to cut.
func importChain(graph map[string][]string, pkg string) string {
	prev := map[string]string{module: ""}
	queue := []string{module}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == pkg {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append([]string{strings.TrimPrefix(p, module+"/")}, chain...)
			}
			return strings.Join(chain, " -> ")
		}
		for _, imp := range graph[p] {
			if _, seen := prev[imp]; !seen {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return pkg + " (no chain found)"
}

// TestBinary_TestingOnlyFromKnownDependencies fails when the drover
// binary links package testing through anything but the third-party
// packages in knownTestingImporters: above all through Drover's own
// code (testutil, or a testing import in a non-test file).
func TestBinary_TestingOnlyFromKnownDependencies(t *testing.T) {
	graph := binaryDeps(t)
	var importers []string
	for pkg, imports := range graph {
		for _, imp := range imports {
			if imp == "testing" {
				importers = append(importers, pkg)
			}
		}
	}
	sort.Strings(importers)
	found := map[string]bool{}
	for _, pkg := range importers {
		found[pkg] = true
		if _, known := knownTestingImporters[pkg]; known {
			continue
		}
		t.Errorf("the drover binary links package testing through %s -> testing; move what it needs into a non-test package (see internal/)", importChain(graph, pkg))
	}
	for pkg := range knownTestingImporters {
		if !found[pkg] {
			t.Errorf("%s no longer brings package testing into the binary; remove it from knownTestingImporters", pkg)
		}
	}
}

// TestBinary_DoesNotLinkTestutil fails when any testutil package is a
// dependency of the drover binary, even one that does not (yet) import
// testing itself.
func TestBinary_DoesNotLinkTestutil(t *testing.T) {
	graph := binaryDeps(t)
	var linked []string
	for pkg := range graph {
		if pkg == module+"/testutil" || strings.HasPrefix(pkg, module+"/testutil/") {
			linked = append(linked, pkg)
		}
	}
	sort.Strings(linked)
	for _, pkg := range linked {
		t.Errorf("the drover binary links %s", importChain(graph, pkg))
	}
}
