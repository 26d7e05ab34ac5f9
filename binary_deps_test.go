package main

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

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

// TestBinary_DoesNotLinkTesting is `go list -deps . | grep -x testing`
// printing nothing: no package of the drover binary, Drover's own
// (testutil, a testing import in a non-test file) or a dependency's,
// brings package testing in. hashicorp/raft did through its testing.go;
// go.mod replaces it with internal/raftfork, the same code without it.
func TestBinary_DoesNotLinkTesting(t *testing.T) {
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
	for _, pkg := range importers {
		t.Errorf("the drover binary links package testing through %s -> testing; move what it needs into a non-test package (see internal/)", importChain(graph, pkg))
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
