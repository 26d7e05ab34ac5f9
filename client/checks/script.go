package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/droverhq/drover/structs"
)

// Script check exit codes, as Nomad's (and Consul's): 0 passes, 1
// warns, anything else is critical.
const (
	scriptExitPassing = 0
	scriptExitWarning = 1
)

// probeScript runs the check's command in its service's task through
// the Runner's Exec, bounded by the check's timeout (Exec kills the
// command when it passes). The output is the command's stdout and
// stderr, trimmed and cut to maxOutput bytes; without any, the exit
// code.
func (r *Runner) probeScript(ctx context.Context, c *check) (status, output string) {
	if r.cfg.Exec == nil {
		return structs.ServiceStatusCritical, "this client cannot run commands in tasks"
	}
	if c.task == "" {
		return structs.ServiceStatusCritical, "a script check needs its service's task"
	}
	out := &cappedBuffer{max: maxOutput + 1}
	cmd := append([]string{c.def.Command}, c.def.Args...)
	code, err := r.cfg.Exec(ctx, c.task, cmd, out)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return structs.ServiceStatusCritical, fmt.Sprintf("timed out after %s (the command was killed)", c.timeout)
	case err != nil:
		return structs.ServiceStatusCritical, err.Error()
	}
	output = strings.TrimSpace(out.String())
	if output == "" {
		output = fmt.Sprintf("exit code %d", code)
	}
	switch code {
	case scriptExitPassing:
		return structs.ServiceStatusPassing, output
	case scriptExitWarning:
		return structs.ServiceStatusWarning, output
	default:
		return structs.ServiceStatusCritical, output
	}
}

// cappedBuffer keeps the first max bytes written to it and drops the
// rest (a chatty check cannot grow the agent); writes never fail, so
// the command is not cut off by a full buffer. Safe for concurrent
// writers.
type cappedBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
