package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/structs"
)

// Defaults.
const (
	// DefaultHTTPPort and DefaultHTTPSPort are the gateway's ports.
	DefaultHTTPPort  = 80
	DefaultHTTPSPort = 443
	// defaultDialTimeout bounds one dial to an instance.
	defaultDialTimeout = 5 * time.Second
	// shutdownTimeout bounds Stop's wait for requests in flight.
	shutdownTimeout = 5 * time.Second
	// maxResponseHeaderBytes bounds an instance's response headers.
	maxResponseHeaderBytes = 1 << 20
)

// Certificate is a named certificate of the configuration, which routes
// ask for by name.
type Certificate struct {
	Name     string
	CertFile string
	KeyFile  string
}

// Config configures a Gateway.
type Config struct {
	// HTTPAddr is the plain HTTP listener's address ("" for none).
	HTTPAddr string
	// HTTPSAddr is the HTTPS listener's address; it is only listened on
	// when Certificates is not empty.
	HTTPSAddr string
	// Certificates are loaded by New; the first is the default.
	Certificates []Certificate
	// AccessLog is a file every request appends a JSON line to; "" for
	// none.
	AccessLog string
	// DialTimeout bounds a dial to an instance (default 5s).
	DialTimeout time.Duration
	// ErrorLog receives warnings; nil: discarded.
	ErrorLog *log.Logger
}

// Gateway is the HTTP ingress gateway. Create it with New, feed it with
// Update, end it with Stop.
type Gateway struct {
	cfg       Config
	table     atomic.Pointer[table]
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	metrics   *metrics
	access    *accessLog
	certs     *certStore
	httpsPort int

	// mu guards backends, stats and stopped; Update holds it while it
	// builds a table.
	mu       sync.Mutex
	backends map[string]*backend
	stats    map[routeKey]*routeStats
	stopped  bool

	servers   []*http.Server
	listeners []listenerInfo
	wg        sync.WaitGroup
}

type listenerInfo struct {
	kind, addr string
}

// errorBody is the JSON the gateway answers its own errors with.
type errorBody struct {
	Error string `json:"error"`
}

// New loads the certificates, opens the listeners and starts serving
// (with an empty table until Update). A listener that cannot be opened
// fails New with an error naming its address.
func New(cfg Config) (*Gateway, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.ErrorLog == nil {
		cfg.ErrorLog = log.New(io.Discard, "", 0)
	}
	g := &Gateway{cfg: cfg, backends: map[string]*backend{}, stats: map[routeKey]*routeStats{}}
	g.table.Store(&table{})
	certs, err := loadCertificates(cfg.Certificates, cfg.ErrorLog)
	if err != nil {
		return nil, err
	}
	g.certs = certs
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	g.transport = &http.Transport{
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// Idle connections kept for reuse: enough per instance that a
		// burst of concurrent requests does not end in closing and
		// redialing most of them.
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		// The client's Accept-Encoding goes to the instance as sent and
		// the response comes back as the instance encoded it (by default
		// the transport would ask for gzip itself and decompress).
		DisableCompression: true,
		// An instance's response headers are bounded like a client's
		// request headers (net/http's default here is 10 MiB).
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// HTTP/1.1 to the instances: upgrades need it.
		ForceAttemptHTTP2: false,
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:      g.rewrite,
		Transport:    &retryTransport{g: g},
		ErrorHandler: g.proxyError,
		ErrorLog:     cfg.ErrorLog,
		// 0: the proxy itself flushes only streams (no Content-Length,
		// or text/event-stream), from their headers on; the recorder
		// flushes every other response after each write (flushWrites).
		// -1 here would have the proxy start a timer per response that
		// fires at once, on another goroutine, to flush the headers:
		// a second write to the client for most responses.
		FlushInterval: 0,
		BufferPool:    newBufferPool(),
	}
	g.metrics = newMetrics()
	if cfg.AccessLog != "" {
		if g.access, err = openAccessLog(cfg.AccessLog); err != nil {
			return nil, err
		}
	}
	if err := g.listen(); err != nil {
		g.Stop()
		return nil, err
	}
	return g, nil
}

// listen opens both listeners before serving either (the HTTPS port
// is known to the redirects from the first request on).
func (g *Gateway) listen() error {
	var httpL, httpsL net.Listener
	if g.cfg.HTTPAddr != "" {
		l, err := net.Listen("tcp", g.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("gateway HTTP listener on %s: %w", g.cfg.HTTPAddr, err)
		}
		httpL = l
	}
	if g.cfg.HTTPSAddr != "" && g.certs.len() > 0 {
		l, err := net.Listen("tcp", g.cfg.HTTPSAddr)
		if err != nil {
			if httpL != nil {
				httpL.Close()
			}
			return fmt.Errorf("gateway HTTPS listener on %s: %w", g.cfg.HTTPSAddr, err)
		}
		httpsL = l
		g.httpsPort = l.Addr().(*net.TCPAddr).Port
	}
	if httpL != nil {
		g.serve("http", httpL, nil)
	}
	if httpsL != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: g.getCertificate, NextProtos: []string{"h2", "http/1.1"}}
		g.serve("https", httpsL, tc)
	}
	return nil
}

