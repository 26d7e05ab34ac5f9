package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// limitsAgent starts a real server agent on 127.0.0.1 with the given
// limits block.
func limitsAgent(t *testing.T, limits *Limits) *Agent {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BindAddr = "127.0.0.1"
	cfg.Ports = &Ports{HTTP: freePort(t), RPC: freePort(t), Gossip: freePort(t)}
	cfg.DataDir = t.TempDir()
	cfg.NodeName = "limits"
	cfg.Server.Enabled = true
	cfg.Limits = limits
	a, err := New(cfg, hclog.New(&hclog.LoggerOptions{Name: "agent", Level: hclog.Warn}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return a.server.IsLeader(), nil })
	return a
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func intp(n int) *int { return &n }

// jobsIndex is the index GET /v1/jobs reports: a blocking query on it
// waits for the next job write.
func jobsIndex(t *testing.T, a *Agent) uint64 {
	t.Helper()
	// No keep-alive: the connection must not count against the limits
	// afterwards.
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + a.HTTPAddr() + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	idx, err := strconv.ParseUint(resp.Header.Get("X-Drover-Index"), 10, 64)
	if err != nil || idx == 0 {
		t.Fatalf("GET /v1/jobs: index %q (%v)", resp.Header.Get("X-Drover-Index"), err)
	}
	return idx
}

// rawConn is an HTTP/1.1 connection driven by hand, so tests control
// exactly which connections exist.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialFrom(t *testing.T, from, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// send writes a request without waiting for the answer.
func (rc *rawConn) send(method, path, body string) {
	rc.t.Helper()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: agent\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	if _, err := rc.c.Write([]byte(req)); err != nil {
		rc.t.Fatal(err)
	}
}

// answer reads one response.
func (rc *rawConn) answer() (*http.Response, string) {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// closed reports whether the agent closed the connection (EOF within a
// few seconds).
func (rc *rawConn) closed() bool {
	// Longer than the overflow server's 2s deadlines (a silent overflow
	// connection is closed after them), shorter than the RPC port's 5s
	// handshake timeout (which would close a connection the limit let
	// through, and pass the test for the wrong reason).
	_ = rc.c.SetReadDeadline(time.Now().Add(3500 * time.Millisecond))
	// Whatever the agent answered first, the connection must end.
	_, err := io.Copy(io.Discard, rc.r)
	if err == nil {
		return true // EOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestAgent_HTTPConnectionLimit: a client at its connection limit still
// gets health checks answered, gets 429 for anything else (and nothing
// it sends is acted on), hostile overflow connections are closed, and a
// client from another address is unaffected.
func TestAgent_HTTPConnectionLimit(t *testing.T) {
	a := limitsAgent(t, &Limits{HTTPMaxConnsPerClient: intp(2)})
	addr := a.HTTPAddr()

	// Two connections busy with blocking queries fill the limit.
	idx := jobsIndex(t, a)
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		n := a.httpLimiter.OpenFrom("127.0.0.1")
		return n == 0, fmt.Errorf("%d connections from 127.0.0.1 still open", n)
	})
	for i := 0; i < 2; i++ {
		dialFrom(t, "127.0.0.1", addr).send("GET", fmt.Sprintf("/v1/jobs?index=%d&wait=1m", idx), "")
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		n, w := a.httpLimiter.OpenFrom("127.0.0.1"), a.blocking.waiting("127.0.0.1")
		return n == 2 && w == 2, fmt.Errorf("%d open connections and %d blocking queries from 127.0.0.1, want 2 and 2", n, w)
	})

	t.Run("health is answered", func(t *testing.T) {
		rc := dialFrom(t, "127.0.0.1", addr)
		rc.send("GET", "/v1/agent/health", "")
		if resp, body := rc.answer(); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"server"`) {
			t.Fatalf("health over the limit: %d %s", resp.StatusCode, body)
		}
		if !rc.closed() {
			t.Fatal("an overflow connection stayed open after its one answer")
		}
	})
	t.Run("anything else is 429", func(t *testing.T) {
		job := mock.Job()
		body, _ := json.Marshal(map[string]interface{}{"Job": job})
		for _, req := range []struct{ method, path, body string }{
			{"GET", "/v1/jobs", ""},
			{"PUT", "/v1/jobs", string(body)},
			{"GET", "/v1/agent/self", ""},
		} {
			rc := dialFrom(t, "127.0.0.1", addr)
			rc.send(req.method, req.path, req.body)
			resp, b := rc.answer()
			var eb errorBody
			if resp.StatusCode != http.StatusTooManyRequests || json.Unmarshal([]byte(b), &eb) != nil || eb.Code != structs.CodeTooManyRequests ||
				!strings.Contains(eb.Error, "http_max_conns_per_client") {
				t.Fatalf("%s %s over the limit: %d %s; want 429 too_many_requests naming the limit", req.method, req.path, resp.StatusCode, b)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		}
		if jobs, _ := a.server.State().Jobs(nil); len(jobs) != 0 {
			t.Fatalf("a job registered over the limit was stored: %d jobs", len(jobs))
		}
	})
	t.Run("hostile overflow connections are closed", func(t *testing.T) {
		garbage := dialFrom(t, "127.0.0.1", addr)
		if _, err := garbage.c.Write([]byte("\x16\x03\x01garbage\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if !garbage.closed() {
			t.Fatal("a garbage overflow connection stayed open")
		}
		silent := dialFrom(t, "127.0.0.1", addr)
		if !silent.closed() {
			t.Fatalf("a silent overflow connection outlived the %s deadline", overflowTimeout)
		}
	})
	t.Run("another address is unaffected", func(t *testing.T) {
		rc := dialFrom(t, "127.0.0.2", addr)
		rc.send("GET", "/v1/jobs", "")
		if resp, body := rc.answer(); resp.StatusCode != http.StatusOK {
			t.Fatalf("another client: %d %s", resp.StatusCode, body)
		}
	})
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		st := a.httpLimiter.Stats()
		return st.Overflowed >= 6 && st.OverflowOpen == 0, fmt.Errorf("limiter stats %+v: want every over-limit connection overflowed and closed", st)
	})
}

// TestAgent_RPCConnectionLimit: the RPC port closes connections over the
// per-client limit at once, before reading anything, and keeps serving
// the connections within it.
func TestAgent_RPCConnectionLimit(t *testing.T) {
	a := limitsAgent(t, &Limits{RPCMaxConnsPerClient: intp(2)})
	rpcAddr := a.server.RPCAddr().String()

	idle := dialFrom(t, "127.0.0.1", rpcAddr)
	pool := rpcpool.New()
	defer pool.Shutdown()
	var leader string
	if err := pool.RPC(rpcAddr, "Status.Leader", &structs.GenericRequest{}, &leader); err != nil {
		t.Fatalf("RPC within the limit: %v", err)
	}
	over := dialFrom(t, "127.0.0.1", rpcAddr)
	if !over.closed() {
		t.Fatal("a third RPC connection from one address stayed open")
	}
	// The pooled session still works, and another address is not
	// limited by this one.
	if err := pool.RPC(rpcAddr, "Status.Leader", &structs.GenericRequest{}, &leader); err != nil || leader == "" {
		t.Fatalf("RPC after a refused connection: %q, %v", leader, err)
	}
	// (The server closes a connection that sends no protocol byte
	// after its handshake timeout, 5 s: look for less than that.)
	other := dialFrom(t, "127.0.0.2", rpcAddr)
	_ = other.c.SetReadDeadline(time.Now().Add(time.Second))
	var ne net.Error
	if _, err := other.r.ReadByte(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a connection from another address was closed: %v", err)
	}
	_ = idle
}

// TestAgent_BlockingQueryCap: a client's blocking queries over the cap
// are answered at once with the current index and a header, and the
// count goes down as queries end.
func TestAgent_BlockingQueryCap(t *testing.T) {
	a := limitsAgent(t, &Limits{HTTPMaxConnsPerClient: intp(0), MaxBlockingQueriesPerClient: intp(2)})
	base := "http://" + a.HTTPAddr()
	idx := jobsIndex(t, a)
	url := fmt.Sprintf("%s/v1/jobs?index=%d&wait=1m", base, idx)

	type result struct {
		status     int
		notBlocked string
		index      string
		err        error
	}
	get := func(ctx context.Context) result {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		// One connection per query, as separate clients would.
		cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := cl.Do(req)
		if err != nil {
			return result{err: err}
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return result{status: resp.StatusCode, notBlocked: resp.Header.Get(HeaderNotBlocked), index: resp.Header.Get("X-Drover-Index")}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	blocked := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() { blocked <- get(ctx) }()
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		select {
		case r := <-blocked:
			t.Fatalf("a blocking query returned at once: %+v", r)
		default:
		}
		n := a.blocking.waiting("127.0.0.1")
		return n == 2, fmt.Errorf("%d blocking queries waiting, want 2", n)
	})

	third := get(context.Background())
	if third.err != nil || third.status != http.StatusOK || third.notBlocked == "" || third.index != strconv.FormatUint(idx, 10) {
		t.Fatalf("third blocking query: %+v; want 200 at once with %s and index %d", third, HeaderNotBlocked, idx)
	}
	select {
	case r := <-blocked:
		t.Fatalf("a query within the cap returned before anything changed: %+v", r)
	default:
	}

	// A write wakes the two; their slots are given back.
	var resp structs.JobRegisterResponse
	if err := a.server.RPC("Job.Register", &structs.JobRegisterRequest{Job: mock.Job()}, &resp); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if r := <-blocked; r.err != nil || r.status != http.StatusOK || r.notBlocked != "" {
			t.Fatalf("blocked query: %+v", r)
		}
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		n := a.blocking.waiting("127.0.0.1")
		return n == 0, fmt.Errorf("%d blocking queries still counted", n)
	})
}

func TestParseQueryOptions_Wait(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  time.Duration
		err   bool
	}{
		{"wait=30s", 30 * time.Second, false},
		{"wait=45", 45 * time.Second, false},
		{"wait=20m", structs.MaxQueryTime, false},
		{"wait=86400", structs.MaxQueryTime, false},
		{"wait=9999999999999", 0, true},
		{"wait=-5s", 0, true},
		{"wait=soon", 0, true},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/v1/jobs?index=5&"+tc.query, nil)
			var q structs.QueryOptions
			err := parseQueryOptions(r, &q)
			if tc.err {
				var ce *structs.CodedError
				if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
					t.Fatalf("err = %v, want a 400", err)
				}
				return
			}
			if err != nil || q.MaxQueryTime != tc.want || q.MinQueryIndex != 5 {
				t.Fatalf("wait %v index %d err %v; want %v, 5", q.MaxQueryTime, q.MinQueryIndex, err, tc.want)
			}
		})
	}
	// Over the blocking-query cap the index is dropped: no wait.
	r, _ := http.NewRequest("GET", "/v1/jobs?index=5", nil)
	r = r.WithContext(context.WithValue(r.Context(), notBlockedKey{}, true))
	var q structs.QueryOptions
	if err := parseQueryOptions(r, &q); err != nil || q.MinQueryIndex != 0 {
		t.Fatalf("over the cap: index %d, err %v; want 0", q.MinQueryIndex, err)
	}
}

func TestConfig_OverloadLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits *Limits
		want   overloadLimits
		err    string
	}{
		{"defaults", &Limits{}, overloadLimits{100, 100, 64}, ""},
		{"no block", nil, overloadLimits{100, 100, 64}, ""},
		{"zero disables", &Limits{HTTPMaxConnsPerClient: intp(0), RPCMaxConnsPerClient: intp(0), MaxBlockingQueriesPerClient: intp(0)}, overloadLimits{}, ""},
		{"set", &Limits{HTTPMaxConnsPerClient: intp(5), MaxBlockingQueriesPerClient: intp(7)}, overloadLimits{5, 100, 7}, ""},
		{"negative", &Limits{RPCMaxConnsPerClient: intp(-1)}, overloadLimits{}, "rpc_max_conns_per_client = -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Limits = tc.limits
			got, err := c.overloadLimits()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("overloadLimits = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestHTTPServer_BodylessRequestsOutliveReadTimeout: the read timeout
// bounds reading requests, but a long read (a blocking query, a
// followed log) keeps its context past it.
func TestHTTPServer_BodylessRequestsOutliveReadTimeout(t *testing.T) {
	a := httpAgent(nil)
	cancelled := make(chan bool, 1)
	srv := a.newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(600 * time.Millisecond):
			cancelled <- false
		}
	}))
	srv.ReadTimeout = 100 * time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	resp, err := http.Get("http://" + l.Addr().String() + "/v1/jobs?index=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if <-cancelled {
		t.Fatal("a body-less request's context was cancelled when the read timeout passed")
	}
}
