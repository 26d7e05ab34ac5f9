package server

import (
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// codeOf returns the code of an RPC error, "" for none.
func codeOf(err error) string {
	if ce := structs.ParseCodedError(err); ce != nil {
		return ce.Code
	}
	return ""
}

func upsertNamespace(t *testing.T, s *Server, ns *structs.Namespace) {
	t.Helper()
	var resp structs.GenericResponse
	if err := s.RPC("Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{ns}}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Index == 0 {
		t.Fatal("upsert returned no index")
	}
}

func inNS(ns string) structs.WriteRequest { return structs.WriteRequest{Namespace: ns} }

func TestNamespaceEndpoint_CRUD(t *testing.T) {
	s := testServer(t, nil)
	upsertNamespace(t, s, &structs.Namespace{Name: "team-a", Description: "Team A", Quota: "small", Meta: map[string]string{"owner": "a"}})
	upsertNamespace(t, s, &structs.Namespace{Name: "team-b"})

	var got structs.SingleNamespaceResponse
	if err := s.RPC("Namespace.Get", &structs.NamespaceSpecificRequest{Name: "team-a"}, &got); err != nil {
		t.Fatal(err)
	}
	if ns := got.Namespace; ns == nil || ns.Description != "Team A" || ns.Quota != "small" || ns.Meta["owner"] != "a" || ns.CreateIndex == 0 {
		t.Fatalf("team-a: %+v", got.Namespace)
	}
	if err := s.RPC("Namespace.Get", &structs.NamespaceSpecificRequest{Name: "nope"}, &got); err != nil || got.Namespace != nil {
		t.Fatalf("unknown namespace: %+v, %v", got.Namespace, err)
	}

	var list structs.NamespaceListResponse
	if err := s.RPC("Namespace.List", &structs.NamespaceListRequest{}, &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ns := range list.Namespaces {
		names = append(names, ns.Name)
	}
	if strings.Join(names, ",") != "default,team-a,team-b" {
		t.Fatalf("namespaces: %v", names)
	}
	if err := s.RPC("Namespace.List", &structs.NamespaceListRequest{QueryOptions: structs.QueryOptions{Prefix: "team-b"}}, &list); err != nil || len(list.Namespaces) != 1 {
		t.Fatalf("list by prefix: %+v, %v", list.Namespaces, err)
	}

	var resp structs.GenericResponse
	if err := s.RPC("Namespace.Delete", &structs.NamespaceDeleteRequest{Names: []string{"team-b"}}, &resp); err != nil {
		t.Fatal(err)
	}
	if err := s.RPC("Namespace.Get", &structs.NamespaceSpecificRequest{Name: "team-b"}, &got); err != nil || got.Namespace != nil {
		t.Fatalf("team-b after delete: %+v, %v", got.Namespace, err)
	}
}

// TestNamespaceEndpoint_RefusesBadInput: malformed and hostile requests
// get a clear refusal with its code, nothing is stored, and the server
// goes on serving.
func TestNamespaceEndpoint_RefusesBadInput(t *testing.T) {
	s := testServer(t, nil)
	many := make([]*structs.Namespace, maxNamespacesPerWrite+1)
	for i := range many {
		many[i] = &structs.Namespace{Name: "n" + strings.Repeat("x", i%5) + string(rune('a'+i%26))}
	}
	cases := []struct {
		name   string
		method string
		args   interface{}
		code   string
		substr string
	}{
		{"upsert nothing", "Namespace.Upsert", &structs.NamespaceUpsertRequest{}, structs.CodeInvalid, "no namespace to write"},
		{"upsert all", "Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "*"}}}, structs.CodeInvalid, "accepted only by list requests"},
		{"upsert path", "Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "../../etc"}}}, structs.CodeInvalid, "use 1-128 letters, digits and dashes"},
		{"upsert null", "Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{nil}}, structs.CodeInvalid, "namespace is missing"},
		{"upsert long description", "Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "d", Description: strings.Repeat("x", 300)}}}, structs.CodeInvalid, "the limit is 256"},
		{"upsert control characters", "Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "d", Description: "a\x1b[2Jb"}}}, structs.CodeInvalid, "control characters"},
		{"upsert twice in one", "Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "d"}, {Name: "d"}}}, structs.CodeInvalid, "named twice"},
		{"upsert too many", "Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: many}, structs.CodeInvalid, "the limit is 64"},
		{"get all", "Namespace.Get", &structs.NamespaceSpecificRequest{Name: "*"}, structs.CodeInvalid, "accepted only by list requests"},
		{"delete default", "Namespace.Delete", &structs.NamespaceDeleteRequest{Names: []string{"default"}}, structs.CodeInvalid, `the "default" namespace cannot be deleted`},
		{"delete unknown", "Namespace.Delete", &structs.NamespaceDeleteRequest{Names: []string{"nope"}}, structs.CodeNotFound, `namespace "nope" not found`},
		{"delete nothing", "Namespace.Delete", &structs.NamespaceDeleteRequest{}, structs.CodeInvalid, "no namespace to delete"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reply interface{} = &structs.GenericResponse{}
			if tc.method == "Namespace.Get" {
				reply = &structs.SingleNamespaceResponse{}
			}
			err := s.RPC(tc.method, tc.args, reply)
			if err == nil || codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("%s: %v; want %s with %q", tc.method, err, tc.code, tc.substr)
			}
		})
	}
	list, err := s.State().Namespaces(nil)
	if err != nil || len(list) != 1 || list[0].Name != structs.DefaultNamespace {
		t.Fatalf("namespaces after refused writes: %+v, %v", list, err)
	}
	if !s.IsLeader() {
		t.Fatal("the server stopped leading")
	}
}

// TestJobEndpoint_SameIDInTwoNamespaces registers "web" in team-a and
// team-b with different counts: each namespace reads, lists and stops
// its own; "*" lists both; the namespace with a job cannot be deleted
// until the job is purged.
func TestJobEndpoint_SameIDInTwoNamespaces(t *testing.T) {
	s := testServer(t, nil)
	registerNode(t, s, mock.Node())
	upsertNamespace(t, s, &structs.Namespace{Name: "team-a"})
	upsertNamespace(t, s, &structs.Namespace{Name: "team-b"})

	web := smallWeb()
	a := web.Copy()
	a.Namespace = "team-a"
	a.TaskGroups[0].Count = 1
	b := web.Copy() // the request names the namespace, the job none
	b.Namespace = ""
	b.TaskGroups[0].Count = 2
	var ra, rb structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: a}, &ra); err != nil {
		t.Fatal(err)
	}
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: b, WriteRequest: inNS("team-b")}, &rb); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ra.EvalID, rb.EvalID} {
		if e := waitForEval(t, s, id); e.Status != structs.EvalStatusComplete {
			t.Fatalf("eval %s: %s %s", id, e.Status, e.StatusDescription)
		}
	}

	for ns, count := range map[string]int{"team-a": 1, "team-b": 2} {
		var got structs.SingleJobResponse
		if err := s.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: web.ID, QueryOptions: structs.QueryOptions{Namespace: ns}}, &got); err != nil {
			t.Fatal(err)
		}
		if got.Job == nil || got.Job.Namespace != ns || got.Job.TaskGroups[0].Count != count {
			t.Fatalf("%s: %+v", ns, got.Job)
		}
		var allocs structs.JobAllocationsResponse
		if err := s.RPC("Job.Allocations", &structs.JobSpecificRequest{JobID: web.ID, QueryOptions: structs.QueryOptions{Namespace: ns}}, &allocs); err != nil {
			t.Fatal(err)
		}
		if len(allocs.Allocations) != count {
			t.Fatalf("%s: %d allocations, want %d", ns, len(allocs.Allocations), count)
		}
		for _, al := range allocs.Allocations {
			if al.Namespace != ns {
				t.Fatalf("%s: allocation %s in namespace %q", ns, al.Name, al.Namespace)
			}
		}
		var evals structs.JobEvaluationsResponse
		if err := s.RPC("Job.Evaluations", &structs.JobSpecificRequest{JobID: web.ID, QueryOptions: structs.QueryOptions{Namespace: ns}}, &evals); err != nil || len(evals.Evaluations) != 1 || evals.Evaluations[0].Namespace != ns {
			t.Fatalf("%s evaluations: %+v, %v", ns, evals.Evaluations, err)
		}
	}
	var def structs.SingleJobResponse
	if err := s.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: web.ID}, &def); err != nil || def.Job != nil {
		t.Fatalf("the default namespace has no %q: %+v, %v", web.ID, def.Job, err)
	}

	list := func(ns string) []*structs.JobListStub {
		t.Helper()
		var resp structs.JobListResponse
		if err := s.RPC("Job.List", &structs.JobListRequest{QueryOptions: structs.QueryOptions{Namespace: ns}}, &resp); err != nil {
			t.Fatal(err)
		}
		return resp.Jobs
	}
	if got := list("team-a"); len(got) != 1 || got[0].Namespace != "team-a" {
		t.Fatalf("team-a list: %+v", got)
	}
	if got := list(""); len(got) != 0 {
		t.Fatalf("default list: %+v", got)
	}
	if got := list("*"); len(got) != 2 || got[0].Namespace != "team-a" || got[1].Namespace != "team-b" {
		t.Fatalf("list of every namespace: %+v", got)
	}
	var allocList structs.AllocListResponse
	if err := s.RPC("Alloc.List", &structs.AllocListRequest{QueryOptions: structs.QueryOptions{Namespace: "*"}}, &allocList); err != nil || len(allocList.Allocations) != 3 {
		t.Fatalf("allocations of every namespace: %d, %v", len(allocList.Allocations), err)
	}
	if err := s.RPC("Alloc.List", &structs.AllocListRequest{QueryOptions: structs.QueryOptions{Namespace: "team-b"}}, &allocList); err != nil || len(allocList.Allocations) != 2 {
		t.Fatalf("allocations of team-b: %d, %v", len(allocList.Allocations), err)
	}
	var evalList structs.EvalListResponse
	if err := s.RPC("Eval.List", &structs.EvalListRequest{QueryOptions: structs.QueryOptions{Namespace: "team-a"}}, &evalList); err != nil || len(evalList.Evaluations) != 1 {
		t.Fatalf("evaluations of team-a: %d, %v", len(evalList.Evaluations), err)
	}

	// team-a cannot go while it holds a job.
	var gen structs.GenericResponse
	err := s.RPC("Namespace.Delete", &structs.NamespaceDeleteRequest{Names: []string{"team-a"}}, &gen)
	if codeOf(err) != structs.CodeConflict || !strings.Contains(err.Error(), `namespace "team-a" has 1 job (`+web.ID+`)`) {
		t.Fatalf("delete team-a with a job: %v", err)
	}

	// Stopping team-a's job leaves team-b's running.
	var dr structs.JobDeregisterResponse
	if err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: web.ID, Purge: true, WriteRequest: inNS("team-a")}, &dr); err != nil {
		t.Fatal(err)
	}
	waitForEval(t, s, dr.EvalID)
	if j, _ := s.State().JobByID(nil, "team-a", web.ID); j != nil {
		t.Fatal("team-a's job after purge")
	}
	if j, _ := s.State().JobByID(nil, "team-b", web.ID); j == nil || j.Stop {
		t.Fatalf("team-b's job after team-a's purge: %+v", j)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		live, _ := s.State().AllocsByJob(nil, "team-b", web.ID)
		n := 0
		for _, al := range live {
			if !al.TerminalStatus() {
				n++
			}
		}
		return n == 2, nil
	})
	if err := s.RPC("Namespace.Delete", &structs.NamespaceDeleteRequest{Names: []string{"team-a"}}, &gen); err != nil {
		t.Fatalf("delete team-a after the purge: %v", err)
	}
}

