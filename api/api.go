package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	// used when nil. TLSConfig applies to the default only.
	HTTPClient *http.Client
	// TLSConfig configures HTTPS (https:// addresses). Fields left empty
	// are taken from DROVER_CACERT, DROVER_CLIENT_CERT,
	// DROVER_CLIENT_KEY, DROVER_TLS_SERVER_NAME and
	// DROVER_TLS_SKIP_VERIFY.
	TLSConfig *TLSConfig
	// Token is the ACL token secret sent with every request (as
	// X-Drover-Token); DROVER_TOKEN when empty.
	Token string
	// Namespace is the namespace every request is about, sent as
	// ?namespace=; DROVER_NAMESPACE when empty, and when both are empty
	// none is sent (the agent takes the default namespace). "*" lists
	// every namespace's objects (lists only). QueryOptions.Namespace
	// overrides it for one read.
	Namespace string
}

// TLSConfig configures HTTPS to an agent.
type TLSConfig struct {
	// CACert is a PEM file of the CA that signed the agents'
	// certificates; the system's roots are used when empty.
	CACert string
	// ClientCert and ClientKey are PEM files of the certificate this
	// client presents (an agent with verify_https_client requires one).
	ClientCert string
	ClientKey  string
	// TLSServerName is the name the agent's certificate must carry, when
	// it is not the host of the address (e.g. server.global.drover when
	// dialing an IP the certificate does not name).
	TLSServerName string
	// Insecure skips verifying the agent's certificate. For tests only:
	// anyone on the path can then read and change the traffic.
	Insecure bool
}

// withEnv returns t with its empty fields taken from the environment.
func (t *TLSConfig) withEnv() (TLSConfig, error) {
	var out TLSConfig
	if t != nil {
		out = *t
	}
	for _, f := range []struct {
		dst *string
		env string
	}{
		{&out.CACert, "DROVER_CACERT"},
		{&out.ClientCert, "DROVER_CLIENT_CERT"},
		{&out.ClientKey, "DROVER_CLIENT_KEY"},
		{&out.TLSServerName, "DROVER_TLS_SERVER_NAME"},
	} {
		if *f.dst == "" {
			*f.dst = os.Getenv(f.env)
		}
	}
	if v := os.Getenv("DROVER_TLS_SKIP_VERIFY"); v != "" && !out.Insecure {
		skip, err := strconv.ParseBool(v)
		if err != nil {
			return out, fmt.Errorf("DROVER_TLS_SKIP_VERIFY=%q: want true or false", v)
		}
		out.Insecure = skip
	}
	return out, nil
}

// clientConfig builds the crypto/tls configuration.
func (t *TLSConfig) clientConfig() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLSServerName, InsecureSkipVerify: t.Insecure}
	if t.CACert != "" {
		pem, err := os.ReadFile(t.CACert)
		if err != nil {
			return nil, fmt.Errorf("read the CA certificate (-ca-cert, DROVER_CACERT): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the CA certificate %s (-ca-cert, DROVER_CACERT) holds no PEM certificate", t.CACert)
		}
		conf.RootCAs = pool
	}
	switch {
	case t.ClientCert != "" && t.ClientKey != "":
		pair, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("load the client certificate %s and key %s (-client-cert, -client-key): %w", t.ClientCert, t.ClientKey, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	case t.ClientCert != "":
		return nil, fmt.Errorf("a client certificate is set without its key: pass -client-key or set DROVER_CLIENT_KEY")
	case t.ClientKey != "":
		return nil, fmt.Errorf("a client key is set without its certificate: pass -client-cert or set DROVER_CLIENT_CERT")
	}
	return conf, nil
}

// Client talks to one agent's HTTP API.
type Client struct {
	addr *url.URL
	http *http.Client
	// hasClientCert is whether the default transport presents a client
	// certificate, to explain a refused handshake.
	hasClientCert bool
	// token is the ACL token secret sent with every request.
	token string
	// namespace is sent as ?namespace= with every request ("": none).
	namespace string
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
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("invalid agent address %q: want e.g. http://127.0.0.1:4646 or https://127.0.0.1:4646", addr)
	}
	c := &Client{addr: u, http: cfg.HTTPClient, token: cfg.Token, namespace: cfg.Namespace}
	if c.token == "" {
		c.token = os.Getenv("DROVER_TOKEN")
	}
	if c.namespace == "" {
		c.namespace = os.Getenv("DROVER_NAMESPACE")
	}
	if c.http == nil {
		tr := &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}
		if u.Scheme == "https" {
			tc, err := cfg.TLSConfig.withEnv()
			if err != nil {
				return nil, err
			}
			if tr.TLSClientConfig, err = tc.clientConfig(); err != nil {
				return nil, err
			}
			c.hasClientCert = len(tr.TLSClientConfig.Certificates) > 0
		}
		c.http = &http.Client{Transport: tr}
	}
	return c, nil
}

// Address returns the agent address the client uses.
func (c *Client) Address() string { return c.addr.String() }

// Namespace returns the namespace the client's requests are about (""
// when it sends none: the default namespace).
func (c *Client) Namespace() string { return c.namespace }

