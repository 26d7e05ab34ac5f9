package gateway

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// backendServer is an HTTP server on 127.0.0.1 that answers its name
// and echoes what it saw in headers.
type backendServer struct {
	name string
	addr string
	srv  *http.Server
	l    net.Listener
	mu   sync.Mutex
	// seen records the requests' paths and X-Forwarded headers.
	seen []*http.Request
}

func startBackend(t testing.TB, name string) *backendServer {
	t.Helper()
	return startBackendHandler(t, name, nil)
}

func startBackendHandler(t testing.TB, name string, h http.HandlerFunc) *backendServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backendServer{name: name, addr: l.Addr().String(), l: l}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, r.Clone(r.Context()))
		b.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("X-Backend", name)
		_, _ = io.WriteString(w, name+" "+r.URL.Path)
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = b.srv.Serve(l) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// kill closes the backend's listener and connections at once.
func (b *backendServer) kill() { _ = b.srv.Close() }

func (b *backendServer) last() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		return nil
	}
	return b.seen[len(b.seen)-1]
}

// instance is a passing instance at addr.
func instance(t testing.TB, addr string, canary bool) *structs.ServiceInstance {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return &structs.ServiceInstance{Address: host, Port: p, Status: structs.ServiceStatusPassing, Canary: canary}
}

func service(name string, routes []*structs.ServiceRoute, insts ...*structs.ServiceInstance) *structs.ProxiedService {
	return &structs.ProxiedService{Namespace: "default", Name: name, Routes: routes, Instances: insts}
}

// newTestGateway starts a gateway on 127.0.0.1 (HTTP only unless cfg
// names certificates) and stops it at the end of the test.
func newTestGateway(t testing.TB, cfg Config) *Gateway {
	t.Helper()
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if len(cfg.Certificates) > 0 && cfg.HTTPSAddr == "" {
		cfg.HTTPSAddr = "127.0.0.1:0"
	}
	if cfg.ErrorLog == nil {
		cfg.ErrorLog = log.New(io.Discard, "", 0)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

// testClient sends requests to the gateway whatever their Host.
func testClient(addr string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 16,
		},
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// get requests url through c and returns the status and body.
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	return do(t, c, http.MethodGet, url, nil)
}

func do(t testing.TB, c *http.Client, method, url string, body []byte) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
