package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

func TestGateway_NoRouteAndNoInstanceAnswerJSON(t *testing.T) {
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{
		service("web", []*structs.ServiceRoute{{Host: "web.example.com", Path: "/"}},
			&structs.ServiceInstance{Address: "127.0.0.1", Port: 1, Status: structs.ServiceStatusCritical}),
	})
	c := testClient(g.HTTPAddr())

	code, body := get(t, c, "http://x.example.org/y")
	if code != http.StatusNotFound {
		t.Fatalf("no route: HTTP %d, want 404", code)
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != `no route for host "x.example.org" path "/y"` {
		t.Fatalf("no route body = %q (%v)", body, err)
	}

	code, body = get(t, c, "http://web.example.com/")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("no passing instance: HTTP %d, want 503", code)
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, `no passing instance of service "web"`) {
		t.Fatalf("503 body = %q (%v)", body, err)
	}
}

func TestGateway_StripPrefixAndForwardedHeaders(t *testing.T) {
	be := startBackend(t, "b1")
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{
		service("api", []*structs.ServiceRoute{{Host: "shop.example.com", Path: "/api", StripPrefix: true}, {Host: "shop.example.com", Path: "/keep"}},
			instance(t, be.addr, false)),
	})
	c := testClient(g.HTTPAddr())
	for _, tc := range []struct{ path, want string }{
		{"/api/items?x=1", "b1 /items"},
		{"/api", "b1 /"},
		{"/keep/a", "b1 /keep/a"},
	} {
		code, body := get(t, c, "http://shop.example.com"+tc.path)
		if code != 200 || body != tc.want {
			t.Fatalf("%s: HTTP %d %q, want 200 %q", tc.path, code, body, tc.want)
		}
	}
	code, _ := get(t, c, "http://shop.example.com/apix")
	if code != http.StatusNotFound {
		t.Fatalf("/apix: HTTP %d, want 404 (segment-aware)", code)
	}
	get(t, c, "http://shop.example.com/api/q?x=1")
	r := be.last()
	if r.URL.RawQuery != "x=1" {
		t.Errorf("query = %q, want x=1", r.URL.RawQuery)
	}
	if r.Host != "shop.example.com" {
		t.Errorf("Host = %q, want shop.example.com", r.Host)
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want 127.0.0.1", got)
	}
	if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want http", got)
	}
	if got := r.Header.Get("X-Forwarded-Host"); got != "shop.example.com" {
		t.Errorf("X-Forwarded-Host = %q, want shop.example.com", got)
	}
}

func TestGateway_SpreadsOverBackends(t *testing.T) {
	var insts []*structs.ServiceInstance
	for _, n := range []string{"b1", "b2", "b3"} {
		insts = append(insts, instance(t, startBackend(t, n).addr, false))
	}
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Path: "/"}}, insts...)})
	c := testClient(g.HTTPAddr())
	counts := map[string]int{}
	for i := 0; i < 300; i++ {
		code, body := get(t, c, "http://web/")
		if code != 200 {
			t.Fatalf("request %d: HTTP %d %s", i, code, body)
		}
		counts[strings.Fields(body)[0]]++
	}
	for _, n := range []string{"b1", "b2", "b3"} {
		if counts[n] < 75 {
			t.Fatalf("spread %v: %s got fewer than 25%%", counts, n)
		}
	}
}

func TestGateway_CanaryWeight(t *testing.T) {
	var insts []*structs.ServiceInstance
	for i, n := range []string{"canary", "b1", "b2", "b3", "b4"} {
		insts = append(insts, instance(t, startBackend(t, n).addr, i == 0))
	}
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Path: "/", CanaryWeight: 20}}, insts...)})
	c := testClient(g.HTTPAddr())
	canary := 0
	for i := 0; i < 1000; i++ {
		code, body := get(t, c, "http://web/")
		if code != 200 {
			t.Fatalf("request %d: HTTP %d %s", i, code, body)
		}
		if strings.HasPrefix(body, "canary ") {
			canary++
		}
	}
	if canary < 100 || canary > 300 {
		t.Fatalf("canary got %d of 1000, want 10-30%%", canary)
	}
}

// closingBackend reads each request (and its body) and closes the
// connection without answering.
func closingBackend(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				n.Add(1)
			}()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), &n
}

