package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/droverhq/drover/structs"
)

// fakeLookup serves instances from a map keyed "<ns>/<service>" and
// counts its calls.
type fakeLookup struct {
	mu    sync.Mutex
	insts map[string][]*structs.ServiceInstance
	calls atomic.Int64
	// hook, when set, runs on each call before the answer (it may panic
	// or block).
	hook func(namespace, name string) error
}

func (f *fakeLookup) lookup(ctx context.Context, namespace, name string) ([]*structs.ServiceInstance, error) {
	f.calls.Add(1)
	if f.hook != nil {
		if err := f.hook(namespace, name); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.insts[namespace+"/"+name], nil
}

func inst(ns, svc, alloc, node, addr string, port int, status string) *structs.ServiceInstance {
	return &structs.ServiceInstance{
		ID: alloc + "-" + svc, ServiceName: svc, Namespace: ns, AllocID: alloc, NodeID: node,
		Address: addr, Port: port, Status: status,
	}
}

func testInstances() map[string][]*structs.ServiceInstance {
	web := []*structs.ServiceInstance{
		inst("default", "web", "aaaaaaaa-1111", "11111111-node", "10.0.0.1", 8080, structs.ServiceStatusPassing),
		inst("default", "web", "bbbbbbbb-2222", "22222222-node", "10.0.0.2", 8081, structs.ServiceStatusPassing),
		// Same node as the first: its address is answered once.
		inst("default", "web", "cccccccc-3333", "11111111-node", "10.0.0.1", 8082, structs.ServiceStatusPassing),
		inst("default", "web", "dddddddd-4444", "33333333-node", "10.0.0.3", 8083, structs.ServiceStatusCritical),
		inst("default", "web", "eeeeeeee-5555", "44444444-node", "10.0.0.4", 8084, structs.ServiceStatusWarning),
		inst("default", "web", "ffffffff-6666", "55555555-node", "10.0.0.5", 8085, structs.ServiceStatusTerminating),
		// IPv6 node: no A record.
		inst("default", "web", "99999999-7777", "66666666-node", "fd00::1", 8086, structs.ServiceStatusPassing),
	}
	for _, in := range web {
		in.VIP, in.VIPPort = "10.200.0.7", 80
	}
	return map[string][]*structs.ServiceInstance{
		"default/web": web,
		"prod/api": {
			inst("prod", "api", "12345678-aaaa", "abcdef01-node", "10.1.0.1", 9000, structs.ServiceStatusPassing),
		},
		// All critical: exists, but no passing instance.
		"default/down": {
			inst("default", "down", "87654321-aaaa", "abcdef01-node", "10.1.0.9", 9000, structs.ServiceStatusCritical),
		},
	}
}

// startServer runs a Server on 127.0.0.1:0 over f.
func startServer(t *testing.T, f *fakeLookup) *Server {
	t.Helper()
	s, err := New(Config{Addr: "127.0.0.1:0", Lookup: f.lookup, ErrorLog: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

func exchange(t *testing.T, addr, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return r
}

func ask(t *testing.T, s *Server, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	return exchange(t, s.Addr(), "udp", name, qtype)
}

func wantRcode(t *testing.T, r *mdns.Msg, rcode int) {
	t.Helper()
	if r.Rcode != rcode {
		t.Fatalf("rcode = %s, want %s (%v)", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[rcode], r)
	}
}

func aAddrs(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	sort.Strings(out)
	return out
}

func TestServer_APassingOnly(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	r := ask(t, s, "web.service.drover.", mdns.TypeA)
	wantRcode(t, r, mdns.RcodeSuccess)
	if got, want := strings.Join(aAddrs(r.Answer), ","), "10.0.0.1,10.0.0.2"; got != want {
		t.Fatalf("A = %s, want %s", got, want)
	}
	for _, rr := range r.Answer {
		if rr.Header().Ttl != 5 || rr.Header().Name != "web.service.drover." {
			t.Fatalf("record %v: want TTL 5 and the question's name", rr)
		}
	}
	if !r.Authoritative {
		t.Fatal("answer is not authoritative")
	}
}

func TestServer_NoPassingIsNoData(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	r := ask(t, s, "down.service.drover.", mdns.TypeA)
	wantRcode(t, r, mdns.RcodeSuccess)
	if len(r.Answer) != 0 {
		t.Fatalf("answers = %v, want none", r.Answer)
	}
}

func TestServer_AAAA(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	r := ask(t, s, "web.service.drover.", mdns.TypeAAAA)
	wantRcode(t, r, mdns.RcodeSuccess)
	if len(r.Answer) != 0 {
		t.Fatalf("AAAA answers = %v, want none", r.Answer)
	}
	wantRcode(t, ask(t, s, "nope.service.drover.", mdns.TypeAAAA), mdns.RcodeNameError)
}

func TestServer_SRVWithAdditional(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	r := ask(t, s, "_web._tcp.service.drover.", mdns.TypeSRV)
	wantRcode(t, r, mdns.RcodeSuccess)
	var got []string
	for _, rr := range r.Answer {
		srv := rr.(*mdns.SRV)
		if srv.Priority != 1 || srv.Weight != 1 {
			t.Fatalf("SRV %v: want priority 1, weight 1", srv)
		}
		got = append(got, fmt.Sprintf("%d %s", srv.Port, srv.Target))
	}
	sort.Strings(got)
	want := []string{
		"8080 aaaaaaaa.11111111.addr.drover.",
		"8081 bbbbbbbb.22222222.addr.drover.",
		"8082 cccccccc.11111111.addr.drover.",
		"8086 99999999.66666666.addr.drover.",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("SRV = %q, want %q", got, want)
	}
	extra := map[string]string{}
	for _, rr := range r.Extra {
		if a, ok := rr.(*mdns.A); ok {
			extra[a.Hdr.Name] = a.A.String()
		}
	}
	wantExtra := map[string]string{
		"aaaaaaaa.11111111.addr.drover.": "10.0.0.1",
		"bbbbbbbb.22222222.addr.drover.": "10.0.0.2",
		"cccccccc.11111111.addr.drover.": "10.0.0.1",
	}
	if fmt.Sprint(extra) != fmt.Sprint(wantExtra) {
		t.Fatalf("additional = %v, want %v", extra, wantExtra)
	}

	// A resolver that ignores the additional section asks for the
	// target itself.
	r = ask(t, s, "BBBBBBBB.22222222.addr.drover.", mdns.TypeA)
	wantRcode(t, r, mdns.RcodeSuccess)
	if got := aAddrs(r.Answer); len(got) != 1 || got[0] != "10.0.0.2" {
		t.Fatalf("target A = %v, want 10.0.0.2", got)
	}
	wantRcode(t, ask(t, s, "00000000.22222222.addr.drover.", mdns.TypeA), mdns.RcodeNameError)
}

func TestServer_Namespace(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	r := ask(t, s, "api.prod.service.drover.", mdns.TypeA)
	wantRcode(t, r, mdns.RcodeSuccess)
	if got := aAddrs(r.Answer); len(got) != 1 || got[0] != "10.1.0.1" {
		t.Fatalf("A = %v, want 10.1.0.1", got)
	}
	r = ask(t, s, "_api._tcp.prod.service.drover.", mdns.TypeSRV)
	wantRcode(t, r, mdns.RcodeSuccess)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.SRV).Port != 9000 {
		t.Fatalf("SRV = %v, want one on port 9000", r.Answer)
	}
	// Not in the default namespace.
	wantRcode(t, ask(t, s, "api.service.drover.", mdns.TypeA), mdns.RcodeNameError)
	// The default namespace by name.
	r = ask(t, s, "web.default.service.drover.", mdns.TypeA)
	if got := aAddrs(r.Answer); len(got) != 2 {
		t.Fatalf("A = %v, want the two passing addresses", got)
	}
}

func TestServer_VIP(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	r := ask(t, s, "web.vip.drover.", mdns.TypeA)
	wantRcode(t, r, mdns.RcodeSuccess)
	if got := aAddrs(r.Answer); len(got) != 1 || got[0] != "10.200.0.7" {
		t.Fatalf("VIP A = %v, want 10.200.0.7", got)
	}
	wantRcode(t, ask(t, s, "api.prod.vip.drover.", mdns.TypeA), mdns.RcodeNameError) // no VIP
	wantRcode(t, ask(t, s, "nope.vip.drover.", mdns.TypeA), mdns.RcodeNameError)
}

func TestServer_NXDOMAIN(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	for _, name := range []string{
		"nope.service.drover.",
		"drover.",
		"service.drover.",
		"web.drover.",
		"a.b.c.service.drover.",
		"_web._udp.service.drover.",
		"web_x.service.drover.",
		"-web.service.drover.",
		"x.y.z.addr.drover.",
	} {
		t.Run(name, func(t *testing.T) {
			wantRcode(t, ask(t, s, name, mdns.TypeA), mdns.RcodeNameError)
		})
	}
}

func TestServer_RefusedOutsideDomain(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	for _, name := range []string{"example.com.", "web.service.consul.", "xdrover.", "."} {
		t.Run(name, func(t *testing.T) {
			wantRcode(t, ask(t, s, name, mdns.TypeA), mdns.RcodeRefused)
		})
	}
}

func TestServer_CaseInsensitive(t *testing.T) {
	f := &fakeLookup{insts: testInstances()}
	s := startServer(t, f)
	r := ask(t, s, "WeB.SeRvIcE.DROVER.", mdns.TypeA)
	wantRcode(t, r, mdns.RcodeSuccess)
	if got := aAddrs(r.Answer); len(got) != 2 {
		t.Fatalf("A = %v, want two", got)
	}
	r = ask(t, s, "_API._TCP.PROD.Service.Drover.", mdns.TypeSRV)
	if len(r.Answer) != 1 {
		t.Fatalf("SRV = %v, want one", r.Answer)
	}
}

func TestServer_OtherTypesAndClasses(t *testing.T) {
	s := startServer(t, &fakeLookup{insts: testInstances()})
	r := ask(t, s, "web.service.drover.", mdns.TypeTXT)
	wantRcode(t, r, mdns.RcodeSuccess)
	if len(r.Answer) != 0 {
		t.Fatalf("TXT answers = %v, want none", r.Answer)
	}

	m := new(mdns.Msg)
	m.SetQuestion("web.service.drover.", mdns.TypeA)
	m.Question[0].Qclass = mdns.ClassCHAOS
	c := &mdns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	wantRcode(t, r, mdns.RcodeSuccess)
	if len(r.Answer) != 0 {
		t.Fatalf("CH answers = %v, want none", r.Answer)
	}

	m = new(mdns.Msg)
	m.SetQuestion("web.service.drover.", mdns.TypeA)
	m.Opcode = mdns.OpcodeNotify
	r, _, err = c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	wantRcode(t, r, mdns.RcodeNotImplemented)
}

func TestServer_TruncatesUDP(t *testing.T) {
	var many []*structs.ServiceInstance
	for i := range 100 {
		many = append(many, inst("default", "big", fmt.Sprintf("%08d-alloc", i), fmt.Sprintf("%08d-node", i),
			fmt.Sprintf("10.9.%d.%d", i/250, i%250+1), 20000+i, structs.ServiceStatusPassing))
	}
	s := startServer(t, &fakeLookup{insts: map[string][]*structs.ServiceInstance{"default/big": many}})

	r := exchange(t, s.Addr(), "udp", "big.service.drover.", mdns.TypeA)
	if !r.Truncated {
		t.Fatal("UDP answer of 64 A records is not truncated")
	}
	if n := len(r.Answer); n == 0 || n >= maxAnswers {
		t.Fatalf("UDP answers = %d, want some but fewer than %d", n, maxAnswers)
	}
	r.Compress = true // the wire size
	if l := r.Len(); l > mdns.MinMsgSize {
		t.Fatalf("UDP answer is %d bytes, over %d", l, mdns.MinMsgSize)
	}

	r = exchange(t, s.Addr(), "tcp", "big.service.drover.", mdns.TypeA)
	if r.Truncated || len(r.Answer) != maxAnswers {
		t.Fatalf("TCP answer: truncated %v, %d answers; want the first %d in full", r.Truncated, len(r.Answer), maxAnswers)
	}

	// A larger EDNS0 buffer takes every answer over UDP.
	m := new(mdns.Msg)
	m.SetQuestion("big.service.drover.", mdns.TypeA)
	m.SetEdns0(4096, false)
	r, _, err := (&mdns.Client{Timeout: 5 * time.Second}).Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != maxAnswers || r.IsEdns0() == nil {
		t.Fatalf("EDNS0 answer: truncated %v, %d answers, OPT %v; want %d in full with OPT", r.Truncated, len(r.Answer), r.IsEdns0(), maxAnswers)
	}

	r = exchange(t, s.Addr(), "udp", "_big._tcp.service.drover.", mdns.TypeSRV)
	r.Compress = true
	if !r.Truncated || r.Len() > mdns.MinMsgSize {
		t.Fatalf("UDP SRV answer: truncated %v, %d bytes; want truncated to %d", r.Truncated, r.Len(), mdns.MinMsgSize)
	}
}

func TestServer_LookupPanicIsServfail(t *testing.T) {
	f := &fakeLookup{insts: testInstances()}
	f.hook = func(ns, name string) error {
		if name == "boom" {
			panic("lookup exploded")
		}
		return nil
	}
	s := startServer(t, f)
	wantRcode(t, ask(t, s, "boom.service.drover.", mdns.TypeA), mdns.RcodeServerFailure)
	// Not cached: the next query looks up again (and fails again).
	wantRcode(t, ask(t, s, "boom.service.drover.", mdns.TypeA), mdns.RcodeServerFailure)
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("lookups = %d, want 2", n)
	}
	// The server still answers.
	r := ask(t, s, "web.service.drover.", mdns.TypeA)
	wantRcode(t, r, mdns.RcodeSuccess)
	if len(r.Answer) != 2 {
		t.Fatalf("A after panic = %v", r.Answer)
	}
}

func TestServer_LookupErrorIsServfail(t *testing.T) {
	f := &fakeLookup{insts: testInstances()}
	f.hook = func(ns, name string) error { return errors.New("no servers") }
	s := startServer(t, f)
	wantRcode(t, ask(t, s, "web.service.drover.", mdns.TypeA), mdns.RcodeServerFailure)
}

func TestServer_CacheAcrossQueries(t *testing.T) {
	f := &fakeLookup{insts: testInstances()}
	s := startServer(t, f)
	ask(t, s, "web.service.drover.", mdns.TypeA)
	ask(t, s, "_web._tcp.service.drover.", mdns.TypeSRV)
	ask(t, s, "web.vip.drover.", mdns.TypeA)
	// One second is long on a loaded machine, but the three queries
	// take milliseconds; TestCache_* pin the expiry with a fake clock.
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("lookups = %d, want 1 for three queries of one service", n)
	}
}

func TestServer_PortInUse(t *testing.T) {
	s := startServer(t, &fakeLookup{})
	_, err := New(Config{Addr: s.Addr(), Lookup: (&fakeLookup{}).lookup})
	if err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Fatalf("New on a used address: err = %v, want one naming %s", err, s.Addr())
	}
}

