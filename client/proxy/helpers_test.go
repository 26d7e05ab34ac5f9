package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// randomVIP returns an address in 127.99.0.0/16 (any 127.x address
// binds on Linux loopback without setup); random so that tests running
// at once do not clash.
func randomVIP() string {
	return fmt.Sprintf("127.99.%d.%d", 1+rand.IntN(254), 1+rand.IntN(254))
}

// freePort returns a TCP port free on host (racy, as such helpers are).
func freePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// httpBackend is an HTTP server on 127.0.0.1 that answers its name.
type httpBackend struct {
	name string
	addr string
	srv  *http.Server
}

func startHTTPBackend(t testing.TB, name string) *httpBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &httpBackend{name: name, addr: l.Addr().String()}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name)
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = b.srv.Serve(l) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// echoBackend is a TCP server on 127.0.0.1 that answers each line with
// "<name> <line>" and, at the client's end of stream, writes "bye
// <name>\n" and closes.
type echoBackend struct {
	name string
	addr string
	l    net.Listener
	wg   sync.WaitGroup
}

func startEchoBackend(t testing.TB, name string) *echoBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &echoBackend{name: name, addr: l.Addr().String(), l: l}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						_, _ = fmt.Fprintf(c, "bye %s\n", name)
						return
					}
					if _, err := fmt.Fprintf(c, "%s %s", name, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close() })
	return b
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
}

// instances builds passing instances at the addresses.
func instances(t testing.TB, addrs ...string) []*structs.ServiceInstance {
	t.Helper()
	out := make([]*structs.ServiceInstance, 0, len(addrs))
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		out = append(out, &structs.ServiceInstance{ID: fmt.Sprintf("a%d-web", i), ServiceName: "web", Namespace: "default",
			Address: host, Port: p, Status: structs.ServiceStatusPassing})
	}
	return out
}

// newTestProxy starts a proxy stopped at the test's end.
func newTestProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	if cfg.PublishHost == "" {
		cfg.PublishHost = "127.0.0.1"
	}
	if cfg.ErrorLog == nil {
		cfg.ErrorLog = log.New(io.Discard, "", 0)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// vipService is the service "default/web" on vip:80-ish ports.
func vipService(vip string, port int, insts []*structs.ServiceInstance) *structs.ProxiedService {
	return &structs.ProxiedService{Namespace: "default", Name: "web", VIP: vip, VIPPort: port, Instances: insts}
}

// listenVIP updates p with one VIP service on a free port of a random
// VIP and returns the VIP:port; it retries on a clash.
func listenVIP(t testing.TB, p *Proxy, insts []*structs.ServiceInstance) string {
	t.Helper()
	for i := 0; i < 10; i++ {
		vip := randomVIP()
		port := freePort(t, vip)
		p.Update([]*structs.ProxiedService{vipService(vip, port, insts)})
		st := p.Status()
		if len(st.Listeners) == 1 && st.Listeners[0].Error == "" {
			return st.Listeners[0].Address
		}
	}
	t.Fatal("cannot listen on a VIP")
	return ""
}

// get fetches http://addr/ on a new connection and returns the body.
func get(t testing.TB, c *http.Client, addr string) string {
	t.Helper()
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET via %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET via %s: read: %v", addr, err)
	}
	return string(body)
}

func noKeepAlive() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// lineConn is a client connection that sends lines and reads answers.
type lineConn struct {
	net.Conn
	r *bufio.Reader
}

func dialLine(t testing.TB, addr string) *lineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &lineConn{Conn: c, r: bufio.NewReader(c)}
}

// say sends a line and returns the answer without its newline.
func (c *lineConn) say(line string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	ans, err := c.r.ReadString('\n')
	return strings.TrimSuffix(ans, "\n"), err
}
