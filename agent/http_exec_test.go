package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	hclog "github.com/hashicorp/go-hclog"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/fakedriver"
	"github.com/droverhq/drover/testutil/mock"
)

// execFixture is a server, a client agent running one allocation of a
// one-task service job on the fake driver (serving), and a server agent
// without a client in front of it (proxy), as the logs tests have.
type execFixture struct {
	s       *server.Server
	c       *client.Client
	drv     *fakedriver.Driver
	serving *Agent
	// servingURL and proxyURL are the two agents' HTTP addresses.
	servingURL, proxyURL string
	allocID              string
	// mgmt is the management token's header (nil without ACLs); token
	// makes a token of one policy.
	mgmt  map[string]string
	token func(name, rules string) map[string]string
}

func newExecFixture(t *testing.T, aclOn bool) *execFixture {
	t.Helper()
	scfg := server.DefaultConfig()
	scfg.DataDir = t.TempDir()
	scfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	scfg.ACLEnabled = aclOn
	scfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Warn})
	s, err := server.NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return s.IsLeader(), nil })
	f := &execFixture{s: s, drv: fakedriver.New()}
	proxyAgent := httpAgent(s)
	proxyAgent.config.ACL = &ACLConfig{Enabled: aclOn}
	var mgmtSecret string
	if aclOn {
		_, body := call(t, proxyAgent.routes(), "PUT", "/v1/acl/bootstrap", "", nil)
		mgmtSecret = decodeAs[aclTokenJSON](t, body).SecretID
		f.mgmt = map[string]string{"X-Drover-Token": mgmtSecret}
		f.token = func(name, rules string) map[string]string {
			t.Helper()
			h := proxyAgent.routes()
			if code, body := call(t, h, "PUT", "/v1/acl/policy/"+name, `{"Rules":`+jsonString(rules)+`}`, f.mgmt); code != 200 {
				t.Fatalf("policy %s: %d %s", name, code, body)
			}
			_, body := call(t, h, "PUT", "/v1/acl/token", `{"Name":"`+name+`","Policies":["`+name+`"]}`, f.mgmt)
			return map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
		}
	}

	serving := httptest.NewUnstartedServer(nil)
	c, err := client.New(&client.Config{
		DataDir: t.TempDir(), NodeName: "exec-node", RPC: s,
		Drivers:     map[string]driver.Driver{"containerd": f.drv},
		CPUTotalMHz: 4000, MemoryTotalMB: 4096,
		HTTPAddr: serving.Listener.Addr().String(), NetworkIP: "127.0.0.1",
		Logger: hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Warn}),
		// The fake driver's tasks outlive the test: a secrets tmpfs
		// would stay mounted in the temp dir.
		SecretsOnDisk: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	<-c.Registered()
	f.c = c
	job := mock.Job()
	job.TaskGroups[0].Count = 1
	var reg structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job, WriteRequest: structs.WriteRequest{AuthToken: mgmtSecret}}, &reg); err != nil {
		t.Fatal(err)
	}
	f.allocID = waitAllocs(t, s, job.ID, 1, structs.AllocClientStatusRunning)[0].ID

	cfg := DefaultConfig()
	cfg.ACL = &ACLConfig{Enabled: aclOn}
	f.serving = &Agent{config: cfg, logger: hclog.NewNullLogger(), rpc: s, client: c}
	serving.Config.Handler = f.serving.routes()
	serving.Start()
	t.Cleanup(serving.Close)
	proxy := httptest.NewServer(proxyAgent.routes())
	t.Cleanup(proxy.Close)
	f.servingURL, f.proxyURL = serving.URL, proxy.URL
	return f
}

// execURL is the exec WebSocket URL of base for the fixture's
// allocation, with query appended.
func (f *execFixture) execURL(base, query string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/v1/client/allocation/" + f.allocID + "/exec?" + query
}

