package server

import (
	"reflect"
	"testing"
	"time"

	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// aclWorld is a server with ACLs on, namespaces team-a and team-b, job
// "web" placed in each on one node, and tokens:
//   - writer: namespace "team-a" { policy = "write" }
//   - reader: namespace "team-a" { policy = "read" }
//   - nodes:  node { policy = "read" }, operator { policy = "read" }
type aclWorld struct {
	s                           *Server
	mgmt, writer, reader, nodes string
	node                        *structs.Node
	allocA, allocB              *structs.Allocation
	evalA, evalB                string
}

func newACLWorld(t *testing.T) *aclWorld {
	t.Helper()
	s := testServer(t, func(c *Config) { c.ACLEnabled = true })
	w := &aclWorld{s: s, mgmt: bootstrapACL(t, s)}
	for _, ns := range []string{"team-a", "team-b"} {
		req := &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: ns}}}
		req.AuthToken = w.mgmt
		if err := s.RPC("Namespace.Upsert", req, &structs.GenericResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	upsertPolicy(t, s, w.mgmt, "team-a-write", `namespace "team-a" { policy = "write" }`)
	upsertPolicy(t, s, w.mgmt, "team-a-read", `namespace "team-a" { policy = "read" }`)
	upsertPolicy(t, s, w.mgmt, "nodes", "node { policy = \"read\" }\noperator { policy = \"read\" }")
	w.writer = createToken(t, s, w.mgmt, &structs.ACLTokenCreateRequest{Name: "writer", Policies: []string{"team-a-write"}}).SecretID
	w.reader = createToken(t, s, w.mgmt, &structs.ACLTokenCreateRequest{Name: "reader", Policies: []string{"team-a-read"}}).SecretID
	w.nodes = createToken(t, s, w.mgmt, &structs.ACLTokenCreateRequest{Name: "nodes", Policies: []string{"nodes"}}).SecretID

	// Client RPCs take no token: the node authenticates with its secret.
	w.node = mock.Node()
	registerNode(t, s, w.node)
	for _, ns := range []string{"team-a", "team-b"} {
		job := smallWeb()
		job.Namespace = ns
		req := &structs.JobRegisterRequest{Job: job, WriteRequest: structs.WriteRequest{Namespace: ns, AuthToken: w.mgmt}}
		var resp structs.JobRegisterResponse
		if err := s.RPC("Job.Register", req, &resp); err != nil {
			t.Fatal(err)
		}
		waitForEval(t, s, resp.EvalID)
		allocs, err := s.State().AllocsByJob(nil, ns, "web")
		if err != nil || len(allocs) == 0 {
			t.Fatalf("no allocation of web in %s: %v", ns, err)
		}
		if ns == "team-a" {
			w.allocA, w.evalA = allocs[0], resp.EvalID
		} else {
			w.allocB, w.evalB = allocs[0], resp.EvalID
		}
	}
	return w
}

// tableHashes is what Operator.StateHash answers, read without a token.
func tableHashes(t *testing.T, s *Server) map[string]string {
	t.Helper()
	_, tables, err := s.State().Hash()
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

func query(token, ns string) structs.QueryOptions {
	return structs.QueryOptions{AuthToken: token, Namespace: ns}
}

func write(token, ns string) structs.WriteRequest {
	return structs.WriteRequest{AuthToken: token, Namespace: ns}
}

const noTokenHint = " (no token was sent: pass -token or set DROVER_TOKEN)"

// wantDenied checks err is exactly a 403 with message msg.
func wantDenied(t *testing.T, err error, code, msg string) {
	t.Helper()
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Code != code || ce.Message != msg || ce.Status != 403 {
		t.Fatalf("error %v\nwant 403 %s: %s", err, code, msg)
	}
}

type authzCase struct {
	name   string
	method string
	args   interface{}
	reply  interface{}
	// want is the exact permission_denied message; "" means allowed.
	want string
	// code overrides permission_denied.
	code string
}

func runAuthzCases(t *testing.T, s *Server, cases []authzCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.RPC(c.method, c.args, c.reply)
			if c.want == "" && c.code == "" {
				if err != nil {
					t.Fatalf("%s refused: %v", c.method, err)
				}
				return
			}
			code := c.code
			if code == "" {
				code = structs.CodePermission
			}
			wantDenied(t, err, code, c.want)
		})
	}
}

