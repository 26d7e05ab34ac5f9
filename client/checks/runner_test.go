package checks

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

// recorder collects OnChange calls.
type recorder struct {
	mu    sync.Mutex
	calls []map[string]*structs.CheckStatus
}

func (r *recorder) onChange(m map[string]*structs.CheckStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, m)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// serverPort returns the port of an httptest server.
func serverPort(t *testing.T, s *httptest.Server) int {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// closedPort returns a port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// service is a group service "web" on port label "http" with one check.
func service(check *structs.ServiceCheck) *structs.Service {
	if check.Name == "" {
		check.Name = "web-" + check.Type
	}
	return &structs.Service{Name: "web", PortLabel: "http", Checks: []*structs.ServiceCheck{check}}
}

// newRunner returns a started Runner without jitter, stopped when the
// test ends.
func newRunner(t *testing.T, port int, rec *recorder, services ...*structs.Service) *Runner {
	t.Helper()
	r := New(Config{Services: services, Address: "127.0.0.1", Ports: map[string]int{"http": port}, OnChange: rec.onChange})
	r.jitter = func(time.Duration) time.Duration { return 0 }
	t.Cleanup(r.Stop)
	return r
}

// waitStatus waits until the check key has the status, and returns it.
func waitStatus(t *testing.T, r *Runner, key, status string) *structs.CheckStatus {
	t.Helper()
	var st *structs.CheckStatus
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		st = r.Statuses()[key]
		if st == nil {
			return false, fmt.Errorf("no check %s", key)
		}
		return st.Status == status, fmt.Errorf("check %s is %s (%q), want %s", key, st.Status, st.Output, status)
	})
	return st
}

func TestRunner_HTTPStatuses(t *testing.T) {
	cases := []struct {
		name   string
		code   int
		status string
	}{
		{"ok", http.StatusOK, structs.ServiceStatusPassing},
		{"no content", http.StatusNoContent, structs.ServiceStatusPassing},
		{"redirect not followed", http.StatusFound, structs.ServiceStatusPassing},
		{"too many requests", http.StatusTooManyRequests, structs.ServiceStatusWarning},
		{"server error", http.StatusInternalServerError, structs.ServiceStatusCritical},
		{"unavailable", http.StatusServiceUnavailable, structs.ServiceStatusCritical},
		{"not found", http.StatusNotFound, structs.ServiceStatusCritical},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var paths sync.Map
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				paths.Store(req.URL.Path, req.UserAgent())
				if tc.code == http.StatusFound {
					http.Redirect(w, req, "/elsewhere", tc.code)
					return
				}
				w.WriteHeader(tc.code)
			}))
			defer srv.Close()
			rec := &recorder{}
			r := newRunner(t, serverPort(t, srv), rec, service(&structs.ServiceCheck{Type: "http", Path: "/health", Interval: time.Hour, Timeout: time.Second}))
			r.Start()
			want := fmt.Sprintf("HTTP %d", tc.code)
			var st *structs.CheckStatus
			testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
				st = r.Statuses()["web/web-http"]
				return st.Output == want, fmt.Errorf("status %+v, want output %q", st, want)
			})
			if st.Status != tc.status || st.Service != "web" || st.Check != "web-http" || st.Timestamp == 0 {
				t.Fatalf("status %+v, want %s", st, tc.status)
			}
			if ua, ok := paths.Load("/health"); !ok || ua != userAgent {
				t.Fatalf("GET /health not seen with the check's user agent (%v)", ua)
			}
			if _, ok := paths.Load("/elsewhere"); ok {
				t.Fatal("the check followed a redirect")
			}
		})
	}
}

func TestRunner_HTTPTimeoutIsCritical(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	r := newRunner(t, serverPort(t, srv), &recorder{}, service(&structs.ServiceCheck{Type: "http", Path: "/", Interval: time.Hour, Timeout: 50 * time.Millisecond}))
	r.Start()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		st := r.Statuses()["web/web-http"]
		return st.Output == "timed out after 50ms", fmt.Errorf("status %+v", st)
	})
	if st := r.Statuses()["web/web-http"]; st.Status != structs.ServiceStatusCritical {
		t.Fatalf("status %+v, want critical", st)
	}
}

