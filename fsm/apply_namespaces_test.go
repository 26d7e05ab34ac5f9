package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// populateNamespaces adds a namespace holding a job whose ID is also
// used in the default namespace.
func populateNamespaces(h *harness) {
	h.mustApply(structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{
		{Name: "team-a", Description: "Team A", Quota: "small", Meta: map[string]string{"owner": "a"}},
	}})
	job := mock.Job()
	job.Namespace = "team-a"
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: mock.Eval(job), SubmitTime: 20})
}

func TestFSM_NamespaceUpsertAndDelete(t *testing.T) {
	h := newHarness(t)
	h.mustApply(structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-a", Description: "first"}}})
	created := h.index
	h.mustApply(structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-a", Description: "second"}}})
	ns, err := h.fsm.State().NamespaceByName(nil, "team-a")
	if err != nil || ns == nil || ns.Description != "second" || ns.CreateIndex != created || ns.ModifyIndex != h.index {
		t.Fatalf("namespace after two upserts: %+v, %v", ns, err)
	}

	job := mock.Job()
	job.Namespace = "team-a"
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, SubmitTime: 1})

	cases := []struct {
		name   string
		names  []string
		code   string
		substr string
	}{
		{"with a job", []string{"team-a"}, structs.CodeConflict, `namespace "team-a" has 1 job (` + job.ID + `); purge them first`},
		{"default", []string{structs.DefaultNamespace}, structs.CodeInvalid, `the "default" namespace cannot be deleted`},
		{"unknown", []string{"nope"}, "", `namespace "nope": not found`},
		{"all or nothing", []string{"nope", "team-a"}, "", "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := hashOf(t, h.fsm)
			resp := h.apply(structs.NamespaceDeleteRequestType, &structs.NamespaceDeleteRequest{Names: tc.names})
			err := asError(resp)
			if err == nil || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("delete %v: %v, want %q", tc.names, resp, tc.substr)
			}
			if tc.code != "" {
				if ce := structs.ParseCodedError(err); ce == nil || ce.Code != tc.code {
					t.Fatalf("delete %v: %v, want code %s", tc.names, err, tc.code)
				}
			} else if !errors.Is(err, state.ErrNotFound) {
				t.Fatalf("delete %v: %v, want state.ErrNotFound", tc.names, err)
			}
			if hashOf(t, h.fsm) != before {
				t.Fatal("a refused delete changed the state")
			}
		})
	}

	// Purged, the namespace may go.
	h.mustApply(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: job.ID, Purge: true, WriteRequest: structs.WriteRequest{Namespace: "team-a"}})
	h.mustApply(structs.NamespaceDeleteRequestType, &structs.NamespaceDeleteRequest{Names: []string{"team-a"}})
	if ns, _ := h.fsm.State().NamespaceByName(nil, "team-a"); ns != nil {
		t.Fatalf("namespace after delete: %+v", ns)
	}
	if ns, _ := h.fsm.State().NamespaceByName(nil, structs.DefaultNamespace); ns == nil {
		t.Fatal("the default namespace is gone")
	}
}

func TestFSM_MalformedNamespaceEntriesAreRefused(t *testing.T) {
	cases := []struct {
		name string
		typ  structs.MessageType
		msg  interface{}
	}{
		{"upsert nothing", structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{}},
		{"upsert null", structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{nil}}},
		{"upsert all", structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "*"}}}},
		{"upsert bad name", structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "../etc"}}}},
		{"upsert empty name", structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{}}}},
		{"upsert long name", structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: strings.Repeat("a", 129)}}}},
		{"upsert huge description", structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "a", Description: strings.Repeat("d", 10_000)}}}},
		{"upsert duplicate", structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "a"}, {Name: "a"}}}},
		{"delete nothing", structs.NamespaceDeleteRequestType, &structs.NamespaceDeleteRequest{}},
		{"delete bad name", structs.NamespaceDeleteRequestType, &structs.NamespaceDeleteRequest{Names: []string{""}}},
		{"delete all", structs.NamespaceDeleteRequestType, &structs.NamespaceDeleteRequest{Names: []string{"*"}}},
		{"job in a bad namespace", structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: func() *structs.Job {
			j := mock.Job()
			j.Namespace = "no/slashes"
			return j
		}()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			populate(h)
			before := hashOf(t, h.fsm)
			assertRefused(t, h, h.apply(tc.typ, tc.msg), before)
		})
	}
}

// TestFSM_JobRegisterNeedsItsNamespace: a registration into a namespace
// that does not exist (deleted after the endpoint looked) is answered
// with what to do, in log order, and stores nothing.
func TestFSM_JobRegisterNeedsItsNamespace(t *testing.T) {
	h := newHarness(t)
	h.mustApply(structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-a"}}})
	h.mustApply(structs.NamespaceDeleteRequestType, &structs.NamespaceDeleteRequest{Names: []string{"team-a"}})
	before := hashOf(t, h.fsm)
	job := mock.Job()
	job.Namespace = "team-a"
	resp := h.apply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: mock.Eval(job)})
	ce := structs.ParseCodedError(asError(resp))
	if ce == nil || ce.Code != structs.CodeInvalid || !strings.Contains(ce.Message, "drover namespace apply team-a") {
		t.Fatalf("register into a deleted namespace: %v", resp)
	}
	if hashOf(t, h.fsm) != before {
		t.Fatal("the refused registration changed the state")
	}
	if len(h.rec.enqueued) != 0 {
		t.Fatalf("the refused registration's eval was enqueued: %v", h.rec.enqueued)
	}
}

