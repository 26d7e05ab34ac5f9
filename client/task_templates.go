package client

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/droverhq/drover/client/template"
	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// A task's directories and templates, from the task runner's side:
//
//   - before the first start, prestart creates the directories (the
//     secrets tmpfs) and renders every template; a template that waits
//     past its wait_missing, or fails, fails the task for good (no
//     restart: the same inputs would fail it again);
//   - a task re-attached after a client restart resumes its templates
//     against the files it has;
//   - a template change reaches the runner as a template.Change
//     (noteChange) while it waits for the task: restart stops the task
//     and starts it again at once, not counted by the restart policy;
//     signal sends the signals;
//   - when the task is done for good, the templates stop and the
//     secrets tmpfs is unmounted and removed.

// prestart prepares the first start. It returns false when the runner
// must return: the task failed (or was killed, and is finished) or the
// runner detached.
func (tr *taskRunner) prestart(ctx context.Context) bool {
	if tr.dirs != nil {
		if err := tr.dirs.prepare(); err != nil {
			tr.setupFailed(err)
			return false
		}
	}
	if tr.newTemplates == nil || tr.templates != nil {
		return true
	}
	m, err := tr.newTemplates(tr.config())
	if err != nil {
		tr.setupFailed(fmt.Errorf("templates: %w", err))
		return false
	}
	tr.templates = m
	pctx, cancel := tr.untilKilledOrDetached(ctx)
	defer cancel()
	err = m.Prestart(pctx)
	switch {
	case err == nil:
		return true
	case tr.detached():
		return false
	case tr.killed():
		tr.finish(false)
		return false
	}
	tr.setupFailed(err)
	return false
}

// resume takes over the directories and templates of a task that was
// re-attached to.
func (tr *taskRunner) resume() {
	if tr.dirs != nil {
		if err := tr.dirs.prepare(); err != nil {
			tr.log.Warn("task directories of a re-attached task", "error", err)
		}
	}
	if tr.newTemplates == nil || tr.templates != nil {
		return
	}
	m, err := tr.newTemplates(tr.config())
	if err != nil {
		tr.log.Error("templates of a re-attached task", "error", err)
		return
	}
	tr.templates = m
	m.Resume()
}

// setupFailed fails the task for good before it ran.
func (tr *taskRunner) setupFailed(err error) {
	tr.log.Error("task setup failed", "error", err)
	tr.setState(func(s *structs.TaskState) {
		s.AddEvent(tr.event(structs.TaskEventSetupFailure, err.Error(), nil))
	})
	tr.finish(true)
}

// untilKilledOrDetached returns a context cancelled when the task is
// killed or the runner detaches.
func (tr *taskRunner) untilKilledOrDetached(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-tr.killCh:
		case <-tr.shutdownCh:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// startConfig is the driver's config for a start: the task's, with the
// env templates' variables as last rendered.
func (tr *taskRunner) startConfig() *driver.TaskConfig {
	cfg := tr.config()
	if tr.templates != nil {
		if cfg.Env == nil {
			cfg.Env = map[string]string{}
		}
		for k, v := range tr.templates.Env() {
			cfg.Env[k] = v
		}
	}
	return cfg
}

// templateEvent is the templates' OnEvent: a task event.
func (tr *taskRunner) templateEvent(msg string) {
	tr.setState(func(s *structs.TaskState) {
		s.AddEvent(tr.event(structs.TaskEventTemplate, msg, nil))
	})
}

// noteChange is the templates' OnChange: it adds c to the pending
// change and wakes the runner.
func (tr *taskRunner) noteChange(c template.Change) {
	tr.changeMu.Lock()
	if tr.change == nil {
		tr.change = &template.Change{}
	}
	p := tr.change
	p.Restart = p.Restart || c.Restart
	p.Signals = union(p.Signals, c.Signals)
	p.Templates = union(p.Templates, c.Templates)
	tr.changeMu.Unlock()
	select {
	case tr.changeCh <- struct{}{}:
	default:
	}
}

// takeChange returns the pending change, if any, and clears it.
func (tr *taskRunner) takeChange() *template.Change {
	tr.changeMu.Lock()
	defer tr.changeMu.Unlock()
	c := tr.change
	tr.change = nil
	return c
}

// applyChange acts on the pending change while the task runs. It
// returns true when it stopped the task for a restart.
func (tr *taskRunner) applyChange(ctx context.Context) bool {
	c := tr.takeChange()
	if c == nil {
		return false
	}
	what := "template " + strings.Join(c.Templates, ", ") + " changed"
	if c.Restart {
		tr.log.Info("restarting the task: a template changed", "templates", c.Templates)
		tr.setState(func(s *structs.TaskState) {
			s.AddEvent(tr.event(structs.TaskEventRestartSignal, what+": restarting the task", nil))
		})
		if err := tr.drv.StopTask(ctx, tr.id, tr.task.KillTimeout, ""); err != nil {
			tr.log.Warn("failed to stop task for its restart", "error", err)
		}
		tr.destroy(ctx)
		tr.setState(func(s *structs.TaskState) {
			s.State = structs.TaskStatePending
			s.Restarts++
			s.LastRestart = time.Now()
			s.AddEvent(tr.event(structs.TaskEventRestarting, "restarting now for the template change (not counted by the restart policy)", nil))
		})
		return true
	}
	for _, name := range c.Signals {
		msg := what + ": sent " + name
		sig := unix.SignalNum(name)
		var err error
		if sig == 0 {
			err = fmt.Errorf("unknown signal %q", name)
		} else {
			err = tr.drv.SignalTask(ctx, tr.id, sig)
		}
		if err != nil {
			msg = fmt.Sprintf("%s: could not send %s: %v", what, name, err)
			tr.log.Warn("failed to signal the task for a template change", "signal", name, "error", err)
		}
		tr.setState(func(s *structs.TaskState) {
			s.AddEvent(tr.event(structs.TaskEventSignaling, msg, nil))
		})
	}
	return false
}

// stopTemplates ends the template watches (the runner returns: the task
// is done, or the client detaches and the next one resumes them).
func (tr *taskRunner) stopTemplates() {
	if tr.templates != nil {
		tr.templates.Stop()
	}
}

// releaseDirs unmounts and removes the secrets directory of a task that
// is done for good.
func (tr *taskRunner) releaseDirs() {
	if tr.dirs == nil {
		return
	}
	if err := tr.dirs.release(); err != nil {
		tr.log.Warn("failed to remove the task's secrets directory", "error", err)
	}
}

// union returns the sorted union of two string sets.
func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
