package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/droverhq/drover/driver"
)

// execUpgrader upgrades exec requests. The origin was checked before
// (checkExecOrigin); compression is off (output is often a terminal's
// small writes, and compressed frames are a decompression bomb away
// from the frame limit).
var execUpgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   4 << 10,
	WriteBufferSize:  16 << 10,
	CheckOrigin:      func(*http.Request) bool { return true },
}

// execSession is one exec over one WebSocket: the process's output goes
// out as frames from the driver's copy goroutines (send), frames from
// the client come in on readLoop's goroutine, and serveExec's goroutine
// runs the process and ends the session.
type execSession struct {
	a    *Agent
	conn *websocket.Conn
	idle time.Duration
	// cancel kills the process: the client went, broke the protocol or
	// fell silent, or the agent shuts down.
	cancel context.CancelFunc

	// wmu serializes writes (gorilla allows one writer at a time) and
	// guards closed.
	wmu sync.Mutex
	// closed is set once a close frame was sent: nothing is written
	// after it.
	closed bool

	// stdin queues the client's stdin for pumpStdin (nil when the
	// request said stdin=false); readLoop sends on it and closes it.
	// resize carries the latest terminal size (nil without tty).
	stdin  chan []byte
	resize chan driver.TerminalSize
	// sizeSeen is closed when the first terminal size arrived.
	sizeSeen chan struct{}
}

// execFirstSizeWait is how long a session with a terminal waits for
// the client's first size before it starts the process: clients send
// the size as they start (Nomad's alongside stdin), and a process that
// starts with it (a shell drawing its prompt, stty size) never sees a
// wrong one.
const execFirstSizeWait = time.Second

// execStdinQueue is how many stdin frames wait for the process before
// readLoop blocks (and the client's frames wait in TCP): a few, so
// that stdin sent before the process runs does not hold up the frames
// behind it (the terminal's size).
const execStdinQueue = 4

