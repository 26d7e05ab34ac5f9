package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
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

	types := logTypesIn(t, store)
	for _, old := range []structs.MessageType{structs.ApplyPlanResultsRequestType, structs.ApplyPlanResultsBatchRequestType, structs.AllocClientUpdateRequestType} {
		if types[old] != 0 {
			t.Errorf("%d %s entries written; the leader writes compact ones", types[old], old)
		}
	}
	if types[structs.ApplyPlanResultsCompactRequestType] == 0 || types[structs.AllocClientUpdateCompactRequestType] == 0 {
		t.Fatalf("entries written by type: %v; want compact plan results and client updates", types)
	}
}

// logTypesIn counts the command entries of store by message type.
func logTypesIn(t *testing.T, store raft.LogStore) map[structs.MessageType]int {
	t.Helper()
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
	return types
}

// TestServer_WritesOnlyWhatEveryServerApplies runs a leader beside a
// server of an older version (a gossip member about to join that does
// not advertise the message types it applies): plan results and client
// updates go out in the msgpack encodings every version applies, and
// garbage collection waits; once that server advertises this build's
// types, the compact entries come back.
func TestServer_WritesOnlyWhatEveryServerApplies(t *testing.T) {
	store := raft.NewInmemStore()
	fake := &fakeMembership{changes: make(chan struct{}, 1)}
	s := testServer(t, func(c *Config) { c.RaftLogStore = store; c.Membership = fake; c.NodeName = "s1" })
	self := serverMember("s1", s.raftID, s.RPCAddr().String(), 1)
	self.LogTypes = int(structs.MaxMessageType)
	fake.set(self, self)
	reconcile := func(want structs.MessageType) {
		t.Helper()
		fake.changes <- struct{}{}
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
			got := structs.MessageType(s.logTypes.Load())
			return got == want, fmt.Errorf("the leader writes types up to %d, want %d", got, want)
		})
	}
	reconcile(structs.MaxMessageType)

	// An old server (nothing listens at its address, so it is never
	// made a voter) appears in gossip.
	old := serverMember("s0", "old-server", deadAddr(t), 0)
	fake.set(self, self, old)
	reconcile(structs.LegacyMaxMessageType)
	before := logTypesIn(t, store)
	a, _, allocs := twoNodesWithWork(t, s)
	u := &structs.Allocation{ID: allocs[0].ID, NodeID: a.ID, ClientStatus: structs.AllocClientStatusRunning}
	if err := s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: a.ID, SecretID: a.SecretID, Alloc: []*structs.Allocation{u}}, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.State().AllocByID(nil, u.ID); got.ClientStatus != structs.AllocClientStatusRunning {
		t.Fatalf("the client's report did not reach the state: %+v", got)
	}
	during := logTypesIn(t, store)
	for _, newer := range []structs.MessageType{structs.ApplyPlanResultsCompactRequestType, structs.AllocClientUpdateCompactRequestType, structs.GCBatchRequestType} {
		if during[newer] != before[newer] {
			t.Errorf("%d %s entries written beside a server that refuses them", during[newer]-before[newer], newer)
		}
	}
	if during[structs.ApplyPlanResultsBatchRequestType] == before[structs.ApplyPlanResultsBatchRequestType] ||
		during[structs.AllocClientUpdateRequestType] == before[structs.AllocClientUpdateRequestType] {
		t.Fatalf("entries by type: %v; want msgpack plan batches and client updates", during)
	}
	// Something to collect: a stopped job whose allocation ended.
	stopped, _ := stoppedJobWithAlloc(t, s, a)
	var gc structs.SystemGCResponse
	err := s.RPC("System.GarbageCollect", &structs.SystemGCRequest{}, &gc)
	if ce := structs.ParseCodedError(err); ce == nil || ce.Code != structs.CodeUnavailable || !strings.Contains(err.Error(), "older version") {
		t.Fatalf("garbage collection beside an older server: %v; want an unavailable error naming the older version", err)
	}

	// The old server is upgraded.
	old.LogTypes = int(structs.MaxMessageType)
	fake.set(self, self, old)
	reconcile(structs.MaxMessageType)
	job := mock.Job()
	waitForEval(t, s, registerJob(t, s, job).EvalID)
	after := logTypesIn(t, store)
	if after[structs.ApplyPlanResultsCompactRequestType] == during[structs.ApplyPlanResultsCompactRequestType] {
		t.Fatalf("entries by type after the upgrade: %v; want compact plan results", after)
	}
	if j, _ := s.State().JobByID(nil, "", stopped.ID); j == nil {
		t.Fatal("the refused collection deleted the stopped job")
	}
	if err := s.RPC("System.GarbageCollect", &structs.SystemGCRequest{}, &gc); err != nil || gc.Deleted.Jobs != 1 {
		t.Fatalf("garbage collection after the upgrade: %+v %v; want the stopped job deleted", gc.Deleted, err)
	}
	if n := logTypesIn(t, store)[structs.GCBatchRequestType]; n != 1 {
		t.Fatalf("%d garbage collection entries, want 1", n)
	}
}

