package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// execHeartbeatInterval is how often Exec tells the agent it is there
// (the agent ends a session that sends nothing for a minute).
const execHeartbeatInterval = 10 * time.Second

// execStdinChunk bounds the stdin bytes in one frame (the agent takes
// frames of 64 KiB, base64 included).
const execStdinChunk = 32 << 10

// TerminalSize is a terminal's size in character cells.
type TerminalSize struct {
	Width  int
	Height int
}

// ExecOptions describe a command Exec runs.
type ExecOptions struct {
	// Task is the task to run it in; "" for an allocation of one task.
	Task string
	// Command is the program and its arguments.
	Command []string
	// TTY gives the command a pseudo-terminal; its output then all
	// arrives on Stdout.
	TTY bool
	// Stdin is copied to the command until it ends (io.EOF); nil gives
	// the command no input. Exec may return while a Read of Stdin is
	// still blocked.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output; nil discards.
	Stdout io.Writer
	Stderr io.Writer
	// Resize delivers the terminal's size (TTY only): the first value
	// as the command starts, then every change.
	Resize <-chan TerminalSize
}

// ExecError is an exec that ended without an exit code: the agent
// could not run the command, or closed the session (with Code, a
// WebSocket close code, and the reason it gave).
type ExecError struct {
	Code    int
	Message string
}

func (e *ExecError) Error() string { return e.Message }

// execOutput and execInput are the frames of the exec WebSocket; the
// agent documents them (agent/exec_frame.go). They are Nomad's shape.
type execOutput struct {
	Stdout *execStreamOp `json:"stdout,omitempty"`
	Stderr *execStreamOp `json:"stderr,omitempty"`
	Exited bool          `json:"exited,omitempty"`
	Result *struct {
		ExitCode int `json:"exit_code"`
	} `json:"result,omitempty"`
	Error string `json:"error,omitempty"`
}

type execInput struct {
	Stdin   *execStreamOp `json:"stdin,omitempty"`
	TTYSize *execTTYSize  `json:"tty_size,omitempty"`
}

type execStreamOp struct {
	Data  []byte `json:"data,omitempty"`
	Close bool   `json:"close,omitempty"`
}

type execTTYSize struct {
	Height int `json:"height"`
	Width  int `json:"width"`
}

// Exec runs a command in a task of an allocation, over a WebSocket to
// GET /v1/client/allocation/<id>/exec (the agent proxies it to the
// allocation's node), and returns the command's exit code. A refusal
// before the command runs is an *Error (403, 404, 409 for a task that
// is not running...); a session that ends without an exit code is an
// *ExecError. Cancelling ctx closes the session, which kills the
// command.
func (a *Allocations) Exec(ctx context.Context, allocID string, opts ExecOptions) (int, error) {
	if len(opts.Command) == 0 {
		return -1, errors.New("exec: no command")
	}
	cmd, err := json.Marshal(opts.Command)
	if err != nil {
		return -1, fmt.Errorf("exec: encode command: %w", err)
	}
	r := a.c.newRequest(http.MethodGet, "/v1/client/allocation/"+escape(allocID)+"/exec", nil)
	r.params.Set("command", string(cmd))
	if opts.Task != "" {
		r.params.Set("task", opts.Task)
	}
	r.params.Set("tty", strconv.FormatBool(opts.TTY))
	r.params.Set("stdin", strconv.FormatBool(opts.Stdin != nil))
	u, err := a.c.requestURL(r)
	if err != nil {
		return -1, err
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	dialer := &websocket.Dialer{Proxy: nil, HandshakeTimeout: 30 * time.Second}
	if tr, ok := a.c.http.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		dialer.TLSClientConfig = tr.TLSClientConfig.Clone()
	}
	header := http.Header{}
	if a.c.token != "" {
		header.Set("X-Drover-Token", a.c.token)
	}
	conn, resp, err := dialer.DialContext(ctx, u.String(), header)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				return -1, a.c.responseError(resp, http.MethodGet, r.path)
			}
		}
		if terr := a.c.explainTLS(err); terr != nil {
			return -1, terr
		}
		return -1, fmt.Errorf("exec: connect to %s: %w", u.Redacted(), err)
	}
	defer conn.Close()
	s := &execClient{conn: conn}
	return s.run(ctx, opts)
}

// execClient is the client side of one exec session.
type execClient struct {
	conn *websocket.Conn
	// wmu serializes writes (one writer at a time).
	wmu sync.Mutex
}

func (s *execClient) send(in *execInput) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

func (s *execClient) run(ctx context.Context, opts ExecOptions) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A cancelled ctx closes the session: the read below then fails.
	stop := context.AfterFunc(ctx, func() {
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "the client ended the session"), time.Now().Add(time.Second))
		_ = s.conn.Close()
	})
	defer stop()

	if opts.Stdin != nil {
		go func() {
			buf := make([]byte, execStdinChunk)
			for ctx.Err() == nil {
				n, err := opts.Stdin.Read(buf)
				if n > 0 {
					if s.send(&execInput{Stdin: &execStreamOp{Data: buf[:n]}}) != nil {
						return
					}
				}
				if err != nil {
					// At its end or on a failure, stdin ends.
					_ = s.send(&execInput{Stdin: &execStreamOp{Close: true}})
					return
				}
			}
		}()
	}
	if opts.TTY && opts.Resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-opts.Resize:
					if !ok {
						return
					}
					if s.send(&execInput{TTYSize: &execTTYSize{Width: sz.Width, Height: sz.Height}}) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		t := time.NewTicker(execHeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if s.send(&execInput{}) != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	var failure string
	for {
		var out execOutput
		_, b, err := s.conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			if failure != "" {
				return -1, &ExecError{Code: websocket.CloseInternalServerErr, Message: failure}
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return -1, &ExecError{Code: ce.Code, Message: fmt.Sprintf("the agent ended the session before the command exited: %s (close code %d)", ce.Text, ce.Code)}
			}
			return -1, &ExecError{Message: fmt.Sprintf("the connection to the agent broke before the command exited: %v", err)}
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return -1, fmt.Errorf("exec: the agent sent a frame that is not JSON: %w", err)
		}
		switch {
		case out.Stdout != nil:
			if _, err := stdout.Write(out.Stdout.Data); err != nil {
				return -1, fmt.Errorf("exec: write output: %w", err)
			}
		case out.Stderr != nil:
			if _, err := stderr.Write(out.Stderr.Data); err != nil {
				return -1, fmt.Errorf("exec: write output: %w", err)
			}
		case out.Exited && out.Result != nil:
			_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return out.Result.ExitCode, nil
		case out.Error != "":
			failure = out.Error
		}
	}
}
