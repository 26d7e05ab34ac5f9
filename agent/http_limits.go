package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/connlimit"
	"github.com/droverhq/drover/structs"
)

// Overload protection: how much of the agent one client, or all of them,
// may hold.
//
// Every open connection is a file descriptor, and descriptors are shared
// by everything in the process: Raft's store and its connections to
// other servers, the RPC port where client nodes heartbeat, containerd,
// task log files. Before these limits, 20,000 blocking queries from one
// address took every descriptor; the RPC port then failed to accept and
// healthy nodes were marked down. So:
//
//   - each listener (HTTP and RPC) bounds the connections from one client
//     IP (limits.http_max_conns_per_client, rpc_max_conns_per_client) and
//     in total, a share of the open-file limit (httpFDPercent,
//     rpcFDPercent), leaving the rest for everything else;
//   - an HTTP connection over a limit is not just dropped: a small
//     overflow server answers it once under short deadlines, GET
//     /v1/agent/health normally and anything else 429, so health checks
//     work throughout a flood from the checker's own address;
//   - blocking queries from one client IP are bounded
//     (limits.max_blocking_queries_per_client); one over the bound is
//     answered at once with the current data and index, which keeps the
//     client correct (it asks again) and the agent's goroutines bounded.
const (
	// DefaultMaxConnsPerClient is the default of both per-client
	// connection limits. Legitimate peers need few: a server's Raft
	// transport pools 3 connections per peer (plus a pipeline and
	// snapshots), a client agent or `drover sim nodes` holds one
	// multiplexed session per server, and the CLI a handful of HTTP
	// connections.
	DefaultMaxConnsPerClient = 100
	// DefaultMaxBlockingQueriesPerClient is the default of
	// max_blocking_queries_per_client.
	DefaultMaxBlockingQueriesPerClient = 64

	// httpFDPercent and rpcFDPercent are the shares of the open-file
	// limit the HTTP and RPC listeners may keep open; the remaining
	// quarter is for Raft, containerd, log files and outgoing
	// connections. RPC gets more: every client node holds a session.
	httpFDPercent = 25
	rpcFDPercent  = 50
	// minTotalConns keeps a small open-file limit from making a listener
	// useless.
	minTotalConns = 64

	// overflowConns bounds the HTTP connections over a limit that are
	// still answered; beyond it they are closed at once.
	overflowConns = 256
	// overflowTimeout bounds each of reading the request and writing
	// the answer on an overflow connection.
	overflowTimeout = 2 * time.Second

	// httpReadTimeout bounds reading a request with a body; requests
	// without one (reads, blocking queries, log streams) lift it once
	// the handler starts, since Go's server cancels a request's context
	// when the read deadline passes.
	httpReadTimeout = 30 * time.Second
	// httpIdleTimeout closes keep-alive connections left unused.
	httpIdleTimeout = 90 * time.Second
	// httpMaxHeaderBytes bounds a request's header (Go's default is
	// 1 MiB).
	httpMaxHeaderBytes = 64 << 10

	// limitLogInterval spaces the warnings about refused connections.
	limitLogInterval = 10 * time.Second
)

// HeaderNotBlocked is set on the answer to a blocking query that was
// answered at once because its client already had
// max_blocking_queries_per_client blocking queries waiting.
const HeaderNotBlocked = "X-Drover-Not-Blocked"

// overloadLimits are the resolved limits block: defaults applied, 0
// meaning no limit.
type overloadLimits struct {
	httpPerClient     int
	rpcPerClient      int
	blockingPerClient int
}

// overloadLimits resolves and checks the connection and blocking-query
// limits of the limits block.
func (c *Config) overloadLimits() (overloadLimits, error) {
	out := overloadLimits{
		httpPerClient:     DefaultMaxConnsPerClient,
		rpcPerClient:      DefaultMaxConnsPerClient,
		blockingPerClient: DefaultMaxBlockingQueriesPerClient,
	}
	if c.Limits == nil {
		return out, nil
	}
	for _, f := range []struct {
		name string
		val  *int
		dst  *int
	}{
		{"http_max_conns_per_client", c.Limits.HTTPMaxConnsPerClient, &out.httpPerClient},
		{"rpc_max_conns_per_client", c.Limits.RPCMaxConnsPerClient, &out.rpcPerClient},
		{"max_blocking_queries_per_client", c.Limits.MaxBlockingQueriesPerClient, &out.blockingPerClient},
	} {
		if f.val == nil {
			continue
		}
		if *f.val < 0 {
			return out, fmt.Errorf("limits %s = %d: want 0 (no limit) or a positive number", f.name, *f.val)
		}
		*f.dst = *f.val
	}
	return out, nil
}