// refusedAddr is an address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestGateway_Retries(t *testing.T) {
	good := startBackend(t, "good")
	t.Run("refused dial is retried for any method", func(t *testing.T) {
		g := newTestGateway(t, Config{})
		g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Path: "/"}},
			instance(t, refusedAddr(t), false), instance(t, good.addr, false))})
		c := testClient(g.HTTPAddr())
		for i := 0; i < 10; i++ {
			if code, body := get(t, c, "http://web/"); code != 200 || !strings.HasPrefix(body, "good") {
				t.Fatalf("GET %d: HTTP %d %q", i, code, body)
			}
			if code, body := do(t, c, http.MethodPost, "http://web/", []byte("payload")); code != 200 || !strings.HasPrefix(body, "good") {
				t.Fatalf("POST %d: HTTP %d %q", i, code, body)
			}
		}
	})
	// getsSurviveCloser routes to a backend that closes every
	// connection unanswered and a good one, with retries, and checks
	// that 10 GETs all succeed, some of them sent to the closing one.
	getsSurviveCloser := func(t *testing.T, retries int) (*http.Client, *atomic.Int64) {
		t.Helper()
		closer, closed := closingBackend(t)
		g := newTestGateway(t, Config{})
		g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Path: "/", Retries: retries}},
			instance(t, closer, false), instance(t, good.addr, false))})
		c := testClient(g.HTTPAddr())
		for i := 0; i < 10; i++ {
			if code, body := get(t, c, "http://web/"); code != 200 {
				t.Fatalf("GET %d: HTTP %d %q, want 200 (retried on the other instance)", i, code, body)
			}
		}
		if closed.Load() == 0 {
			t.Fatal("the closing backend saw no GET: the test proves nothing")
		}
		return c, closed
	}
	t.Run("GET closed before answering is retried once without retries", func(t *testing.T) {
		getsSurviveCloser(t, 0)
	})
	t.Run("closed before answering", func(t *testing.T) {
		c, closed := getsSurviveCloser(t, 1)
		before := closed.Load()
		failed := 0
		for i := 0; i < 10; i++ {
			code, _ := do(t, c, http.MethodPost, "http://web/", []byte("payload"))
			if code != 200 {
				if code != http.StatusBadGateway {
					t.Fatalf("POST %d: HTTP %d, want 200 or 502", i, code)
				}
				failed++
			}
		}
		if sent := closed.Load() - before; sent == 0 || int64(failed) != sent {
			t.Fatalf("POSTs sent to the closing backend: %d, failed: %d; a sent POST must not be retried", sent, failed)
		}
	})
}

func TestGateway_BackendKilledUnderLoad(t *testing.T) {
	b1, b2, b3 := startBackend(t, "b1"), startBackend(t, "b2"), startBackend(t, "b3")
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Path: "/", Retries: 2}},
		instance(t, b1.addr, false), instance(t, b2.addr, false), instance(t, b3.addr, false))})
	c := testClient(g.HTTPAddr())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://web/")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	b2.kill()
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d GETs failed after a backend was killed; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() < 50 {
		t.Fatalf("only %d requests ran", ok.Load())
	}
}

func TestGateway_WebSocketUpgrade(t *testing.T) {
	// A raw backend: answers the upgrade with 101 and echoes bytes.
	be := startBackendHandler(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	})
	g := newTestGateway(t, Config{})
	// A short timeout: an upgraded connection must outlive it.
	g.Update([]*structs.ProxiedService{service("ws", []*structs.ServiceRoute{{Path: "/ws", Timeout: 200 * time.Millisecond}}, instance(t, be.addr, false))})
	conn, err := net.Dial("tcp", g.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: HTTP %d, want 101", resp.StatusCode)
	}
	time.Sleep(300 * time.Millisecond)
	for _, msg := range []string{"ping\n", "pong\n"} {
		_, _ = io.WriteString(conn, msg)
		line, err := br.ReadString('\n')
		if err != nil || line != msg {
			t.Fatalf("echo: %q, %v; want %q", line, err, msg)
		}
	}
}

func TestGateway_HTTPSOnlyRedirects(t *testing.T) {
	be := startBackend(t, "b1")
	g := newTestGateway(t, Config{HTTPSAddr: "127.0.0.1:8443"})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Host: "secure.example.com", Path: "/", HTTPSOnly: true}}, instance(t, be.addr, false))})
	c := testClient(g.HTTPAddr())
	resp, err := c.Get("http://secure.example.com:80/a/b?c=d")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Fatalf("HTTP %d, want 308", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "https://secure.example.com:8443/a/b?c=d" {
		t.Fatalf("Location = %q", loc)
	}
}

