package agent

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

func TestDecodeExecInput(t *testing.T) {
	accepted := []struct {
		name  string
		frame string
		want  execInput
	}{
		{"heartbeat", `{}`, execInput{}},
		{"heartbeat with spaces", " {}\n", execInput{}},
		{"stdin data", `{"stdin":{"data":"aGk="}}`, execInput{Stdin: &execStreamOp{Data: []byte("hi")}}},
		{"stdin close", `{"stdin":{"close":true}}`, execInput{Stdin: &execStreamOp{Close: true}}},
		{"tty size", `{"tty_size":{"height":24,"width":80}}`, execInput{TTYSize: &execTTYSize{Height: 24, Width: 80}}},
		{"zero size (Nomad omits zeros)", `{"tty_size":{}}`, execInput{TTYSize: &execTTYSize{}}},
		{"null fields", `{"stdin":null,"tty_size":null}`, execInput{}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			in, err := decodeExecInput([]byte(tc.frame))
			if err != nil || !reflect.DeepEqual(*in, tc.want) {
				t.Fatalf("%+v %v, want %+v", in, err, tc.want)
			}
		})
	}
	refused := []struct {
		name   string
		frame  string
		code   int
		reason string
	}{
		{"empty", ``, websocket.ClosePolicyViolation, "empty frame; a heartbeat is {}"},
		{"not JSON", `hello`, websocket.ClosePolicyViolation, "not JSON"},
		{"an array", `[1]`, websocket.ClosePolicyViolation, "must be agent.execInput, not a JSON array"},
		{"unknown field", `{"stdout":{"data":"aGk="}}`, websocket.ClosePolicyViolation, `unknown field "stdout"`},
		{"two objects", `{}{}`, websocket.ClosePolicyViolation, "more than one JSON value"},
		{"trailing garbage", `{} x`, websocket.ClosePolicyViolation, "after the object"},
		{"stdin and size", `{"stdin":{"close":true},"tty_size":{"height":1,"width":1}}`, websocket.ClosePolicyViolation, "stdin and tty_size in one frame"},
		{"data and close", `{"stdin":{"data":"aGk=","close":true}}`, websocket.ClosePolicyViolation, "both data and close"},
		{"neither data nor close", `{"stdin":{}}`, websocket.ClosePolicyViolation, "without data or close"},
		{"bad base64", `{"stdin":{"data":"!!"}}`, websocket.ClosePolicyViolation, "malformed frame"},
		{"negative size", `{"tty_size":{"height":-1,"width":80}}`, websocket.ClosePolicyViolation, "outside 0..65535"},
		{"huge size", `{"tty_size":{"height":24,"width":65536}}`, websocket.ClosePolicyViolation, "outside 0..65535"},
		{"size of the wrong type", `{"tty_size":{"height":"24"}}`, websocket.ClosePolicyViolation, "must be int, not a JSON string"},
		{"too big", `{"stdin":{"data":"` + strings.Repeat("A", maxExecFrameBytes) + `"}}`, websocket.CloseMessageTooBig, "frame of more than 65536 bytes"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			in, err := decodeExecInput([]byte(tc.frame))
			var ce *execCloseError
			if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("%+v %v; want close %d with %q", in, err, tc.code, tc.reason)
			}
		})
	}
}

func TestCloseReason(t *testing.T) {
	if got := closeReason("short"); got != "short" {
		t.Fatalf("%q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes
	got := closeReason(long)
	if len(got) > 123 || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Fatalf("%d bytes %q: want at most 123, valid UTF-8, ending in ...", len(got), got)
	}
}

func TestParseExecRequest(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  execRequest
	}{
		{`command=["sh","-c","exit 3"]`, execRequest{command: []string{"sh", "-c", "exit 3"}, stdin: true}},
		{`command=sh&command=-c&command=exit 3&task=web&tty=true&stdin=false`, execRequest{task: "web", command: []string{"sh", "-c", "exit 3"}, tty: true}},
		{`command=[`, execRequest{}},
		{`command=[&command=x`, execRequest{command: []string{"[", "x"}, stdin: true}},
	} {
		q, err := url.ParseQuery(strings.ReplaceAll(tc.query, " ", "%20"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseExecRequest(q)
		if tc.want.command == nil {
			if err == nil {
				t.Errorf("%s: accepted %+v", tc.query, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%s: %+v %v, want %+v", tc.query, got, err, tc.want)
		}
	}
}

// FuzzExecFrameDecode feeds arbitrary frames to the exec stream's
// decoder. Invariants: it never panics; a refusal is an *execCloseError
// with a close code the agent uses and a reason that fits a close frame
// once cut (closeReason) and says what was wrong; an accepted frame
// sets at most one field, keeps the size in range, and survives a
// round trip through its JSON unchanged.
func FuzzExecFrameDecode(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"stdin":{"data":"aGk="}}`, `{"stdin":{"close":true}}`,
		`{"tty_size":{"height":24,"width":80}}`, `{"tty_size":{"height":-1}}`,
		`{"stdin":{"data":"aGk=","close":true}}`, `{"stdin":{}}`, `{"x":1}`,
		`{} {}`, `[]`, `null`, `"s"`, ``, `{"stdin":{"data":"!"}}`,
		`{"STDIN":{"Data":"aGk="}}`, `{"tty_size":{"height":1e3}}`,
	} {
		f.Add([]byte(s))
	}
	codes := map[int]bool{websocket.ClosePolicyViolation: true, websocket.CloseMessageTooBig: true}
	f.Fuzz(func(t *testing.T, frame []byte) {
		in, err := decodeExecInput(frame)
		if err != nil {
			var ce *execCloseError
			if !errors.As(err, &ce) {
				t.Fatalf("refusal %T %v is not an execCloseError", err, err)
			}
			if !codes[ce.Code] || ce.Reason == "" {
				t.Fatalf("refusal with code %d reason %q", ce.Code, ce.Reason)
			}
			if r := closeReason(ce.Reason); len(r) > 123 {
				t.Fatalf("reason of %d bytes after the cut", len(r))
			}
			// The control frame the agent would send is accepted by
			// the library.
			if msg := websocket.FormatCloseMessage(ce.Code, closeReason(ce.Reason)); len(msg) > 125 {
				t.Fatalf("close frame of %d bytes", len(msg))
			}
			return
		}
		if in.Stdin != nil && in.TTYSize != nil {
			t.Fatalf("accepted both fields: %s", frame)
		}
		if s := in.Stdin; s != nil && s.Close == (len(s.Data) > 0) {
			t.Fatalf("accepted stdin %+v", s)
		}
		if z := in.TTYSize; z != nil && (z.Width < 0 || z.Width > 65535 || z.Height < 0 || z.Height > 65535) {
			t.Fatalf("accepted size %+v", z)
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeExecInput(b)
		if err != nil || !reflect.DeepEqual(in, again) {
			t.Fatalf("round trip of %s: %s -> %+v %v", frame, b, again, err)
		}
	})
}