func TestClusterLogTypes(t *testing.T) {
	member := func(name, id, status string, logTypes int) gossip.Member {
		m := serverMember(name, id, "192.0.2.1:4647", 0)
		m.Status, m.LogTypes = status, logTypes
		return m
	}
	maxT, legacy := structs.MaxMessageType, structs.LegacyMaxMessageType
	for _, tc := range []struct {
		name    string
		raft    []string
		members []gossip.Member
		want    structs.MessageType
		lowest  string
	}{
		{"every server this build", []string{"self", "a", "b"},
			[]gossip.Member{member("a", "a", gossip.StatusAlive, int(maxT)), member("b", "b", gossip.StatusAlive, int(maxT))}, maxT, ""},
		{"a newer server counts as this build", []string{"self", "a"},
			[]gossip.Member{member("a", "a", gossip.StatusAlive, 200)}, maxT, ""},
		{"a server that says nothing is old", []string{"self", "a", "b"},
			[]gossip.Member{member("a", "a", gossip.StatusAlive, int(maxT)), member("b", "b", gossip.StatusAlive, 0)}, legacy, "b"},
		{"a server between", []string{"self", "a"},
			[]gossip.Member{member("a", "a", gossip.StatusAlive, 31)}, 31, "a"},
		{"a Raft server gossip does not know is old", []string{"self", "a", "gone"},
			[]gossip.Member{member("a", "a", gossip.StatusAlive, int(maxT))}, legacy, "raft server gone (not in gossip)"},
		{"a failed Raft server still counts", []string{"self", "a"},
			[]gossip.Member{member("a", "a", gossip.StatusFailed, 0)}, legacy, "a"},
		{"an alive server about to join counts", []string{"self"},
			[]gossip.Member{member("new", "new", gossip.StatusAlive, 0)}, legacy, "new"},
		{"a server that left and is not in Raft does not", []string{"self"},
			[]gossip.Member{member("left", "left", gossip.StatusLeft, 0)}, maxT, ""},
		{"nor does one of another region", []string{"self"},
			[]gossip.Member{func() gossip.Member { m := member("far", "far", gossip.StatusAlive, 0); m.Region = "eu"; return m }()}, maxT, ""},
		{"nor a member claiming this server's ID", []string{"self"},
			[]gossip.Member{member("liar", "self", gossip.StatusAlive, 0)}, maxT, ""},
		{"nor a client", []string{"self"},
			[]gossip.Member{{Name: "c", Status: gossip.StatusAlive, Meta: gossip.Meta{Client: true, RaftID: "c"}}}, maxT, ""},
		{"an alive claim wins over a failed one of the same ID", []string{"self", "a"},
			[]gossip.Member{member("a", "a", gossip.StatusAlive, int(maxT)), member("a-old", "a", gossip.StatusFailed, 0)}, maxT, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, lowest := clusterLogTypes("self", tc.raft, tc.members, "global")
			if got != tc.want || lowest != tc.lowest {
				t.Fatalf("clusterLogTypes = %d (%q), want %d (%q)", got, lowest, tc.want, tc.lowest)
			}
		})
	}
}
