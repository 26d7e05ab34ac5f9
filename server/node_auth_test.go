package server

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// twoNodesWithWork registers nodes a and b and a job whose allocations
// all land on a (b registers after they are placed).
func twoNodesWithWork(t *testing.T, s *Server) (a, b *structs.Node, allocs []*structs.Allocation) {
	t.Helper()
	a = mock.Node()
	registerNode(t, s, a)
	job := mock.Job()
	waitForEval(t, s, registerJob(t, s, job).EvalID)
	allocs = liveAllocs(t, s, job.ID)
	if len(allocs) == 0 {
		t.Fatal("no allocations placed")
	}
	b = mock.Node()
	registerNode(t, s, b)
	return a, b, allocs
}

func stateHash(t *testing.T, s *Server) map[string]string {
	t.Helper()
	var resp structs.StateHashResponse
	if err := s.RPC("Operator.StateHash", &structs.GenericRequest{}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Tables
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ce *structs.CodedError
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
}

func TestNode_UpdateAllocOnlyOwnAllocationsWithOwnSecret(t *testing.T) {
	s := testServer(t, nil)
	a, b, allocs := twoNodesWithWork(t, s)
	failed := func(id string) *structs.Allocation {
		return &structs.Allocation{ID: id, NodeID: a.ID, ClientStatus: structs.AllocClientStatusFailed}
	}
	before := stateHash(t, s)

	cases := []struct {
		name string
		req  *structs.AllocUpdateRequest
		code string
	}{
		{"no secret", &structs.AllocUpdateRequest{NodeID: a.ID, Alloc: []*structs.Allocation{failed(allocs[0].ID)}}, structs.CodePermission},
		{"wrong secret", &structs.AllocUpdateRequest{NodeID: a.ID, SecretID: b.SecretID, Alloc: []*structs.Allocation{failed(allocs[0].ID)}}, structs.CodePermission},
		{"no node", &structs.AllocUpdateRequest{Alloc: []*structs.Allocation{failed(allocs[0].ID)}}, structs.CodeInvalid},
		{"unknown node", &structs.AllocUpdateRequest{NodeID: "00000000-0000-0000-0000-000000000000", SecretID: a.SecretID, Alloc: []*structs.Allocation{failed(allocs[0].ID)}}, structs.CodeNotFound},
		// b authenticates as itself but reports on a's allocation; the
		// whole batch is refused, including b's harmless first entry.
		{"another node's allocation", &structs.AllocUpdateRequest{NodeID: b.ID, SecretID: b.SecretID, Alloc: []*structs.Allocation{
			{ID: "11111111-1111-1111-1111-111111111111", ClientStatus: structs.AllocClientStatusRunning}, failed(allocs[0].ID)}}, structs.CodePermission},
		{"unknown status", &structs.AllocUpdateRequest{NodeID: a.ID, SecretID: a.SecretID, Alloc: []*structs.Allocation{
			{ID: allocs[0].ID, ClientStatus: "evicted"}}}, structs.CodeInvalid},
		{"nil update", &structs.AllocUpdateRequest{NodeID: a.ID, SecretID: a.SecretID, Alloc: []*structs.Allocation{nil}}, structs.CodeInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp structs.GenericResponse
			wantCode(t, s.RPC("Node.UpdateAlloc", tc.req, &resp), tc.code)
		})
	}
	if after := stateHash(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused updates changed the state:\nbefore %v\nafter  %v", before, after)
	}

	// The owner may report, with its secret.
	var resp structs.GenericResponse
	ok := &structs.AllocUpdateRequest{NodeID: a.ID, SecretID: a.SecretID, Alloc: []*structs.Allocation{
		{ID: allocs[0].ID, ClientStatus: structs.AllocClientStatusRunning}}}
	if err := s.RPC("Node.UpdateAlloc", ok, &resp); err != nil {
		t.Fatal(err)
	}
	got, _ := s.State().AllocByID(nil, allocs[0].ID)
	if got.ClientStatus != structs.AllocClientStatusRunning {
		t.Fatalf("owner's report not applied: %s", got.ClientStatus)
	}
}

func TestNode_UpdateAllocKeepsOnlyWhatAClientMaySay(t *testing.T) {
	s := testServer(t, nil)
	a, _, allocs := twoNodesWithWork(t, s)
	stored := allocs[0]
	// A hostile report tries to change what only servers decide.
	u := &structs.Allocation{
		ID:             stored.ID,
		NodeID:         "someone-else",
		ClientStatus:   structs.AllocClientStatusRunning,
		DesiredStatus:  structs.AllocDesiredStatusStop,
		FollowupEvalID: "22222222-2222-2222-2222-222222222222",
		JobID:          "other-job",
	}
	var resp structs.GenericResponse
	if err := s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: a.ID, SecretID: a.SecretID, Alloc: []*structs.Allocation{u}}, &resp); err != nil {
		t.Fatal(err)
	}
	got, _ := s.State().AllocByID(nil, stored.ID)
	if got.DesiredStatus != stored.DesiredStatus || got.FollowupEvalID != stored.FollowupEvalID ||
		got.JobID != stored.JobID || got.NodeID != a.ID {
		t.Fatalf("a client changed server-owned fields: desired %q followup %q job %q node %q",
			got.DesiredStatus, got.FollowupEvalID, got.JobID, got.NodeID)
	}
	if got.ClientStatus != structs.AllocClientStatusRunning {
		t.Fatalf("client status not applied: %s", got.ClientStatus)
	}
}