func TestRunner_TCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	cases := []struct {
		name   string
		port   int
		status string
	}{
		{"listening", l.Addr().(*net.TCPAddr).Port, structs.ServiceStatusPassing},
		{"closed port", closedPort(t), structs.ServiceStatusCritical},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunner(t, tc.port, &recorder{}, service(&structs.ServiceCheck{Type: "tcp", Interval: time.Hour, Timeout: time.Second}))
			r.Start()
			testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
				st := r.Statuses()["web/web-tcp"]
				return st.Output != outputNotYetChecked, fmt.Errorf("status %+v", st)
			})
			if st := r.Statuses()["web/web-tcp"]; st.Status != tc.status {
				t.Fatalf("status %+v, want %s", st, tc.status)
			}
		})
	}
}

func TestRunner_StartsCriticalUntilChecked(t *testing.T) {
	r := newRunner(t, closedPort(t), &recorder{}, service(&structs.ServiceCheck{Type: "tcp", Interval: time.Hour, Timeout: time.Second}))
	st := r.Statuses()["web/web-tcp"]
	if st == nil || st.Status != structs.ServiceStatusCritical || st.Output != outputNotYetChecked {
		t.Fatalf("before the first probe: %+v, want critical, %q", st, outputNotYetChecked)
	}
}

func TestRunner_MissingPortIsCriticalAndNotProbed(t *testing.T) {
	s := service(&structs.ServiceCheck{Type: "tcp", Interval: 10 * time.Millisecond, Timeout: time.Second})
	s.PortLabel = "admin"
	rec := &recorder{}
	r := newRunner(t, 1234, rec, s)
	r.Start()
	st := r.Statuses()["web/web-tcp"]
	if st.Status != structs.ServiceStatusCritical || !strings.Contains(st.Output, `"admin"`) {
		t.Fatalf("status %+v, want critical naming the port label", st)
	}
}

// Status changes, not probes, are reported: the client turns each call
// into a Raft write.
func TestRunner_CallsOnChangeOnlyOnStatusChanges(t *testing.T) {
	var probes atomic.Int64
	var code atomic.Int64
	code.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		probes.Add(1)
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	rec := &recorder{}
	r := newRunner(t, serverPort(t, srv), rec, service(&structs.ServiceCheck{Type: "http", Path: "/", Interval: 5 * time.Millisecond, Timeout: time.Second}))
	r.Start()
	waitProbes := func(n int64) {
		t.Helper()
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
			return probes.Load() >= n, fmt.Errorf("%d probes, want %d", probes.Load(), n)
		})
	}
	waitProbes(10)
	if n := rec.count(); n != 1 {
		t.Fatalf("%d callbacks after %d passing probes, want 1 (critical to passing)", n, probes.Load())
	}
	code.Store(http.StatusInternalServerError)
	before := probes.Load()
	waitProbes(before + 10)
	rec.mu.Lock()
	calls := append([]map[string]*structs.CheckStatus(nil), rec.calls...)
	rec.mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("%d callbacks, want 2 (passing, then critical)", len(calls))
	}
	if got := calls[0]["web/web-http"].Status; got != structs.ServiceStatusPassing {
		t.Fatalf("first callback %s, want passing", got)
	}
	if got := calls[1]["web/web-http"]; got.Status != structs.ServiceStatusCritical || got.Output != "HTTP 500" {
		t.Fatalf("second callback %+v, want critical HTTP 500", got)
	}
}

// A check failing from the start stays critical, but its first result
// is reported once: it says why.
func TestRunner_ReportsTheFirstResultOnce(t *testing.T) {
	var probes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		probes.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	rec := &recorder{}
	r := newRunner(t, serverPort(t, srv), rec, service(&structs.ServiceCheck{Type: "http", Path: "/", Interval: 5 * time.Millisecond, Timeout: time.Second}))
	r.Start()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		return probes.Load() >= 10, fmt.Errorf("%d probes", probes.Load())
	})
	r.Stop()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.calls) != 1 {
		t.Fatalf("%d callbacks after %d critical probes, want 1", len(rec.calls), probes.Load())
	}
	if st := rec.calls[0]["web/web-http"]; st.Status != structs.ServiceStatusCritical || st.Output != "HTTP 502" {
		t.Fatalf("callback %+v, want critical HTTP 502", st)
	}
}

