package proxy

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	dtestutil "github.com/droverhq/drover/testutil"
)

func TestProxy_SpreadsRequests(t *testing.T) {
	for _, balance := range []string{BalanceLeastConn, BalanceRoundRobin} {
		t.Run(balance, func(t *testing.T) {
			b1, b2, b3 := startHTTPBackend(t, "b1"), startHTTPBackend(t, "b2"), startHTTPBackend(t, "b3")
			p := newTestProxy(t, Config{Balance: balance})
			addr := listenVIP(t, p, instances(t, b1.addr, b2.addr, b3.addr))
			c := noKeepAlive()
			got := map[string]int{}
			const n = 300
			for i := 0; i < n; i++ {
				got[get(t, c, addr)]++
			}
			for _, name := range []string{"b1", "b2", "b3"} {
				if got[name] < n/4 {
					t.Errorf("%s answered %d of %d requests, want at least %d: %v", name, got[name], n, n/4, got)
				}
			}
			st := p.Status()
			if st.Totals.Connections != n || st.Totals.FailedConnects != 0 || st.Balance != balance {
				t.Errorf("totals %+v, balance %s", st.Totals, st.Balance)
			}
		})
	}
}

// TestProxy_LeastConnAvoidsBusyBackend: with a long connection open on
// one backend, new connections go to the others.
func TestProxy_LeastConnAvoidsBusyBackend(t *testing.T) {
	e1, e2 := startEchoBackend(t, "e1"), startEchoBackend(t, "e2")
	p := newTestProxy(t, Config{})
	addr := listenVIP(t, p, instances(t, e1.addr, e2.addr))
	long := dialLine(t, addr)
	first, err := long.say("hi")
	if err != nil {
		t.Fatal(err)
	}
	busy := strings.Fields(first)[0]
	for i := 0; i < 10; i++ {
		c := dialLine(t, addr)
		ans, err := c.say("x")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(ans, busy+" ") {
			t.Fatalf("request %d went to the busy backend %s", i, busy)
		}
		_ = c.Close()
		// Wait for the proxy to see the end, so the next pick sees
		// zero connections on the other backend again.
		dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) { return p.Status().Totals.Active == 1, nil })
	}
}

func TestProxy_RetriesRefusedBackend(t *testing.T) {
	b1, b2 := startHTTPBackend(t, "b1"), startHTTPBackend(t, "b2")
	dead := closedAddr(t)
	for _, balance := range []string{BalanceLeastConn, BalanceRoundRobin} {
		t.Run(balance, func(t *testing.T) {
			p := newTestProxy(t, Config{Balance: balance})
			addr := listenVIP(t, p, instances(t, dead, b1.addr, b2.addr))
			c := noKeepAlive()
			for i := 0; i < 30; i++ {
				if body := get(t, c, addr); body != "b1" && body != "b2" {
					t.Fatalf("body %q", body)
				}
			}
			st := p.Status()
			if st.Totals.FailedConnects != 0 {
				t.Fatalf("failed connects %d", st.Totals.FailedConnects)
			}
			var deadSt BackendStatus
			for _, b := range st.Services[0].Backends {
				if b.Address == dead {
					deadSt = b
				}
			}
			// The cool-down keeps the dead backend from being dialed
			// for every request.
			if deadSt.FailedDials == 0 || deadSt.FailedDials > 5 || deadSt.Total != 0 || deadSt.CoolingDownUntil.IsZero() {
				t.Fatalf("dead backend %+v", deadSt)
			}
		})
	}
}

