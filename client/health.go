package client

import (
	"sync"
	"time"

	"github.com/droverhq/drover/structs"
)

// healthWatch decides the health of an allocation placed by a
// deployment, by its tasks' states ("task_states"): healthy once every
// task has run without a restart for the group's min_healthy_time;
// unhealthy if a task fails, or when healthy_deadline passes first.
// When the group has service checks (and update.health_check is not
// "task_states"), every check must also have been passing, without a
// break, for min_healthy_time. The decision is reported once, with the
// allocation's status, and the server's deployment watcher acts on it.
//
// It has no goroutine: the alloc runner calls check on every task state
// and check status change, and two timers call it when
// min_healthy_time may have passed and at the deadline. (It used to
// poll every 100 ms per allocation, which a node with hundreds of
// allocations in a deployment paid for continuously.)
type healthWatch struct {
	ar           *allocRunner
	deploymentID string
	minHealthy   time.Duration
	// useChecks: the checks count, not only the task states.
	useChecks bool

	// mu guards the fields below.
	mu      sync.Mutex
	decided bool
	// recheck fires when the running tasks will have run for
	// min_healthy_time; deadline fires at healthy_deadline.
	recheck, deadline *time.Timer
}

// newHealthWatch returns the watch for alloc, or nil when its health is
// not for this client to decide (no deployment, no update strategy, or
// already decided). The caller holds ar.mu.
func newHealthWatch(ar *allocRunner, alloc *structs.Allocation) *healthWatch {
	if alloc.DeploymentID == "" || (alloc.DeploymentStatus != nil && alloc.DeploymentStatus.Healthy != nil) {
		return nil
	}
	tg := alloc.Job.LookupTaskGroup(alloc.TaskGroup)
	if tg == nil || tg.Update == nil {
		return nil
	}
	h := &healthWatch{ar: ar, deploymentID: alloc.DeploymentID, minHealthy: tg.Update.MinHealthyTime}
	// ar.checked is empty when the client runs no checks (a simulated
	// node): then task states are all there is to judge.
	h.useChecks = tg.Update.HealthCheck != structs.UpdateHealthCheckTaskStates && len(ar.checked) > 0
	h.deadline = time.AfterFunc(max(tg.Update.HealthyDeadline, 0), h.expire)
	return h
}

// stop ends the watch without a decision. Safe on nil.
func (h *healthWatch) stop() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopLocked()
}

func (h *healthWatch) stopLocked() {
	h.decided = true
	if h.recheck != nil {
		h.recheck.Stop()
	}
	h.deadline.Stop()
}

// current reports whether the watch still applies: the client runs, the
// allocation is still to run in the same deployment.
func (h *healthWatch) current() bool {
	select {
	case <-h.ar.client.shutdownCh:
		return false
	default:
	}
	h.ar.mu.Lock()
	defer h.ar.mu.Unlock()
	a := h.ar.alloc
	return h.ar.health == h && a.DeploymentID == h.deploymentID && !a.ServerTerminalStatus()
}

// healthView is what health is judged on: the task states, and since
// when every check has passed (zero while one does not, or before the
// checks ran).
type healthView struct {
	states      map[string]*structs.TaskState
	checksSince time.Time
}

