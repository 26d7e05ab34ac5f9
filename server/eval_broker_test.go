package server

import (
	"errors"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func newTestBroker(t *testing.T) *EvalBroker {
	b := NewEvalBroker(time.Minute, 2)
	b.SetEnabled(true)
	t.Cleanup(func() { b.SetEnabled(false) })
	return b
}

func dequeue(t *testing.T, b *EvalBroker) (*structs.Evaluation, string) {
	t.Helper()
	e, token, err := b.Dequeue(schedulerTypes, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e, token
}

func TestEvalBroker_PriorityOrder(t *testing.T) {
	b := newTestBroker(t)
	low, high := mock.Eval(mock.Job()), mock.Eval(mock.Job())
	low.Priority, high.Priority = 10, 90
	b.Enqueue(low)
	b.Enqueue(high)
	if e, _ := dequeue(t, b); e.ID != high.ID {
		t.Fatalf("dequeued priority %d first, want the high one", e.Priority)
	}
}

func TestEvalBroker_OnePerJobAndNewestWins(t *testing.T) {
	b := newTestBroker(t)
	job := mock.Job()
	first, second, third := mock.Eval(job), mock.Eval(job), mock.Eval(job)
	first.ModifyIndex, second.ModifyIndex, third.ModifyIndex = 1, 2, 3
	b.Enqueue(first)
	b.Enqueue(second)
	b.Enqueue(third)

	e, token := dequeue(t, b)
	if e.ID != first.ID {
		t.Fatal("first eval of the job not delivered first")
	}
	// Nothing else of the job may be delivered while it is unacked.
	if e2, _, _ := b.Dequeue(schedulerTypes, 30*time.Millisecond, nil); e2 != nil {
		t.Fatalf("delivered %s while the job's eval is in flight", e2.ID)
	}
	if err := b.Ack(e.ID, token); err != nil {
		t.Fatal(err)
	}
	e, _ = dequeue(t, b)
	if e.ID != third.ID {
		t.Fatal("after ack, the newest waiting eval must be delivered")
	}
	if c := b.Cancelable(10); len(c) != 1 || c[0].ID != second.ID {
		t.Fatalf("superseded eval not cancelable: %v", c)
	}
}

func TestEvalBroker_TokensAndNack(t *testing.T) {
	b := newTestBroker(t)
	eval := mock.Eval(mock.Job())
	b.Enqueue(eval)
	e, token := dequeue(t, b)
	if err := b.Ack(e.ID, "wrong"); !errors.Is(err, ErrTokenMismatch) {
		t.Fatalf("ack with a wrong token: %v", err)
	}
	if err := b.Outstanding(e.ID, token); err != nil {
		t.Fatal(err)
	}
	if err := b.Nack(e.ID, token); err != nil {
		t.Fatal(err)
	}
	// Redelivered after the nack delay, with a new token.
	e2, token2, err := b.Dequeue(schedulerTypes, 3*time.Second, nil)
	if err != nil || e2 == nil || e2.ID != eval.ID || token2 == token {
		t.Fatalf("redelivery: %v %v", e2, err)
	}
	if err := b.Outstanding(e.ID, token); !errors.Is(err, ErrTokenMismatch) {
		t.Fatalf("old token still accepted: %v", err)
	}
	// Second nack reaches the delivery limit (2): it goes to the failed
	// queue instead of back to the scheduler.
	if err := b.Nack(e2.ID, token2); err != nil {
		t.Fatal(err)
	}
	failed, _, err := b.Dequeue([]string{FailedQueue}, time.Second, nil)
	if err != nil || failed == nil || failed.ID != eval.ID {
		t.Fatalf("eval over its delivery limit not in the failed queue: %v %v", failed, err)
	}
}

func TestEvalBroker_NackTimeoutRedelivers(t *testing.T) {
	b := NewEvalBroker(50*time.Millisecond, 3)
	b.SetEnabled(true)
	defer b.SetEnabled(false)
	eval := mock.Eval(mock.Job())
	b.Enqueue(eval)
	_, token := dequeue(t, b)
	// The worker goes quiet: the nack timer fires and the eval comes back.
	e, token2, err := b.Dequeue(schedulerTypes, 3*time.Second, nil)
	if err != nil || e == nil || e.ID != eval.ID || token2 == token {
		t.Fatalf("eval not redelivered after the nack timeout: %v %v", e, err)
	}
}

func TestEvalBroker_HeldEvalsHandedBackWhenTheirServerIsGone(t *testing.T) {
	// The nack timeout is a minute: every redelivery below is the
	// holder's doing.
	b := NewEvalBroker(time.Minute, 3)
	b.SetEnabled(true)
	defer b.SetEnabled(false)
	for i := 0; i < 4; i++ {
		b.Enqueue(mock.Eval(mock.Job()))
	}
	e1, t1 := dequeue(t, b)
	e2, t2 := dequeue(t, b)
	e3, t3 := dequeue(t, b)
	if err := b.Hold(e1.ID, "wrong", "s2", "run-1"); !errors.Is(err, ErrTokenMismatch) {
		t.Fatalf("hold with a wrong token: %v", err)
	}
	if err := b.Hold("no-such-eval", t1, "s2", "run-1"); !errors.Is(err, ErrNotOutstanding) {
		t.Fatalf("hold of an unknown eval: %v", err)
	}
	for _, h := range []struct{ id, token, holder string }{{e1.ID, t1, "s2"}, {e2.ID, t2, "s3"}, {e3.ID, t3, "s3"}} {
		if err := b.Hold(h.id, h.token, h.holder, "run-1"); err != nil {
			t.Fatalf("hold %s by %s: %v", h.id, h.holder, err)
		}
	}
	// The same process calling again hands nothing back.
	if stale, err := b.Restarted("s2", "run-1"); err != nil || len(stale) != 0 {
		t.Fatalf("Restarted(s2, run-1) = %v, %v; want nothing", stale, err)
	}

	// s2 restarts: its first call comes from run-2, and e1, held by
	// run-1, is handed back at once.
	stale, err := b.Restarted("s2", "run-2")
	if err != nil || len(stale) != 1 || stale[0] != e1.ID {
		t.Fatalf("Restarted(s2, run-2) handed back %v (%v), want [%s]", stale, err, e1.ID)
	}
	e4, t4 := dequeue(t, b)
	if err := b.Hold(e4.ID, t4, "s2", "run-2"); err != nil {
		t.Fatal(err)
	}
	if err := b.Outstanding(e1.ID, t1); !errors.Is(err, ErrNotOutstanding) {
		t.Fatalf("the old run's delivery is still outstanding: %v", err)
	}
	if err := b.Outstanding(e4.ID, t4); err != nil {
		t.Fatalf("the new run's delivery: %v", err)
	}
	again, t1b, err := b.Dequeue(schedulerTypes, 3*time.Second, nil)
	if err != nil || again == nil || again.ID != e1.ID || t1b == t1 {
		t.Fatalf("e1 not redelivered after the restart: %v %v", again, err)
	}

	// Gossip reports s3 failed: both of its evaluations come back, and
	// nothing of s2's.
	held, err := b.NackHeldBy("s3")
	if err != nil || len(held) != 2 {
		t.Fatalf("NackHeldBy(s3) = %v, %v; want e2 and e3", held, err)
	}
	for _, h := range []struct{ id, token string }{{e2.ID, t2}, {e3.ID, t3}} {
		if err := b.Ack(h.id, h.token); !errors.Is(err, ErrNotOutstanding) {
			t.Fatalf("the failed server's ack of %s: %v", h.id, err)
		}
	}
	if err := b.Outstanding(e4.ID, t4); err != nil {
		t.Fatalf("s2's delivery was touched: %v", err)
	}
	if held, err := b.NackHeldBy(""); err != nil || len(held) != 0 {
		t.Fatalf("NackHeldBy(\"\") = %v, %v; the leader's own workers hold nothing by name", held, err)
	}
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		e, _, err := b.Dequeue(schedulerTypes, 3*time.Second, nil)
		if err != nil || e == nil {
			t.Fatalf("redelivery %d: %v %v", i, e, err)
		}
		got[e.ID] = true
	}
	if !got[e2.ID] || !got[e3.ID] {
		t.Fatalf("redelivered %v, want e2 and e3", got)
	}
}

func TestEvalBroker_DelayedEval(t *testing.T) {
	b := newTestBroker(t)
	eval := mock.Eval(mock.Job())
	eval.WaitUntil = time.Now().Add(150 * time.Millisecond).UnixNano()
	b.Enqueue(eval)
	if e, _, _ := b.Dequeue(schedulerTypes, 50*time.Millisecond, nil); e != nil {
		t.Fatal("delayed eval delivered before its time")
	}
	e, _, err := b.Dequeue(schedulerTypes, 2*time.Second, nil)
	if err != nil || e == nil || e.ID != eval.ID {
		t.Fatalf("delayed eval not delivered after its time: %v %v", e, err)
	}
}

func TestEvalBroker_DisabledDropsEverything(t *testing.T) {
	b := newTestBroker(t)
	b.Enqueue(mock.Eval(mock.Job()))
	b.SetEnabled(false)
	if _, _, err := b.Dequeue(schedulerTypes, 10*time.Millisecond, nil); !errors.Is(err, ErrBrokerDisabled) {
		t.Fatalf("dequeue on a disabled broker: %v", err)
	}
	b.SetEnabled(true)
	if s := b.Stats(); s.Ready != 0 {
		t.Fatalf("re-enabled broker kept evals: %s", s)
	}
	b.Enqueue(mock.Eval(mock.Job()))
	b.SetEnabled(false)
	b.Enqueue(mock.Eval(mock.Job()))
	if s := b.Stats(); s.Ready != 0 {
		t.Fatalf("disabled broker accepted an eval: %s", s)
	}
}