// TestFSM_SameJobIDInTwoNamespaces: jobs, their versions, evaluations,
// allocations and stop/purge are all per (namespace, ID).
func TestFSM_SameJobIDInTwoNamespaces(t *testing.T) {
	h := newHarness(t)
	node := mock.Node()
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node})
	h.mustApply(structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-a"}}})
	def, teamA := mock.Job(), mock.Job()
	teamA.ID, teamA.Namespace = def.ID, "team-a"
	teamA.TaskGroups[0].Count = 7
	for _, j := range []*structs.Job{def, teamA} {
		eval := mock.Eval(j)
		eval.Namespace = j.Namespace
		h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: j, Eval: eval, SubmitTime: 1})
		a := mock.Alloc(j, node, 0)
		a.Namespace = j.Namespace
		h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: j, AllocsPlaced: []*structs.Allocation{a}})
	}
	st := h.fsm.State()
	gotDef, _ := st.JobByID(nil, "", def.ID)
	gotA, _ := st.JobByID(nil, "team-a", def.ID)
	if gotDef == nil || gotA == nil || gotDef.Namespace != structs.DefaultNamespace || gotA.TaskGroups[0].Count != 7 || gotDef.TaskGroups[0].Count == 7 {
		t.Fatalf("jobs: default %+v, team-a %+v", gotDef, gotA)
	}
	for _, ns := range []string{structs.DefaultNamespace, "team-a"} {
		allocs, _ := st.AllocsByJob(nil, ns, def.ID)
		evals, _ := st.EvalsByJob(nil, ns, def.ID)
		versions, _ := st.JobVersionsByID(nil, ns, def.ID)
		if len(allocs) != 1 || allocs[0].Namespace != ns || len(evals) != 1 || evals[0].Namespace != ns || len(versions) != 1 {
			t.Fatalf("namespace %s: %d allocs, %d evals, %d versions", ns, len(allocs), len(evals), len(versions))
		}
	}
	if all, _ := st.JobsByNamespace(nil, structs.AllNamespaces); len(all) != 2 {
		t.Fatalf("jobs of every namespace: %d, want 2", len(all))
	}

	// Stopping and purging the team-a job leaves the default one alone.
	inA := structs.WriteRequest{Namespace: "team-a"}
	h.mustApply(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: def.ID, WriteRequest: inA})
	if j, _ := st.JobByID(nil, "team-a", def.ID); j == nil || !j.Stop {
		t.Fatalf("team-a job after stop: %+v", j)
	}
	if j, _ := st.JobByID(nil, "", def.ID); j == nil || j.Stop {
		t.Fatalf("default job after team-a's stop: %+v", j)
	}
	h.mustApply(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: def.ID, Purge: true, WriteRequest: inA})
	if j, _ := st.JobByID(nil, "team-a", def.ID); j != nil {
		t.Fatal("team-a job after purge")
	}
	if j, _ := st.JobByID(nil, "", def.ID); j == nil {
		t.Fatal("the default job went with team-a's purge")
	}
}

// TestFSM_EntriesWithoutNamespaceApplyToDefault: log entries written
// before namespaces existed (no Namespace anywhere) apply to the default
// namespace.
func TestFSM_EntriesWithoutNamespaceApplyToDefault(t *testing.T) {
	h := newHarness(t)
	node := mock.Node()
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node})
	job := mock.Job()
	job.Namespace = "" // as a job before namespaces
	eval := mock.Eval(job)
	alloc := mock.Alloc(job, node, 0)
	for _, x := range []string{job.Namespace, eval.Namespace, alloc.Namespace} {
		if x != "" {
			t.Fatalf("the mocks carry a namespace (%q); this test needs entries without", x)
		}
	}
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: eval, EnforceIndex: true})
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{alloc},
		Deployment: &structs.Deployment{ID: structs.GenerateUUID(), JobID: job.ID, TaskGroups: map[string]*structs.DeploymentState{}}})
	h.mustApply(structs.JobStabilityRequestType, &structs.JobStabilityRequest{JobID: job.ID, Stable: true})
	st := h.fsm.State()
	j, _ := st.JobByID(nil, structs.DefaultNamespace, job.ID)
	e, _ := st.EvalByID(nil, eval.ID)
	a, _ := st.AllocByID(nil, alloc.ID)
	d, _ := st.LatestDeploymentByJobID(nil, structs.DefaultNamespace, job.ID)
	if j == nil || j.Namespace != structs.DefaultNamespace || !j.Stable || e.Namespace != structs.DefaultNamespace || a.Namespace != structs.DefaultNamespace || d == nil || d.Namespace != structs.DefaultNamespace {
		t.Fatalf("job %+v\neval %+v\nalloc %+v\ndeployment %+v", j, e, a, d)
	}
	h.mustApply(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: job.ID, Purge: true})
	if j, _ := st.JobByID(nil, "", job.ID); j != nil {
		t.Fatal("a deregister without a namespace did not purge the default namespace's job")
	}
}