func TestACLAuthz_JobEndpoints(t *testing.T) {
	w := newACLWorld(t)
	before := tableHashes(t, w.s)
	jobIn := func(ns string) *structs.Job {
		j := smallWeb()
		j.ID, j.Name, j.Namespace = "api", "api", ns
		return j
	}
	cases := []authzCase{
		{"anonymous register", "Job.Register", &structs.JobRegisterRequest{Job: jobIn("team-a"), WriteRequest: write("", "team-a")}, &structs.JobRegisterResponse{},
			`token "anonymous" lacks capability submit-job in namespace "team-a"` + noTokenHint, ""},
		{"reader register", "Job.Register", &structs.JobRegisterRequest{Job: jobIn("team-a"), WriteRequest: write(w.reader, "team-a")}, &structs.JobRegisterResponse{},
			`token "reader" lacks capability submit-job in namespace "team-a"`, ""},
		{"writer register in team-b", "Job.Register", &structs.JobRegisterRequest{Job: jobIn("team-b"), WriteRequest: write(w.writer, "team-b")}, &structs.JobRegisterResponse{},
			`token "writer" lacks capability submit-job in namespace "team-b"`, ""},
		{"unknown token", "Job.Register", &structs.JobRegisterRequest{Job: jobIn("team-a"), WriteRequest: write("no-such-secret", "team-a")}, &structs.JobRegisterResponse{},
			"ACL token not found", structs.CodeTokenNotFound},
		{"anonymous deregister", "Job.Deregister", &structs.JobDeregisterRequest{JobID: "web", WriteRequest: write("", "team-a")}, &structs.JobDeregisterResponse{},
			`token "anonymous" lacks capability submit-job in namespace "team-a"` + noTokenHint, ""},
		{"reader stop", "Job.Deregister", &structs.JobDeregisterRequest{JobID: "web", WriteRequest: write(w.reader, "team-a")}, &structs.JobDeregisterResponse{},
			`token "reader" lacks capability submit-job in namespace "team-a"`, ""},
		{"writer stop in team-b", "Job.Deregister", &structs.JobDeregisterRequest{JobID: "web", WriteRequest: write(w.writer, "team-b")}, &structs.JobDeregisterResponse{},
			`token "writer" lacks capability submit-job in namespace "team-b"`, ""},
		{"reader revert", "Job.Revert", &structs.JobRevertRequest{JobID: "web", JobVersion: 0, WriteRequest: write(w.reader, "team-a")}, &structs.JobRegisterResponse{},
			`token "reader" lacks capability submit-job in namespace "team-a"`, ""},
		{"reader stable", "Job.Stable", &structs.JobStabilityRequest{JobID: "web", JobVersion: 0, WriteRequest: write(w.reader, "team-a")}, &structs.GenericResponse{},
			`token "reader" lacks capability submit-job in namespace "team-a"`, ""},
		{"reader plan", "Job.Plan", &structs.JobPlanRequest{Job: jobIn("team-a"), WriteRequest: write(w.reader, "team-a")}, &structs.JobPlanResponse{},
			`token "reader" lacks capability submit-job in namespace "team-a"`, ""},
		{"anonymous get", "Job.GetJob", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query("", "team-a")}, &structs.SingleJobResponse{},
			`token "anonymous" lacks capability read-job in namespace "team-a"` + noTokenHint, ""},
		{"reader get in team-b", "Job.GetJob", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-b")}, &structs.SingleJobResponse{},
			`token "reader" lacks capability read-job in namespace "team-b"`, ""},
		{"reader versions in team-b", "Job.Versions", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-b")}, &structs.JobVersionsResponse{},
			`token "reader" lacks capability read-job in namespace "team-b"`, ""},
		{"reader allocations in team-b", "Job.Allocations", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-b")}, &structs.JobAllocationsResponse{},
			`token "reader" lacks capability read-job in namespace "team-b"`, ""},
		{"reader evaluations in team-b", "Job.Evaluations", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-b")}, &structs.JobEvaluationsResponse{},
			`token "reader" lacks capability read-job in namespace "team-b"`, ""},
		{"reader deployments in team-b", "Job.Deployments", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-b")}, &structs.DeploymentListResponse{},
			`token "reader" lacks capability read-job in namespace "team-b"`, ""},
		{"reader latest deployment in team-b", "Job.LatestDeployment", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-b")}, &structs.SingleDeploymentResponse{},
			`token "reader" lacks capability read-job in namespace "team-b"`, ""},
		{"reader list team-b", "Job.List", &structs.JobListRequest{QueryOptions: query(w.reader, "team-b")}, &structs.JobListResponse{},
			`token "reader" lacks capability list-jobs in namespace "team-b"`, ""},
		{"anonymous list", "Job.List", &structs.JobListRequest{QueryOptions: query("", "")}, &structs.JobListResponse{},
			`token "anonymous" lacks capability list-jobs in namespace "default"` + noTokenHint, ""},
		{"reader get", "Job.GetJob", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-a")}, &structs.SingleJobResponse{}, "", ""},
		{"reader versions", "Job.Versions", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-a")}, &structs.JobVersionsResponse{}, "", ""},
		{"reader allocations", "Job.Allocations", &structs.JobSpecificRequest{JobID: "web", QueryOptions: query(w.reader, "team-a")}, &structs.JobAllocationsResponse{}, "", ""},
		{"reader list team-a", "Job.List", &structs.JobListRequest{QueryOptions: query(w.reader, "team-a")}, &structs.JobListResponse{}, "", ""},
	}
	runAuthzCases(t, w.s, cases)
	if after := tableHashes(t, w.s); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused requests changed the state:\nbefore %v\nafter  %v", before, after)
	}

	// The writer plans and runs in team-a, and the reader sees it.
	var plan structs.JobPlanResponse
	if err := w.s.RPC("Job.Plan", &structs.JobPlanRequest{Job: jobIn("team-a"), WriteRequest: write(w.writer, "team-a")}, &plan); err != nil {
		t.Fatal(err)
	}
	var reg structs.JobRegisterResponse
	if err := w.s.RPC("Job.Register", &structs.JobRegisterRequest{Job: jobIn("team-a"), WriteRequest: write(w.writer, "team-a")}, &reg); err != nil {
		t.Fatal(err)
	}
	waitForEval(t, w.s, reg.EvalID)
	var got structs.SingleJobResponse
	if err := w.s.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: "api", QueryOptions: query(w.reader, "team-a")}, &got); err != nil || got.Job == nil {
		t.Fatalf("reader cannot read the writer's job: %+v %v", got.Job, err)
	}
	// Revert goes through Register with the caller's token.
	var rev structs.JobRegisterResponse
	err := w.s.RPC("Job.Revert", &structs.JobRevertRequest{JobID: "web", JobVersion: 0, WriteRequest: write(w.writer, "team-a")}, &rev)
	wantCoded(t, err, structs.CodeInvalid, `job "web" is already at version 0`)

	// "*" lists only what the token may list.
	var all structs.JobListResponse
	if err := w.s.RPC("Job.List", &structs.JobListRequest{QueryOptions: query(w.reader, "*")}, &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Jobs) != 2 {
		t.Fatalf("reader lists %d jobs over \"*\", want team-a's 2: %+v", len(all.Jobs), all.Jobs)
	}
	for _, j := range all.Jobs {
		if j.Namespace != "team-a" {
			t.Fatalf("reader's \"*\" list leaks %s/%s", j.Namespace, j.ID)
		}
	}
	var none structs.JobListResponse
	if err := w.s.RPC("Job.List", &structs.JobListRequest{QueryOptions: query(w.nodes, "*")}, &none); err != nil || len(none.Jobs) != 0 {
		t.Fatalf("a token without namespace rules lists %d jobs (%v)", len(none.Jobs), err)
	}
	var mg structs.JobListResponse
	if err := w.s.RPC("Job.List", &structs.JobListRequest{QueryOptions: query(w.mgmt, "*")}, &mg); err != nil || len(mg.Jobs) != 3 {
		t.Fatalf("management lists %d jobs (%v), want 3", len(mg.Jobs), err)
	}

	// A read-only token lists but cannot stop; the writer can.
	var stop structs.JobDeregisterResponse
	if err := w.s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: "api", WriteRequest: write(w.writer, "team-a")}, &stop); err != nil {
		t.Fatal(err)
	}
}