// serveExec upgrades the request and runs the exec: the caller checked
// everything that can be refused with an HTTP status.
func (a *Agent) serveExec(w http.ResponseWriter, r *http.Request, allocID, task string, req *execRequest) {
	conn, err := execUpgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader answered the client already.
		a.logger.Debug("exec upgrade failed", "alloc_id", allocID, "error", err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if a.shutdownCh != nil {
		go func() {
			select {
			case <-a.shutdownCh:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	s := &execSession{a: a, conn: conn, idle: a.execLimits.withDefaults().idle, cancel: cancel, sizeSeen: make(chan struct{})}
	opts := &driver.ExecOptions{
		Command: req.command,
		Tty:     req.tty,
		Stdout:  &execStreamWriter{s: s, stderr: false},
		Stderr:  &execStreamWriter{s: s, stderr: true},
	}
	var stdinR *io.PipeReader
	pumpDone := make(chan struct{})
	if req.stdin {
		var stdinW *io.PipeWriter
		stdinR, stdinW = io.Pipe()
		opts.Stdin = stdinR
		s.stdin = make(chan []byte, execStdinQueue)
		go func() {
			defer close(pumpDone)
			pumpStdin(s.stdin, stdinW)
		}()
	} else {
		close(pumpDone)
	}
	if req.tty {
		s.resize = make(chan driver.TerminalSize, 1)
		opts.Resize = s.resize
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.readLoop()
	}()
	if req.tty {
		timer := time.NewTimer(execFirstSizeWait)
		select {
		case <-s.sizeSeen:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		select {
		case sz := <-s.resize:
			opts.Size = sz
		default:
		}
	}

	a.logger.Info("exec started", "alloc_id", allocID, "task", task, "argv0", req.command[0], "tty", req.tty)
	res, err := a.client.ExecTask(ctx, allocID, task, opts)
	if stdinR != nil {
		// Unblocks pumpStdin's write, and the driver's read.
		stdinR.Close()
	}
	switch {
	case ctx.Err() != nil:
		// readLoop or send ended the session (and said why to a client
		// still there), or the agent is shutting down.
		if a.shuttingDown() {
			s.closeWith(websocket.CloseGoingAway, "the agent is shutting down; the process was killed")
		} else {
			s.closeWith(websocket.CloseNormalClosure, "the session ended; the process was killed")
		}
		a.logger.Info("exec process killed: its session ended", "alloc_id", allocID, "task", task)
	case err != nil:
		msg := fmt.Sprintf("exec in task %q of allocation %s: %v", task, allocID, execTargetError(err))
		_ = s.send(&execOutput{Error: msg})
		s.closeWith(websocket.CloseInternalServerErr, msg)
		a.logger.Info("exec failed", "alloc_id", allocID, "task", task, "error", err)
	default:
		_ = s.send(&execOutput{Exited: true, Result: &execExitResult{ExitCode: res.ExitCode}})
		s.closeWith(websocket.CloseNormalClosure, fmt.Sprintf("the process exited with code %d", res.ExitCode))
		a.logger.Info("exec exited", "alloc_id", allocID, "task", task, "exit_code", res.ExitCode)
	}
	// Give the client a moment to answer the close, then drop the
	// connection, which ends readLoop in any case.
	select {
	case <-readDone:
	case <-time.After(time.Second):
	}
	conn.Close()
	<-readDone
	// readLoop closed s.stdin: the pump ends.
	<-pumpDone
}

// pumpStdin writes the queued stdin frames to the process's stdin
// until the queue is closed, then closes it (the process reads EOF).
// Once a write fails (the process ended), the rest is dropped.
func pumpStdin(queue <-chan []byte, w *io.PipeWriter) {
	defer w.Close()
	failed := false
	for b := range queue {
		if failed {
			continue
		}
		if _, err := w.Write(b); err != nil {
			failed = true
		}
	}
}

// shuttingDown reports whether the agent is shutting down.
func (a *Agent) shuttingDown() bool {
	select {
	case <-a.shutdownCh:
		return true
	default:
		return false
	}
}

// readLoop reads the client's frames until the connection fails or the
// client breaks the rules, and then kills the process (cancel). It owns
// the sending side of s.stdin and s.resize.
func (s *execSession) readLoop() {
	defer s.cancel()
	// stdinOpen is false once the client closed stdin.
	stdinOpen := s.stdin != nil
	defer func() {
		if stdinOpen {
			close(s.stdin)
		}
	}()
	var sizeOnce sync.Once
	defer sizeOnce.Do(func() { close(s.sizeSeen) })
	// A ping counts as a sign of life, like a frame.
	s.conn.SetPingHandler(func(data string) error {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.idle))
		err := s.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(execWriteTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.idle))
		typ, r, err := s.conn.NextReader()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.closeWith(websocket.ClosePolicyViolation, fmt.Sprintf("no frame from the client in %s: send a {} heartbeat at least that often", s.idle))
			}
			return
		}
		if typ != websocket.TextMessage {
			s.refuse(websocket.CloseUnsupportedData, "binary frames are not accepted: send JSON text frames")
			return
		}
		b, err := io.ReadAll(io.LimitReader(r, maxExecFrameBytes+1))
		if err != nil {
			return
		}
		in, err := decodeExecInput(b)
		if err != nil {
			var ce *execCloseError
			if errors.As(err, &ce) {
				s.refuse(ce.Code, ce.Reason)
			}
			return
		}
		if in.TTYSize != nil && s.resize != nil {
			s.setSize(driver.TerminalSize{Width: uint16(in.TTYSize.Width), Height: uint16(in.TTYSize.Height)})
			sizeOnce.Do(func() { close(s.sizeSeen) })
		}
		switch {
		case in.Stdin == nil:
		case s.stdin == nil:
			s.refuse(websocket.ClosePolicyViolation, "stdin frame, but the request said stdin=false")
			return
		case !stdinOpen:
			s.refuse(websocket.ClosePolicyViolation, "stdin frame after stdin was closed")
			return
		case in.Stdin.Close:
			stdinOpen = false
			close(s.stdin)
		default:
			if !s.queueStdin(in.Stdin.Data) {
				return
			}
		}
	}
}

// queueStdin queues stdin data for the process. Once execStdinQueue
// frames wait (and the FIFOs behind them are full), it blocks, and the
// client's frames wait in TCP: flow control. But a blocked readLoop
// reads nothing, not even a close, so it can wait only as long as it
// would for a silent client: after s.idle it ends the session (with
// the process) and says so. It reports whether the session goes on.
func (s *execSession) queueStdin(data []byte) bool {
	select {
	case s.stdin <- data:
		return true
	default:
	}
	timer := time.NewTimer(s.idle)
	defer timer.Stop()
	select {
	case s.stdin <- data:
		return true
	case <-timer.C:
		s.closeWith(websocket.ClosePolicyViolation, fmt.Sprintf("the process took none of its stdin in %s; the agent cannot wait longer without reading the client", s.idle))
		return false
	}
}

// refuse ends a session whose client broke the rules: the process is
// killed, the close frame says why, and what the client still sends is
// read and dropped until it answers the close (at most a second), so
// that the connection ends with the reason delivered rather than reset
// with unread input.
func (s *execSession) refuse(code int, reason string) {
	// The reason first: once cancelled, serveExec closes too.
	s.closeWith(code, reason)
	s.cancel()
	_ = s.conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := s.conn.NextReader(); err != nil {
			return
		}
	}
}

// setSize puts the latest terminal size in s.resize, replacing one the
// driver has not taken yet: only the latest matters. Only readLoop
// sends on s.resize.
func (s *execSession) setSize(sz driver.TerminalSize) {
	select {
	case s.resize <- sz:
		return
	default:
	}
	select {
	case <-s.resize:
	default:
	}
	select {
	case s.resize <- sz:
	default:
	}
}

// send writes one frame, unless the session was closed.
func (s *execSession) send(out *execOutput) error {
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return websocket.ErrCloseSent
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(execWriteTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		// A client that does not read, or is gone: end the session.
		s.closed = true
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			reason := fmt.Sprintf("the client read no output in %s", execWriteTimeout)
			_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, reason), time.Now().Add(time.Second))
		}
		s.cancel()
		return err
	}
	return nil
}

// closeWith sends the close frame with code and reason, once; later
// calls do nothing.
func (s *execSession) closeWith(code int, reason string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, closeReason(reason)), time.Now().Add(time.Second))
}

// execStreamWriter turns the process's output into frames of at most
// maxExecOutputChunk bytes.
type execStreamWriter struct {
	s      *execSession
	stderr bool
}

func (w *execStreamWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxExecOutputChunk)
		op := &execStreamOp{Data: p[:n]}
		out := &execOutput{Stdout: op}
		if w.stderr {
			out = &execOutput{Stderr: op}
		}
		if err := w.s.send(out); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}