func TestServer_Config(t *testing.T) {
	f := &fakeLookup{}
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantTTL uint32
		domain  string
		err     bool
	}{
		{name: "defaults", cfg: Config{Lookup: f.lookup}, wantTTL: 5, domain: "drover."},
		{name: "short ttl", cfg: Config{Lookup: f.lookup, TTL: 2 * time.Second}, wantTTL: 2},
		{name: "long ttl clamped", cfg: Config{Lookup: f.lookup, TTL: time.Hour}, wantTTL: 5},
		{name: "negative ttl is 0", cfg: Config{Lookup: f.lookup, TTL: -time.Second}, wantTTL: 0},
		{name: "domain", cfg: Config{Lookup: f.lookup, Domain: "Cluster.Local"}, wantTTL: 5, domain: "cluster.local."},
		{name: "no lookup", cfg: Config{}, err: true},
		{name: "root domain", cfg: Config{Lookup: f.lookup, Domain: "."}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newServer(tc.cfg, time.Now)
			if tc.err {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.ttl != tc.wantTTL {
				t.Fatalf("ttl = %d, want %d", s.ttl, tc.wantTTL)
			}
			if tc.domain != "" && s.domain != tc.domain {
				t.Fatalf("domain = %q, want %q", s.domain, tc.domain)
			}
		})
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCache_ReusesForOneSecond(t *testing.T) {
	f := &fakeLookup{insts: testInstances()}
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := newCache(f.lookup, clock.now, 16)
	ctx := context.Background()
	for range 2 {
		if insts, err := c.get(ctx, "default", "web"); err != nil || len(insts) != 7 {
			t.Fatalf("get = %d instances, %v", len(insts), err)
		}
	}
	clock.advance(999 * time.Millisecond)
	_, _ = c.get(ctx, "default", "web")
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("lookups within 1s = %d, want 1", n)
	}
	clock.advance(time.Millisecond)
	_, _ = c.get(ctx, "default", "web")
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("lookups after 1s = %d, want 2", n)
	}
	// Namespaces are separate entries.
	_, _ = c.get(ctx, "prod", "web")
	if n := f.calls.Load(); n != 3 {
		t.Fatalf("lookups = %d, want 3", n)
	}
}