// oldFormatSnapshot rewrites a snapshot into the format of version v (2
// or 3), as Drover wrote it before namespaces: no namespace records, and
// no Namespace field in any object. Each record is decoded generically,
// stripped and encoded again, so the bytes are what the old structs
// produced.
func oldFormatSnapshot(t *testing.T, data []byte, v int) []byte {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(data))
	dec := codec.NewDecoder(br, structs.MsgpackHandle)
	var header snapshotHeader
	if err := dec.Decode(&header); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	enc := codec.NewEncoder(&out, structs.MsgpackHandle)
	header.Version = v
	if err := enc.Encode(&header); err != nil {
		t.Fatal(err)
	}
	for {
		b, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]interface{}
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		typ := SnapshotType(b)
		if typ == NamespaceSnapshot || (v < 3 && (typ == ACLPolicySnapshot || typ == ACLTokenSnapshot || typ == ACLBootstrapSnapshot)) {
			continue
		}
		delete(rec, "Namespace")
		if job, ok := rec["Job"].(map[string]interface{}); ok {
			delete(job, "Namespace")
		}
		out.WriteByte(b)
		if err := enc.Encode(rec); err != nil {
			t.Fatal(err)
		}
	}
	if bytes.Contains(out.Bytes(), []byte("Namespace")) {
		t.Fatal("the rewritten snapshot still mentions Namespace")
	}
	return out.Bytes()
}

// TestFSM_MigratesPreNamespaceSnapshots restores version 2 and 3
// snapshots, which know no namespaces: every job, version, allocation,
// evaluation and deployment lands in the default namespace, found by
// the namespaced lookups, and the state is the one the snapshot was
// taken from (where everything was in the default namespace).
func TestFSM_MigratesPreNamespaceSnapshots(t *testing.T) {
	h := newHarness(t)
	populateDefaultNamespace(h) // ACL data too
	want := hashOf(t, h.fsm)
	data := persist(t, h.fsm)
	jobs, _ := h.fsm.State().Jobs(nil)

	for _, v := range []int{2, 3} {
		t.Run("version "+string(rune('0'+v)), func(t *testing.T) {
			f := New(Config{})
			if err := f.Restore(io.NopCloser(bytes.NewReader(oldFormatSnapshot(t, data, v)))); err != nil {
				t.Fatalf("restore: %v", err)
			}
			st := f.State()
			if v == 3 && hashOf(t, f) != want {
				t.Fatal("the version 3 snapshot did not restore the state it was taken from")
			}
			for _, j := range jobs {
				got, _ := st.JobByID(nil, structs.DefaultNamespace, j.ID)
				versions, _ := st.JobVersionsByID(nil, structs.DefaultNamespace, j.ID)
				allocs, _ := st.AllocsByJob(nil, structs.DefaultNamespace, j.ID)
				evals, _ := st.EvalsByJob(nil, structs.DefaultNamespace, j.ID)
				deps, _ := st.DeploymentsByJobID(nil, structs.DefaultNamespace, j.ID)
				if got == nil || got.Namespace != structs.DefaultNamespace || len(versions) == 0 || len(allocs) == 0 || len(evals) == 0 || len(deps) == 0 {
					t.Fatalf("job %s: %+v, %d versions, %d allocs, %d evals, %d deployments", j.ID, got, len(versions), len(allocs), len(evals), len(deps))
				}
				for _, a := range allocs {
					if a.Namespace != structs.DefaultNamespace || (a.Job != nil && a.Job.Namespace != structs.DefaultNamespace) {
						t.Fatalf("allocation %s namespace %q", a.ID, a.Namespace)
					}
				}
			}
			namespaces, _ := st.Namespaces(nil)
			if len(namespaces) != 1 || namespaces[0].Name != structs.DefaultNamespace {
				t.Fatalf("namespaces after restore: %+v", namespaces)
			}
			// The restored cluster works on: a job registers into a new
			// namespace next to the migrated one.
			h2 := &harness{t: t, fsm: f, rec: &recorder{}, index: h.index}
			h2.mustApply(structs.NamespaceUpsertRequestType, &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-a"}}})
			again := jobs[0].Copy()
			again.Namespace = "team-a"
			h2.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: again})
			if n, _ := st.JobsByNamespace(nil, structs.AllNamespaces); len(n) != len(jobs)+1 {
				t.Fatalf("%d jobs after registering one more, want %d", len(n), len(jobs)+1)
			}
		})
	}

	err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(oldFormatSnapshot(t, data, 1))))
	if err == nil || !strings.Contains(err.Error(), "unsupported snapshot version 1") {
		t.Fatalf("version 1: %v", err)
	}
}
