package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The frames of an exec stream (GET /v1/client/allocation/<id>/exec,
// http_exec.go). Every frame is one WebSocket text message holding one
// JSON object; binary messages are refused. The shape is Nomad's, so
// that Nomad's API client can drive it; the code is Drover's.
//
// From the client, at most one field set:
//
//	{"stdin":{"data":"<base64>"}}        bytes for the process's stdin
//	{"stdin":{"close":true}}             end of stdin (the process reads EOF)
//	{"tty_size":{"height":24,"width":80}} the terminal's new size (tty=true)
//	{}                                   a heartbeat; clients send one at
//	                                     least every execIdleTimeout
//
// From the agent:
//
//	{"stdout":{"data":"<base64>"}}       output (with tty=true, all of it)
//	{"stderr":{"data":"<base64>"}}
//	{"exited":true,"result":{"exit_code":3}}  the last frame when the
//	                                     process ended; a normal close follows
//	{"error":"..."}                      the last frame when the process
//	                                     could not run (or was lost); a close
//	                                     with code 1011 follows
//
// With tty=true the agent starts the process once the first tty_size
// arrived (or after execFirstSizeWait), so that it starts at the
// client's size. stdin is flow-controlled: a few frames queue for a
// process that does not read them, then the agent stops reading the
// connection; past the idle timeout it ends the session, as for a
// silent client.
//
// A frame over maxExecFrameBytes, a binary frame, or one that is not
// exactly one JSON object of the fields above, or sets two of them, or
// stdin with both data and close (or neither), or a size outside
// 0..65535, ends the session: the agent kills the process and closes
// with code 1008 (1009 for the size, 1003 for binary) and a reason
// saying what was wrong.

// maxExecFrameBytes bounds one frame from the client, as sent (a stdin
// frame of 48 KiB of input fits, base64 and all).
const maxExecFrameBytes = 64 << 10

// maxExecOutputChunk bounds the output bytes the agent puts in one
// frame.
const maxExecOutputChunk = 16 << 10

// execInput is one frame from the client.
type execInput struct {
	Stdin   *execStreamOp `json:"stdin,omitempty"`
	TTYSize *execTTYSize  `json:"tty_size,omitempty"`
}

// execStreamOp is data on a stream, or its end.
type execStreamOp struct {
	Data  []byte `json:"data,omitempty"`
	Close bool   `json:"close,omitempty"`
}

// execTTYSize is a terminal size in character cells.
type execTTYSize struct {
	Height int `json:"height"`
	Width  int `json:"width"`
}

// execOutput is one frame from the agent.
type execOutput struct {
	Stdout *execStreamOp   `json:"stdout,omitempty"`
	Stderr *execStreamOp   `json:"stderr,omitempty"`
	Exited bool            `json:"exited,omitempty"`
	Result *execExitResult `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// execExitResult is how the process ended.
type execExitResult struct {
	ExitCode int `json:"exit_code"`
}

// execCloseError is why the agent ends a session: a WebSocket close
// code and the reason sent with it.
type execCloseError struct {
	Code   int
	Reason string
}

func (e *execCloseError) Error() string { return fmt.Sprintf("close %d: %s", e.Code, e.Reason) }

func malformedFrame(format string, args ...interface{}) *execCloseError {
	return &execCloseError{Code: websocket.ClosePolicyViolation, Reason: "malformed frame: " + fmt.Sprintf(format, args...)}
}

// decodeExecInput decodes and checks one frame from the client. Its
// errors are *execCloseError.
func decodeExecInput(b []byte) (*execInput, error) {
	if len(b) > maxExecFrameBytes {
		return nil, &execCloseError{Code: websocket.CloseMessageTooBig, Reason: fmt.Sprintf("frame of more than %d bytes", maxExecFrameBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var in execInput
	if err := dec.Decode(&in); err != nil {
		return nil, malformedFrame("%s", jsonProblem(err))
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, malformedFrame("after the object: %s", jsonProblem(err))
		}
		return nil, malformedFrame("more than one JSON value (then %v)", tok)
	}
	if in.Stdin != nil && in.TTYSize != nil {
		return nil, malformedFrame("stdin and tty_size in one frame; send one per frame")
	}
	if s := in.Stdin; s != nil {
		if s.Close && len(s.Data) > 0 {
			return nil, malformedFrame("stdin with both data and close")
		}
		if !s.Close && len(s.Data) == 0 {
			return nil, malformedFrame("stdin without data or close")
		}
	}
	if t := in.TTYSize; t != nil {
		if t.Height < 0 || t.Height > math.MaxUint16 || t.Width < 0 || t.Width > math.MaxUint16 {
			return nil, malformedFrame("tty_size %dx%d (width x height) is outside 0..65535", t.Width, t.Height)
		}
	}
	return &in, nil
}

// jsonProblem says what encoding/json found wrong, without echoing
// what the client sent at length.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not JSON (at byte %d: %v)", syn.Offset, syn)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return "empty frame; a heartbeat is {}"
	}
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return msg
}

// closeReason fits a reason into a close frame (123 bytes), cutting
// it at a UTF-8 boundary.
func closeReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	cut := max - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
