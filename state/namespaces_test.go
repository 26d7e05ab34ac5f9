package state

import (
	"errors"
	"strings"
	"testing"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func TestStateStore_DefaultNamespaceAlwaysExists(t *testing.T) {
	s := NewStateStore()
	ns, err := s.NamespaceByName(nil, structs.DefaultNamespace)
	if err != nil || ns == nil || ns.Description == "" {
		t.Fatalf("default namespace of a new store: %+v, %v", ns, err)
	}
	// A snapshot has it, and the table's index is unset (it is part of
	// every store, not a write).
	if ns, _ := s.Snapshot().NamespaceByName(nil, structs.DefaultNamespace); ns == nil {
		t.Fatal("snapshot lacks the default namespace")
	}
	if idx, _ := s.Index(TableNamespaces); idx != 0 {
		t.Fatalf("namespaces index %d in a new store", idx)
	}
	// It may be described, never deleted.
	if err := s.UpsertNamespaces(5, []*structs.Namespace{{Name: structs.DefaultNamespace, Description: "ours"}}); err != nil {
		t.Fatal(err)
	}
	if ns, _ := s.NamespaceByName(nil, structs.DefaultNamespace); ns.Description != "ours" || ns.CreateIndex != 1 || ns.ModifyIndex != 5 {
		t.Fatalf("default after update: %+v", ns)
	}
	err = s.DeleteNamespaces(6, []string{structs.DefaultNamespace})
	if ce := structs.ParseCodedError(err); ce == nil || ce.Code != structs.CodeInvalid {
		t.Fatalf("delete default: %v", err)
	}
}

// TestStateStore_SameJobIDInTwoNamespaces: jobs, versions, allocations,
// evaluations and deployments are keyed by (namespace, job ID); lists
// take a namespace or "*".
func TestStateStore_SameJobIDInTwoNamespaces(t *testing.T) {
	s := NewStateStore()
	if err := s.UpsertNamespaces(1, []*structs.Namespace{{Name: "team-a"}, {Name: "team-b"}}); err != nil {
		t.Fatal(err)
	}
	node := mock.Node()
	if err := s.UpsertNode(2, node, 0, nil); err != nil {
		t.Fatal(err)
	}
	base := mock.Job()
	index := uint64(10)
	for i, ns := range []string{"team-a", "team-b"} {
		job := base.Copy()
		job.Namespace = ns
		job.TaskGroups[0].Count = i + 1
		eval := mock.Eval(job)
		eval.Namespace = ns
		if err := s.UpsertJob(index, job, 0, eval); err != nil {
			t.Fatal(err)
		}
		index++
		alloc := mock.Alloc(job, node, 0)
		alloc.Namespace = ns
		dep := &structs.Deployment{ID: structs.GenerateUUID(), JobID: job.ID, Namespace: ns, TaskGroups: map[string]*structs.DeploymentState{}}
		if err := s.UpsertPlanResults(index, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{alloc}, Deployment: dep}); err != nil {
			t.Fatal(err)
		}
		index++
	}

	for i, ns := range []string{"team-a", "team-b"} {
		job, _ := s.JobByID(nil, ns, base.ID)
		if job == nil || job.Namespace != ns || job.TaskGroups[0].Count != i+1 {
			t.Fatalf("%s: job %+v", ns, job)
		}
		versions, _ := s.JobVersionsByID(nil, ns, base.ID)
		allocs, _ := s.AllocsByJob(nil, ns, base.ID)
		evals, _ := s.EvalsByJob(nil, ns, base.ID)
		deps, _ := s.DeploymentsByJobID(nil, ns, base.ID)
		if len(versions) != 1 || len(allocs) != 1 || len(evals) != 1 || len(deps) != 1 {
			t.Fatalf("%s: %d versions, %d allocs, %d evals, %d deployments", ns, len(versions), len(allocs), len(evals), len(deps))
		}
		if allocs[0].Namespace != ns || evals[0].Namespace != ns || deps[0].Namespace != ns {
			t.Fatalf("%s: namespaces %q %q %q", ns, allocs[0].Namespace, evals[0].Namespace, deps[0].Namespace)
		}
		if v, _ := s.JobByIDAndVersion(nil, ns, base.ID, 0); v == nil || v.Namespace != ns {
			t.Fatalf("%s: version 0 %+v", ns, v)
		}
	}
	if j, _ := s.JobByID(nil, "", base.ID); j != nil {
		t.Fatal("the default namespace has the job too")
	}

	lists := []struct {
		ns                        string
		jobs, allocs, evals, deps int
	}{
		{"team-a", 1, 1, 1, 1},
		{structs.AllNamespaces, 2, 2, 2, 2},
		{"", 0, 0, 0, 0},
		{"nope", 0, 0, 0, 0},
	}
	for _, l := range lists {
		jobs, _ := s.JobsByNamespace(nil, l.ns)
		prefixed, _ := s.JobsByIDPrefix(nil, l.ns, base.ID[:4])
		allocs, _ := s.AllocsByIDPrefix(nil, l.ns, "")
		evals, _ := s.EvalsByIDPrefix(nil, l.ns, "")
		deps, _ := s.DeploymentsByIDPrefix(nil, l.ns, "")
		if len(jobs) != l.jobs || len(prefixed) != l.jobs || len(allocs) != l.allocs || len(evals) != l.evals || len(deps) != l.deps {
			t.Fatalf("namespace %q: %d jobs (%d by prefix), %d allocs, %d evals, %d deployments", l.ns, len(jobs), len(prefixed), len(allocs), len(evals), len(deps))
		}
	}

	// A job's status is its own namespace's: stopping team-a's does not
	// touch team-b's, and purging team-a's leaves team-b's.
	stopped := base.Copy()
	stopped.Namespace, stopped.Stop = "team-a", true
	if err := s.UpsertJob(index, stopped, 0, nil); err != nil {
		t.Fatal(err)
	}
	index++
	if b, _ := s.JobByID(nil, "team-b", base.ID); b.Stop {
		t.Fatal("team-b's job was stopped with team-a's")
	}
	if err := s.DeleteJob(index, "team-a", base.ID, nil); err != nil {
		t.Fatal(err)
	}
	index++
	if err := s.DeleteJob(index, "team-a", base.ID, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purging it twice: %v", err)
	}
	if b, _ := s.JobByID(nil, "team-b", base.ID); b == nil {
		t.Fatal("team-b's job went with team-a's purge")
	}
	if v, _ := s.JobVersionsByID(nil, "team-b", base.ID); len(v) != 1 {
		t.Fatalf("team-b's versions after team-a's purge: %d", len(v))
	}
}

