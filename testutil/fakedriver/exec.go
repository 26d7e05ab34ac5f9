package fakedriver

import (
	"context"
	"errors"
	"fmt"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/driver/fake"
)

// execCounts are the driver's ExecTask figures, guarded by Driver.mu.
type execCounts struct {
	// running are the calls that have not returned; total all calls
	// that reached a running task; killed those ended by their
	// context (the process "killed").
	running, total, killed int
	// last is the options of the latest call that reached a task.
	last driver.ExecOptions
}

// ExecTask implements driver.Driver with the fake driver's built-in
// programs (fake.RunBuiltin: echo, warn, cat, exit N, sleep S, stty
// size) in a running task.
func (d *Driver) ExecTask(ctx context.Context, id string, opts *driver.ExecOptions) (*driver.ExitResult, error) {
	d.mu.Lock()
	t, ok := d.tasks[id]
	if !ok {
		d.mu.Unlock()
		return nil, fmt.Errorf("exec in task %s: %w", id, driver.ErrTaskNotFound)
	}
	if t.result != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("exec in task %s: %w", id, driver.ErrTaskNotRunning)
	}
	d.execs.running++
	d.execs.total++
	if opts != nil {
		d.execs.last = *opts
		d.execs.last.Command = append([]string(nil), opts.Command...)
	}
	d.mu.Unlock()
	res, err := fake.RunBuiltin(ctx, opts)
	d.mu.Lock()
	d.execs.running--
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		d.execs.killed++
	}
	d.mu.Unlock()
	return res, err
}

// Execs returns how many ExecTask calls are running now, how many
// reached a running task in all, and how many were ended by their
// context.
func (d *Driver) Execs() (running, total, killed int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.execs.running, d.execs.total, d.execs.killed
}

// LastExec returns the options of the latest ExecTask call that reached
// a running task (its streams are the caller's; do not use them).
func (d *Driver) LastExec() driver.ExecOptions {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.execs.last
}
