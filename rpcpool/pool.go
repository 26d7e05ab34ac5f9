package rpcpool

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sync"
	"time"

	msgpackrpc "github.com/hashicorp/net-rpc-msgpackrpc/v2"
	"github.com/hashicorp/yamux"

	"github.com/droverhq/drover/structs"
)

// The first byte a connection to the RPC port writes selects the
// protocol. Raft shares the port with RPC so that a server needs one
// address.
const (
	// ProtoRPC is one net/rpc connection with the msgpack codec.
	ProtoRPC byte = 0x01
	// ProtoRaft hands the connection to Raft's network transport.
	ProtoRaft byte = 0x02
	// ProtoMultiplex is a yamux session; every stream is a net/rpc
	// connection with the msgpack codec.
	ProtoMultiplex byte = 0x03
)

// Timeouts for pooled calls.
const (
	// DialTimeout bounds connecting to a server.
	DialTimeout = 2 * time.Second
	// DefaultCallTimeout bounds a call that is not a blocking query.
	DefaultCallTimeout = 30 * time.Second
	// blockingGrace is added to a blocking query's MaxQueryTime.
	blockingGrace = 10 * time.Second
)

// ErrShutdown is returned by calls on a closed pool.
var ErrShutdown = errors.New("rpc pool is shut down")

// ErrUnreachable wraps every failure to reach a server or to get an
// answer from it (dial, session, stream, connection loss): callers fail
// over to another server on it. Errors the endpoint itself returned do
// not wrap it.
var ErrUnreachable = errors.New("server unreachable")

// ErrNotSent additionally wraps the failures that happened before the
// request left this process (no connection, no stream): the server
// certainly did not act on it, so even a write may be retried. A
// connection lost after sending is ErrUnreachable only: the request
// may have been applied.
var ErrNotSent = errors.New("request not sent")

// Timeouter is implemented by requests that know how long a call may
// take (blocking queries: their MaxQueryTime).
type Timeouter interface {
	RPCTimeout() time.Duration
}

// Pool keeps one yamux session per server address and a free list of
// RPC clients over its streams.
type Pool struct {
	// tlsConfig, when set, makes every session TLS from its first byte.
	tlsConfig *tls.Config

	// l guards conns and shutdown.
	l        sync.Mutex
	conns    map[string]*session
	shutdown bool
}

// Option configures a Pool.
type Option func(*Pool)

// WithTLS makes the pool dial servers over TLS with conf (the agent's
// outgoing RPC config, which presents its certificate and checks the
// server's); the protocol byte is sent inside TLS. Nil keeps plaintext.
func WithTLS(conf *tls.Config) Option {
	return func(p *Pool) { p.tlsConfig = conf }
}

type session struct {
	addr string
	mux  *yamux.Session
	// l guards idle.
	l    sync.Mutex
	idle []*streamClient
}

// streamClient is an RPC client on one yamux stream. It is discarded by
// closing the stream, never with rpc.Client.Close: that closes the
// msgpack codec, whose closed flag the client's reading goroutine reads
// without a lock (a data race); closing the stream ends that goroutine
// with a read error instead.
type streamClient struct {
	*rpc.Client
	stream io.Closer
}

func (c *streamClient) discard() { c.stream.Close() }

// New returns an empty pool.
func New(opts ...Option) *Pool {
	p := &Pool{conns: make(map[string]*session)}
	for _, o := range opts {
		o(p)
	}
	return p
}