func TestCache_OneLookupInFlight(t *testing.T) {
	release := make(chan struct{})
	f := &fakeLookup{insts: testInstances()}
	f.hook = func(ns, name string) error { <-release; return nil }
	c := newCache(f.lookup, time.Now, 16)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			insts, err := c.get(context.Background(), "default", "web")
			if err == nil && len(insts) != 7 {
				err = fmt.Errorf("%d instances", len(insts))
			}
			errs <- err
		}()
	}
	// Wait until the first lookup started, then let it answer.
	deadline := time.Now().Add(5 * time.Second)
	for f.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("lookups = %d, want 1 for 10 concurrent queries", n)
	}
}

func TestCache_Bounded(t *testing.T) {
	f := &fakeLookup{}
	c := newCache(f.lookup, time.Now, 4)
	for i := range 10 {
		_, _ = c.get(context.Background(), "default", fmt.Sprintf("svc%d", i))
	}
	if len(c.entries) != 4 || c.order.Len() != 4 {
		t.Fatalf("entries = %d, order = %d; want 4", len(c.entries), c.order.Len())
	}
	if _, ok := c.entries[cacheKey{"default", "svc9"}]; !ok {
		t.Fatal("the newest entry was evicted")
	}
	if _, ok := c.entries[cacheKey{"default", "svc0"}]; ok {
		t.Fatal("the oldest entry was kept")
	}
}

