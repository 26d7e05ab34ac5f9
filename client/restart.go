package client

import (
	"time"

	"github.com/droverhq/drover/structs"
)

// restartDecision is what to do after a task exited.
type restartDecision int

const (
	// noRestart: the task is done (batch success, or stopped).
	noRestart restartDecision = iota
	// restartAfter: restart it after the returned delay.
	restartAfter
	// failTask: restart attempts are used up; the task failed.
	failTask
)

// restartTracker applies a group's restart policy to one task: at most
// Attempts restarts within Interval, each after Delay. When attempts run
// out, mode "fail" fails the task and mode "delay" waits for the
// interval to end before trying again.
type restartTracker struct {
	policy  *structs.RestartPolicy
	batch   bool
	now     func() time.Time
	start   time.Time
	count   int
	reasons []string
}

func newRestartTracker(policy *structs.RestartPolicy, jobType string) *restartTracker {
	if policy == nil {
		policy = structs.DefaultRestartPolicy(jobType)
	}
	return &restartTracker{policy: policy, batch: jobType == structs.JobTypeBatch, now: time.Now}
}

// next decides after an exit. success is whether the task exited 0;
// startErr whether it never started (driver failure).
func (r *restartTracker) next(success, startErr bool) (restartDecision, time.Duration) {
	if success && r.batch && !startErr {
		return noRestart, 0
	}
	now := r.now()
	if r.start.IsZero() || now.Sub(r.start) > r.policy.Interval {
		r.start = now
		r.count = 0
	}
	r.count++
	if r.count <= r.policy.Attempts {
		return restartAfter, r.policy.Delay
	}
	if r.policy.Mode == structs.RestartPolicyModeDelay {
		wait := r.start.Add(r.policy.Interval).Sub(now)
		if wait < r.policy.Delay {
			wait = r.policy.Delay
		}
		r.start = time.Time{}
		return restartAfter, wait
	}
	return failTask, 0
}
