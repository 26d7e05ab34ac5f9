package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/droverhq/drover/client/template"
	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// taskRunner runs one task of an allocation through its driver: start,
// wait, restart per policy, stop on request. Its state changes are
// persisted and reported to the alloc runner.
type taskRunner struct {
	allocID string
	// id is the task's ID in the driver: "<allocID>-<task>".
	id   string
	task *structs.Task
	// config builds the driver's TaskConfig for a start.
	config  func() *driver.TaskConfig
	drv     driver.Driver
	restart *restartTracker
	db      StateStore
	log     runnerLog
	// onChange is called (without locks held) after every state change.
	onChange func()

	// dirs are the task's directories; nil when the client keeps
	// nothing on disk.
	dirs *taskDirs
	// newTemplates builds the task's template manager from its config
	// (nil: the task has no templates, or no directories). templates is
	// the manager, once the task first starts or is re-attached to; only
	// the run goroutine touches it.
	newTemplates func(cfg *driver.TaskConfig) (*template.Manager, error)
	templates    *template.Manager
	// changeMu guards change, the template change waiting to be acted
	// on; changeCh is poked when one is added.
	changeMu sync.Mutex
	change   *template.Change
	changeCh chan struct{}

	// mu guards state and handle.
	mu     sync.Mutex
	state  *structs.TaskState
	handle *driver.TaskHandle

	// shutdownCh is the client's: when it closes the runner detaches,
	// leaving the task running for the next client process.
	shutdownCh <-chan struct{}

	// killCh is closed to stop the task; killOnce guards it.
	killCh   chan struct{}
	killOnce sync.Once
	// doneCh is closed when run returns.
	doneCh chan struct{}
}

// TaskState returns a copy of the task's state.
func (tr *taskRunner) TaskState() *structs.TaskState {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.state.Copy()
}

// setState applies fn to the state, persists it and notifies.
func (tr *taskRunner) setState(fn func(s *structs.TaskState)) {
	tr.mu.Lock()
	fn(tr.state)
	pt := &PersistedTask{Handle: tr.handle, State: tr.state.Copy()}
	tr.mu.Unlock()
	if err := tr.db.PutTask(tr.allocID, tr.task.Name, pt); err != nil {
		tr.log.Error("failed to persist task state", "error", err)
	}
	tr.onChange()
}

func (tr *taskRunner) event(typ, msg string, exit *driver.ExitResult) *structs.TaskEvent {
	e := &structs.TaskEvent{Type: typ, Time: time.Now().UnixNano(), Message: msg}
	if exit != nil {
		e.ExitCode, e.Signal = exit.ExitCode, exit.Signal
	}
	return e
}

// kill asks the task to stop; run returns once it has.
func (tr *taskRunner) kill() {
	tr.killOnce.Do(func() { close(tr.killCh) })
}

func (tr *taskRunner) detached() bool {
	select {
	case <-tr.shutdownCh:
		return true
	default:
		return false
	}
}

func (tr *taskRunner) killed() bool {
	select {
	case <-tr.killCh:
		return true
	default:
		return false
	}
}