// commandQuery is the query of command as Nomad's JSON form, plus
// extra.
func commandQuery(extra string, command ...string) string {
	b, _ := json.Marshal(command)
	q := "command=" + url.QueryEscape(string(b))
	if extra != "" {
		q += "&" + extra
	}
	return q
}

// dialExec opens an exec WebSocket; on a refused upgrade it returns the
// status and the error body.
func dialExec(t *testing.T, u string, headers map[string]string) (*websocket.Conn, int, string) {
	t.Helper()
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	conn, resp, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		// The error's message, unescaped, when the body is one.
		var eb errorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			return nil, resp.StatusCode, eb.Code + ": " + eb.Error
		}
		return nil, resp.StatusCode, string(b)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, http.StatusSwitchingProtocols, ""
}

// session is what an agent sent over an exec WebSocket until it closed.
type session struct {
	stdout, stderr string
	exitCode       *int
	errFrame       string
	closeCode      int
	closeText      string
}

// readSession reads frames until the connection closes.
func readSession(t *testing.T, conn *websocket.Conn) session {
	t.Helper()
	var s session
	var stdout, stderr bytes.Buffer
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		typ, b, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("read: %v (so far stdout %q stderr %q)", err, stdout.String(), stderr.String())
			}
			s.closeCode, s.closeText = ce.Code, ce.Text
			s.stdout, s.stderr = stdout.String(), stderr.String()
			return s
		}
		if typ != websocket.TextMessage {
			t.Fatalf("the agent sent a frame of type %d", typ)
		}
		var out execOutput
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("frame %q: %v", b, err)
		}
		switch {
		case out.Stdout != nil:
			stdout.Write(out.Stdout.Data)
		case out.Stderr != nil:
			stderr.Write(out.Stderr.Data)
		case out.Exited:
			if out.Result == nil {
				t.Fatalf("exit frame without a result: %s", b)
			}
			code := out.Result.ExitCode
			s.exitCode = &code
		case out.Error != "":
			s.errFrame = out.Error
		default:
			t.Fatalf("unexpected frame %s", b)
		}
	}
}

func sendFrame(t *testing.T, conn *websocket.Conn, frame string) {
	t.Helper()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("send %s: %v", frame, err)
	}
}

// TestClientAllocExec_RunsThroughBothAgents: the same exec answered by
// the agent that runs the allocation and through a server agent that
// proxies it: output on its stream, the exit code, stdin to its end,
// and a terminal's size and resizes.
func TestClientAllocExec_RunsThroughBothAgents(t *testing.T) {
	f := newExecFixture(t, false)
	for _, at := range []struct{ name, url string }{{"serving agent", f.servingURL}, {"proxying agent", f.proxyURL}} {
		t.Run(at.name, func(t *testing.T) {
			conn, code, body := dialExec(t, f.execURL(at.url, commandQuery("stdin=false", "echo", "hello", "there")), nil)
			if conn == nil {
				t.Fatalf("echo: %d %s", code, body)
			}
			s := readSession(t, conn)
			if s.stdout != "hello there\n" || s.exitCode == nil || *s.exitCode != 0 || s.closeCode != websocket.CloseNormalClosure {
				t.Fatalf("echo: %+v", s)
			}

			// Repeated command= values are the other form.
			conn, code, body = dialExec(t, f.execURL(at.url, "command=exit&command=3&task=server"), nil)
			if conn == nil {
				t.Fatalf("exit 3: %d %s", code, body)
			}
			if s := readSession(t, conn); s.exitCode == nil || *s.exitCode != 3 || !strings.Contains(s.closeText, "exited with code 3") {
				t.Fatalf("exit 3: %+v", s)
			}

			conn, code, body = dialExec(t, f.execURL(at.url, commandQuery("", "warn", "to", "stderr")), nil)
			if conn == nil {
				t.Fatalf("warn: %d %s", code, body)
			}
			if s := readSession(t, conn); s.stderr != "to stderr\n" || s.stdout != "" {
				t.Fatalf("warn: %+v", s)
			}

			// stdin, in several frames, then its end.
			conn, code, body = dialExec(t, f.execURL(at.url, commandQuery("", "cat")), nil)
			if conn == nil {
				t.Fatalf("cat: %d %s", code, body)
			}
			sendFrame(t, conn, `{"stdin":{"data":"`+b64("one\n")+`"}}`)
			sendFrame(t, conn, `{}`)
			sendFrame(t, conn, `{"stdin":{"data":"`+b64("two\n")+`"}}`)
			sendFrame(t, conn, `{"stdin":{"close":true}}`)
			if s := readSession(t, conn); s.stdout != "one\ntwo\n" || s.exitCode == nil || *s.exitCode != 0 {
				t.Fatalf("cat: %+v", s)
			}

			// A terminal: the first size, then a resize.
			conn, code, body = dialExec(t, f.execURL(at.url, commandQuery("tty=true", "stty", "size")), nil)
			if conn == nil {
				t.Fatalf("stty: %d %s", code, body)
			}
			sendFrame(t, conn, `{"tty_size":{"height":50,"width":132}}`)
			sendFrame(t, conn, `{"stdin":{"close":true}}`)
			s = readSession(t, conn)
			if s.exitCode == nil || !strings.Contains(s.stdout, "50 132\n") {
				t.Fatalf("stty size after a resize: %+v", s)
			}
		})
	}
	if running, total, _ := f.drv.Execs(); running != 0 || total != 10 {
		t.Fatalf("fake driver: %d execs running, %d in all; want 0 and 10", running, total)
	}
}