// RPC calls method on the server at addr. A call that fails on the
// network drops the session so the next call reconnects; an error
// returned by the endpoint comes back as a *structs.CodedError when it
// carries a registered code.
func (p *Pool) RPC(addr, method string, args, reply interface{}) error {
	sess, err := p.session(addr)
	if err != nil {
		return err
	}
	client, err := sess.client()
	if err != nil {
		p.drop(sess)
		return fmt.Errorf("rpc %s to %s: %w: %w: %v", method, addr, ErrUnreachable, ErrNotSent, err)
	}
	timeout := DefaultCallTimeout
	if t, ok := args.(Timeouter); ok {
		if d := t.RPCTimeout(); d > 0 {
			timeout = d + blockingGrace
		}
	}
	call := client.Go(method, args, reply, make(chan *rpc.Call, 1))
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-call.Done:
	case <-timer.C:
		client.discard()
		return structs.NewError(structs.CodeTimeout, fmt.Sprintf("rpc %s to %s timed out after %s", method, addr, timeout))
	}
	if call.Error == nil {
		sess.release(client)
		return nil
	}
	var serverErr rpc.ServerError
	if errors.As(call.Error, &serverErr) {
		// The endpoint answered with an error; the connection is fine.
		sess.release(client)
		if ce := structs.ParseCodedError(call.Error); ce != nil {
			return ce
		}
		return errors.New(string(serverErr))
	}
	client.discard()
	p.drop(sess)
	return fmt.Errorf("rpc %s to %s: %w: %v", method, addr, ErrUnreachable, call.Error)
}

// session returns the pooled session to addr, dialing one if needed.
func (p *Pool) session(addr string) (*session, error) {
	p.l.Lock()
	if p.shutdown {
		p.l.Unlock()
		return nil, ErrShutdown
	}
	if s, ok := p.conns[addr]; ok && !s.mux.IsClosed() {
		p.l.Unlock()
		return s, nil
	}
	p.l.Unlock()

	conn, err := net.DialTimeout("tcp", addr, DialTimeout)
	if err != nil {
		return nil, fmt.Errorf("connect to server %s: %w: %w: %v", addr, ErrUnreachable, ErrNotSent, err)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
		_ = tcp.SetKeepAlive(true)
	}
	if p.tlsConfig != nil {
		tc := tls.Client(conn, p.tlsConfig)
		_ = tc.SetDeadline(time.Now().Add(DialTimeout))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake with server %s: %w: %w: %v", addr, ErrUnreachable, ErrNotSent, err)
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	if _, err := conn.Write([]byte{ProtoMultiplex}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to server %s: %w: %w: %v", addr, ErrUnreachable, ErrNotSent, err)
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	// Notice a dead server well before the 30s default.
	cfg.KeepAliveInterval = 5 * time.Second
	cfg.ConnectionWriteTimeout = 5 * time.Second
	mux, err := yamux.Client(conn, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to server %s: %w: %w: %v", addr, ErrUnreachable, ErrNotSent, err)
	}
	s := &session{addr: addr, mux: mux}

	p.l.Lock()
	defer p.l.Unlock()
	if p.shutdown {
		mux.Close()
		return nil, ErrShutdown
	}
	if existing, ok := p.conns[addr]; ok && !existing.mux.IsClosed() {
		// Another caller connected first; use theirs.
		mux.Close()
		return existing, nil
	}
	p.conns[addr] = s
	return s, nil
}

// drop closes and forgets a session after a network error.
func (p *Pool) drop(s *session) {
	p.l.Lock()
	if p.conns[s.addr] == s {
		delete(p.conns, s.addr)
	}
	p.l.Unlock()
	s.mux.Close()
}

// client returns an idle RPC client on the session or opens a stream.
func (s *session) client() (*streamClient, error) {
	s.l.Lock()
	if n := len(s.idle); n > 0 {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.l.Unlock()
		return c, nil
	}
	s.l.Unlock()
	stream, err := s.mux.Open()
	if err != nil {
		return nil, err
	}
	codec := msgpackrpc.NewCodecFromHandle(true, true, stream, structs.MsgpackHandle)
	return &streamClient{Client: rpc.NewClientWithCodec(codec), stream: stream}, nil
}

// maxIdleClients bounds the streams kept open per session.
const maxIdleClients = 32

func (s *session) release(c *streamClient) {
	s.l.Lock()
	defer s.l.Unlock()
	if len(s.idle) >= maxIdleClients {
		c.discard()
		return
	}
	s.idle = append(s.idle, c)
}

// Shutdown closes every session.
func (p *Pool) Shutdown() {
	p.l.Lock()
	defer p.l.Unlock()
	p.shutdown = true
	for addr, s := range p.conns {
		s.mux.Close()
		delete(p.conns, addr)
	}
}