// recordWriter is a mdns.ResponseWriter that keeps what is written.
type recordWriter struct {
	msgs []*mdns.Msg
}

func (w *recordWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *recordWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
}
func (w *recordWriter) WriteMsg(m *mdns.Msg) error  { w.msgs = append(w.msgs, m); return nil }
func (w *recordWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *recordWriter) Close() error                { return nil }
func (w *recordWriter) TsigStatus() error           { return nil }
func (w *recordWriter) TsigTimersOnly(bool)         {}
func (w *recordWriter) Hijack()                     {}

// FuzzServeDNS feeds arbitrary packets to the handler the way the UDP
// server does (unpack, then ServeDNS): it must not panic (a recovered
// panic is a failure here too), must answer exactly once, and its
// answer must pack within the UDP limit.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.service.drover.", mdns.TypeA},
		{"_web._tcp.service.drover.", mdns.TypeSRV},
		{"web.vip.drover.", mdns.TypeA},
		{"api.prod.service.drover.", mdns.TypeAAAA},
		{"aaaaaaaa.11111111.addr.drover.", mdns.TypeA},
		{"example.com.", mdns.TypeA},
	} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2})

	var logged atomic.Int64
	lk := &fakeLookup{insts: testInstances()}
	s, err := newServer(Config{Lookup: lk.lookup, ErrorLog: log.New(io.Discard, "", 0)}, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	s.logf = func(format string, args ...any) {
		if strings.Contains(format, "panic") {
			logged.Add(1)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := new(mdns.Msg)
		if err := r.Unpack(b); err != nil {
			return // miekg/dns drops what it cannot unpack
		}
		if r.Response {
			return // the accept function ignores responses
		}
		w := &recordWriter{}
		s.ServeDNS(w, r)
		if n := logged.Load(); n != 0 {
			t.Fatalf("the handler panicked on %x", b)
		}
		if len(w.msgs) != 1 {
			t.Fatalf("%d answers, want 1", len(w.msgs))
		}
		out, err := w.msgs[0].Pack()
		if err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
		if opt := r.IsEdns0(); opt == nil && len(out) > mdns.MinMsgSize && w.msgs[0].Rcode == mdns.RcodeSuccess {
			t.Fatalf("UDP answer of %d bytes", len(out))
		}
	})
}