// TestClientAllocExec_APIClient: api.Allocations().Exec through the
// proxying agent: stdin from a reader, both streams, the exit code, and
// the errors before and after the upgrade.
func TestClientAllocExec_APIClient(t *testing.T) {
	f := newExecFixture(t, false)
	cl, err := api.NewClient(&api.Config{Address: f.proxyURL})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code, err := cl.Allocations().Exec(context.Background(), f.allocID, api.ExecOptions{
		Command: []string{"cat"}, Stdin: strings.NewReader(strings.Repeat("x", 100_000)), Stdout: &out, Stderr: &errOut,
	})
	if err != nil || code != 0 || out.Len() != 100_000 {
		t.Fatalf("cat of 100 kB: code %d, %d bytes out, err %v", code, out.Len(), err)
	}
	if code, err := cl.Allocations().Exec(context.Background(), f.allocID, api.ExecOptions{Command: []string{"exit", "42"}}); err != nil || code != 42 {
		t.Fatalf("exit 42: %d %v", code, err)
	}
	_, err = cl.Allocations().Exec(context.Background(), f.allocID, api.ExecOptions{Command: []string{"vi"}})
	var ee *api.ExecError
	if !errors.As(err, &ee) || !strings.Contains(ee.Message, `"vi": executable file not found`) {
		t.Fatalf("missing program: %v, want an ExecError naming it", err)
	}
	_, err = cl.Allocations().Exec(context.Background(), f.allocID, api.ExecOptions{Task: "nope", Command: []string{"echo"}})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.Message, `no task "nope"`) {
		t.Fatalf("unknown task: %v, want a 404 naming it", err)
	}
	// Cancelling the context ends the session and kills the process.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cl.Allocations().Exec(ctx, f.allocID, api.ExecOptions{Command: []string{"sleep", "100"}})
		done <- err
	}()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		running, _, _ := f.drv.Execs()
		return running == 1, fmt.Errorf("%d execs running", running)
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled exec: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		running, _, killed := f.drv.Execs()
		return running == 0 && killed == 1, fmt.Errorf("%d execs running, %d killed", running, killed)
	})
}

