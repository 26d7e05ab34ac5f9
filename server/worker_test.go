package server

import (
	"testing"
	"time"

	"github.com/droverhq/drover/scheduler"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

type panickingScheduler struct{}

func (panickingScheduler) Process(*structs.Evaluation) error { panic("bug in a scheduler") }

func TestWorker_SchedulerPanicFailsTheEvalNotTheServer(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	w := newWorker(s, 0)
	w.newScheduler = func(string, scheduler.Config, scheduler.State, scheduler.Planner) (scheduler.Scheduler, error) {
		return panickingScheduler{}, nil
	}
	eval := mock.Eval(mock.Job())
	if err := w.schedule(eval); err == nil {
		t.Fatal("a panicking scheduler returned no error")
	}
	if !s.IsLeader() {
		t.Fatal("the server lost leadership")
	}
	// The same worker goes on with the real scheduler.
	w.newScheduler = scheduler.NewScheduler
	registerNode(t, s, mock.Node())
	resp := registerJob(t, s, mock.Job())
	ev, token, err := s.evalBroker.Dequeue(schedulerTypes, 5*time.Second, nil)
	if err != nil || ev == nil || ev.ID != resp.EvalID {
		t.Fatalf("dequeue: %v %v", ev, err)
	}
	w.process(ev, token, "", ev.ModifyIndex)
	if done := waitForEval(t, s, resp.EvalID); done.Status != structs.EvalStatusComplete {
		t.Fatalf("eval after a panic: %s", done.Status)
	}
}