// httpConnLimit is the HTTP listener's connlimit configuration.
func (l overloadLimits) httpConnLimit(logger hclog.Logger) connlimit.Config {
	return connlimit.Config{
		MaxPerClient: l.httpPerClient,
		MaxTotal:     connlimit.Share(connlimit.FDLimit(), httpFDPercent, minTotalConns),
		MaxOverflow:  overflowConns,
		OnLimit:      newLimitWarner(logger, "HTTP", "http_max_conns_per_client", l.httpPerClient).onLimit,
	}
}

// rpcConnLimit is the RPC listener's connlimit configuration.
func (l overloadLimits) rpcConnLimit(logger hclog.Logger) connlimit.Config {
	return connlimit.Config{
		MaxPerClient: l.rpcPerClient,
		MaxTotal:     connlimit.Share(connlimit.FDLimit(), rpcFDPercent, minTotalConns),
		OnLimit:      newLimitWarner(logger, "RPC", "rpc_max_conns_per_client", l.rpcPerClient).onLimit,
	}
}

// limitWarner logs connections refused by a limit, at most once per
// limitLogInterval (a flood would otherwise fill the disk with the
// agent's own log), with how many were refused since the last line.
type limitWarner struct {
	logger  hclog.Logger
	what    string
	setting string
	max     int

	// mu guards last and count.
	mu    sync.Mutex
	last  time.Time
	count int
}

func newLimitWarner(logger hclog.Logger, what, setting string, max int) *limitWarner {
	return &limitWarner{logger: logger, what: what, setting: setting, max: max}
}

func (w *limitWarner) onLimit(ip string, limit connlimit.Limit, overflowed bool) {
	w.mu.Lock()
	w.count++
	now := time.Now()
	if now.Sub(w.last) < limitLogInterval {
		w.mu.Unlock()
		return
	}
	n := w.count
	w.last, w.count = now, 0
	w.mu.Unlock()
	action := "closed"
	if overflowed {
		action = "answered 429 (health checks still answered)"
	}
	msg := fmt.Sprintf("%s connections over the limit were %s", w.what, action)
	if limit == connlimit.LimitPerClient {
		w.logger.Warn(msg, "client", ip, "limit", fmt.Sprintf("%s = %d", w.setting, w.max), "refused_since_last_warning", n)
	} else {
		w.logger.Warn(msg, "client", ip, "limit", "total open connections (a share of the open-file limit; raise ulimit -n)", "refused_since_last_warning", n)
	}
}

// serveHTTP serves handler on the limited HTTP listener: connections
// within the limits get the API (httpServer), those over them the
// overflow server.
func (a *Agent) serveHTTP(handler http.Handler) {
	a.httpServer = a.newHTTPServer(handler)
	a.overflowServer = a.newOverflowServer()
	for _, s := range []struct {
		srv *http.Server
		l   net.Listener
	}{{a.httpServer, a.httpsListener(a.httpLimiter)}, {a.overflowServer, a.httpsListener(a.httpLimiter.Overflow())}} {
		go func() {
			if err := s.srv.Serve(s.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("HTTP server failed", "error", err)
			}
		}()
	}
}

