package gateway

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// Errors of a forwarded request.
var (
	// errNoBackend: the route has no passing instance left to try.
	errNoBackend = errors.New("no passing instance left to try")
	// errTimeout: the instance did not send the response's headers
	// within the route's timeout.
	errTimeout = errors.New("the instance did not answer within the route's timeout")
)

// retryTransport picks an instance per attempt and tries another one
// when connecting fails (see the package doc for which requests).
type retryTransport struct {
	g *Gateway
}

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(ctxKey{}).(*reqState)
	if st == nil {
		return nil, errNoBackend
	}
	rt := st.route
	hasBody := req.Body != nil && req.Body != http.NoBody
	idempotent := !hasBody || isIdempotent(req.Method)
	var body *trackedBody
	if hasBody {
		body = &trackedBody{rc: req.Body}
	}
	// A failed dial sent nothing: always worth one more instance.
	maxDialRetries := max(rt.spec.Retries, 1)
	tried := st.tried[:0]
	var lastErr error
	for attempt := 0; ; attempt++ {
		b := pick(rt, tried)
		if b == nil {
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, errNoBackend
		}
		tried = append(tried, b)
		st.upstream = b.addr
		a := &st.first
		if attempt > 0 {
			a = &attemptState{}
		}
		resp, err := t.attempt(a, req, rt, b, body)
		if err == nil {
			return resp, nil
		}
		b.failures.Add(1)
		lastErr = err
		if req.Context().Err() != nil || errors.Is(err, errTimeout) {
			return nil, err
		}
		retries := attempt // retries done so far
		switch {
		case isDialError(err) && (body == nil || !body.read.Load()):
			if retries >= maxDialRetries {
				return nil, err
			}
		case idempotent && (body == nil || !body.read.Load()):
			// Closed before any response: safe for idempotent requests
			// whose body (if any) was not read. A request of an
			// idempotent method without a body gets one more instance
			// even with retries = 0, as a failed dial does (nginx's
			// default too): an instance killed while it held the
			// request must not fail it.
			limit := rt.spec.Retries
			if !hasBody && isIdempotent(req.Method) {
				limit = max(limit, 1)
			}
			if retries >= limit {
				return nil, err
			}
		default:
			return nil, err
		}
		t.g.cfg.ErrorLog.Printf("[DEBUG] gateway: %s %s to %s: %v; trying another instance", req.Method, req.URL.Path, b.addr, err)
	}
}

// attemptState is what one attempt needs beyond the request: the
// instance, the timeout's state, the outgoing URL and the response
// body's wrapper, in one allocation (the first attempt's is part of
// reqState). Each attempt has its own: a timer that fired late may
// still touch an earlier one.
type attemptState struct {
	b        *backend
	cancel   context.CancelFunc
	timedOut atomic.Bool
	url      url.URL
	// body is the response body, which the attempt's Read and Close
	// wrap (see doneBody below); closed notes the first Close.
	body   io.ReadCloser
	closed atomic.Bool
}

// expire is the timer's: the headers did not come in time.
func (a *attemptState) expire() {
	a.timedOut.Store(true)
	a.cancel()
}

// attempt sends req to b, bounding the wait for the response's headers
// by the route's timeout (never the body, never an upgraded
// connection).
func (t *retryTransport) attempt(a *attemptState, req *http.Request, rt *route, b *backend, body *trackedBody) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	a.b, a.cancel = b, cancel
	timer := time.AfterFunc(rt.timeout, a.expire)
	out := req.WithContext(ctx)
	a.url = *req.URL
	a.url.Host = b.addr
	out.URL = &a.url
	if body != nil {
		out.Body = body
	}
	b.active.Add(1)
	b.requests.Add(1)
	resp, err := t.g.transport.RoundTrip(out)
	if !timer.Stop() && err == nil {
		// The timeout fired as the headers came: the context is gone.
		resp.Body.Close()
		resp, err = nil, errTimeout
	}
	if err != nil {
		b.active.Add(-1)
		cancel()
		if a.timedOut.Load() {
			return nil, errTimeout
		}
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The body is the connection (an io.ReadWriteCloser the proxy
		// needs as is); the context ends with the client's request.
		b.active.Add(-1)
		return resp, nil
	}
	a.body = resp.Body
	resp.Body = (*doneBody)(a)
	return resp, nil
}

// pick chooses among the route's passing instances not yet tried: the
// canaries for canary_weight percent of requests while canaries and
// other instances pass, then the one with the fewest requests in
// flight, ties round robin.
func pick(rt *route, tried []*backend) *backend {
	pool := rt.passing
	if w := rt.spec.CanaryWeight; w > 0 && len(rt.canary) > 0 && len(rt.stable) > 0 {
		if rand.IntN(100) < w {
			pool = rt.canary
		} else {
			pool = rt.stable
		}
		if allTried(pool, tried) {
			pool = rt.passing
		}
	}
	n := len(pool)
	if n == 0 {
		return nil
	}
	start := int(rt.rr.Add(1) % uint64(n))
	var best *backend
	var bestActive int64
	for i := 0; i < n; i++ {
		b := pool[(start+i)%n]
		if contains(tried, b) {
			continue
		}
		if a := b.active.Load(); best == nil || a < bestActive {
			best, bestActive = b, a
		}
	}
	return best
}

func allTried(pool, tried []*backend) bool {
	for _, b := range pool {
		if !contains(tried, b) {
			return false
		}
	}
	return true
}

func contains(list []*backend, b *backend) bool {
	for _, x := range list {
		if x == b {
			return true
		}
	}
	return false
}

func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// isDialError reports whether err is a failure to connect: nothing was
// sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// trackedBody is a request body shared by the attempts: it notes
// whether any of it was read (then it cannot be sent again) and ignores
// the transport's Close (the server closes the real one).
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *trackedBody) Close() error { return nil }

// doneBody is the response body of an attempt: once closed, the
// instance has one request fewer in flight and the attempt's context
// ends.
type doneBody attemptState

func (d *doneBody) Read(p []byte) (int, error) { return d.body.Read(p) }

func (d *doneBody) Close() error {
	err := d.body.Close()
	if d.closed.CompareAndSwap(false, true) {
		d.b.active.Add(-1)
		d.cancel()
	}
	return err
}