// TestClientAllocExec_Refusals: what is refused before the upgrade,
// with its status, on both agents.
func TestClientAllocExec_Refusals(t *testing.T) {
	f := newExecFixture(t, false)
	// A batch task that has exited, on the same node.
	done := mock.BatchJob()
	done.TaskGroups[0].Count = 1
	done.TaskGroups[0].Tasks[0].Config.Command = "exit:0"
	var reg structs.JobRegisterResponse
	if err := f.s.RPC("Job.Register", &structs.JobRegisterRequest{Job: done}, &reg); err != nil {
		t.Fatal(err)
	}
	doneID := waitAllocs(t, f.s, done.ID, 1, structs.AllocClientStatusComplete)[0].ID

	huge := make([]string, 0, 20)
	for i := 0; i < 20; i++ {
		huge = append(huge, strings.Repeat("a", 1000))
	}
	cases := []struct {
		name   string
		alloc  string
		query  string
		status int
		want   string
	}{
		{"no command", "", "task=server", 400, "command= is required"},
		{"empty JSON command", "", "command=" + url.QueryEscape("[]"), 400, "the command is empty"},
		{"empty program", "", commandQuery("", ""), 400, "the command is empty"},
		{"bad JSON", "", "command=" + url.QueryEscape(`["sh",`), 400, "not a JSON array of strings"},
		{"huge command", "", commandQuery("", append([]string{"echo"}, huge...)...), 400, "at most 16384 are accepted"},
		{"too many arguments", "", commandQuery("", strings.Fields(strings.Repeat("x ", 300))...), 400, "the command has 300 arguments"},
		{"NUL byte", "", commandQuery("", "echo", "a\x00b"), 400, "NUL byte"},
		{"bad tty", "", commandQuery("tty=maybe", "echo"), 400, `tty="maybe"`},
		{"unknown allocation", "00000000-0000-0000-0000-000000000000", commandQuery("", "echo"), 404, "not found"},
		{"unknown task", "", commandQuery("task=nope", "echo"), 404, `no task "nope"`},
		{"task not running", doneID, commandQuery("", "echo"), 409, "is dead"},
	}
	for _, at := range []struct{ name, url string }{{"serving agent", f.servingURL}, {"proxying agent", f.proxyURL}} {
		for _, tc := range cases {
			t.Run(at.name+"/"+tc.name, func(t *testing.T) {
				alloc := f.allocID
				if tc.alloc != "" {
					alloc = tc.alloc
				}
				u := "ws" + strings.TrimPrefix(at.url, "http") + "/v1/client/allocation/" + alloc + "/exec?" + tc.query
				conn, status, body := dialExec(t, u, nil)
				if conn != nil || status != tc.status || !strings.Contains(body, tc.want) {
					t.Fatalf("%d %s; want %d containing %q", status, body, tc.status, tc.want)
				}
			})
		}
	}
	// A plain GET is told to upgrade.
	resp, err := http.Get(f.servingURL + "/v1/client/allocation/" + f.allocID + "/exec?" + commandQuery("", "echo"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "speaks WebSocket") {
		t.Fatalf("plain GET: %d %s", resp.StatusCode, b)
	}
	// A browser page of another site may not open one.
	if conn, status, body := dialExec(t, f.execURL(f.proxyURL, commandQuery("", "echo")), map[string]string{"Origin": "https://evil.example"}); conn != nil || status != 403 || !strings.Contains(body, "cross-origin") {
		t.Fatalf("cross-origin: %d %s", status, body)
	}
	if _, total, _ := f.drv.Execs(); total != 0 {
		t.Fatalf("the fake driver ran %d execs; every request was refused", total)
	}
}

// TestClientAllocExec_ACL: with ACLs on, alloc-exec in the
// allocation's namespace is needed on the agent that receives the
// request and on the node's agent, which gets the token with the
// proxied request and checks it again.
func TestClientAllocExec_ACL(t *testing.T) {
	f := newExecFixture(t, true)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	f.serving.audit = newAuditLog(auditSettings{path: auditPath, maxBytes: 1 << 20, maxFiles: 2}, hclog.NewNullLogger())
	execer := f.token("execer", `namespace "default" { capabilities = ["alloc-exec"] }`)
	logs := f.token("logs", `namespace "default" { capabilities = ["read-logs", "read-job"] }`)
	elsewhere := f.token("elsewhere", "namespace \"team-b\" {\n  policy = \"write\"\n  capabilities = [\"alloc-exec\"]\n}")
	denied := func(name, hint string) string {
		return `permission_denied: token "` + name + `" lacks capability alloc-exec in namespace "default"` + hint
	}
	for _, at := range []struct{ name, url string }{{"serving agent", f.servingURL}, {"proxying agent", f.proxyURL}} {
		t.Run(at.name, func(t *testing.T) {
			cases := []struct {
				who     string
				headers map[string]string
				status  int
				want    string
			}{
				{"anonymous", nil, 403, denied("anonymous", " (no token was sent: pass -token or set DROVER_TOKEN)")},
				{"read-logs without alloc-exec", logs, 403, denied("logs", "")},
				{"alloc-exec in another namespace", elsewhere, 403, denied("elsewhere", "")},
				{"unknown token", map[string]string{"X-Drover-Token": "nope"}, 403, "token_not_found: ACL token not found"},
				{"alloc-exec", execer, 101, ""},
				{"management", f.mgmt, 101, ""},
			}
			for _, tc := range cases {
				conn, status, body := dialExec(t, f.execURL(at.url, commandQuery("stdin=false", "echo", "ok")), tc.headers)
				if status != tc.status || !strings.Contains(body, tc.want) {
					t.Fatalf("%s: %d %s; want %d %s", tc.who, status, body, tc.status, tc.want)
				}
				if conn != nil {
					if s := readSession(t, conn); s.stdout != "ok\n" {
						t.Fatalf("%s: %+v", tc.who, s)
					}
				}
			}
		})
	}
	// The node's agent does not take a proxy's word: a forwarded
	// request without a token is refused there.
	if conn, status, _ := dialExec(t, f.execURL(f.servingURL, commandQuery("forwarded=1", "echo")), nil); conn != nil || status != 403 {
		t.Fatalf("forwarded request without a token: %d", status)
	}
	// An unknown allocation is 404 with a token that may exec.
	for _, u := range []string{f.servingURL, f.proxyURL} {
		ws := "ws" + strings.TrimPrefix(u, "http") + "/v1/client/allocation/00000000-0000-0000-0000-000000000000/exec?" + commandQuery("", "echo")
		if conn, status, body := dialExec(t, ws, f.mgmt); conn != nil || status != 404 {
			t.Fatalf("%s: unknown allocation: %d %s", u, status, body)
		}
	}
	if _, total, _ := f.drv.Execs(); total != 4 {
		t.Fatalf("the fake driver ran %d execs; want the 4 allowed", total)
	}
	// The serving agent audited every exec it received, run or
	// denied, with the namespace and without the query (the command);
	// a session's line is written once its handler returned.
	// Ran: two direct, two proxied. Denied: the four direct ones
	// (the proxy refuses its four itself) and the forwarded request
	// without a token.
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		var ran, denied403 int
		for _, e := range readAuditFile(t, auditPath) {
			if !strings.HasSuffix(e.Path, "/exec") {
				continue
			}
			if e.Namespace != "default" || e.Method != "GET" {
				t.Fatalf("audit line %+v: want GET in namespace default", e)
			}
			switch e.Status {
			case http.StatusSwitchingProtocols:
				ran++
			case http.StatusForbidden:
				denied403++
			}
		}
		raw, _ := os.ReadFile(auditPath)
		return ran == 4 && denied403 == 5, fmt.Errorf("audit: %d execs ran, %d denied; want 4 and 5:\n%s", ran, denied403, raw)
	})
}