// TestProxy_CoolDownEnds: after the cool-down a failed backend is
// tried again; a success clears it.
func TestProxy_CoolDownEnds(t *testing.T) {
	var clock atomic.Int64 // seconds
	clock.Store(1000)
	p := newTestProxy(t, Config{now: func() time.Time { return time.Unix(clock.Load(), 0) }})
	b := startEchoBackend(t, "e1")
	port := freePort(t, "127.0.0.1")
	deadAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	addr := listenVIP(t, p, instances(t, deadAddr, b.addr))
	for i := 0; i < 4; i++ {
		if ans, err := dialLine(t, addr).say("x"); err != nil || ans != "e1 x" {
			t.Fatalf("%q %v", ans, err)
		}
	}
	failed := func() uint64 {
		for _, bs := range p.Status().Services[0].Backends {
			if bs.Address == deadAddr {
				return bs.FailedDials
			}
		}
		return 0
	}
	if failed() != 1 {
		t.Fatalf("failed dials %d during the cool-down, want 1", failed())
	}
	// The dead backend comes up; after the cool-down it is used.
	l, err := net.Listen("tcp", deadAddr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "revived\n")
			_ = c.Close()
		}
	}()
	clock.Add(int64((DefaultFailCooldown + time.Second) / time.Second))
	saw := false
	for i := 0; i < 4 && !saw; i++ {
		c := dialLine(t, addr)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := c.r.ReadString('\n')
		saw = line == "revived\n"
	}
	if !saw {
		t.Fatal("the revived backend got no connection after its cool-down")
	}
}

func TestProxy_NoBackendClosesClient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		insts func(t *testing.T) []*structs.ServiceInstance
	}{
		{"all refuse", func(t *testing.T) []*structs.ServiceInstance {
			return instances(t, closedAddr(t), closedAddr(t), closedAddr(t), closedAddr(t))
		}},
		{"none passing", func(t *testing.T) []*structs.ServiceInstance {
			in := instances(t, startEchoBackend(t, "e1").addr)
			in[0].Status = structs.ServiceStatusCritical
			return in
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProxy(t, Config{})
			addr := listenVIP(t, p, tc.insts(t))
			c := dialLine(t, addr)
			if _, err := c.say("x"); err == nil {
				t.Fatal("a connection without a backend was answered")
			}
			dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) {
				return p.Status().Totals.FailedConnects == 1, nil
			})
			if tc.name == "all refuse" {
				var dials uint64
				for _, b := range p.Status().Services[0].Backends {
					dials += b.FailedDials
				}
				if dials != maxTries {
					t.Fatalf("%d dials for one connection, want %d", dials, maxTries)
				}
			}
		})
	}
}

// TestProxy_DrainsRemovedBackend: a backend that turns critical gets no
// new connection; its open one keeps working.
func TestProxy_DrainsRemovedBackend(t *testing.T) {
	for _, tc := range []struct {
		name   string
		update func(insts []*structs.ServiceInstance, gone int) []*structs.ServiceInstance
	}{
		{"critical", func(insts []*structs.ServiceInstance, gone int) []*structs.ServiceInstance {
			insts[gone].Status = structs.ServiceStatusCritical
			return insts
		}},
		{"terminating", func(insts []*structs.ServiceInstance, gone int) []*structs.ServiceInstance {
			insts[gone].Status = structs.ServiceStatusTerminating
			return insts
		}},
		{"gone", func(insts []*structs.ServiceInstance, gone int) []*structs.ServiceInstance {
			return append(insts[:gone:gone], insts[gone+1:]...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e1, e2 := startEchoBackend(t, "e1"), startEchoBackend(t, "e2")
			p := newTestProxy(t, Config{})
			insts := instances(t, e1.addr, e2.addr)
			addr := listenVIP(t, p, insts)
			long := dialLine(t, addr)
			first, err := long.say("hello")
			if err != nil {
				t.Fatal(err)
			}
			busy := strings.Fields(first)[0]
			gone := 0
			if busy == "e2" {
				gone = 1
			}
			svc := p.Status().Services[0]
			p.Update([]*structs.ProxiedService{vipService(svc.VIP, svc.VIPPort, tc.update(insts, gone))})
			for i := 0; i < 10; i++ {
				ans, err := dialLine(t, addr).say("x")
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(ans, busy+" ") {
					t.Fatalf("new connection %d went to the removed backend: %q", i, ans)
				}
			}
			// The open connection still works, both ways, and ends
			// cleanly (half-close: the backend's goodbye arrives).
			if ans, err := long.say("still there"); err != nil || ans != busy+" still there" {
				t.Fatalf("open connection after the update: %q %v", ans, err)
			}
			_ = long.Conn.(*net.TCPConn).CloseWrite()
			if bye, err := long.r.ReadString('\n'); err != nil || bye != "bye "+busy+"\n" {
				t.Fatalf("goodbye %q %v", bye, err)
			}
			var found bool
			for _, b := range p.Status().Services[0].Backends {
				if b.Address == insts[gone].Address+":"+strconv.Itoa(insts[gone].Port) || (tc.name == "gone" && b.Status == "draining") {
					found = true
					if b.Passing {
						t.Fatalf("removed backend still passing: %+v", b)
					}
				}
			}
			if !found && tc.name != "gone" {
				t.Fatal("the critical backend is not in the status")
			}
		})
	}
}

// TestProxy_DrainTimeoutClosesConnections: the open connections of a
// removed backend are closed after the drain timeout.
func TestProxy_DrainTimeoutClosesConnections(t *testing.T) {
	e1 := startEchoBackend(t, "e1")
	p := newTestProxy(t, Config{DrainTimeout: 100 * time.Millisecond})
	addr := listenVIP(t, p, instances(t, e1.addr))
	long := dialLine(t, addr)
	if _, err := long.say("hi"); err != nil {
		t.Fatal(err)
	}
	svc := p.Status().Services[0]
	p.Update([]*structs.ProxiedService{vipService(svc.VIP, svc.VIPPort, nil)})
	_ = long.SetDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if _, err := long.r.ReadString('\n'); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection not closed by the drain timeout: %v", err)
	}
	dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		st := p.Status()
		return st.Totals.Active == 0 && len(st.Services[0].Backends) == 0, nil
	})
}

