package scheduler

import (
	"time"

	"github.com/droverhq/drover/structs"
)

// rescheduleDecision says what to do with a failed allocation.
type rescheduleDecision int

const (
	// rescheduleNever: the policy's attempts are used up; the failed
	// allocation stays as it is.
	rescheduleNever rescheduleDecision = iota
	// rescheduleNow: replace it in this evaluation.
	rescheduleNow
	// rescheduleLater: replace it after its delay, through a follow-up
	// evaluation that waits until then.
	rescheduleLater
)

// decideReschedule applies a reschedule policy to a failed allocation.
// The delay counts from the failure (Allocation.FailedAt), so the
// decision depends only on the allocation and now, not on when the
// scheduler happens to run.
func decideReschedule(alloc *structs.Allocation, policy *structs.ReschedulePolicy, now time.Time) (rescheduleDecision, time.Time, time.Duration) {
	if policy == nil {
		return rescheduleNever, time.Time{}, 0
	}
	var events []*structs.RescheduleEvent
	if alloc.RescheduleTracker != nil {
		events = alloc.RescheduleTracker.Events
	}
	if !policy.Unlimited {
		if policy.Attempts == 0 {
			return rescheduleNever, time.Time{}, 0
		}
		windowStart := now.Add(-policy.Interval).UnixNano()
		recent := 0
		for _, e := range events {
			if e.RescheduleTime >= windowStart {
				recent++
			}
		}
		if recent >= policy.Attempts {
			return rescheduleNever, time.Time{}, 0
		}
	}
	delay := rescheduleDelay(policy, events)
	at := alloc.FailedAt().Add(delay)
	if !at.After(now) {
		return rescheduleNow, at, delay
	}
	return rescheduleLater, at, delay
}

// rescheduleDelay computes the delay before the next reschedule from the
// policy's delay function and the previous reschedules' delays.
func rescheduleDelay(policy *structs.ReschedulePolicy, events []*structs.RescheduleEvent) time.Duration {
	base := policy.Delay
	if len(events) == 0 || base == 0 {
		return base
	}
	var d time.Duration
	switch policy.DelayFunction {
	case structs.DelayFunctionExponential:
		d = events[len(events)-1].Delay * 2
	case structs.DelayFunctionFibonacci:
		if len(events) >= 2 {
			d = events[len(events)-1].Delay + events[len(events)-2].Delay
		} else {
			d = events[len(events)-1].Delay
		}
	default:
		d = base
	}
	if d < base {
		d = base
	}
	if policy.MaxDelay > 0 && d > policy.MaxDelay {
		d = policy.MaxDelay
	}
	return d
}
