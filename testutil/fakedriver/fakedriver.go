package fakedriver

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// Driver is the fake driver. Its zero value is not usable; call New.
type Driver struct {
	mu      sync.Mutex
	tasks   map[string]*fakeTask
	nextPID int
	starts  int
	recover int
	stops   int
	destroy int
	// failStart makes StartTask fail for these task names (FailStarts).
	failStart map[string]bool
	// waitErrs makes this many WaitTask calls end at once with an error,
	// as when containerd restarts under a waiting client (FailWaits).
	waitErrs int
	waits    int
	// execs counts ExecTask calls (exec.go).
	execs execCounts
}

type fakeTask struct {
	cfg    *driver.TaskConfig
	pid    int
	exit   chan struct{}
	result *driver.ExitResult
	// signals are the signals SignalTask sent, in order.
	signals []syscall.Signal
}

// New returns an empty fake driver.
func New() *Driver {
	return &Driver{tasks: make(map[string]*fakeTask), nextPID: 1000, failStart: map[string]bool{}}
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return "containerd" }

// Fingerprint implements driver.Driver.
func (d *Driver) Fingerprint(context.Context) *structs.DriverInfo {
	return &structs.DriverInfo{Detected: true, Healthy: true, Attributes: map[string]string{"driver.fake": "1"}}
}

// StartTask implements driver.Driver.
func (d *Driver) StartTask(_ context.Context, cfg *driver.TaskConfig) (*driver.TaskHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.starts++
	if d.failStart[cfg.TaskName] {
		return nil, fmt.Errorf("image %q not found", cfg.Image)
	}
	if _, exists := d.tasks[cfg.ID]; exists {
		return nil, fmt.Errorf("task %s already exists", cfg.ID)
	}
	d.nextPID++
	t := &fakeTask{cfg: cfg, pid: d.nextPID, exit: make(chan struct{})}
	d.tasks[cfg.ID] = t
	var code int
	if n, _ := fmt.Sscanf(cfg.Command, "exit:%d", &code); n == 1 {
		go func() {
			time.Sleep(20 * time.Millisecond)
			d.Exit(cfg.ID, &driver.ExitResult{ExitCode: code})
		}()
	}
	return &driver.TaskHandle{Driver: "containerd", ID: cfg.ID, PID: t.pid, StartedAt: time.Now(), Config: cfg}, nil
}

// Exit ends a running task with r.
func (d *Driver) Exit(id string, r *driver.ExitResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tasks[id]
	if !ok || t.result != nil {
		return
	}
	t.result = r
	close(t.exit)
}

// RecoverTask implements driver.Driver.
func (d *Driver) RecoverTask(_ context.Context, h *driver.TaskHandle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tasks[h.ID]; !ok {
		return fmt.Errorf("%s: %w", h.ID, driver.ErrTaskNotFound)
	}
	d.recover++
	return nil
}

// WaitTask implements driver.Driver.
func (d *Driver) WaitTask(ctx context.Context, id string) (<-chan *driver.ExitResult, error) {
	d.mu.Lock()
	t, ok := d.tasks[id]
	d.mu.Unlock()
	if !ok {
		return nil, driver.ErrTaskNotFound
	}
	ch := make(chan *driver.ExitResult, 1)
	d.mu.Lock()
	d.waits++
	if d.waitErrs > 0 {
		d.waitErrs--
		d.mu.Unlock()
		ch <- &driver.ExitResult{Err: fmt.Errorf("connection to containerd lost")}
		close(ch)
		return ch, nil
	}
	d.mu.Unlock()
	go func() {
		defer close(ch)
		select {
		case <-t.exit:
			ch <- t.result
		case <-ctx.Done():
		}
	}()
	return ch, nil
}

// SignalTask implements driver.Driver: it records sig (Signals).
func (d *Driver) SignalTask(_ context.Context, id string, sig syscall.Signal) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tasks[id]
	if !ok {
		return fmt.Errorf("signal task %s: %w", id, driver.ErrTaskNotFound)
	}
	if t.result != nil {
		return fmt.Errorf("signal task %s: it exited", id)
	}
	t.signals = append(t.signals, sig)
	return nil
}

// Signals returns the signals SignalTask sent to a task, in order.
func (d *Driver) Signals(id string) []syscall.Signal {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.tasks[id]; ok {
		return append([]syscall.Signal(nil), t.signals...)
	}
	return nil
}

// StopTask implements driver.Driver.
func (d *Driver) StopTask(_ context.Context, id string, _ time.Duration, _ string) error {
	d.mu.Lock()
	d.stops++
	d.mu.Unlock()
	d.Exit(id, &driver.ExitResult{ExitCode: 143, Signal: 15})
	return nil
}

// DestroyTask implements driver.Driver.
func (d *Driver) DestroyTask(_ context.Context, id string, _ bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tasks[id]; ok {
		d.destroy++
		delete(d.tasks, id)
	}
	return nil
}

// InspectTask implements driver.Driver.
func (d *Driver) InspectTask(_ context.Context, id string) (*driver.TaskStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tasks[id]
	if !ok {
		return nil, driver.ErrTaskNotFound
	}
	st := &driver.TaskStatus{ID: id, PID: t.pid, State: driver.TaskStateRunning}
	if t.result != nil {
		st.State = driver.TaskStateExited
	}
	return st, nil
}

// Close implements driver.Driver.
func (d *Driver) Close() error { return nil }

// Counts returns how many times tasks were started, recovered, stopped
// and destroyed, and how many exist now.
func (d *Driver) Counts() (starts, recovers, stops, destroys, live int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starts, d.recover, d.stops, d.destroy, len(d.tasks)
}

// Task returns the config and PID of a task, and whether it exists.
func (d *Driver) Task(id string) (*driver.TaskConfig, int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tasks[id]
	if !ok {
		return nil, 0, false
	}
	return t.cfg, t.pid, true
}

// TaskIDs lists the tasks that exist.
func (d *Driver) TaskIDs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.tasks))
	for id := range d.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Waits returns how many WaitTask calls were made.
func (d *Driver) Waits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waits
}

// FailWaits makes the next n WaitTask calls end at once with an error.
func (d *Driver) FailWaits(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.waitErrs = n
}

// FailStarts makes StartTask fail for the named task.
func (d *Driver) FailStarts(task string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failStart[task] = true
}