// run is the task's life: re-attach or start, wait, restart or finish.
func (tr *taskRunner) run() {
	defer close(tr.doneCh)
	defer tr.stopTemplates()
	ctx := context.Background()

	tr.mu.Lock()
	restored := tr.handle
	dead := tr.state.State == structs.TaskStateDead
	tr.mu.Unlock()
	if dead {
		// Finished before a client restart: what it left is removed
		// (again: the restart may have come before the removal).
		tr.releaseDirs()
		return
	}

	if restored != nil {
		if err := tr.drv.RecoverTask(ctx, restored); err == nil {
			tr.log.Info("re-attached to running task", "pid", restored.PID)
			tr.setState(func(s *structs.TaskState) {
				s.State = structs.TaskStateRunning
				s.AddEvent(tr.event(structs.TaskEventReattached, fmt.Sprintf("re-attached to task (pid %d) after a client restart", restored.PID), nil))
			})
			tr.resume()
			if tr.waitAndDecide(ctx) {
				return
			}
		} else {
			tr.log.Warn("could not re-attach to task; starting it again", "error", err)
			tr.mu.Lock()
			tr.handle = nil
			tr.mu.Unlock()
			// Clear whatever remains of it (an exited container).
			_ = tr.drv.DestroyTask(ctx, tr.id, true)
		}
	}

	if !tr.killed() && !tr.detached() && !tr.prestart(ctx) {
		return
	}
	for !tr.killed() {
		if tr.detached() {
			return
		}
		// The files this start reads are current: a change noted
		// before it needs no action.
		tr.takeChange()
		handle, err := tr.drv.StartTask(ctx, tr.startConfig())
		if err != nil {
			tr.log.Error("failed to start task", "error", err)
			tr.setState(func(s *structs.TaskState) {
				s.AddEvent(tr.event(structs.TaskEventDriverError, err.Error(), nil))
			})
			_ = tr.drv.DestroyTask(ctx, tr.id, true)
			if tr.afterExit(false, true) {
				return
			}
			continue
		}
		tr.mu.Lock()
		tr.handle = handle
		tr.mu.Unlock()
		tr.setState(func(s *structs.TaskState) {
			s.State = structs.TaskStateRunning
			s.StartedAt = handle.StartedAt
			s.FinishedAt = time.Time{}
			s.AddEvent(tr.event(structs.TaskEventStarted, fmt.Sprintf("task started (pid %d)", handle.PID), nil))
		})
		if tr.waitAndDecide(ctx) {
			return
		}
	}
	if !tr.detached() {
		tr.finish(false)
	}
}

// waitAndDecide waits for the running task to exit (or be killed) and
// applies the restart policy. It returns true when the task is finished
// (or the runner detached), false when it is to be started again.
func (tr *taskRunner) waitAndDecide(ctx context.Context) bool {
	result, outcome := tr.waitExit(ctx)
	switch outcome {
	case waitDone:
		return true
	case waitRestart:
		return false
	}
	if tr.killed() {
		tr.destroy(ctx)
		tr.finish(false)
		return true
	}
	msg := fmt.Sprintf("exit code %d", result.ExitCode)
	if result.Signal != 0 {
		msg += fmt.Sprintf(", signal %d", result.Signal)
	}
	if result.OOMKilled {
		msg += ", killed by the kernel for exceeding its memory limit"
	}
	if result.Err != nil {
		msg = result.Err.Error()
	}
	tr.setState(func(s *structs.TaskState) {
		s.AddEvent(tr.event(structs.TaskEventTerminated, msg, result))
	})
	tr.destroy(ctx)
	return tr.afterExit(result.Successful(), false)
}

// Backoff while the driver cannot say how the task is doing (e.g.
// containerd restarting).
const (
	waitRetryMin = 250 * time.Millisecond
	waitRetryMax = 5 * time.Second
)

// How a wait for the task ended.
type waitOutcome int

const (
	// waitExited: the task exited (the result says how).
	waitExited waitOutcome = iota
	// waitDone: the runner must return at once: the task was killed
	// (and stopped) or the runner detached.
	waitDone
	// waitRestart: a template change stopped the task to start it
	// again.
	waitRestart
)

// waitExit waits until the task exits and returns how. Losing sight of
// the task is not an exit: if the driver's wait fails (containerd
// restarted, connection lost) it asks the driver whether the task still
// runs and waits again, so a healthy container is never replaced because
// the runtime blinked. Template changes are acted on meanwhile.
func (tr *taskRunner) waitExit(ctx context.Context) (*driver.ExitResult, waitOutcome) {
	backoff := waitRetryMin
	for {
		waitCtx, cancel := context.WithCancel(ctx)
		resultCh, err := tr.drv.WaitTask(waitCtx, tr.id)
		if err == nil {
			var r *driver.ExitResult
			var outcome waitOutcome
			r, outcome, err = tr.waitOn(ctx, resultCh)
			cancel()
			if err == nil {
				return r, outcome
			}
		} else {
			cancel()
		}
		// The wait failed: look at the task before concluding anything.
		st, ierr := tr.drv.InspectTask(ctx, tr.id)
		switch {
		case ierr == nil && st.State == driver.TaskStateExited:
			return &driver.ExitResult{ExitCode: st.ExitCode}, waitExited
		case errors.Is(ierr, driver.ErrTaskNotFound):
			return &driver.ExitResult{Err: fmt.Errorf("the task disappeared from the driver: %v", err)}, waitExited
		}
		tr.log.Warn("lost track of the task; checking again", "error", err, "inspect_error", ierr, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-tr.killCh:
			tr.stopTask(ctx)
			tr.finish(false)
			return nil, waitDone
		case <-tr.shutdownCh:
			return nil, waitDone
		}
		if backoff *= 2; backoff > waitRetryMax {
			backoff = waitRetryMax
		}
	}
}