func TestRunner_TaskChecksRunOnlyWhileTheTaskRuns(t *testing.T) {
	var probes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { probes.Add(1) }))
	defer srv.Close()
	s := service(&structs.ServiceCheck{Type: "http", Path: "/", Interval: 5 * time.Millisecond, Timeout: time.Second})
	s.TaskName = "server"
	rec := &recorder{}
	r := newRunner(t, serverPort(t, srv), rec, s)
	r.Start()
	// The loop's first pass finds the task stopped and says so (one
	// callback); wait for it, or the task may start before the loop
	// looks and the count below would depend on the scheduler.
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		st := r.Statuses()["web/web-http"]
		return st.Output == "task server is not running" && rec.count() == 1, fmt.Errorf("%+v, %d callbacks", st, rec.count())
	})
	if probes.Load() != 0 {
		t.Fatalf("%d probes of a task that never ran", probes.Load())
	}
	r.SetTaskRunning("server", true)
	waitStatus(t, r, "web/web-http", structs.ServiceStatusPassing)
	r.SetTaskRunning("server", false)
	st := waitStatus(t, r, "web/web-http", structs.ServiceStatusCritical)
	if st.Output != "task server is not running" {
		t.Fatalf("output %q, want the task named", st.Output)
	}
	r.SetTaskRunning("server", true)
	waitStatus(t, r, "web/web-http", structs.ServiceStatusPassing)
	// Stop waits for the probe in flight: none is counted after it.
	r.Stop()
	after := probes.Load()
	// Callbacks: not running, passing, not running, passing.
	if after == 0 || rec.count() != 4 {
		t.Fatalf("%d probes, %d callbacks; want probes and 4 callbacks", after, rec.count())
	}
}

// Stop ends every goroutine, a probe hanging on a slow server's answer
// included, and closes its connections.
func TestRunner_StopLeavesNoGoroutines(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/hang" {
			select {
			case <-hang:
			case <-req.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(hang)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	before := runtime.NumGoroutine()
	var runners []*Runner
	for i := 0; i < 5; i++ {
		r := New(Config{
			Services: []*structs.Service{
				{Name: "web", PortLabel: "http", Checks: []*structs.ServiceCheck{
					{Name: "ok", Type: "http", Path: "/", Interval: 5 * time.Millisecond, Timeout: time.Second},
					{Name: "hang", Type: "http", Path: "/hang", Interval: 5 * time.Millisecond, Timeout: time.Hour},
				}},
				{Name: "raw", PortLabel: "tcp", Checks: []*structs.ServiceCheck{
					{Name: "closed", Type: "tcp", Interval: 5 * time.Millisecond, Timeout: time.Second},
				}},
			},
			Address: "127.0.0.1",
			Ports:   map[string]int{"http": serverPort(t, srv), "tcp": closedPort(t)},
		})
		r.Start()
		runners = append(runners, r)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		for _, r := range runners {
			if st := r.Statuses()["web/ok"]; st.Status != structs.ServiceStatusPassing {
				return false, fmt.Errorf("check web/ok %+v", st)
			}
		}
		return true, nil
	})
	for _, r := range runners {
		r.Stop()
	}
	// The server's side of the closed connections ends on its own.
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		n := runtime.NumGoroutine()
		return n <= before, fmt.Errorf("%d goroutines, %d before the runners started", n, before)
	})
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("a", maxOutput-1) + "é" + "tail"
	got := truncate(long)
	if len(got) != maxOutput-1 || !strings.HasPrefix(long, got) {
		t.Fatalf("truncate kept %d bytes, want %d without splitting é", len(got), maxOutput-1)
	}
	if s := "short"; truncate(s) != s {
		t.Fatal("a short output was changed")
	}
}