func TestACLAuthz_ReadByIDChecksTheObjectsNamespace(t *testing.T) {
	w := newACLWorld(t)
	denyB := `token "reader" lacks capability read-job in namespace "team-b"`

	var a structs.SingleAllocResponse
	err := w.s.RPC("Alloc.GetAlloc", &structs.AllocSpecificRequest{AllocID: w.allocB.ID, QueryOptions: query(w.reader, "team-a")}, &a)
	wantDenied(t, err, structs.CodePermission, denyB)
	if a.Alloc != nil {
		t.Fatal("a refused read returned the allocation")
	}
	if err := w.s.RPC("Alloc.GetAlloc", &structs.AllocSpecificRequest{AllocID: w.allocA.ID, QueryOptions: query(w.reader, "team-a")}, &a); err != nil || a.Alloc == nil {
		t.Fatalf("reader reads team-a's allocation: %v", err)
	}
	// The request's namespace does not matter, the object's does.
	if err := w.s.RPC("Alloc.GetAlloc", &structs.AllocSpecificRequest{AllocID: w.allocA.ID, QueryOptions: query(w.reader, "team-b")}, &a); err != nil || a.Alloc == nil {
		t.Fatalf("reader reads team-a's allocation asking in team-b: %v", err)
	}

	var e structs.SingleEvalResponse
	err = w.s.RPC("Eval.GetEval", &structs.EvalSpecificRequest{EvalID: w.evalB, QueryOptions: query(w.reader, "team-a")}, &e)
	wantDenied(t, err, structs.CodePermission, denyB)
	if e.Eval != nil {
		t.Fatal("a refused read returned the evaluation")
	}
	var ea structs.JobAllocationsResponse
	err = w.s.RPC("Eval.Allocations", &structs.EvalSpecificRequest{EvalID: w.evalB, QueryOptions: query(w.reader, "team-a")}, &ea)
	wantDenied(t, err, structs.CodePermission, denyB)
	if len(ea.Allocations) != 0 {
		t.Fatal("a refused read returned allocations")
	}
	if err := w.s.RPC("Eval.GetEval", &structs.EvalSpecificRequest{EvalID: w.evalA, QueryOptions: query(w.reader, "")}, &e); err != nil || e.Eval == nil {
		t.Fatalf("reader reads team-a's evaluation: %v", err)
	}
	err = w.s.RPC("Eval.GetEval", &structs.EvalSpecificRequest{EvalID: w.evalA, QueryOptions: query("", "")}, &structs.SingleEvalResponse{})
	wantDenied(t, err, structs.CodePermission, `token "anonymous" lacks capability read-job in namespace "team-a"`+noTokenHint)

	// "*" lists are filtered per object.
	var al structs.AllocListResponse
	if err := w.s.RPC("Alloc.List", &structs.AllocListRequest{QueryOptions: query(w.reader, "*")}, &al); err != nil {
		t.Fatal(err)
	}
	var el structs.EvalListResponse
	if err := w.s.RPC("Eval.List", &structs.EvalListRequest{QueryOptions: query(w.reader, "*")}, &el); err != nil {
		t.Fatal(err)
	}
	var dl structs.DeploymentListResponse
	if err := w.s.RPC("Deployment.List", &structs.DeploymentListRequest{QueryOptions: query(w.reader, "*")}, &dl); err != nil {
		t.Fatal(err)
	}
	if len(al.Allocations) == 0 || len(el.Evaluations) == 0 {
		t.Fatalf("reader lists nothing of team-a: %d allocs, %d evals", len(al.Allocations), len(el.Evaluations))
	}
	for _, x := range al.Allocations {
		if x.Namespace != "team-a" {
			t.Fatalf("alloc list leaks %s", x.Namespace)
		}
	}
	for _, x := range el.Evaluations {
		if x.Namespace != "team-a" {
			t.Fatalf("eval list leaks %s", x.Namespace)
		}
	}
	for _, x := range dl.Deployments {
		if x.Namespace != "team-a" {
			t.Fatalf("deployment list leaks %s", x.Namespace)
		}
	}
	err = w.s.RPC("Alloc.List", &structs.AllocListRequest{QueryOptions: query(w.reader, "team-b")}, &structs.AllocListResponse{})
	wantDenied(t, err, structs.CodePermission, `token "reader" lacks capability list-jobs in namespace "team-b"`)

	// A blocking "*" list woken by a write in team-b still hides it.
	idx := al.Index
	done := make(chan error, 1)
	var blocked structs.AllocListResponse
	go func() {
		q := query(w.reader, "*")
		q.MinQueryIndex, q.MaxQueryTime = idx, 5*time.Second
		done <- w.s.RPC("Alloc.List", &structs.AllocListRequest{QueryOptions: q}, &blocked)
	}()
	j := smallWeb()
	j.ID, j.Name, j.Namespace = "other", "other", "team-b"
	if err := w.s.RPC("Job.Register", &structs.JobRegisterRequest{Job: j, WriteRequest: write(w.mgmt, "team-b")}, &structs.JobRegisterResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, x := range blocked.Allocations {
		if x.Namespace != "team-a" {
			t.Fatalf("blocking alloc list leaks %s", x.Namespace)
		}
	}
}

func TestACLAuthz_NodeAndOperatorEndpoints(t *testing.T) {
	w := newACLWorld(t)
	before := tableHashes(t, w.s)
	nodeRead := `token "anonymous" lacks node:read (it needs a policy with node { policy = "read" })` + noTokenHint
	cases := []authzCase{
		{"anonymous node list", "Node.List", &structs.NodeListRequest{QueryOptions: query("", "")}, &structs.NodeListResponse{}, nodeRead, ""},
		{"anonymous node get", "Node.GetNode", &structs.NodeSpecificRequest{NodeID: w.node.ID, QueryOptions: query("", "")}, &structs.SingleNodeResponse{}, nodeRead, ""},
		{"anonymous node allocs", "Node.GetAllocs", &structs.NodeSpecificRequest{NodeID: w.node.ID, QueryOptions: query("", "")}, &structs.NodeAllocsResponse{}, nodeRead, ""},
		{"writer node list", "Node.List", &structs.NodeListRequest{QueryOptions: query(w.writer, "")}, &structs.NodeListResponse{},
			`token "writer" lacks node:read (it needs a policy with node { policy = "read" })`, ""},
		{"node reader drain", "Node.UpdateDrain", &structs.NodeUpdateDrainRequest{NodeID: w.node.ID, DrainStrategy: &structs.DrainStrategy{}, WriteRequest: write(w.nodes, "")}, &structs.GenericResponse{},
			`token "nodes" lacks node:write (it needs a policy with node { policy = "write" })`, ""},
		{"node reader eligibility", "Node.UpdateEligibility", &structs.NodeUpdateEligibilityRequest{NodeID: w.node.ID, Eligibility: structs.NodeSchedulingIneligible, WriteRequest: write(w.nodes, "")}, &structs.GenericResponse{},
			`token "nodes" lacks node:write (it needs a policy with node { policy = "write" })`, ""},
		{"anonymous raft peer removal", "Operator.RaftRemovePeer", &structs.RaftPeerRequest{ID: "x", WriteRequest: write("", "")}, &structs.GenericResponse{},
			`token "anonymous" lacks operator:write (it needs a policy with operator { policy = "write" })` + noTokenHint, ""},
		{"operator reader raft peer removal", "Operator.RaftRemovePeer", &structs.RaftPeerRequest{ID: "x", WriteRequest: write(w.nodes, "")}, &structs.GenericResponse{},
			`token "nodes" lacks operator:write (it needs a policy with operator { policy = "write" })`, ""},
		{"writer raft configuration", "Operator.RaftGetConfiguration", &structs.GenericRequest{QueryOptions: query(w.writer, "")}, &structs.RaftConfigurationResponse{},
			`token "writer" lacks operator:read (it needs a policy with operator { policy = "read" })`, ""},
		{"anonymous state hash", "Operator.StateHash", &structs.GenericRequest{QueryOptions: query("", "")}, &structs.StateHashResponse{},
			`token "anonymous" lacks operator:read (it needs a policy with operator { policy = "read" })` + noTokenHint, ""},
		{"writer scheduler config", "Operator.SchedulerGetConfiguration", &structs.GenericRequest{QueryOptions: query(w.writer, "")}, &structs.SchedulerConfigResponse{},
			`token "writer" lacks operator:read (it needs a policy with operator { policy = "read" })`, ""},
		{"operator reader scheduler config set", "Operator.SchedulerSetConfiguration", &structs.SchedulerSetConfigRequest{WriteRequest: write(w.nodes, "")}, &structs.GenericResponse{},
			`token "nodes" lacks operator:write (it needs a policy with operator { policy = "write" })`, ""},
		{"anonymous garbage collection", "System.GarbageCollect", &structs.SystemGCRequest{WriteRequest: write("", "")}, &structs.SystemGCResponse{},
			`token "anonymous" lacks operator:write (it needs a policy with operator { policy = "write" })` + noTokenHint, ""},
		{"operator reader garbage collection", "System.GarbageCollect", &structs.SystemGCRequest{WriteRequest: write(w.nodes, "")}, &structs.SystemGCResponse{},
			`token "nodes" lacks operator:write (it needs a policy with operator { policy = "write" })`, ""},
		{"operator reader garbage collection dry run", "System.GarbageCollect", &structs.SystemGCRequest{DryRun: true, WriteRequest: write(w.nodes, "")}, &structs.SystemGCResponse{},
			`token "nodes" lacks operator:write (it needs a policy with operator { policy = "write" })`, ""},
		{"node reader list", "Node.List", &structs.NodeListRequest{QueryOptions: query(w.nodes, "")}, &structs.NodeListResponse{}, "", ""},
		{"node reader get", "Node.GetNode", &structs.NodeSpecificRequest{NodeID: w.node.ID, QueryOptions: query(w.nodes, "")}, &structs.SingleNodeResponse{}, "", ""},
		{"operator reader raft configuration", "Operator.RaftGetConfiguration", &structs.GenericRequest{QueryOptions: query(w.nodes, "")}, &structs.RaftConfigurationResponse{}, "", ""},
		{"operator reader state hash", "Operator.StateHash", &structs.GenericRequest{QueryOptions: query(w.nodes, "")}, &structs.StateHashResponse{}, "", ""},
		{"operator reader scheduler config", "Operator.SchedulerGetConfiguration", &structs.GenericRequest{QueryOptions: query(w.nodes, "")}, &structs.SchedulerConfigResponse{}, "", ""},
		// Status stays open, as in Nomad.
		{"anonymous leader", "Status.Leader", &structs.GenericRequest{}, new(string), "", ""},
		{"anonymous peers", "Status.Peers", &structs.GenericRequest{}, new([]string), "", ""},
	}
	runAuthzCases(t, w.s, cases)
	if after := tableHashes(t, w.s); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused requests changed the state:\nbefore %v\nafter  %v", before, after)
	}
	// node:read lists a node's allocations only of namespaces the token
	// may read: this token reads none.
	var na structs.NodeAllocsResponse
	if err := w.s.RPC("Node.GetAllocs", &structs.NodeSpecificRequest{NodeID: w.node.ID, QueryOptions: query(w.nodes, "")}, &na); err != nil || len(na.Allocs) != 0 {
		t.Fatalf("node reader sees %d allocations (%v), want none", len(na.Allocs), err)
	}
	// Management may drain.
	req := &structs.NodeUpdateEligibilityRequest{NodeID: w.node.ID, Eligibility: structs.NodeSchedulingIneligible, WriteRequest: write(w.mgmt, "")}
	if err := w.s.RPC("Node.UpdateEligibility", req, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
}

func TestACLAuthz_NamespaceEndpoints(t *testing.T) {
	w := newACLWorld(t)
	var list structs.NamespaceListResponse
	if err := w.s.RPC("Namespace.List", &structs.NamespaceListRequest{QueryOptions: query(w.reader, "")}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Namespaces) != 1 || list.Namespaces[0].Name != "team-a" {
		t.Fatalf("reader lists %+v, want only team-a", list.Namespaces)
	}
	var anon structs.NamespaceListResponse
	if err := w.s.RPC("Namespace.List", &structs.NamespaceListRequest{QueryOptions: query("", "")}, &anon); err != nil || len(anon.Namespaces) != 0 {
		t.Fatalf("anonymous lists %d namespaces (%v)", len(anon.Namespaces), err)
	}
	var all structs.NamespaceListResponse
	if err := w.s.RPC("Namespace.List", &structs.NamespaceListRequest{QueryOptions: query(w.mgmt, "")}, &all); err != nil || len(all.Namespaces) != 3 {
		t.Fatalf("management lists %d namespaces (%v), want 3", len(all.Namespaces), err)
	}
	before := tableHashes(t, w.s)
	cases := []authzCase{
		{"reader get team-a", "Namespace.Get", &structs.NamespaceSpecificRequest{Name: "team-a", QueryOptions: query(w.reader, "")}, &structs.SingleNamespaceResponse{}, "", ""},
		{"reader get team-b", "Namespace.Get", &structs.NamespaceSpecificRequest{Name: "team-b", QueryOptions: query(w.reader, "")}, &structs.SingleNamespaceResponse{},
			`token "reader" lacks capability list-jobs in namespace "team-b"`, ""},
		{"writer upsert", "Namespace.Upsert", &structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{{Name: "team-c"}}, WriteRequest: write(w.writer, "")}, &structs.GenericResponse{},
			`token "writer" is not a management token; Namespace.Upsert (drover namespace apply) needs one`, ""},
		{"anonymous delete", "Namespace.Delete", &structs.NamespaceDeleteRequest{Names: []string{"team-b"}, WriteRequest: write("", "")}, &structs.GenericResponse{},
			`token "anonymous" is not a management token; Namespace.Delete (drover namespace delete) needs one` + noTokenHint, ""},
	}
	runAuthzCases(t, w.s, cases)
	if after := tableHashes(t, w.s); !reflect.DeepEqual(before, after) {
		t.Fatal("refused namespace writes changed the state")
	}
}