// TestClientAllocExec_HostileClients: frames that break the rules, a
// client that falls silent and one that goes away each end their
// session with the process killed, a close code and a reason, and the
// agent serves the next session.
func TestClientAllocExec_HostileClients(t *testing.T) {
	f := newExecFixture(t, false)
	f.serving.execLimits = execLimits{idle: 500 * time.Millisecond}
	cases := []struct {
		name   string
		query  string
		send   func(conn *websocket.Conn) error
		code   int
		reason string
	}{
		{"binary frame", "", func(c *websocket.Conn) error { return c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}) },
			websocket.CloseUnsupportedData, "binary frames are not accepted"},
		{"oversized frame", "", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte(`{"stdin":{"data":"`+strings.Repeat("A", 100_000)+`"}}`))
		}, websocket.CloseMessageTooBig, "frame of more than 65536 bytes"},
		{"not JSON", "", func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte("hello")) },
			websocket.ClosePolicyViolation, "malformed frame: not JSON"},
		{"unknown field", "", func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte(`{"signal":9}`)) },
			websocket.ClosePolicyViolation, `unknown field "signal"`},
		{"two values", "", func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte(`{} {}`)) },
			websocket.ClosePolicyViolation, "more than one JSON value"},
		{"stdin after its end", "", func(c *websocket.Conn) error {
			if err := c.WriteMessage(websocket.TextMessage, []byte(`{"stdin":{"close":true}}`)); err != nil {
				return err
			}
			return c.WriteMessage(websocket.TextMessage, []byte(`{"stdin":{"data":"eA=="}}`))
		}, websocket.ClosePolicyViolation, "stdin frame after stdin was closed"},
		{"stdin refused", "stdin=false", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte(`{"stdin":{"data":"eA=="}}`))
		}, websocket.ClosePolicyViolation, "the request said stdin=false"},
		{"huge terminal", "tty=true", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte(`{"tty_size":{"height":70000,"width":80}}`))
		}, websocket.ClosePolicyViolation, "outside 0..65535"},
		{"silent client", "", func(*websocket.Conn) error { return nil },
			websocket.ClosePolicyViolation, "no frame from the client in 500ms"},
		// sleep reads no stdin: one frame blocks in the pipe, four
		// wait in the queue, the sixth holds the reading.
		{"stdin the process never takes", "", func(c *websocket.Conn) error {
			for i := 0; i < 2+execStdinQueue; i++ {
				if err := c.WriteMessage(websocket.TextMessage, []byte(`{"stdin":{"data":"eA=="}}`)); err != nil {
					return err
				}
			}
			return nil
		}, websocket.ClosePolicyViolation, "the process took none of its stdin in 500ms"},
	}
	killed := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, status, body := dialExec(t, f.execURL(f.servingURL, commandQuery(tc.query, "sleep", "100")), nil)
			if conn == nil {
				t.Fatalf("dial: %d %s", status, body)
			}
			if err := tc.send(conn); err != nil {
				t.Fatal(err)
			}
			s := readSession(t, conn)
			if s.closeCode != tc.code || !strings.Contains(s.closeText, tc.reason) || s.exitCode != nil {
				t.Fatalf("closed with %d %q (%+v); want %d containing %q", s.closeCode, s.closeText, s, tc.code, tc.reason)
			}
			killed++
			testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
				running, _, k := f.drv.Execs()
				return running == 0 && k == killed, fmt.Errorf("%d execs running, %d killed; want 0 and %d", running, k, killed)
			})
		})
	}

	t.Run("client goes away", func(t *testing.T) {
		conn, status, body := dialExec(t, f.execURL(f.proxyURL, commandQuery("", "sleep", "100")), nil)
		if conn == nil {
			t.Fatalf("dial: %d %s", status, body)
		}
		testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
			running, _, _ := f.drv.Execs()
			return running == 1, fmt.Errorf("%d execs running", running)
		})
		conn.Close() // no close frame: the TCP connection just ends
		killed++
		testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
			running, _, k := f.drv.Execs()
			return running == 0 && k == killed, fmt.Errorf("%d execs running, %d killed", running, k)
		})
	})

	// The agent is fine: the next session runs.
	conn, status, body := dialExec(t, f.execURL(f.proxyURL, commandQuery("stdin=false", "echo", "still", "here")), nil)
	if conn == nil {
		t.Fatalf("dial after the hostile clients: %d %s", status, body)
	}
	if s := readSession(t, conn); s.stdout != "still here\n" || s.exitCode == nil || *s.exitCode != 0 {
		t.Fatalf("after the hostile clients: %+v", s)
	}
}