func (g *Gateway) serve(kind string, l net.Listener, tc *tls.Config) {
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: g.cfg.ErrorLog, TLSConfig: tc}
	g.mu.Lock()
	g.servers = append(g.servers, srv)
	g.listeners = append(g.listeners, listenerInfo{kind: kind, addr: l.Addr().String()})
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		var err error
		if tc != nil {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.cfg.ErrorLog.Printf("[ERR] gateway: %s listener %s: %v", kind, l.Addr(), err)
		}
	}()
}

// HTTPAddr and HTTPSAddr return the listeners' addresses ("" when not
// listening).
func (g *Gateway) HTTPAddr() string  { return g.listenerAddr("http") }
func (g *Gateway) HTTPSAddr() string { return g.listenerAddr("https") }

func (g *Gateway) listenerAddr(kind string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.listeners {
		if l.kind == kind {
			return l.addr
		}
	}
	return ""
}

// Update replaces the routing table with the routes of services.
// Requests in flight finish on the table they started with.
func (g *Gateway) Update(services []*structs.ProxiedService) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	t, backends, stats := buildTable(services, g.backends, g.stats)
	for k := range g.stats {
		if stats[k] == nil {
			g.metrics.forget(k)
		}
	}
	g.backends, g.stats = backends, stats
	for _, r := range t.routes {
		if r.spec.TLS != nil && r.spec.TLS.CertName != "" && !g.certs.has(r.spec.TLS.CertName) {
			g.certs.warnUnknown(r.spec.TLS.CertName, r.namespace, r.service)
		}
	}
	g.table.Store(t)
}

// Stop closes the listeners, waits (up to 5s) for requests in flight
// and closes the idle connections to instances.
func (g *Gateway) Stop() {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return
	}
	g.stopped = true
	servers := g.servers
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			_ = s.Close()
		}
	}
	g.wg.Wait()
	g.transport.CloseIdleConnections()
	if g.access != nil {
		g.access.close()
	}
}

// ctxKey carries a request's state to the proxy's hooks.
type ctxKey struct{}

// maxBundledTries is how many tried instances reqState holds without
// allocating.
const maxBundledTries = 4

// reqState is a request's routing decision and outcome, and the small
// things the handler and the round tripper need per request, allocated
// together once: it is the context the proxy gets (the request's own
// with the state as the ctxKey value), the response recorder, the
// backing array of the tried instances, and the first attempt (the
// only one of most requests).
type reqState struct {
	// Context is the request's context; Value adds ctxKey.
	context.Context
	route    *route
	upstream string
	// upstreamErr is set when no instance answered.
	upstreamErr bool
	rec         recorder
	tried       [maxBundledTries]*backend
	first       attemptState
}

// Value returns the state itself for ctxKey, else the request
// context's value.
func (s *reqState) Value(key any) any {
	if key == (ctxKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// ServeHTTP routes one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &reqState{Context: r.Context(), route: g.table.Load().lookup(r.Host, r.URL.Path)}
	st.rec.ResponseWriter = w
	rw := &st.rec
	defer g.finish(rw, r, st, start)
	rt := st.route
	switch {
	case rt == nil:
		writeError(rw, http.StatusNotFound, fmt.Sprintf("no route for host %q path %q", normalizeHost(r.Host), r.URL.Path))
		return
	case rt.spec.HTTPSOnly && r.TLS == nil:
		target := "https://" + normalizeHost(r.Host)
		if p := g.redirectPort(); p != DefaultHTTPSPort {
			target = "https://" + net.JoinHostPort(normalizeHost(r.Host), strconv.Itoa(p))
		}
		http.Redirect(rw, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
		return
	case len(rt.passing) == 0:
		writeError(rw, http.StatusServiceUnavailable, fmt.Sprintf("no passing instance of service %q in namespace %q for host %q path %q",
			rt.service, rt.namespace, normalizeHost(r.Host), r.URL.Path))
		return
	}
	rw.flushWrites = true
	g.proxy.ServeHTTP(rw, r.WithContext(st))
}

// redirectPort is the HTTPS port redirects name.
func (g *Gateway) redirectPort() int {
	if g.httpsPort != 0 {
		return g.httpsPort
	}
	if _, p, err := net.SplitHostPort(g.cfg.HTTPSAddr); err == nil {
		if n, err := strconv.Atoi(p); err == nil && n != 0 {
			return n
		}
	}
	return DefaultHTTPSPort
}

// rewrite is the ReverseProxy's Rewrite: the instance is chosen by the
// transport (per attempt); here the path is stripped and the
// X-Forwarded headers set.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	st, _ := pr.In.Context().Value(ctxKey{}).(*reqState)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "instance.invalid"
	if st != nil && st.route.spec.StripPrefix {
		pr.Out.URL.Path = stripPrefix(st.route.path, pr.In.URL.Path)
		pr.Out.URL.RawPath = ""
		if raw := pr.In.URL.RawPath; raw != "" {
			if s := stripPrefix(st.route.path, raw); s != raw {
				pr.Out.URL.RawPath = s
			}
		}
	}
	pr.SetXForwarded()
	// The instance sees the host the client asked for.
	pr.Out.Host = pr.In.Host
}

// proxyError answers a request no instance answered: 504 when the
// route's timeout passed, 503 when no instance could be reached, 502
// otherwise.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	if st != nil {
		st.upstreamErr = true
	}
	if errors.Is(r.Context().Err(), context.Canceled) {
		// The client went away.
		w.WriteHeader(499)
		return
	}
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, errTimeout):
		code = http.StatusGatewayTimeout
	case errors.Is(err, errNoBackend), isDialError(err):
		code = http.StatusServiceUnavailable
	}
	msg := err.Error()
	if st != nil {
		msg = fmt.Sprintf("service %q in namespace %q: %v", st.route.service, st.route.namespace, err)
	}
	g.cfg.ErrorLog.Printf("[WARN] gateway: %s %s%s: %s", r.Method, r.Host, r.URL.Path, msg)
	writeError(w, code, msg)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg})
}