func TestStateStore_DeleteNamespace(t *testing.T) {
	s := NewStateStore()
	if err := s.UpsertNamespaces(1, []*structs.Namespace{{Name: "team-a", Meta: map[string]string{"k": "v"}}, {Name: "team-b"}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		j := mock.Job()
		j.Namespace = "team-a"
		if err := s.UpsertJob(uint64(2+i), j, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		names  []string
		code   string
		substr string
	}{
		{"with jobs", []string{"team-a"}, structs.CodeConflict, `namespace "team-a" has 5 jobs (`},
		{"default", []string{"default"}, structs.CodeInvalid, "cannot be deleted"},
		{"all or nothing", []string{"team-b", "team-a"}, structs.CodeConflict, "has 5 jobs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.DeleteNamespaces(10, tc.names)
			ce := structs.ParseCodedError(err)
			if ce == nil || ce.Code != tc.code || !strings.Contains(ce.Message, tc.substr) {
				t.Fatalf("delete %v: %v", tc.names, err)
			}
			if ns, _ := s.Namespaces(nil); len(ns) != 3 {
				t.Fatalf("%d namespaces after a refused delete", len(ns))
			}
		})
	}
	if err := s.DeleteNamespaces(10, []string{"nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete unknown: %v", err)
	}

	// A watch on the table fires on delete.
	ws := memdb.NewWatchSet()
	if _, err := s.Namespaces(ws); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespaces(11, []string{"team-b"}); err != nil {
		t.Fatal(err)
	}
	if ws.Watch(nil) {
		t.Fatal("the watch did not fire")
	}
	if ns, _ := s.NamespacesByNamePrefix(nil, "team"); len(ns) != 1 || ns[0].Name != "team-a" {
		t.Fatalf("namespaces after delete: %+v", ns)
	}
	if idx, _ := s.Index(TableNamespaces); idx != 11 {
		t.Fatalf("namespaces index %d, want 11", idx)
	}
}
