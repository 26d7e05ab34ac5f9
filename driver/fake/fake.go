package fake

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// Config configures a Driver.
type Config struct {
	// Name is the driver name tasks ask for ("containerd" by default,
	// so that ordinary job files place on simulated nodes).
	Name string
	// StartDelay is how long StartTask takes: the task is pending in the
	// client meanwhile.
	StartDelay time.Duration
	// RunFor returns how long a task runs before it exits 0 on its own;
	// 0 (or a nil RunFor) means until it is stopped. It is called once
	// per start, on the task runner's goroutine.
	RunFor func(cfg *driver.TaskConfig) time.Duration
}

// Driver is the fake driver. Use New.
type Driver struct {
	name       string
	startDelay time.Duration
	runFor     func(*driver.TaskConfig) time.Duration

	// mu guards tasks and nextPID, and every task's fields.
	mu      sync.Mutex
	tasks   map[string]*task
	nextPID int
}

// task is one fake task. Its fields are guarded by Driver.mu.
type task struct {
	id      string
	pid     int
	started time.Time
	// result is set when the task exited; exitedAt with it.
	result   *driver.ExitResult
	exitedAt time.Time
	// timer ends a task with a run time.
	timer *time.Timer
	// waiters are the open WaitTask channels (buffered, one result each).
	waiters map[*waiter]struct{}
	// signals counts the signals SignalTask delivered.
	signals int
}

type waiter struct {
	ch chan *driver.ExitResult
	// stop unregisters the context callback once the wait is answered.
	stop func() bool
}

// New returns a driver without tasks.
func New(cfg Config) *Driver {
	if cfg.Name == "" {
		cfg.Name = "containerd"
	}
	return &Driver{name: cfg.Name, startDelay: cfg.StartDelay, runFor: cfg.RunFor, tasks: make(map[string]*task), nextPID: 1000}
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return d.name }

// Fingerprint implements driver.Driver: always detected and healthy.
func (d *Driver) Fingerprint(context.Context) *structs.DriverInfo {
	return &structs.DriverInfo{
		Detected: true, Healthy: true, HealthDescription: "simulated",
		Attributes: map[string]string{"driver." + d.name: "1"},
	}
}

// StartTask implements driver.Driver. It waits StartDelay (or until ctx
// ends), then records the task as running.
func (d *Driver) StartTask(ctx context.Context, cfg *driver.TaskConfig) (*driver.TaskHandle, error) {
	if d.startDelay > 0 {
		t := time.NewTimer(d.startDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("start task %s: %w", cfg.ID, ctx.Err())
		}
	}
	var runFor time.Duration
	if d.runFor != nil {
		runFor = d.runFor(cfg)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, exists := d.tasks[cfg.ID]; exists && t.result == nil {
		return nil, fmt.Errorf("start task %s: a task with this ID is running", cfg.ID)
	}
	d.nextPID++
	t := &task{id: cfg.ID, pid: d.nextPID, started: time.Now()}
	d.tasks[cfg.ID] = t
	if runFor > 0 {
		t.timer = time.AfterFunc(runFor, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.tasks[t.id] == t {
				d.exitLocked(t, &driver.ExitResult{ExitCode: 0})
			}
		})
	}
	// No Config in the handle: nothing reads it back from a fake task,
	// and holding it would keep every task's environment alive.
	return &driver.TaskHandle{Driver: d.name, ID: cfg.ID, PID: t.pid, StartedAt: t.started}, nil
}

// exitLocked records the task's exit and answers its waiters.
func (d *Driver) exitLocked(t *task, r *driver.ExitResult) {
	if t.result != nil {
		return
	}
	t.result, t.exitedAt = r, time.Now()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	for w := range t.waiters {
		w.stop()
		w.ch <- r
		close(w.ch)
	}
	t.waiters = nil
}

// taskLocked returns the task id, or ErrTaskNotFound wrapped with what
// was asked (op).
func (d *Driver) taskLocked(op, id string) (*task, error) {
	if t, ok := d.tasks[id]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%s task %s: %w", op, id, driver.ErrTaskNotFound)
}

// RecoverTask implements driver.Driver: a task this driver still holds
// can be re-attached to.
func (d *Driver) RecoverTask(_ context.Context, h *driver.TaskHandle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.taskLocked("recover", h.ID)
	return err
}

// WaitTask implements driver.Driver. No goroutine waits: the channel is
// answered when the task exits, or closed without a result when ctx
// ends first.
func (d *Driver) WaitTask(ctx context.Context, id string) (<-chan *driver.ExitResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.taskLocked("wait for", id)
	if err != nil {
		return nil, err
	}
	ch := make(chan *driver.ExitResult, 1)
	if t.result != nil {
		ch <- t.result
		close(ch)
		return ch, nil
	}
	w := &waiter{ch: ch}
	if t.waiters == nil {
		t.waiters = make(map[*waiter]struct{}, 1)
	}
	t.waiters[w] = struct{}{}
	// Registered under d.mu: the callback takes d.mu, so it cannot run
	// before w.stop is set.
	w.stop = context.AfterFunc(ctx, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, open := t.waiters[w]; open {
			delete(t.waiters, w)
			close(ch)
		}
	})
	return ch, nil
}

// SignalTask implements driver.Driver: a running task takes any signal
// and keeps running.
func (d *Driver) SignalTask(_ context.Context, id string, _ syscall.Signal) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.taskLocked("signal", id)
	if err != nil {
		return err
	}
	if t.result != nil {
		return fmt.Errorf("signal task %s: it exited", id)
	}
	t.signals++
	return nil
}

// Signals returns how many signals a task took.
func (d *Driver) Signals(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.tasks[id]; ok {
		return t.signals
	}
	return 0
}

// StopTask implements driver.Driver: the task exits at once, as if it
// honoured SIGTERM.
func (d *Driver) StopTask(_ context.Context, id string, _ time.Duration, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.tasks[id]; ok {
		d.exitLocked(t, &driver.ExitResult{ExitCode: 143, Signal: 15})
	}
	return nil
}

// DestroyTask implements driver.Driver.
func (d *Driver) DestroyTask(_ context.Context, id string, force bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tasks[id]
	if !ok {
		return nil
	}
	if t.result == nil {
		if !force {
			return fmt.Errorf("destroy task %s: it is running; stop it first or force", id)
		}
		d.exitLocked(t, &driver.ExitResult{ExitCode: 137, Signal: 9})
	}
	delete(d.tasks, id)
	return nil
}

// InspectTask implements driver.Driver.
func (d *Driver) InspectTask(_ context.Context, id string) (*driver.TaskStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.taskLocked("inspect", id)
	if err != nil {
		return nil, err
	}
	st := &driver.TaskStatus{ID: id, PID: t.pid, State: driver.TaskStateRunning, StartedAt: t.started}
	if t.result != nil {
		st.State, st.ExitCode, st.ExitedAt = driver.TaskStateExited, t.result.ExitCode, t.exitedAt
	}
	return st, nil
}

// Close implements driver.Driver. Tasks stay, as containers outlive a
// client.
func (d *Driver) Close() error { return nil }

// Tasks returns how many tasks the driver holds (running or exited and
// not yet destroyed).
func (d *Driver) Tasks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.tasks)
}