// finish counts and logs a request once it has been answered.
func (g *Gateway) finish(rw *recorder, r *http.Request, st *reqState, start time.Time) {
	rw.end()
	d := time.Since(start)
	code := rw.status
	if code == 0 {
		code = http.StatusOK
		if rw.hijacked {
			code = http.StatusSwitchingProtocols
		}
	}
	if rt := st.route; rt != nil {
		g.metrics.observe(rt, code, d, st.upstreamErr)
		if st.upstreamErr {
			rt.stats.errors.Add(1)
		}
		rt.stats.requests.Add(1)
	}
	if g.access != nil {
		e := accessEntry{Time: start.UTC().Format(time.RFC3339Nano), Host: r.Host, Method: r.Method, Path: r.URL.Path,
			Status: code, Bytes: rw.bytes, DurationMS: float64(d.Microseconds()) / 1000, Upstream: st.upstream}
		if rt := st.route; rt != nil {
			e.Namespace, e.Service = rt.namespace, rt.service
		}
		g.access.write(&e)
	}
}

// headerFlushDelay is how long the headers of a proxied response with
// a Content-Length may wait in the gateway for the first bytes of its
// body, to go out with them in one write.
const headerFlushDelay = time.Millisecond

// recorder notes a response's status and size; Unwrap lets
// http.ResponseController (the ReverseProxy's flushes and upgrades)
// reach the connection.
//
// For proxied responses (flushWrites) it also sends on at once what
// the instance sent: what each Write wrote, and the headers when no
// body follows them within headerFlushDelay. (The ReverseProxy does
// this itself for streams, without a Content-Length; asked to for every
// response, with FlushInterval -1, it flushes the headers from a timer
// that fires at once on another goroutine, so most responses took two
// writes to the client.)
type recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool
	// flushWrites is set before the proxy gets the recorder.
	flushWrites bool

	// mu serialises the use of ResponseWriter by the handler's
	// goroutine, the proxy's flush timer and headerTimer; it guards
	// headerTimer, wrote and done.
	mu          sync.Mutex
	headerTimer *time.Timer
	// wrote: a Write came (the headers went out with it).
	wrote bool
	// done: the handler returned, the ResponseWriter is not to be used.
	done bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 || r.status < 200 {
		r.status = code
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ResponseWriter.WriteHeader(code)
	if r.flushWrites && code >= 200 && r.headerTimer == nil {
		r.headerTimer = time.AfterFunc(headerFlushDelay, r.flushHeaders)
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wrote = true
	r.stopHeaderTimerLocked()
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	if r.flushWrites && err == nil {
		r.flushLocked()
	}
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.flushLocked()
	}
}

func (r *recorder) flushLocked() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// flushHeaders is headerTimer's: no body came after the headers.
func (r *recorder) flushHeaders() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.wrote && !r.done {
		r.flushLocked()
	}
}

func (r *recorder) stopHeaderTimerLocked() {
	if r.headerTimer != nil {
		r.headerTimer.Stop()
	}
}

// end is called when the handler returns: from then on the
// ResponseWriter is not to be used.
func (r *recorder) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopHeaderTimerLocked()
	r.done = true
}

// Hijack hands the connection over (WebSocket upgrades).
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.hijacked = true
	return http.NewResponseController(r.ResponseWriter).Hijack()
}