// TestJobEndpoint_NamespaceRefusals: a registration into a namespace
// that does not exist, or whose job and request disagree on the
// namespace, is refused with what to do, and nothing is stored.
func TestJobEndpoint_NamespaceRefusals(t *testing.T) {
	s := testServer(t, nil)
	upsertNamespace(t, s, &structs.Namespace{Name: "team-a"})
	cases := []struct {
		name   string
		jobNS  string
		reqNS  string
		substr string
	}{
		{"unknown in the job", "team-z", "", `namespace "team-z" does not exist; create it first with: drover namespace apply team-z`},
		{"unknown in the request", "", "team-z", `namespace "team-z" does not exist`},
		{"job and request differ", "team-a", "default", `the job names namespace "team-a" but the request is for namespace "default"`},
		{"bad name", "no spaces", "", "letters, digits and dashes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := smallWeb()
			job.Namespace = tc.jobNS
			for _, method := range []string{"Job.Register", "Job.Plan"} {
				var err error
				if method == "Job.Register" {
					err = s.RPC(method, &structs.JobRegisterRequest{Job: job, WriteRequest: inNS(tc.reqNS)}, &structs.JobRegisterResponse{})
				} else {
					err = s.RPC(method, &structs.JobPlanRequest{Job: job, WriteRequest: inNS(tc.reqNS)}, &structs.JobPlanResponse{})
				}
				if codeOf(err) != structs.CodeInvalid || !strings.Contains(err.Error(), tc.substr) {
					t.Fatalf("%s: %v; want %q", method, err, tc.substr)
				}
			}
			if jobs, _ := s.State().Jobs(nil); len(jobs) != 0 {
				t.Fatalf("a refused registration stored %d jobs", len(jobs))
			}
		})
	}
	// Deregistering in the wrong namespace is a 404 that names it.
	registerJob(t, s, smallWeb())
	err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: smallWeb().ID, WriteRequest: inNS("team-a")}, &structs.JobDeregisterResponse{})
	if codeOf(err) != structs.CodeNotFound || !strings.Contains(err.Error(), `not found in namespace "team-a"`) {
		t.Fatalf("deregister in the wrong namespace: %v", err)
	}
}

