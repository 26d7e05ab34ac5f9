package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// stoppedJobWithAlloc runs smallWeb (count 1) on node until its client
// reports it running, then stops the job and reports the allocation
// complete, as a client would. It returns the job and the allocation.
func stoppedJobWithAlloc(t *testing.T, s *Server, node *structs.Node) (*structs.Job, *structs.Allocation) {
	t.Helper()
	job := smallWeb()
	job.TaskGroups[0].Count = 1
	waitForEval(t, s, registerJob(t, s, job).EvalID)
	allocs := liveAllocs(t, s, job.ID)
	if len(allocs) != 1 {
		t.Fatalf("%d allocations placed, want 1", len(allocs))
	}
	a := allocs[0]
	report := func(status string) {
		t.Helper()
		req := &structs.AllocUpdateRequest{NodeID: node.ID, SecretID: node.SecretID, Alloc: []*structs.Allocation{{ID: a.ID, ClientStatus: status}}}
		if err := s.RPC("Node.UpdateAlloc", req, &structs.GenericResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	report(structs.AllocClientStatusRunning)
	var dereg structs.JobDeregisterResponse
	if err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: job.ID}, &dereg); err != nil {
		t.Fatal(err)
	}
	waitForEval(t, s, dereg.EvalID)
	report(structs.AllocClientStatusComplete)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		got, err := s.State().AllocByID(nil, a.ID)
		if err != nil || got == nil {
			return false, err
		}
		return got.ClientTerminalStatus() && got.ServerTerminalStatus(), fmt.Errorf("allocation %s/%s", got.DesiredStatus, got.ClientStatus)
	})
	return job, a
}

func TestSystemEndpoint_GarbageCollect(t *testing.T) {
	s := testServer(t, nil)
	node := mock.Node()
	registerNode(t, s, node)
	job, alloc := stoppedJobWithAlloc(t, s, node)

	// The client's watch, at the index it last saw.
	var before structs.NodeClientAllocsResponse
	if err := s.RPC("Node.GetClientAllocs", &structs.NodeSpecificRequest{NodeID: node.ID, SecretID: node.SecretID}, &before); err != nil {
		t.Fatal(err)
	}
	if _, ok := before.Allocs[alloc.ID]; !ok {
		t.Fatal("the client does not see its allocation")
	}

	var dry structs.SystemGCResponse
	if err := s.RPC("System.GarbageCollect", &structs.SystemGCRequest{DryRun: true}, &dry); err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.Chosen.Jobs != 1 || dry.Chosen.Allocs != 1 || dry.Deleted.Total() != 0 || dry.Entries != 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	if len(dry.Objects.Allocs) != 1 || dry.Objects.Allocs[0] != alloc.ID {
		t.Fatalf("dry run lists allocations %v", dry.Objects.Allocs)
	}
	if j, _ := s.State().JobByID(nil, "", job.ID); j == nil {
		t.Fatal("a dry run deleted the job")
	}

	// The watch wakes for the deletion.
	woke := make(chan *structs.NodeClientAllocsResponse, 1)
	go func() {
		var resp structs.NodeClientAllocsResponse
		err := s.RPC("Node.GetClientAllocs", &structs.NodeSpecificRequest{NodeID: node.ID, SecretID: node.SecretID,
			QueryOptions: structs.QueryOptions{MinQueryIndex: before.Index, MaxQueryTime: 20 * time.Second}}, &resp)
		if err != nil {
			t.Error(err)
		}
		woke <- &resp
	}()

	var resp structs.SystemGCResponse
	if err := s.RPC("System.GarbageCollect", &structs.SystemGCRequest{}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Deleted.Jobs != 1 || resp.Deleted.Allocs != 1 || resp.Deleted.Evals != 2 || resp.Entries != 1 || resp.Index == 0 {
		t.Fatalf("collection: %+v", resp)
	}
	if j, _ := s.State().JobByID(nil, "", job.ID); j != nil {
		t.Fatal("the stopped job is still there")
	}
	if e, _ := s.State().EvalsByJob(nil, "", job.ID); len(e) != 0 {
		t.Fatalf("%d evaluations left", len(e))
	}
	select {
	case got := <-woke:
		if _, ok := got.Allocs[alloc.ID]; ok || got.Index < resp.Index {
			t.Fatalf("the watch answered %v at index %d; want the allocation gone, index >= %d", got.Allocs, got.Index, resp.Index)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the client's watch did not wake for the deletion")
	}
	// A client asking afresh gets an index no older than the deletion:
	// it can tell the allocation was deleted.
	var fresh structs.NodeClientAllocsResponse
	if err := s.RPC("Node.GetClientAllocs", &structs.NodeSpecificRequest{NodeID: node.ID, SecretID: node.SecretID}, &fresh); err != nil {
		t.Fatal(err)
	}
	if fresh.Index < resp.Index || len(fresh.Allocs) != 0 {
		t.Fatalf("fresh answer: %v at %d, want none at >= %d", fresh.Allocs, fresh.Index, resp.Index)
	}
	// Nothing left: a second collection chooses nothing.
	if err := s.RPC("System.GarbageCollect", &structs.SystemGCRequest{}, &resp); err != nil || resp.Chosen.Total() != 0 || resp.Entries != 0 {
		t.Fatalf("second collection: %+v %v", resp, err)
	}
}

// A collection asked of a follower runs on the leader, and every server
// applies the same deletions.
func TestCluster_GarbageCollectThroughAFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.servers...)
	job := mock.Job()
	job.TaskGroups[0].Count = 0
	var reg structs.JobRegisterResponse
	if err := leader.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &reg); err != nil {
		t.Fatal(err)
	}
	var dereg structs.JobDeregisterResponse
	if err := leader.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: job.ID}, &dereg); err != nil {
		t.Fatal(err)
	}
	// Both evaluations complete (the cluster's workers run them).
	for _, id := range []string{reg.EvalID, dereg.EvalID} {
		waitForEval(t, leader, id)
	}
	follower := c.others(leader)[0]
	var resp structs.SystemGCResponse
	if err := follower.RPC("System.GarbageCollect", &structs.SystemGCRequest{}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Deleted.Jobs != 1 || resp.Deleted.Evals != 2 {
		t.Fatalf("collection: %+v", resp)
	}
	c.waitSameState(c.servers...)
	for _, s := range c.servers {
		if j, _ := s.State().JobByID(nil, "", job.ID); j != nil {
			t.Fatalf("%s still has the job", c.name(s))
		}
	}
}