// TestClientAllocExec_Limits: sessions per allocation are bounded on
// the agent; a slot comes back when a session ends.
func TestClientAllocExec_Limits(t *testing.T) {
	f := newExecFixture(t, false)
	f.serving.execLimits = execLimits{perAlloc: 2, perAgent: 3}
	var conns []*websocket.Conn
	for i := 0; i < 2; i++ {
		conn, status, body := dialExec(t, f.execURL(f.servingURL, commandQuery("", "sleep", "100")), nil)
		if conn == nil {
			t.Fatalf("session %d: %d %s", i, status, body)
		}
		conns = append(conns, conn)
	}
	if conn, status, body := dialExec(t, f.execURL(f.servingURL, commandQuery("", "echo")), nil); conn != nil || status != 429 || !strings.Contains(body, "already has 2 exec sessions") {
		t.Fatalf("third session: %d %s; want 429", status, body)
	}
	conns[0].Close()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		conn, status, body := dialExec(t, f.execURL(f.servingURL, commandQuery("stdin=false", "echo", "again")), nil)
		if conn == nil {
			return false, fmt.Errorf("%d %s", status, body)
		}
		if s := readSession(t, conn); s.stdout != "again\n" {
			t.Fatalf("session after one ended: %+v", s)
		}
		return true, nil
	})
	// The agent-wide limit: the per-agent slots are counted on every
	// allocation.
	var slots execSlots
	l := execLimits{perAlloc: 5, perAgent: 2}.withDefaults()
	r1, err1 := slots.acquire("a", l)
	r2, err2 := slots.acquire("b", l)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := slots.acquire("c", l); err == nil || !strings.Contains(err.Error(), "this agent already serves 2 exec sessions") {
		t.Fatalf("third slot of the agent: %v", err)
	}
	r1()
	r1() // a second release does nothing
	if _, err := slots.acquire("c", l); err != nil {
		t.Fatal(err)
	}
	if _, err := slots.acquire("d", l); err == nil {
		t.Fatal("a double release freed two slots")
	}
	r2()
}