// smallWeb returns job "web": one small task, no ports, so several fit
// one mock node.
func smallWeb() *structs.Job {
	j := mock.Job()
	j.ID, j.Name = "web", "web"
	j.TaskGroups[0].Networks = nil
	j.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64}
	return j
}

// TestEvalBroker_SameJobIDInTwoNamespaces: the broker serializes
// evaluations per job, and "web" in two namespaces is two jobs: both
// are delivered at once.
func TestEvalBroker_SameJobIDInTwoNamespaces(t *testing.T) {
	b := newTestBroker(t)
	a, c := mock.Eval(smallWeb()), mock.Eval(smallWeb())
	a.Namespace, c.Namespace = "team-a", "team-b"
	b.Enqueue(a)
	b.Enqueue(c)
	first, _ := dequeue(t, b)
	second, _, err := b.Dequeue(schedulerTypes, time.Second, nil)
	if err != nil || second == nil || first.ID == second.ID {
		t.Fatalf("the second namespace's eval was held behind the first: %v %v", second, err)
	}
}

// TestBlockedEvals_SameJobIDInTwoNamespaces: a blocked evaluation of
// "web" in one namespace does not supersede, nor untrack, the other's.
func TestBlockedEvals_SameJobIDInTwoNamespaces(t *testing.T) {
	b := NewEvalBroker(time.Minute, 3)
	b.SetEnabled(true)
	defer b.SetEnabled(false)
	blocked := NewBlockedEvals(b)
	blocked.SetEnabled(true)
	a, c := mock.Eval(smallWeb()), mock.Eval(smallWeb())
	a.Namespace, c.Namespace = "team-a", "team-b"
	a.Status, c.Status = structs.EvalStatusBlocked, structs.EvalStatusBlocked
	blocked.Block(a)
	blocked.Block(c)
	if blocked.Len() != 2 || len(blocked.Superseded(10)) != 0 {
		t.Fatalf("%d blocked; the two namespaces' evals must both wait", blocked.Len())
	}
	blocked.Untrack("team-a", "web")
	if blocked.Len() != 1 {
		t.Fatalf("untracking team-a's job left %d blocked, want team-b's", blocked.Len())
	}
}