// waitOn waits for the driver's wait to answer, acting on template
// changes meanwhile. err is set when the wait failed without an exit
// status.
func (tr *taskRunner) waitOn(ctx context.Context, resultCh <-chan *driver.ExitResult) (*driver.ExitResult, waitOutcome, error) {
	for {
		select {
		case r, ok := <-resultCh:
			switch {
			case ok && r.Err == nil:
				return r, waitExited, nil
			case ok:
				return nil, waitExited, r.Err
			}
			return nil, waitExited, errors.New("wait ended without an exit status")
		case <-tr.killCh:
			tr.stopTask(ctx)
			tr.finish(false)
			return nil, waitDone, nil
		case <-tr.shutdownCh:
			// Detach: the task keeps running; the next client re-attaches.
			return nil, waitDone, nil
		case <-tr.changeCh:
			if tr.applyChange(ctx) {
				return nil, waitRestart, nil
			}
		}
	}
}

// afterExit applies the restart policy; it returns true when the task is
// finished (or the runner detached).
func (tr *taskRunner) afterExit(success, startErr bool) bool {
	decision, delay := tr.restart.next(success, startErr)
	switch decision {
	case noRestart:
		tr.finish(false)
		return true
	case failTask:
		tr.setState(func(s *structs.TaskState) {
			s.AddEvent(tr.event(structs.TaskEventNotRestart, "restart attempts exhausted; the task failed", nil))
		})
		tr.finish(true)
		return true
	}
	tr.setState(func(s *structs.TaskState) {
		s.State = structs.TaskStatePending
		s.Restarts++
		s.LastRestart = time.Now()
		s.AddEvent(tr.event(structs.TaskEventRestarting, fmt.Sprintf("restarting in %s", delay), nil))
	})
	select {
	case <-time.After(delay):
		return false
	case <-tr.killCh:
		tr.finish(false)
		return true
	case <-tr.shutdownCh:
		return true
	}
}

// stopTask stops the running task (SIGTERM, then SIGKILL after the kill
// timeout) and removes its container.
func (tr *taskRunner) stopTask(ctx context.Context) {
	tr.setState(func(s *structs.TaskState) {
		s.AddEvent(tr.event(structs.TaskEventKilling, fmt.Sprintf("sent SIGTERM, SIGKILL after %s", tr.task.KillTimeout), nil))
	})
	if err := tr.drv.StopTask(ctx, tr.id, tr.task.KillTimeout, ""); err != nil {
		tr.log.Warn("failed to stop task", "error", err)
	}
	tr.destroy(ctx)
	tr.setState(func(s *structs.TaskState) {
		s.AddEvent(tr.event(structs.TaskEventKilled, "task killed", nil))
	})
}

// destroy removes the task's container; a restart creates a new one.
func (tr *taskRunner) destroy(ctx context.Context) {
	if err := tr.drv.DestroyTask(ctx, tr.id, true); err != nil {
		tr.log.Warn("failed to remove task", "error", err)
	}
	tr.mu.Lock()
	tr.handle = nil
	tr.mu.Unlock()
}

// finish marks the task dead; its templates stop and its secrets
// directory goes (the task no longer runs).
func (tr *taskRunner) finish(failed bool) {
	tr.setState(func(s *structs.TaskState) {
		s.State = structs.TaskStateDead
		s.Failed = failed
		s.FinishedAt = time.Now()
	})
	tr.stopTemplates()
	tr.releaseDirs()
}