func b64(s string) string {
	b, _ := json.Marshal([]byte(s))
	return strings.Trim(string(b), `"`)
}

// TestClientAllocExec_NomadClient: Nomad's own API client runs a
// command through Drover's exec endpoint (the frames are Nomad's
// shape), with stdin, both streams, a terminal size and the exit code.
func TestClientAllocExec_NomadClient(t *testing.T) {
	f := newExecFixture(t, false)
	nc, err := nomad.NewClient(&nomad.Config{Address: f.proxyURL})
	if err != nil {
		t.Fatal(err)
	}
	alloc, _, err := nc.Allocations().Info(f.allocID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code, err := nc.Allocations().Exec(context.Background(), alloc, "server", false, []string{"cat"},
		strings.NewReader("through nomad\n"), &out, &errOut, nil, nil)
	if err != nil || code != 0 || out.String() != "through nomad\n" {
		t.Fatalf("cat: code %d, %q, %v", code, out.String(), err)
	}
	code, err = nc.Allocations().Exec(context.Background(), alloc, "server", false, []string{"exit", "5"},
		strings.NewReader(""), &out, &errOut, nil, nil)
	if err != nil || code != 5 {
		t.Fatalf("exit 5: code %d, %v", code, err)
	}
	sizes := make(chan nomad.TerminalSize, 1)
	sizes <- nomad.TerminalSize{Height: 33, Width: 99}
	out.Reset()
	code, err = nc.Allocations().Exec(context.Background(), alloc, "server", true, []string{"stty", "size"},
		strings.NewReader(""), &out, &errOut, sizes, nil)
	if err != nil || code != 0 || !strings.HasPrefix(out.String(), "33 99\n") {
		t.Fatalf("stty size with a terminal: code %d, %q, %v", code, out.String(), err)
	}
}