// TestProxy_RemovedServiceClosesListener: a service no longer listed
// has its listener closed; its open connection drains.
func TestProxy_RemovedServiceClosesListener(t *testing.T) {
	e1 := startEchoBackend(t, "e1")
	p := newTestProxy(t, Config{})
	addr := listenVIP(t, p, instances(t, e1.addr))
	long := dialLine(t, addr)
	if _, err := long.say("hi"); err != nil {
		t.Fatal(err)
	}
	p.Update(nil)
	if st := p.Status(); len(st.Listeners) != 0 || len(st.Services) != 0 {
		t.Fatalf("status after removal: %+v", st)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the removed service's listener still accepts")
	}
	if ans, err := long.say("still"); err != nil || ans != "e1 still" {
		t.Fatalf("open connection after removal: %q %v", ans, err)
	}
	// The service comes back on the same address.
	host, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	p.Update([]*structs.ProxiedService{vipService(host, pn, instances(t, e1.addr))})
	if ans, err := dialLine(t, addr).say("back"); err != nil || ans != "e1 back" {
		t.Fatalf("after re-adding: %q %v", ans, err)
	}
}

// TestProxy_ReusePort: two proxies (two client agents on one machine)
// listen on one VIP:port, and the kernel gives both connections.
func TestProxy_ReusePort(t *testing.T) {
	e1 := startEchoBackend(t, "e1")
	p1, p2 := newTestProxy(t, Config{}), newTestProxy(t, Config{})
	addr := listenVIP(t, p1, instances(t, e1.addr))
	host, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	p2.Update([]*structs.ProxiedService{vipService(host, pn, instances(t, e1.addr))})
	if st := p2.Status(); len(st.Listeners) != 1 || st.Listeners[0].Error != "" {
		t.Fatalf("second proxy on %s: %+v", addr, st.Listeners)
	}
	for i := 0; i < 100; i++ {
		c := dialLine(t, addr)
		if ans, err := c.say("x"); err != nil || ans != "e1 x" {
			t.Fatalf("%q %v", ans, err)
		}
		_ = c.Close()
	}
	dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		n1, n2 := p1.Status().Totals.Connections, p2.Status().Totals.Connections
		return n1+n2 == 100, nil
	})
	if n1, n2 := p1.Status().Totals.Connections, p2.Status().Totals.Connections; n1 == 0 || n2 == 0 {
		t.Fatalf("connections %d and %d: the kernel should spread them", n1, n2)
	}
}

