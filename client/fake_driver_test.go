package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// fakeDriver runs "tasks" in memory. Tasks outlive client instances (the
// driver is shared across them), as containers outlive a client process.
// A task's command decides its fate: "exit:N" exits N after 20ms, anything
// else runs until stopped.
type fakeDriver struct {
	mu      sync.Mutex
	tasks   map[string]*fakeTask
	nextPID int
	starts  int
	recover int
	stops   int
	destroy int
	// failStart makes StartTask fail for these task names.
	failStart map[string]bool
	// waitErrs makes this many WaitTask calls end at once with an error,
	// as when containerd restarts under a waiting client.
	waitErrs int
	waits    int
}

type fakeTask struct {
	cfg    *driver.TaskConfig
	pid    int
	exit   chan struct{}
	result *driver.ExitResult
}

func newFakeDriver() *fakeDriver {
	return &fakeDriver{tasks: make(map[string]*fakeTask), nextPID: 1000, failStart: map[string]bool{}}
}

func (d *fakeDriver) Name() string { return "containerd" }

func (d *fakeDriver) Fingerprint(context.Context) *structs.DriverInfo {
	return &structs.DriverInfo{Detected: true, Healthy: true, Attributes: map[string]string{"driver.fake": "1"}}
}

func (d *fakeDriver) StartTask(_ context.Context, cfg *driver.TaskConfig) (*driver.TaskHandle, error) {
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
			d.exitTask(cfg.ID, &driver.ExitResult{ExitCode: code})
		}()
	}
	return &driver.TaskHandle{Driver: "containerd", ID: cfg.ID, PID: t.pid, StartedAt: time.Now(), Config: cfg}, nil
}

func (d *fakeDriver) exitTask(id string, r *driver.ExitResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tasks[id]
	if !ok || t.result != nil {
		return
	}
	t.result = r
	close(t.exit)
}

func (d *fakeDriver) RecoverTask(_ context.Context, h *driver.TaskHandle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tasks[h.ID]; !ok {
		return fmt.Errorf("%s: %w", h.ID, driver.ErrTaskNotFound)
	}
	d.recover++
	return nil
}

func (d *fakeDriver) WaitTask(ctx context.Context, id string) (<-chan *driver.ExitResult, error) {
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

func (d *fakeDriver) StopTask(_ context.Context, id string, _ time.Duration, _ string) error {
	d.mu.Lock()
	d.stops++
	d.mu.Unlock()
	d.exitTask(id, &driver.ExitResult{ExitCode: 143, Signal: 15})
	return nil
}

func (d *fakeDriver) DestroyTask(_ context.Context, id string, _ bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tasks[id]; ok {
		d.destroy++
		delete(d.tasks, id)
	}
	return nil
}

func (d *fakeDriver) InspectTask(_ context.Context, id string) (*driver.TaskStatus, error) {
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

func (d *fakeDriver) Close() error { return nil }

func (d *fakeDriver) counts() (starts, recovers, stops, destroys, live int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starts, d.recover, d.stops, d.destroy, len(d.tasks)
}
