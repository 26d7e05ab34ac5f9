package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// ErrUnknownTask is returned for requests about a task the allocation
// does not have.
var ErrUnknownTask = errors.New("no such task in the allocation")

// ExecTarget checks that a task of an allocation this client runs can
// take an exec: the allocation is here (ErrUnknownAlloc), has the task
// (ErrUnknownTask) and the task runs (driver.ErrTaskNotRunning). The
// answer is a snapshot: ExecTask checks again.
func (c *Client) ExecTarget(allocID, task string) error {
	_, err := c.execTarget(allocID, task)
	return err
}

// ExecTask runs a command in a running task of an allocation this
// client runs, through the task's driver (driver.ExecOptions has the
// contract); it returns how the command ended. Cancelling ctx kills the
// command. Errors: ErrUnknownAlloc, ErrUnknownTask,
// driver.ErrTaskNotRunning, or the driver's.
func (c *Client) ExecTask(ctx context.Context, allocID, task string, opts *driver.ExecOptions) (*driver.ExitResult, error) {
	tr, err := c.execTarget(allocID, task)
	if err != nil {
		return nil, err
	}
	return tr.drv.ExecTask(ctx, tr.id, opts)
}

func (c *Client) execTarget(allocID, task string) (*taskRunner, error) {
	ar, err := c.runner(allocID)
	if err != nil {
		return nil, err
	}
	tr := ar.task(task)
	if tr == nil {
		return nil, fmt.Errorf("allocation %s has no task %q: %w", allocID, task, ErrUnknownTask)
	}
	if st := tr.TaskState(); st.State != structs.TaskStateRunning {
		return nil, fmt.Errorf("task %q of allocation %s is %s: %w", task, allocID, st.State, driver.ErrTaskNotRunning)
	}
	return tr, nil
}

// execCheck runs a script check's command in a task of the allocation
// (checks.Config.Exec): no stdin, no terminal, stdout and stderr both
// to output.
func (ar *allocRunner) execCheck(ctx context.Context, task string, command []string, output io.Writer) (int, error) {
	res, err := ar.client.ExecTask(ctx, ar.id, task, &driver.ExecOptions{Command: command, Stdout: output, Stderr: output})
	if err != nil {
		return 0, err
	}
	return res.ExitCode, nil
}
