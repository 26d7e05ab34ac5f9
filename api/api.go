package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultAddress is used when neither Config.Address nor DROVER_ADDR is
// set.
const DefaultAddress = "http://127.0.0.1:4646"

// Config configures a Client.
type Config struct {
	// Address of an agent's HTTP API, e.g. http://127.0.0.1:4646.
	Address string
	// HTTPClient is used for requests; a default with sane timeouts is
	// used when nil.
	HTTPClient *http.Client
}

// Client talks to one agent's HTTP API.
type Client struct {
	addr *url.URL
	http *http.Client
}

// NewClient returns a client for cfg.Address, or DROVER_ADDR, or the
// default address.
func NewClient(cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	addr := cfg.Address
	if addr == "" {
		addr = os.Getenv("DROVER_ADDR")
	}
	if addr == "" {
		addr = DefaultAddress
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid agent address %q: want e.g. http://127.0.0.1:4646", addr)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return &Client{addr: u, http: hc}, nil
}

// Address returns the agent address the client uses.
func (c *Client) Address() string { return c.addr.String() }

// QueryOptions are the read options of every list and get.
type QueryOptions struct {
	// WaitIndex makes the request block until the state index is
	// greater than it, or WaitTime passes.
	WaitIndex uint64
	WaitTime  time.Duration
	// AllowStale lets any server answer from its own state.
	AllowStale bool
	// Prefix filters lists by ID prefix.
	Prefix string
	// Context cancels the request.
	Context context.Context
}

// QueryMeta is returned by reads.
type QueryMeta struct {
	// LastIndex is the index to pass as WaitIndex for the next change.
	LastIndex   uint64
	KnownLeader bool
}

// WriteMeta is returned by writes.
type WriteMeta struct {
	LastIndex uint64
}

// FieldError is one validation problem, at a JSON field path.
type FieldError struct {
	Path    string
	Message string
}

// Error is an error response of the API.
type Error struct {
	StatusCode int
	// Code is stable and machine-readable (e.g. "not_found",
	// "invalid_request", "no_leader").
	Code     string
	Message  string
	Problems []FieldError
}

// Error returns the message; it already lists every problem.
func (e *Error) Error() string { return e.Message }

// IsNotFound reports whether err is a 404 from the API.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// request is one HTTP call.
type request struct {
	method string
	path   string
	params url.Values
	body   interface{}
	ctx    context.Context
}

func (c *Client) newRequest(method, path string, q *QueryOptions) *request {
	r := &request{method: method, path: path, params: url.Values{}, ctx: context.Background()}
	if q != nil {
		if q.WaitIndex > 0 {
			r.params.Set("index", strconv.FormatUint(q.WaitIndex, 10))
		}
		if q.WaitTime > 0 {
			r.params.Set("wait", q.WaitTime.String())
		}
		if q.AllowStale {
			r.params.Set("stale", "true")
		}
		if q.Prefix != "" {
			r.params.Set("prefix", q.Prefix)
		}
		if q.Context != nil {
			r.ctx = q.Context
		}
	}
	return r
}

// do sends the request and returns the response; a non-2xx status is
// turned into an *Error.
func (c *Client) do(r *request) (*http.Response, error) {
	u := *c.addr
	// r.path is already escaped (IDs go through escape): keep it as the
	// raw path so that it is not escaped twice.
	rawPath := strings.TrimSuffix(u.EscapedPath(), "/") + r.path
	unescaped, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, fmt.Errorf("bad request path %q: %w", rawPath, err)
	}
	u.Path, u.RawPath = unescaped, rawPath
	u.RawQuery = r.params.Encode()
	var body io.Reader
	if r.body != nil {
		buf, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(r.ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, u.Redacted(), err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	apiErr := &Error{StatusCode: resp.StatusCode}
	var eb struct {
		Code     string
		Error    string
		Problems []FieldError
	}
	if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
		apiErr.Code, apiErr.Message, apiErr.Problems = eb.Code, eb.Error, eb.Problems
	} else {
		apiErr.Message = fmt.Sprintf("%s %s: HTTP %d: %s", r.method, r.path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return nil, apiErr
}

// query GETs path into out and returns the query metadata.
func (c *Client) query(path string, out interface{}, q *QueryOptions) (*QueryMeta, error) {
	resp, err := c.do(c.newRequest(http.MethodGet, path, q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	meta := &QueryMeta{}
	meta.LastIndex, _ = strconv.ParseUint(resp.Header.Get("X-Drover-Index"), 10, 64)
	meta.KnownLeader = resp.Header.Get("X-Drover-KnownLeader") == "true"
	return meta, nil
}

// queryParams is query with extra query-string parameters.
func (c *Client) queryParams(path string, params url.Values, out interface{}, q *QueryOptions) (*QueryMeta, error) {
	r := c.newRequest(http.MethodGet, path, q)
	for k, v := range params {
		r.params[k] = v
	}
	resp, err := c.do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	meta := &QueryMeta{}
	meta.LastIndex, _ = strconv.ParseUint(resp.Header.Get("X-Drover-Index"), 10, 64)
	meta.KnownLeader = resp.Header.Get("X-Drover-KnownLeader") == "true"
	return meta, nil
}

// write sends body with method to path and decodes the reply into out.
func (c *Client) write(method, path string, params url.Values, body, out interface{}) (*WriteMeta, error) {
	r := c.newRequest(method, path, nil)
	r.body = body
	for k, v := range params {
		r.params[k] = v
	}
	resp, err := c.do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	meta := &WriteMeta{}
	meta.LastIndex, _ = strconv.ParseUint(resp.Header.Get("X-Drover-Index"), 10, 64)
	return meta, nil
}

// escape makes an ID safe in a path.
func escape(id string) string { return url.PathEscape(id) }
