package scheduler

import (
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

func TestRescheduleDelay_Functions(t *testing.T) {
	events := func(delays ...time.Duration) []*structs.RescheduleEvent {
		var out []*structs.RescheduleEvent
		for _, d := range delays {
			out = append(out, &structs.RescheduleEvent{Delay: d})
		}
		return out
	}
	s := time.Second
	cases := []struct {
		name   string
		policy structs.ReschedulePolicy
		prev   []time.Duration
		want   time.Duration
	}{
		{"constant first", structs.ReschedulePolicy{Delay: 5 * s, DelayFunction: "constant"}, nil, 5 * s},
		{"constant later", structs.ReschedulePolicy{Delay: 5 * s, DelayFunction: "constant"}, []time.Duration{5 * s, 5 * s}, 5 * s},
		{"exponential first", structs.ReschedulePolicy{Delay: 5 * s, DelayFunction: "exponential"}, nil, 5 * s},
		{"exponential doubles", structs.ReschedulePolicy{Delay: 5 * s, DelayFunction: "exponential"}, []time.Duration{5 * s, 10 * s}, 20 * s},
		{"exponential capped", structs.ReschedulePolicy{Delay: 5 * s, DelayFunction: "exponential", MaxDelay: 30 * s}, []time.Duration{20 * s}, 30 * s},
		{"fibonacci second", structs.ReschedulePolicy{Delay: 5 * s, DelayFunction: "fibonacci"}, []time.Duration{5 * s}, 5 * s},
		{"fibonacci sums the last two", structs.ReschedulePolicy{Delay: 5 * s, DelayFunction: "fibonacci"}, []time.Duration{5 * s, 5 * s, 10 * s}, 15 * s},
		{"fibonacci capped", structs.ReschedulePolicy{Delay: 5 * s, DelayFunction: "fibonacci", MaxDelay: 20 * s}, []time.Duration{10 * s, 15 * s}, 20 * s},
		{"zero delay", structs.ReschedulePolicy{DelayFunction: "exponential"}, []time.Duration{0, 0}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := rescheduleDelay(&tc.policy, events(tc.prev...)); got != tc.want {
				t.Fatalf("delay %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDecideReschedule_AttemptsWithinInterval(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	policy := &structs.ReschedulePolicy{Attempts: 2, Interval: time.Hour, DelayFunction: "constant"}
	failed := func(eventTimes ...time.Time) *structs.Allocation {
		a := &structs.Allocation{ClientStatus: structs.AllocClientStatusFailed, ModifyTime: now.UnixNano()}
		if len(eventTimes) > 0 {
			a.RescheduleTracker = &structs.RescheduleTracker{}
			for _, at := range eventTimes {
				a.RescheduleTracker.Events = append(a.RescheduleTracker.Events, &structs.RescheduleEvent{RescheduleTime: at.UnixNano()})
			}
		}
		return a
	}
	if d, _, _ := decideReschedule(failed(now.Add(-time.Minute)), policy, now); d != rescheduleNow {
		t.Fatalf("one attempt used of two: decision %d", d)
	}
	if d, _, _ := decideReschedule(failed(now.Add(-2*time.Minute), now.Add(-time.Minute)), policy, now); d != rescheduleNever {
		t.Fatalf("two attempts used within the hour: decision %d", d)
	}
	if d, _, _ := decideReschedule(failed(now.Add(-2*time.Hour), now.Add(-time.Minute)), policy, now); d != rescheduleNow {
		t.Fatalf("an attempt outside the interval does not count: decision %d", d)
	}
	if d, _, _ := decideReschedule(failed(), &structs.ReschedulePolicy{}, now); d != rescheduleNever {
		t.Fatalf("no attempts: decision %d", d)
	}
	if d, _, _ := decideReschedule(failed(), nil, now); d != rescheduleNever {
		t.Fatalf("no policy: decision %d", d)
	}
}

// TestReschedule_FollowUpEvalsWaitForTheDelay fails a service allocation
// over and over and checks each follow-up evaluation's WaitUntil, and
// the delay recorded on each replacement.
func TestReschedule_FollowUpEvalsWaitForTheDelay(t *testing.T) {
	s := time.Second
	cases := []struct {
		function string
		want     []time.Duration
	}{
		{structs.DelayFunctionConstant, []time.Duration{5 * s, 5 * s, 5 * s, 5 * s, 5 * s, 5 * s}},
		{structs.DelayFunctionExponential, []time.Duration{5 * s, 10 * s, 20 * s, 40 * s, 40 * s, 40 * s}},
		{structs.DelayFunctionFibonacci, []time.Duration{5 * s, 5 * s, 10 * s, 15 * s, 25 * s, 40 * s}},
	}
	for _, tc := range cases {
		t.Run(tc.function, func(t *testing.T) {
			h := NewHarness(t)
			job := smallJob(1)
			job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{
				Unlimited: true, Delay: 5 * s, DelayFunction: tc.function, MaxDelay: 40 * s,
			}
			h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
			current := h.live(job.ID)[0]
			for i, want := range tc.want {
				// It runs a while, then fails.
				h.Now = h.Now.Add(time.Minute)
				h.setFailed(current)
				failedAt := h.Now
				follows := len(h.CreateEvals)
				h.Process(reeval(t, h, job.ID))
				if len(h.CreateEvals) != follows+1 {
					t.Fatalf("failure %d: %d follow-ups created, want 1", i, len(h.CreateEvals)-follows)
				}
				follow := h.CreateEvals[follows]
				if follow.WaitUntil != failedAt.Add(want).UnixNano() || follow.TriggeredBy != structs.EvalTriggerRescheduling {
					t.Fatalf("failure %d: follow-up waits %s (%s), want %s",
						i, time.Duration(follow.WaitUntil-failedAt.UnixNano()), follow.TriggeredBy, want)
				}
				if got := h.alloc(current.ID).FollowupEvalID; got != follow.ID {
					t.Fatalf("failure %d: failed alloc's follow-up %q, want %q", i, got, follow.ID)
				}
				if n := len(newAllocs(h.LastPlan())); n != 0 {
					t.Fatalf("failure %d: replaced before the delay", i)
				}

				h.Now = time.Unix(0, follow.WaitUntil)
				h.Process(follow)
				next := byPrevious(h.LastPlan())[current.ID]
				if next == nil {
					t.Fatalf("failure %d: follow-up did not replace the alloc", i)
				}
				ev := next.RescheduleTracker.Events
				if len(ev) != i+1 || ev[i].Delay != want || ev[i].PrevAllocID != current.ID || ev[i].PrevNodeID != current.NodeID {
					t.Fatalf("failure %d: tracker %+v", i, ev[len(ev)-1])
				}
				current = next
			}
		})
	}
}

func TestReschedule_ZeroDelayReplacesAtOnce(t *testing.T) {
	h := NewHarness(t)
	job := smallJob(2)
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Attempts: 1, Interval: time.Hour, DelayFunction: "constant"}
	h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
	failed := h.live(job.ID)[0]
	h.setFailed(failed)
	h.Process(reeval(t, h, job.ID))
	if len(h.CreateEvals) != 0 {
		t.Fatalf("a zero delay created follow-ups %+v", h.CreateEvals)
	}
	r := byPrevious(h.LastPlan())[failed.ID]
	if r == nil || r.Name != failed.Name {
		t.Fatalf("not replaced at once: %+v", Placed(h.LastPlan()))
	}
	if s := stopsByID(h.LastPlan())[failed.ID]; s == nil || s.DesiredDescription != descRescheduled {
		t.Fatalf("failed alloc stop %+v", s)
	}
	// Its one attempt is used: the replacement failing stays failed.
	h.setFailed(r)
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("rescheduled past the policy's attempts")
	}
	if e := h.LastEval(); e.Status != structs.EvalStatusComplete || len(e.FailedTGAllocs) != 0 {
		t.Fatalf("eval %s failures %v", e.Status, e.FailedTGAllocs)
	}
}

func TestReschedule_PreviousNodePenalized(t *testing.T) {
	h := NewHarness(t)
	busy, idle := namedNode("busy"), namedNode("idle")
	h.addNodes(busy)
	h.loadNode(busy, 2000, 4096) // bin-packing prefers busy
	h.addNodes(idle)
	job := smallJob(1)
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Unlimited: true, DelayFunction: "constant"}
	h.Process(register(t, h, job))
	first := h.live(job.ID)[0]
	if first.NodeID != busy.ID {
		t.Fatalf("first placement on %s, want busy", first.NodeName)
	}
	h.setFailed(first)
	h.Process(reeval(t, h, job.ID))
	r := byPrevious(h.LastPlan())[first.ID]
	if r == nil || r.NodeID != idle.ID {
		t.Fatalf("replacement %+v, want it moved off the node it failed on", r)
	}
	if s, ok := scoreOf(r.Metrics, busy.ID, "node-reschedule-penalty"); !ok || s != -1 {
		t.Fatalf("busy node's reschedule penalty %f (recorded %t), want -1", s, ok)
	}
	if _, ok := scoreOf(r.Metrics, idle.ID, "node-reschedule-penalty"); ok {
		t.Fatalf("penalty recorded on a node the alloc never failed on")
	}

	// Every node it failed on is penalized: fail it on idle too.
	h.setFailed(r)
	h.Process(reeval(t, h, job.ID))
	r2 := byPrevious(h.LastPlan())[r.ID]
	if r2 == nil {
		t.Fatalf("second reschedule missing")
	}
	for _, id := range []string{busy.ID, idle.ID} {
		if s, ok := scoreOf(r2.Metrics, id, "node-reschedule-penalty"); !ok || s != -1 {
			t.Fatalf("node %s: penalty %f (recorded %t), want -1 on both previous nodes", id, s, ok)
		}
	}
}

func TestReschedule_PenaltyIsNotAFilter(t *testing.T) {
	h := NewHarness(t)
	only := namedNode("only")
	job := smallJob(1)
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Unlimited: true, DelayFunction: "constant"}
	h.Process(register(t, h, job, only))
	first := h.live(job.ID)[0]
	h.setFailed(first)
	h.Process(reeval(t, h, job.ID))
	if r := byPrevious(h.LastPlan())[first.ID]; r == nil || r.NodeID != only.ID {
		t.Fatalf("with one node the replacement must still go there: %+v", r)
	}
}

func TestReschedule_NoRoomKeepsTrackerForLater(t *testing.T) {
	h := NewHarness(t)
	n1 := namedNode("n1", withResources(500, 8192))
	job := smallJob(1)
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Attempts: 1, Interval: time.Hour, DelayFunction: "constant"}
	h.Process(register(t, h, job, n1))
	first := h.live(job.ID)[0]
	h.setFailed(first)
	// Another job takes the room meanwhile.
	h.loadNode(n1, 400, 256)
	h.Process(reeval(t, h, job.ID))
	e := h.LastEval()
	if e.FailedTGAllocs["web"] == nil || e.BlockedEval == "" {
		t.Fatalf("the reschedule should fail for lack of room: %+v", e)
	}
	if got := h.alloc(first.ID); got.DesiredStatus != structs.AllocDesiredStatusRun {
		t.Fatalf("failed alloc stopped although its replacement was not placed: %s", got.DesiredStatus)
	}

	// Room again: the replacement is a reschedule, counted against the
	// policy, not a fresh placement.
	h.addNodes(namedNode("n2"))
	blocked, _ := h.State.EvalByID(nil, e.BlockedEval)
	h.Process(blocked)
	r := byPrevious(h.LastPlan())[first.ID]
	if r == nil || r.RescheduleTracker == nil || len(r.RescheduleTracker.Events) != 1 {
		t.Fatalf("replacement %+v, want a reschedule with one tracked event", r)
	}
	h.setFailed(r)
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("rescheduled beyond the policy's single attempt")
	}
}