// TestACLAuthz_ClientEndpointsUseTheNodeSecret: a client's RPCs carry
// no token and work with ACLs on.
func TestACLAuthz_ClientEndpointsUseTheNodeSecret(t *testing.T) {
	w := newACLWorld(t)
	var status structs.NodeUpdateResponse
	if err := w.s.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{NodeID: w.node.ID, SecretID: w.node.SecretID, Status: structs.NodeStatusReady}, &status); err != nil {
		t.Fatal(err)
	}
	var ca structs.NodeClientAllocsResponse
	if err := w.s.RPC("Node.GetClientAllocs", &structs.NodeSpecificRequest{NodeID: w.node.ID, SecretID: w.node.SecretID}, &ca); err != nil || len(ca.Allocs) == 0 {
		t.Fatalf("GetClientAllocs: %d allocs, %v", len(ca.Allocs), err)
	}
	var got structs.AllocsGetResponse
	if err := w.s.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{NodeID: w.node.ID, SecretID: w.node.SecretID, AllocIDs: []string{w.allocA.ID, w.allocB.ID}}, &got); err != nil || len(got.Allocs) != 2 {
		t.Fatalf("GetAllocs: %d allocs, %v", len(got.Allocs), err)
	}
	up := &structs.Allocation{ID: w.allocA.ID, NodeID: w.node.ID, ClientStatus: structs.AllocClientStatusRunning}
	if err := w.s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: w.node.ID, SecretID: w.node.SecretID, Alloc: []*structs.Allocation{up}}, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	// A wrong secret is still refused.
	err := w.s.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{NodeID: w.node.ID, SecretID: "wrong", AllocIDs: []string{w.allocA.ID}}, &structs.AllocsGetResponse{})
	if codeOf(err) != structs.CodePermission {
		t.Fatalf("wrong node secret: %v", err)
	}
}