// newHTTPServer builds the API server around handler, with the
// timeouts that keep slow or idle clients from holding connections.
// There is no WriteTimeout: blocking queries and followed logs stream
// for minutes; blocking waits are capped (structs.MaxQueryTime) and
// connections per client are bounded instead.
//
// Go's server bounds a TLS handshake by the shortest of its read and
// header timeouts, so limits.https_handshake_timeout (default 5s, as
// Nomad's) shortens the header timeout when it is the smaller.
func (a *Agent) newHTTPServer(handler http.Handler) *http.Server {
	header := 10 * time.Second
	if a.config.TLS != nil && a.config.TLS.HTTP {
		header = min(header, a.httpsHandshakeTimeout())
	}
	return &http.Server{
		Handler:           a.limitRequests(handler),
		ReadHeaderTimeout: header,
		ReadTimeout:       httpReadTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          a.logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// newOverflowServer builds the server for HTTP connections over a
// limit: one request per connection, short deadlines, small headers,
// and only the health check is served.
func (a *Agent) newOverflowServer() *http.Server {
	health := a.wrap(a.agentHealth)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/v1/agent/health" {
				health(w, r)
				return
			}
			w.Header().Set("Retry-After", "1")
			writeError(w, structs.NewError(structs.CodeTooManyRequests, fmt.Sprintf(
				"this agent has too many open connections from %s (limits.http_max_conns_per_client), or in total; "+
					"only GET /v1/agent/health is answered on this connection: close idle connections or retry later", clientIP(r))))
		}),
		ReadHeaderTimeout: overflowTimeout,
		ReadTimeout:       overflowTimeout,
		WriteTimeout:      overflowTimeout,
		MaxHeaderBytes:    8 << 10,
		// A flood would turn every timed-out overflow connection into
		// a log line.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv.SetKeepAlivesEnabled(false)
	return srv
}

// limitRequests applies the per-request limits in front of the API:
// lifting the read deadline of body-less requests (see httpReadTimeout)
// and the blocking-query cap.
func (a *Agent) limitRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		}
		if !isBlockingQuery(r) || a.blocking == nil {
			next.ServeHTTP(w, r)
			return
		}
		ip := clientIP(r)
		if !a.blocking.acquire(ip) {
			w.Header().Set(HeaderNotBlocked, fmt.Sprintf("%d blocking queries from this client are already waiting (limits.max_blocking_queries_per_client)", a.blocking.max))
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), notBlockedKey{}, true)))
			return
		}
		defer a.blocking.release(ip)
		next.ServeHTTP(w, r)
	})
}

// notBlockedKey marks a request whose blocking query must not block.
type notBlockedKey struct{}

// queryMayBlock reports whether a request's blocking query may wait;
// parseQueryOptions drops the index of one that may not.
func queryMayBlock(r *http.Request) bool {
	notBlocked, _ := r.Context().Value(notBlockedKey{}).(bool)
	return !notBlocked
}

// isBlockingQuery reports whether r asks to wait for an index: a read
// with a non-zero ?index= (parseQueryOptions rejects malformed ones).
func isBlockingQuery(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	s := r.URL.Query().Get("index")
	return s != "" && s != "0"
}

// clientIP is the IP address of the request's client.
func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// blockingLimiter counts the blocking queries waiting per client IP.
type blockingLimiter struct {
	max int
	// mu guards perIP.
	mu    sync.Mutex
	perIP map[string]int
}

// newBlockingLimiter returns a limiter of max per client, or nil (no
// limit) for 0.
func newBlockingLimiter(max int) *blockingLimiter {
	if max <= 0 {
		return nil
	}
	return &blockingLimiter{max: max, perIP: make(map[string]int)}
}

func (b *blockingLimiter) acquire(ip string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.perIP[ip] >= b.max {
		return false
	}
	b.perIP[ip]++
	return true
}

func (b *blockingLimiter) release(ip string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.perIP[ip]--; b.perIP[ip] <= 0 {
		delete(b.perIP, ip)
	}
}

// waiting returns the blocking queries waiting for ip.
func (b *blockingLimiter) waiting(ip string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.perIP[ip]
}

// defaultHTTPSHandshakeTimeout is limits.https_handshake_timeout unset.
const defaultHTTPSHandshakeTimeout = 5 * time.Second

// httpsHandshakeTimeout is the configured limits.https_handshake_timeout
// (validated at start), or the default.
func (a *Agent) httpsHandshakeTimeout() time.Duration {
	if l := a.config.Limits; l != nil && l.HTTPSHandshakeTimeout != "" {
		if d, err := time.ParseDuration(l.HTTPSHandshakeTimeout); err == nil && d > 0 {
			return d
		}
	}
	return defaultHTTPSHandshakeTimeout
}
