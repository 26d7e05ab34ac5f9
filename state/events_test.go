package state

import (
	"errors"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

type recordSink struct{ batches []EventBatch }

func (r *recordSink) Publish(index uint64, events []structs.Event) {
	r.batches = append(r.batches, EventBatch{Index: index, Events: events})
}

// TestEvents_WritesBecomeEventsAtTheirIndex: each write's changes to
// jobs, nodes, evaluations and allocations come out as events carrying
// the write's index, with filter keys; derived tables make none.
func TestEvents_WritesBecomeEventsAtTheirIndex(t *testing.T) {
	s := NewStateStore()
	sink := &recordSink{}
	s.SetEventSink(sink)
	node := mock.Node()
	if err := s.UpsertNode(3, node, 1, nil); err != nil {
		t.Fatal(err)
	}
	job := mock.Job()
	eval := &structs.Evaluation{ID: "e1", Namespace: "default", JobID: job.ID, Status: structs.EvalStatusPending, Type: job.Type, Priority: 50, TriggeredBy: "job-register"}
	if err := s.UpsertJob(4, job, 1, eval); err != nil {
		t.Fatal(err)
	}
	alloc := mock.Alloc(job, node, 0)
	if err := s.UpsertPlanResults(5, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{alloc}, UpdatedAt: 2}); err != nil {
		t.Fatal(err)
	}
	upd := &structs.Allocation{ID: alloc.ID, NodeID: node.ID, ClientStatus: structs.AllocClientStatusRunning}
	if err := s.UpdateAllocsFromClient(6, []*structs.Allocation{upd}, 3, nil); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		index       uint64
		topic, typ  string
		key         string
		filterFirst string
	}{
		{3, structs.TopicNode, "NodeRegistration", node.ID, ""},
		{4, structs.TopicJob, "JobRegistered", job.ID, ""},
		{4, structs.TopicEvaluation, "EvaluationUpdated", "e1", job.ID},
		{5, structs.TopicAllocation, "AllocationCreated", alloc.ID, job.ID},
		{5, structs.TopicJob, "JobUpdated", job.ID, ""},
		{6, structs.TopicAllocation, "AllocationUpdated", alloc.ID, job.ID},
	}
	var got []structs.Event
	for _, b := range sink.batches {
		for _, e := range b.Events {
			if e.Index != b.Index {
				t.Fatalf("event %s/%s has index %d in the batch of %d", e.Topic, e.Key, e.Index, b.Index)
			}
			got = append(got, e)
		}
	}
	// Jobs and evals of one write may come in either order.
	match := func(w struct {
		index       uint64
		topic, typ  string
		key         string
		filterFirst string
	}) bool {
		for _, e := range got {
			if e.Index == w.index && e.Topic == w.topic && e.Type == w.typ && e.Key == w.key && (w.filterFirst == "" || (len(e.FilterKeys) > 0 && e.FilterKeys[0] == w.filterFirst)) {
				return true
			}
		}
		return false
	}
	for _, w := range want {
		if !match(w) {
			t.Errorf("no event %+v in %d events", w, len(got))
		}
	}
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("%d %s %s %s", e.Index, e.Topic, e.Type, e.Key)
		}
		t.Fatalf("%d events, want %d (derived tables must not make events)", len(got), len(want))
	}
	// A snapshot writes nothing to the sink.
	snap := s.Snapshot()
	if err := snap.UpsertNode(7, mock.Node(), 1, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.batches); n != 4 {
		t.Fatalf("a write to a snapshot published: %d batches", n)
	}
}

func TestEventBuffer_ResumeEvictionAndReset(t *testing.T) {
	b := NewEventBuffer(5)
	ev := func(n int) []structs.Event { return make([]structs.Event, n) }
	b.Publish(10, ev(2))
	b.Publish(11, ev(2))
	got, _, err := b.Since(10)
	if err != nil || len(got) != 1 || got[0].Index != 11 {
		t.Fatalf("since 10: %+v %v", got, err)
	}
	// A second write at the same index joins its batch.
	b.Publish(11, ev(1))
	got, _, _ = b.Since(10)
	if len(got) != 1 || len(got[0].Events) != 3 {
		t.Fatalf("same-index publish: %+v", got)
	}
	// Going over 5 events drops index 10 whole: resuming from before it
	// is gone, from it is fine.
	b.Publish(12, ev(1))
	if _, _, err := b.Since(9); !errors.Is(err, ErrEventsGone) {
		t.Fatalf("resume from 9 after eviction of 10: %v", err)
	}
	if got, _, err := b.Since(10); err != nil || len(got) != 2 {
		t.Fatalf("resume from 10: %+v %v", got, err)
	}
	// The notify channel closes on publish.
	_, notify, _ := b.Since(12)
	select {
	case <-notify:
		t.Fatal("notified before a publish")
	default:
	}
	b.Publish(13, ev(1))
	select {
	case <-notify:
	default:
		t.Fatal("not notified after a publish")
	}
	// A restore at 20 makes everything before 20 gone.
	b.Reset(20)
	if _, _, err := b.Since(13); !errors.Is(err, ErrEventsGone) {
		t.Fatalf("resume from 13 after a restore at 20: %v", err)
	}
	if got, _, err := b.Since(20); err != nil || len(got) != 0 {
		t.Fatalf("resume from 20: %+v %v", got, err)
	}
	if b.LastIndex() != 20 {
		t.Fatalf("last index %d", b.LastIndex())
	}
}