func TestACLAuthz_ResolveTokenRPC(t *testing.T) {
	w := newACLWorld(t)
	if !ClientEndpoint("ACL.ResolveToken") {
		t.Fatal("ACL.ResolveToken is not callable with a client certificate")
	}
	var res structs.ResolveACLTokenResponse
	if err := w.s.RPC("ACL.ResolveToken", &structs.ResolveACLTokenRequest{SecretID: w.reader}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Token == nil || res.Token.Name != "reader" || res.Token.SecretHash != "" || len(res.Policies) != 1 || res.Policies[0].Name != "team-a-read" {
		t.Fatalf("resolve: %+v %+v", res.Token, res.Policies)
	}
	if a := CompilePolicies(res.Policies, nil); !a.AllowNamespace("team-a", "read-job") || a.AllowNamespace("team-b", "read-job") {
		t.Fatal("the returned policies do not compile to the token's rules")
	}
	// The caller's own token, when no SecretID is given.
	var own structs.ResolveACLTokenResponse
	if err := w.s.RPC("ACL.ResolveToken", &structs.ResolveACLTokenRequest{QueryOptions: query(w.writer, "")}, &own); err != nil || own.Token.Name != "writer" {
		t.Fatalf("own token: %+v %v", own.Token, err)
	}
	var anon structs.ResolveACLTokenResponse
	if err := w.s.RPC("ACL.ResolveToken", &structs.ResolveACLTokenRequest{}, &anon); err != nil || !anon.Token.IsAnonymous() {
		t.Fatalf("empty secret: %+v %v", anon.Token, err)
	}
	var bad structs.ResolveACLTokenResponse
	err := w.s.RPC("ACL.ResolveToken", &structs.ResolveACLTokenRequest{SecretID: "not-a-token"}, &bad)
	wantDenied(t, err, structs.CodeTokenNotFound, "ACL token not found")
	if bad.Token != nil || bad.Policies != nil {
		t.Fatal("an unknown secret got an answer")
	}
}

// TestACLAuthz_FollowerForwardsTheToken: a request sent to a follower is
// authorized by the leader with the token it carried.
func TestACLAuthz_FollowerForwardsTheToken(t *testing.T) {
	c := newTestCluster(t, 3)
	for _, s := range c.servers {
		s.config.ACLEnabled = true
	}
	leader := c.waitLeader(c.servers...)
	follower := c.others(leader)[0]
	var boot structs.ACLTokenSecretResponse
	if err := follower.RPC("ACL.Bootstrap", &structs.ACLBootstrapRequest{}, &boot); err != nil {
		t.Fatal(err)
	}
	upsertPolicy(t, follower, boot.SecretID, "default-write", `namespace "default" { policy = "write" }`)
	tok := createToken(t, follower, boot.SecretID, &structs.ACLTokenCreateRequest{Name: "ci-deployer", Policies: []string{"default-write"}})

	err := follower.RPC("Job.Register", &structs.JobRegisterRequest{Job: smallWeb(), WriteRequest: write("", "")}, &structs.JobRegisterResponse{})
	wantDenied(t, err, structs.CodePermission, `token "anonymous" lacks capability submit-job in namespace "default"`+noTokenHint)
	if err := follower.RPC("Job.Register", &structs.JobRegisterRequest{Job: smallWeb(), WriteRequest: write(tok.SecretID, "")}, &structs.JobRegisterResponse{}); err != nil {
		t.Fatal(err)
	}
	// A consistent read on a follower is served, and authorized, by the
	// leader; a stale one by the follower itself.
	for _, stale := range []bool{false, true} {
		q := query(tok.SecretID, "")
		q.AllowStale = stale
		var got structs.SingleJobResponse
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
			err := follower.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: "web", QueryOptions: q}, &got)
			return err == nil && got.Job != nil, err
		})
	}
	err = follower.RPC("Node.List", &structs.NodeListRequest{QueryOptions: query(tok.SecretID, "")}, &structs.NodeListResponse{})
	wantDenied(t, err, structs.CodePermission, `token "ci-deployer" lacks node:read (it needs a policy with node { policy = "read" })`)
}