// check judges the view at the time of the call. Safe on nil. Called by
// the alloc runner without its locks held.
func (h *healthWatch) check(v healthView) {
	if h == nil {
		return
	}
	if !h.current() {
		h.stop()
		return
	}
	now := time.Now()
	healthy, decided := h.judge(v, now)
	finished := false
	select {
	case <-h.ar.doneCh:
		finished = true
	default:
	}
	h.mu.Lock()
	if h.decided {
		h.mu.Unlock()
		return
	}
	switch {
	case decided:
		h.stopLocked()
	case finished:
		// Every task returned without a decision (stopped while
		// starting): nothing will change any more.
		h.stopLocked()
		h.mu.Unlock()
		return
	default:
		if at, ok := h.healthyAt(v); ok {
			if h.recheck != nil {
				h.recheck.Stop()
			}
			h.recheck = time.AfterFunc(at.Sub(now), h.checkNow)
		}
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	h.ar.setHealth(h.deploymentID, healthy)
}

// checkNow is the recheck timer's: judge the current view.
func (h *healthWatch) checkNow() {
	h.check(h.ar.healthView())
}

// expire is the deadline timer's: unhealthy unless decided (a decision
// reached at the last moment is reported as it is).
func (h *healthWatch) expire() {
	if !h.current() {
		h.stop()
		return
	}
	healthy, decided := h.judge(h.ar.healthView(), time.Now())
	h.mu.Lock()
	was := h.decided
	h.stopLocked()
	h.mu.Unlock()
	if !was {
		h.ar.setHealth(h.deploymentID, decided && healthy)
	}
}

// judge applies the watch's rule at now: task states, then checks.
// Checks that do not pass never decide "unhealthy" on their own: the
// deadline does.
func (h *healthWatch) judge(v healthView, now time.Time) (healthy, decided bool) {
	healthy, decided = judgeHealth(v.states, h.minHealthy, now)
	if !h.useChecks || !healthy {
		return healthy, decided
	}
	if v.checksSince.IsZero() || now.Sub(v.checksSince) < h.minHealthy {
		return false, false
	}
	return true, true
}

// healthyAt returns when the view will satisfy the rule if nothing
// changes meanwhile, if it can.
func (h *healthWatch) healthyAt(v healthView) (time.Time, bool) {
	at, ok := healthyAt(v.states, h.minHealthy)
	if !ok || !h.useChecks {
		return at, ok
	}
	if v.checksSince.IsZero() {
		return time.Time{}, false
	}
	if t := v.checksSince.Add(h.minHealthy); t.After(at) {
		at = t
	}
	return at, true
}

// judgeHealth applies the task_states rule at now.
func judgeHealth(states map[string]*structs.TaskState, minHealthy time.Duration, now time.Time) (healthy, decided bool) {
	if len(states) == 0 {
		return false, false
	}
	for _, ts := range states {
		if ts.State == structs.TaskStateDead && ts.Failed {
			return false, true
		}
	}
	for _, ts := range states {
		if ts.State != structs.TaskStateRunning {
			return false, false
		}
		since := runningSince(ts)
		if since.IsZero() || now.Sub(since) < minHealthy {
			return false, false
		}
	}
	return true, true
}

// runningSince is when a running task last (re)started.
func runningSince(ts *structs.TaskState) time.Time {
	since := ts.StartedAt
	if ts.LastRestart.After(since) {
		since = ts.LastRestart
	}
	return since
}

// healthyAt returns when every task will have run for minHealthy, if
// every task runs now.
func healthyAt(states map[string]*structs.TaskState, minHealthy time.Duration) (time.Time, bool) {
	var at time.Time
	for _, ts := range states {
		since := runningSince(ts)
		if ts.State != structs.TaskStateRunning || since.IsZero() {
			return time.Time{}, false
		}
		if t := since.Add(minHealthy); t.After(at) {
			at = t
		}
	}
	return at, len(states) > 0
}

// setHealth records the decision and reports it.
func (ar *allocRunner) setHealth(deploymentID string, healthy bool) {
	ar.mu.Lock()
	if ar.alloc.DeploymentID != deploymentID {
		ar.mu.Unlock()
		return
	}
	a := ar.alloc.Copy()
	canary := a.DeploymentStatus.IsCanary()
	a.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: &healthy, Timestamp: time.Now().UnixNano(), Canary: canary}
	ar.alloc = a
	ar.mu.Unlock()
	if err := ar.client.db.PutAlloc(a); err != nil {
		ar.log.Error("failed to persist allocation health", "error", err)
	}
	ar.log.Info("allocation health decided", "healthy", healthy, "deployment_id", deploymentID)
	ar.taskChanged()
}