// TestCluster_NamespaceWritesForwardToTheLeader: namespace writes and a
// job's namespace travel through a follower to the leader, replicate,
// and a refusal comes back with its code.
func TestCluster_NamespaceWritesForwardToTheLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.servers...)
	follower := c.others(leader)[0]

	upsertNamespace(t, follower, &structs.Namespace{Name: "team-a", Description: "via a follower"})
	job := smallWeb()
	job.Namespace = ""
	var resp structs.JobRegisterResponse
	if err := follower.RPC("Job.Register", &structs.JobRegisterRequest{Job: job, WriteRequest: inNS("team-a")}, &resp); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.servers {
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
			ns, _ := s.State().NamespaceByName(nil, "team-a")
			j, _ := s.State().JobByID(nil, "team-a", job.ID)
			return ns != nil && ns.Description == "via a follower" && j != nil, nil
		})
	}
	var got structs.SingleJobResponse
	if err := follower.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: job.ID, QueryOptions: structs.QueryOptions{Namespace: "team-a"}}, &got); err != nil || got.Job == nil || got.Job.Namespace != "team-a" {
		t.Fatalf("consistent read in team-a on a follower: %+v, %v", got.Job, err)
	}
	err := follower.RPC("Namespace.Delete", &structs.NamespaceDeleteRequest{Names: []string{"team-a"}}, &structs.GenericResponse{})
	if codeOf(err) != structs.CodeConflict || !strings.Contains(err.Error(), "has 1 job") {
		t.Fatalf("delete through a follower: %v", err)
	}
}