// TestACLAuthz_ResolveTokenWithClientCertificate: a client-only agent
// (client certificate, over the wire) resolves tokens, both with
// ResolveACLTokenRequest and with a GenericRequest carrying AuthToken.
func TestACLAuthz_ResolveTokenWithClientCertificate(t *testing.T) {
	pki := newTestPKI(t)
	s := testServer(t, func(c *Config) { c.TLS = pki.server; c.ACLEnabled = true; c.NumSchedulers = 0 })
	mgmt := bootstrapACL(t, s)
	upsertPolicy(t, s, mgmt, "logs", `namespace "team-a" { capabilities = ["read-logs"] }`)
	tok := createToken(t, s, mgmt, &structs.ACLTokenCreateRequest{Name: "logs", Policies: []string{"logs"}})
	pool := rpcpool.New(rpcpool.WithTLS(pki.client.OutgoingRPC()))
	defer pool.Shutdown()
	addr := s.RPCAddr().String()

	var res structs.ResolveACLTokenResponse
	if err := pool.RPC(addr, "ACL.ResolveToken", &structs.ResolveACLTokenRequest{SecretID: tok.SecretID}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Token == nil || res.Token.Name != "logs" || res.Token.SecretHash != "" || len(res.Policies) != 1 {
		t.Fatalf("resolve: %+v %+v", res.Token, res.Policies)
	}
	generic := &structs.GenericRequest{QueryOptions: structs.QueryOptions{AuthToken: tok.SecretID}}
	var res2 structs.ResolveACLTokenResponse
	if err := pool.RPC(addr, "ACL.ResolveToken", generic, &res2); err != nil || res2.Token == nil || res2.Token.Name != "logs" {
		t.Fatalf("resolve with a GenericRequest: %+v %v", res2.Token, err)
	}
	err := pool.RPC(addr, "ACL.ResolveToken", &structs.ResolveACLTokenRequest{SecretID: "garbage"}, &structs.ResolveACLTokenResponse{})
	if codeOf(err) != structs.CodeTokenNotFound {
		t.Fatalf("garbage secret: %v", err)
	}
	// Other ACL methods still need a server certificate.
	err = pool.RPC(addr, "ACL.ListTokens", &structs.GenericRequest{QueryOptions: structs.QueryOptions{AuthToken: mgmt}}, &structs.ACLTokenListResponse{})
	wantPermission(t, err, "ACL.ListTokens needs a server certificate")
}