func TestNode_HeartbeatOnlyForItself(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	a := mock.Node()
	b := mock.Node()
	registerNode(t, s, a)
	registerNode(t, s, b)
	before := stateHash(t, s)
	var resp structs.NodeUpdateResponse
	// b's secret cannot mark a down (or keep it alive).
	err := s.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{NodeID: a.ID, SecretID: b.SecretID, Status: structs.NodeStatusDown}, &resp)
	wantCode(t, err, structs.CodePermission)
	err = s.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{NodeID: a.ID, Status: structs.NodeStatusReady}, &resp)
	wantCode(t, err, structs.CodePermission)
	if after := stateHash(t, s); !reflect.DeepEqual(before, after) {
		t.Fatal("a refused heartbeat changed the state")
	}
	if n, _ := s.State().NodeByID(nil, a.ID); n.Status != structs.NodeStatusReady {
		t.Fatalf("node a is %s", n.Status)
	}
	// Its own secret works.
	if err := s.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{NodeID: a.ID, SecretID: a.SecretID, Status: structs.NodeStatusReady}, &resp); err != nil {
		t.Fatal(err)
	}
}

func TestNode_ReadsNeverReturnTheSecret(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	a := mock.Node()
	registerNode(t, s, a)
	for _, stale := range []bool{false, true} {
		var resp structs.SingleNodeResponse
		if err := s.RPC("Node.GetNode", &structs.NodeSpecificRequest{NodeID: a.ID, QueryOptions: structs.QueryOptions{AllowStale: stale}}, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Node == nil || resp.Node.ID != a.ID {
			t.Fatalf("node not returned: %+v", resp.Node)
		}
		if resp.Node.SecretID != "" {
			t.Fatal("Node.GetNode returned the node's secret ID")
		}
	}
	// The stored node keeps it: the node still authenticates.
	if n, _ := s.State().NodeByID(nil, a.ID); n.SecretID != a.SecretID {
		t.Fatal("scrubbing the read changed the stored node")
	}
	// A blocking read that returns after a change is scrubbed too.
	var first structs.SingleNodeResponse
	if err := s.RPC("Node.GetNode", &structs.NodeSpecificRequest{NodeID: a.ID}, &first); err != nil {
		t.Fatal(err)
	}
	done := make(chan *structs.SingleNodeResponse, 1)
	go func() {
		var resp structs.SingleNodeResponse
		_ = s.RPC("Node.GetNode", &structs.NodeSpecificRequest{NodeID: a.ID, QueryOptions: structs.QueryOptions{
			MinQueryIndex: first.Index, MaxQueryTime: 10 * time.Second}}, &resp)
		done <- &resp
	}()
	var er structs.GenericResponse
	if err := s.RPC("Node.UpdateEligibility", &structs.NodeUpdateEligibilityRequest{NodeID: a.ID, Eligibility: structs.NodeSchedulingIneligible}, &er); err != nil {
		t.Fatal(err)
	}
	if resp := <-done; resp.Node == nil || resp.Node.SecretID != "" {
		t.Fatalf("blocking read: %+v", resp.Node)
	}
}

func TestAlloc_GetAllocsOnlyTheNodesOwn(t *testing.T) {
	s := testServer(t, nil)
	a, b, allocs := twoNodesWithWork(t, s)
	ids := []string{allocs[0].ID}
	var resp structs.AllocsGetResponse
	if err := s.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{NodeID: b.ID, SecretID: b.SecretID, AllocIDs: ids}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Allocs) != 0 {
		t.Fatal("a node read another node's allocation (and its job spec)")
	}
	err := s.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{NodeID: a.ID, AllocIDs: ids}, &resp)
	wantCode(t, err, structs.CodePermission)
	if err := s.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{NodeID: a.ID, SecretID: a.SecretID, AllocIDs: ids}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Allocs) != 1 {
		t.Fatalf("the owner got %d allocations", len(resp.Allocs))
	}
}

func TestNode_ReRegisterKeepsOperatorDrainAndEligibility(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	a := mock.Node()
	registerNode(t, s, a)
	var er structs.GenericResponse
	if err := s.RPC("Node.UpdateEligibility", &structs.NodeUpdateEligibilityRequest{NodeID: a.ID, Eligibility: structs.NodeSchedulingIneligible}, &er); err != nil {
		t.Fatal(err)
	}
	// The node re-registers claiming to be eligible.
	again := a.Copy()
	again.SchedulingEligibility = structs.NodeSchedulingEligible
	registerNode(t, s, again)
	if n, _ := s.State().NodeByID(nil, a.ID); n.SchedulingEligibility != structs.NodeSchedulingIneligible {
		t.Fatalf("re-registration overrode the operator: %s", n.SchedulingEligibility)
	}
	// Another secret cannot take over the node ID.
	thief := a.Copy()
	thief.SecretID = "33333333-3333-3333-3333-333333333333"
	var resp structs.NodeUpdateResponse
	wantCode(t, s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: thief}, &resp), structs.CodePermission)
}
