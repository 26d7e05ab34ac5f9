package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/droverhq/drover/api"
)

// ExitExecInterrupted is `alloc exec` interrupted by SIGINT or SIGTERM
// (the command in the task is killed), as a shell reports SIGINT.
const ExitExecInterrupted = 130

func newAllocExecCommand(g *globals) *cobra.Command {
	var task string
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "exec [-task TASK] [-i] [-t] ALLOC COMMAND [ARG...]",
		Short: "Run a command in a running task of an allocation",
		Long: `Run a command in the container of a running task, as a new process with
the task's filesystem, environment and user, and exit with its exit code.
ALLOC is the allocation's ID or a unique prefix; -task names the task when
the allocation has more than one. Everything after ALLOC is the command and
its arguments, flags included:

    drover alloc exec 3f1c cat /etc/hostname
    drover alloc exec -task web 3f1c sh -c 'exit 3'      # exits 3
    drover alloc exec -i -t 3f1c sh                      # an interactive shell

-i sends this terminal's (or pipe's) input to the command; without it the
command reads end of input at once. -t gives the command a pseudo-terminal
of this terminal's size (and follows its resizes), with the local terminal
in raw mode meanwhile: Ctrl-C and Ctrl-D go to the command. -t needs a
terminal on stdin.

Closing the connection (Ctrl-C without -t, SIGTERM, a lost network) kills
the command. With ACLs on, the token needs alloc-exec in the allocation's
namespace.`,
		Args: cobra.MinimumNArgs(2),
		Annotations: map[string]string{
			annotationTrailingCommand: "true",
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			command := args[1:]
			if command[0] == "--" {
				command = command[1:]
			}
			if len(command) == 0 || command[0] == "" {
				return fmt.Errorf("no command to run after the allocation %s", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			id, err := resolveAllocID(c, args[0])
			if err != nil {
				return err
			}
			return runAllocExec(g, c, id, task, command, interactive, tty)
		},
	}
	// Flags end at ALLOC: the command's own (sh -c) are not drover's.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&task, "task", "", "the task to run the command in (needed when the allocation has several)")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "send stdin to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a pseudo-terminal (needs a terminal on stdin)")
	return cmd
}

func runAllocExec(g *globals, c *api.Client, allocID, task string, command []string, interactive, tty bool) error {
	opts := api.ExecOptions{Task: task, Command: command, TTY: tty, Stdout: g.ui.out, Stderr: g.ui.err}
	if interactive {
		opts.Stdin = os.Stdin
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigCh := make(chan os.Signal, 1)
	signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigCh)
	interrupted := make(chan struct{})
	go func() {
		select {
		case <-sigCh:
			close(interrupted)
			cancel()
		case <-ctx.Done():
		}
	}()

	if tty {
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return errors.New("-t needs a terminal on stdin; leave -t out to pipe input and output")
		}
		resize := make(chan api.TerminalSize, 1)
		if w, h, err := term.GetSize(fd); err == nil {
			resize <- api.TerminalSize{Width: w, Height: h}
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for {
				select {
				case <-winch:
					if w, h, err := term.GetSize(fd); err == nil {
						select {
						case resize <- api.TerminalSize{Width: w, Height: h}:
						case <-ctx.Done():
							return
						}
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		opts.Resize = resize
		state, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer func() { _ = term.Restore(fd, state) }()
	}

	code, err := c.Allocations().Exec(ctx, allocID, opts)
	select {
	case <-interrupted:
		return silentExit(ExitExecInterrupted, errors.New("interrupted"))
	default:
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return silentExit(code, fmt.Errorf("the command exited with code %d", code))
	}
	return nil
}
