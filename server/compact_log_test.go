package server

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/structs"
)

// TestServer_WritesCompactHotPathEntries checks that the leader writes
// plan results and client updates as compact entries, and that their
// content reaches the state: the placements, and the client's report
// (task states and all) on the allocation.
func TestServer_WritesCompactHotPathEntries(t *testing.T) {
	store := raft.NewInmemStore()
	s := testServer(t, func(c *Config) { c.RaftLogStore = store })
	a, _, allocs := twoNodesWithWork(t, s)
	stored := allocs[0]
	u := &structs.Allocation{ID: stored.ID, NodeID: a.ID, ClientStatus: structs.AllocClientStatusRunning, ClientDescription: "up",
		TaskStates: map[string]*structs.TaskState{"server": {State: structs.TaskStateRunning, Restarts: 2}}}
	var resp structs.GenericResponse
	if err := s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: a.ID, SecretID: a.SecretID, Alloc: []*structs.Allocation{u}}, &resp); err != nil {
		t.Fatal(err)
	}
	got, _ := s.State().AllocByID(nil, stored.ID)
	if got.ClientDescription != "up" || got.TaskStates["server"] == nil || got.TaskStates["server"].Restarts != 2 {
		t.Fatalf("the client's report did not reach the state: %+v", got)
	}

	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	types := map[structs.MessageType]int{}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Type == raft.LogCommand && len(l.Data) > 0 {
			types[structs.MessageType(l.Data[0])]++
		}
	}
	for _, old := range []structs.MessageType{structs.ApplyPlanResultsRequestType, structs.ApplyPlanResultsBatchRequestType, structs.AllocClientUpdateRequestType} {
		if types[old] != 0 {
			t.Errorf("%d %s entries written; the leader writes compact ones", types[old], old)
		}
	}
	if types[structs.ApplyPlanResultsCompactRequestType] == 0 || types[structs.AllocClientUpdateCompactRequestType] == 0 {
		t.Fatalf("entries written by type: %v; want compact plan results and client updates", types)
	}
}