// TestProxy_ConnectionBound: over MaxConnsPerListener, new connections
// are closed at once.
func TestProxy_ConnectionBound(t *testing.T) {
	e1 := startEchoBackend(t, "e1")
	p := newTestProxy(t, Config{MaxConnsPerListener: 2})
	addr := listenVIP(t, p, instances(t, e1.addr))
	a, b := dialLine(t, addr), dialLine(t, addr)
	for _, c := range []*lineConn{a, b} {
		if _, err := c.say("x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dialLine(t, addr).say("x"); err == nil {
		t.Fatal("a connection over the bound was answered")
	}
	if st := p.Status(); st.Totals.Rejected != 1 || st.Listeners[0].Active != 2 {
		t.Fatalf("status %+v %+v", st.Totals, st.Listeners)
	}
	_ = a.Close()
	dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) { return p.Status().Listeners[0].Active == 1, nil })
	if _, err := dialLine(t, addr).say("x"); err != nil {
		t.Fatalf("below the bound again: %v", err)
	}
}

func TestProxy_Status(t *testing.T) {
	e1, e2 := startEchoBackend(t, "e1"), startEchoBackend(t, "e2")
	host := randomVIP()
	p := newTestProxy(t, Config{PublishHost: host})
	// A published port in use on this host: an error in the status,
	// not a failure.
	taken, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	pubPort := freePort(t, host)
	vip := randomVIP()
	vipPort := freePort(t, vip)
	insts := instances(t, e1.addr, e2.addr)
	insts[1].Status = structs.ServiceStatusWarning
	p.Update([]*structs.ProxiedService{
		{Namespace: "default", Name: "web", VIP: vip, VIPPort: vipPort, PublishedPort: pubPort, Instances: insts},
		{Namespace: "team-a", Name: "api", PublishedPort: takenPort, Instances: instances(t, e2.addr)},
		// Same published port as web: refused, named.
		{Namespace: "team-b", Name: "clash", PublishedPort: pubPort},
	})
	if ans, err := dialLine(t, net.JoinHostPort(host, strconv.Itoa(pubPort))).say("x"); err != nil || ans != "e1 x" {
		t.Fatalf("published port: %q %v", ans, err)
	}
	st := p.Status()
	if len(st.Listeners) != 4 || st.Totals.Listeners != 2 || st.Totals.ListenerErrors != 2 {
		t.Fatalf("listeners %+v totals %+v", st.Listeners, st.Totals)
	}
	byKey := map[string]ListenerStatus{}
	for _, l := range st.Listeners {
		byKey[l.Namespace+"/"+l.Service+"/"+l.Kind] = l
	}
	if l := byKey["default/web/vip"]; l.Address != net.JoinHostPort(vip, strconv.Itoa(vipPort)) || l.Error != "" {
		t.Fatalf("vip listener %+v", l)
	}
	if l := byKey["team-a/api/published"]; !strings.Contains(l.Error, "address already in use") {
		t.Fatalf("taken port listener %+v", l)
	}
	if l := byKey["team-b/clash/published"]; !strings.Contains(l.Error, "already served for service default/web") {
		t.Fatalf("clashing listener %+v", l)
	}
	web := st.Services[0]
	if web.Namespace != "default" || web.Name != "web" || web.VIP != vip || len(web.Backends) != 2 || web.Connections != 1 {
		t.Fatalf("web %+v", web)
	}
	for _, b := range web.Backends {
		want := b.Address == e1.addr
		if b.Passing != want || (want && (b.Total != 1 || b.Status != "passing")) || (!want && b.Status != "warning") {
			t.Fatalf("backend %+v", b)
		}
	}
	// The port is freed: the next update listens.
	taken.Close()
	p.Update([]*structs.ProxiedService{{Namespace: "team-a", Name: "api", PublishedPort: takenPort, Instances: instances(t, e2.addr)}})
	if st := p.Status(); st.Totals.ListenerErrors != 0 || st.Totals.Listeners != 1 {
		t.Fatalf("after the port was freed: %+v", st.Listeners)
	}
	// Metrics.
	mfs, err := p.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	if series["drover_proxy_connections_total"] != 1 || series["drover_proxy_bytes_in_total"] != 1 || series["drover_proxy_listener_errors"] != 1 {
		t.Fatalf("metric series %v", series)
	}
}