func TestGateway_TimeoutBoundsHeadersNotBody(t *testing.T) {
	slow := startBackendHandler(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			for i := 0; i < 5; i++ {
				_, _ = io.WriteString(w, "chunk\n")
				http.NewResponseController(w).Flush()
				time.Sleep(60 * time.Millisecond)
			}
			return
		}
		time.Sleep(time.Second)
	})
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{service("slow", []*structs.ServiceRoute{{Path: "/", Timeout: 150 * time.Millisecond}}, instance(t, slow.addr, false))})
	c := testClient(g.HTTPAddr())
	if code, body := get(t, c, "http://x/wait"); code != http.StatusGatewayTimeout {
		t.Fatalf("slow headers: HTTP %d %q, want 504", code, body)
	}
	if code, body := get(t, c, "http://x/stream"); code != 200 || strings.Count(body, "chunk") != 5 {
		t.Fatalf("stream longer than the timeout: HTTP %d %q, want 5 chunks", code, body)
	}
}

func TestGateway_UpdateKeepsRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := startBackendHandler(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "done")
	})
	other := startBackend(t, "other")
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{service("slow", []*structs.ServiceRoute{{Path: "/slow"}}, instance(t, slow.addr, false))})
	c := testClient(g.HTTPAddr())
	type result struct {
		code int
		body string
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Get("http://x/slow")
		if err != nil {
			res <- result{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b)}
	}()
	<-started
	// The slow service's route goes away; another one comes.
	g.Update([]*structs.ProxiedService{service("other", []*structs.ServiceRoute{{Path: "/other"}}, instance(t, other.addr, false))})
	if code, _ := get(t, c, "http://x/slow"); code != http.StatusNotFound {
		t.Fatalf("after the update /slow: HTTP %d, want 404", code)
	}
	if code, body := get(t, c, "http://x/other"); code != 200 || body != "other /other" {
		t.Fatalf("after the update /other: HTTP %d %q", code, body)
	}
	close(release)
	if r := <-res; r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request: HTTP %d %q, want 200 done", r.code, r.body)
	}
}

func TestGateway_AccessLogStatusAndMetrics(t *testing.T) {
	be := startBackend(t, "b1")
	logPath := filepath.Join(t.TempDir(), "access.log")
	g := newTestGateway(t, Config{AccessLog: logPath})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Host: "web.example.com", Path: "/"}}, instance(t, be.addr, false))})
	c := testClient(g.HTTPAddr())
	get(t, c, "http://web.example.com/a")
	get(t, c, "http://nowhere.example.com/b")

	// Requests are counted once answered: wait for the handler's end.
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		st := g.Status()
		if len(st.Listeners) != 1 || st.Listeners[0].Kind != "http" || len(st.Routes) != 1 {
			return false, fmt.Errorf("status: %+v", st)
		}
		if r := st.Routes[0]; r.Requests != 1 || len(r.Backends) != 1 || r.Backends[0].Requests != 1 || r.Backends[0].Active != 0 || r.Backends[0].Address != be.addr {
			return false, fmt.Errorf("route status: %+v", r)
		}
		return true, nil
	})
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "drover_gateway_requests_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "code" && l.GetValue() == "2xx" && m.GetCounter().GetValue() == 1 {
						found = true
					}
				}
			}
		}
	}
	if !found {
		t.Fatal("drover_gateway_requests_total{code=2xx} = 1 not found")
	}

	g.Stop()
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 {
		t.Fatalf("access log has %d lines, want 2:\n%s", len(lines), raw)
	}
	// Lines are written once each answer is out: in either order.
	byPath := map[string]accessEntry{}
	for _, l := range lines {
		var e accessEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("access log line %q: %v", l, err)
		}
		byPath[e.Path] = e
	}
	if e := byPath["/a"]; e.Host != "web.example.com" || e.Method != "GET" || e.Status != 200 || e.Service != "web" || e.Namespace != "default" ||
		e.Upstream != be.addr || e.Bytes != int64(len("b1 /a")) || e.Time == "" {
		t.Fatalf("access log line for /a: %+v", e)
	}
	if e := byPath["/b"]; e.Status != 404 || e.Service != "" || e.Host != "nowhere.example.com" {
		t.Fatalf("access log line for /b: %+v", e)
	}
}

func TestGateway_PortInUseFailsNew(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = New(Config{HTTPAddr: l.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("New on a port in use: %v, want an error naming %s", err, l.Addr())
	}
}

func TestGateway_StopLeavesNoGoroutines(t *testing.T) {
	be := startBackend(t, "b1")
	before := runtime.NumGoroutine()
	g, err := New(Config{HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Path: "/"}}, instance(t, be.addr, false))})
	c := testClient(g.HTTPAddr())
	for i := 0; i < 20; i++ {
		get(t, c, "http://web/")
	}
	c.CloseIdleConnections()
	g.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after Stop:\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