// WithNamespace returns a client that shares c's connection and token
// and sends namespace ns instead ("" sends none).
func (c *Client) WithNamespace(ns string) *Client {
	n := *c
	n.namespace = ns
	return &n
}

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
	// Namespace, when set, is sent instead of the client's namespace;
	// "*" lists every namespace's objects.
	Namespace string
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
	// raw, when set, is sent as the body as it is, with rawType as its
	// Content-Type and rawLength as its length (-1: unknown).
	raw       io.Reader
	rawType   string
	rawLength int64
	ctx       context.Context
}

func (c *Client) newRequest(method, path string, q *QueryOptions) *request {
	r := &request{method: method, path: path, params: url.Values{}, ctx: context.Background()}
	if c.namespace != "" {
		r.params.Set("namespace", c.namespace)
	}
	if q != nil {
		if q.Namespace != "" {
			r.params.Set("namespace", q.Namespace)
		}
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
	u, err := c.requestURL(r)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if r.body != nil {
		buf, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(buf)
	}
	if r.raw != nil {
		body = r.raw
	}
	req, err := http.NewRequestWithContext(r.ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	switch {
	case r.raw != nil:
		req.Header.Set("Content-Type", r.rawType)
		if r.rawLength >= 0 {
			req.ContentLength = r.rawLength
		}
	case body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Drover-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if terr := c.explainTLS(err); terr != nil {
			return nil, terr
		}
		return nil, fmt.Errorf("%s %s: %w", r.method, u.Redacted(), err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, c.responseError(resp, r.method, r.path)
}

// requestURL is the URL of r at the client's agent.
func (c *Client) requestURL(r *request) (*url.URL, error) {
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
	return &u, nil
}

// responseError reads an error answer (status not 2xx) into an *Error.
func (c *Client) responseError(resp *http.Response, method, path string) *Error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	apiErr := &Error{StatusCode: resp.StatusCode}
	if resp.StatusCode == http.StatusBadRequest && c.addr.Scheme == "http" && bytes.Contains(raw, []byte("HTTP request to an HTTPS server")) {
		https := *c.addr
		https.Scheme = "https"
		apiErr.Message = fmt.Sprintf("the agent at %s serves HTTPS only: use %s in -address or DROVER_ADDR, with -ca-cert (DROVER_CACERT)", c.addr.Redacted(), https.Redacted())
		return apiErr
	}
	var eb struct {
		Code     string
		Error    string
		Problems []FieldError
	}
	if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
		apiErr.Code, apiErr.Message, apiErr.Problems = eb.Code, eb.Error, eb.Problems
	} else {
		apiErr.Message = fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return apiErr
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

// TLSError is a failed TLS handshake with an agent, explained: what was
// wrong and which flag or environment variable fixes it.
type TLSError struct {
	Message string
	// Err is the error crypto/tls or net/http returned.
	Err error
}

func (e *TLSError) Error() string { return e.Message }
func (e *TLSError) Unwrap() error { return e.Err }

// explainTLS turns a TLS failure of a request into a TLSError; it
// returns nil for other errors.
func (c *Client) explainTLS(err error) error {
	at := c.addr.Scheme + "://" + c.addr.Host
	msg := err.Error()
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	var text string
	switch {
	case errors.As(err, &unknown):
		text = fmt.Sprintf("the agent at %s presented a certificate that no CA this client trusts signed: pass -ca-cert or set DROVER_CACERT to the cluster's CA file (drover-agent-ca.pem)", at)
	case errors.As(err, &hostname) && hostname.Certificate != nil:
		names := append(append([]string(nil), hostname.Certificate.DNSNames...), ipStrings(hostname.Certificate)...)
		suggest := "server.global.drover"
		for _, n := range hostname.Certificate.DNSNames {
			if strings.HasPrefix(n, "server.") || strings.HasPrefix(n, "client.") {
				suggest = n
				break
			}
		}
		text = fmt.Sprintf("the agent at %s presented a certificate for %s, not for %s: pass -tls-server-name %s (or set DROVER_TLS_SERVER_NAME), or make the agent's certificate with -additional-ipaddress/-additional-dnsname %s",
			at, strings.Join(names, ", "), hostname.Host, suggest, hostname.Host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		text = fmt.Sprintf("the agent at %s presented a certificate that has expired or is not yet valid: %v", at, invalid.Detail)
	case strings.Contains(msg, "certificate required") || (!c.hasClientCert && strings.Contains(msg, "tls: bad certificate")):
		text = fmt.Sprintf("the agent at %s requires a client certificate: pass -client-cert and -client-key or set DROVER_CLIENT_CERT/DROVER_CLIENT_KEY", at)
	case strings.Contains(msg, "tls: bad certificate") || strings.Contains(msg, "tls: unknown certificate authority") || strings.Contains(msg, "tls: certificate expired"):
		text = fmt.Sprintf("the agent at %s refused this client's certificate (-client-cert, DROVER_CLIENT_CERT): it wants one signed by the cluster's CA and still valid (drover tls cert create -cli)", at)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		plain := *c.addr
		plain.Scheme = "http"
		text = fmt.Sprintf("the agent at %s serves plain HTTP, not HTTPS: use %s in -address or DROVER_ADDR", at, plain.Redacted())
	default:
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			return nil
		}
		text = fmt.Sprintf("the agent at %s presented a certificate this client cannot verify: %v", at, verr.Err)
	}
	return &TLSError{Message: text, Err: err}
}

func ipStrings(cert *x509.Certificate) []string {
	out := make([]string, 0, len(cert.IPAddresses))
	for _, ip := range cert.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