func TestProxy_VIPChangeMovesListener(t *testing.T) {
	e1 := startEchoBackend(t, "e1")
	p := newTestProxy(t, Config{})
	old := listenVIP(t, p, instances(t, e1.addr))
	vip := randomVIP()
	port := freePort(t, vip)
	p.Update([]*structs.ProxiedService{vipService(vip, port, instances(t, e1.addr))})
	if c, err := net.DialTimeout("tcp", old, time.Second); err == nil {
		c.Close()
		t.Fatal("old VIP still listened on")
	}
	if ans, err := dialLine(t, net.JoinHostPort(vip, strconv.Itoa(port))).say("x"); err != nil || ans != "e1 x" {
		t.Fatalf("%q %v", ans, err)
	}
}

// TestProxy_HalfClose: a client that half-closes still reads the whole
// answer, and bytes are counted both ways.
func TestProxy_HalfClose(t *testing.T) {
	// A backend that reads to the end, then answers the byte count.
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
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				_, _ = io.WriteString(c, strconv.FormatInt(n, 10))
			}()
		}
	}()
	p := newTestProxy(t, Config{})
	addr := listenVIP(t, p, instances(t, l.Addr().String()))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := strings.Repeat("z", 1<<20+3) // more than one copy chunk
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	ans, err := io.ReadAll(c)
	if err != nil || string(ans) != strconv.Itoa(len(payload)) {
		t.Fatalf("answer %q %v", ans, err)
	}
	dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		tot := p.Status().Totals
		return tot.Active == 0 && tot.BytesIn == uint64(len(payload)) && tot.BytesOut == uint64(len(ans)), nil
	})
}

// TestProxy_StopLeavesNoGoroutines: Stop closes listeners and open
// connections (draining ones of removed services too) and waits.
func TestProxy_StopLeavesNoGoroutines(t *testing.T) {
	e1 := startEchoBackend(t, "e1")
	before := runtime.NumGoroutine()
	p, err := New(Config{PublishHost: "127.0.0.1", ErrorLog: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	addr := listenVIP(t, p, instances(t, e1.addr))
	open := dialLine(t, addr)
	if _, err := open.say("x"); err != nil {
		t.Fatal(err)
	}
	draining := dialLine(t, addr)
	if _, err := draining.say("x"); err != nil {
		t.Fatal(err)
	}
	// One connection of a removed service, one of a live one.
	p.Update(nil)
	addr = listenVIP(t, p, instances(t, e1.addr))
	if _, err := dialLine(t, addr).say("x"); err != nil {
		t.Fatal(err)
	}
	p.Watch(func(ctx context.Context, minIndex uint64) (*structs.ServiceProxyResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	p.Stop()
	if _, err := open.say("after stop"); err == nil {
		t.Fatal("connection open after Stop")
	}
	if _, err := draining.say("after stop"); err == nil {
		t.Fatal("draining connection open after Stop")
	}
	// The echo backend's goroutines end once their connections close.
	dtestutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		n := runtime.NumGoroutine()
		return n <= before, errors.New("goroutines: " + strconv.Itoa(n) + " now, " + strconv.Itoa(before) + " before")
	})
	p.Update([]*structs.ProxiedService{vipService(randomVIP(), 80, nil)})
	if st := p.Status(); len(st.Listeners) != 0 {
		t.Fatalf("update after Stop listened: %+v", st.Listeners)
	}
}

func TestNew_BadBalance(t *testing.T) {
	if _, err := New(Config{Balance: "random"}); !errors.Is(err, ErrBadBalance) {
		t.Fatalf("err = %v", err)
	}
}
