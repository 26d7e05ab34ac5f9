package client

import (
	"time"

	"github.com/droverhq/drover/structs"
)

// healthPollInterval is how often an allocation's health is judged.
const healthPollInterval = 100 * time.Millisecond

// watchHealth decides the health of an allocation placed by a
// deployment, by its tasks' states ("task_states"): healthy once every
// task has run without a restart for the group's min_healthy_time;
// unhealthy if a task fails, or when healthy_deadline passes first. The
// decision is reported once, with the allocation's status, and the
// server's deployment watcher acts on it.
func (ar *allocRunner) watchHealth() {
	ar.mu.Lock()
	alloc := ar.alloc
	ar.mu.Unlock()
	if alloc.DeploymentID == "" || (alloc.DeploymentStatus != nil && alloc.DeploymentStatus.Healthy != nil) {
		return
	}
	tg := alloc.Job.LookupTaskGroup(alloc.TaskGroup)
	if tg == nil || tg.Update == nil {
		return
	}
	minHealthy, deadline := tg.Update.MinHealthyTime, time.Now().Add(tg.Update.HealthyDeadline)
	deploymentID := alloc.DeploymentID
	ticker := time.NewTicker(healthPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ar.doneCh:
			// The allocation finished: a task that failed before the
			// next poll still makes it unhealthy.
			if healthy, decided := judgeHealth(ar.Alloc().TaskStates, minHealthy, time.Now()); decided && !healthy {
				ar.setHealth(deploymentID, false)
			}
			return
		case <-ar.client.shutdownCh:
			return
		case <-ticker.C:
		}
		ar.mu.Lock()
		current := ar.alloc
		ar.mu.Unlock()
		if current.DeploymentID != deploymentID || current.ServerTerminalStatus() {
			return
		}
		a := ar.Alloc()
		healthy, decided := judgeHealth(a.TaskStates, minHealthy, time.Now())
		if !decided && time.Now().After(deadline) {
			healthy, decided = false, true
		}
		if decided {
			ar.setHealth(deploymentID, healthy)
			return
		}
	}
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
		since := ts.StartedAt
		if ts.LastRestart.After(since) {
			since = ts.LastRestart
		}
		if since.IsZero() || now.Sub(since) < minHealthy {
			return false, false
		}
	}
	return true, true
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
	if err := ar.client.db.putAlloc(a); err != nil {
		ar.logger.Error("failed to persist allocation health", "error", err)
	}
	ar.logger.Info("allocation health decided", "healthy", healthy, "deployment_id", deploymentID)
	ar.taskChanged()
}
