package driver

import (
	"errors"
	"io"
)

// ErrTaskNotRunning is returned by ExecTask for a task that exists but
// whose main process is not running (it exited, or has not started):
// there is no container to run a command in.
var ErrTaskNotRunning = errors.New("task is not running")

// ErrNoCommand is returned by ExecTask for ExecOptions without a command
// (or with an empty first element).
var ErrNoCommand = errors.New("no command to run")

// TerminalSize is a terminal's size in character cells.
type TerminalSize struct {
	Width  uint16
	Height uint16
}

// ExecOptions describe a process ExecTask runs in a task's container.
//
// The contract every driver keeps:
//
//   - The process runs with the task's root filesystem, namespaces,
//     environment, working directory and user; Command[0] is looked up
//     in the task's PATH.
//   - Stdin, when not nil, is copied to the process until it returns
//     io.EOF, and the process then sees end of input. Nil gives the
//     process no input. The driver may leave a Read blocked when the
//     process ends: the caller unblocks it (closing a pipe) after
//     ExecTask returns.
//   - Stdout and Stderr receive the process's output, each from one
//     goroutine at a time; with Tty, the terminal's output (stdout and
//     stderr merged) goes to Stdout only. A Write that fails stops that
//     stream (the process then gets EPIPE or SIGPIPE on it). Nil
//     discards. No Write happens after ExecTask returns.
//   - With Tty, the process gets a pseudo-terminal of Size (when not
//     zero), and every size received on Resize is applied to it until
//     the process ends. Without Tty, Resize is ignored.
type ExecOptions struct {
	// Command is the program and its arguments; not empty.
	Command []string
	// Tty gives the process a pseudo-terminal.
	Tty  bool
	Size TerminalSize
	// Resize delivers new terminal sizes (Tty only); nil when the size
	// never changes.
	Resize <-chan TerminalSize

	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}
