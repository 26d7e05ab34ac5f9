package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"reflect"
	"sync"
	"time"

	msgpackrpc "github.com/hashicorp/net-rpc-msgpackrpc/v2"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"

	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
)

// connHandshakeTimeout bounds how long a new connection may take to send
// its protocol byte.
const connHandshakeTimeout = 5 * time.Second

// listen accepts connections on the RPC port until shutdown.
func (s *Server) listen() {
	for {
		conn, err := s.rpcListener.Accept()
		if err != nil {
			if s.isShutdown() {
				return
			}
			s.logger.Error("failed to accept RPC connection", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.goFunc(func() { s.handleConn(conn) })
	}
}

// closeOnShutdown closes c when the server shuts down or done closes,
// so that goroutines serving long-lived connections (pooled sessions of
// clients and other servers) end and Shutdown can wait for them.
func (s *Server) closeOnShutdown(c io.Closer, done <-chan struct{}) {
	go func() {
		select {
		case <-s.shutdownCh:
			c.Close()
		case <-done:
		}
	}()
}

// handleConn reads the protocol byte and dispatches the connection.
func (s *Server) handleConn(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(connHandshakeTimeout))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(conn, buf); err != nil {
		if !errors.Is(err, io.EOF) {
			s.logger.Debug("failed to read RPC protocol byte", "remote", conn.RemoteAddr(), "error", err)
		}
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	switch buf[0] {
	case rpcpool.ProtoRPC:
		done := make(chan struct{})
		defer close(done)
		s.closeOnShutdown(conn, done)
		s.serveRPC(conn)
	case rpcpool.ProtoRaft:
		if err := s.raftLayer.Handoff(conn); err != nil {
			conn.Close()
		}
	case rpcpool.ProtoMultiplex:
		s.serveMultiplex(conn)
	default:
		s.logger.Warn("unknown RPC protocol byte", "byte", buf[0], "remote", conn.RemoteAddr())
		conn.Close()
	}
}

// serveRPC serves net/rpc requests on conn until it closes.
func (s *Server) serveRPC(conn io.ReadWriteCloser) {
	codec := msgpackrpc.NewCodecFromHandle(true, true, conn, structs.MsgpackHandle)
	defer codec.Close()
	for {
		select {
		case <-s.shutdownCh:
			return
		default:
		}
		if err := s.rpcServer.ServeRequest(codec); err != nil {
			if !errors.Is(err, io.EOF) && !isClosedConnErr(err) {
				s.logger.Debug("RPC connection ended", "error", err)
			}
			return
		}
	}
}

// serveMultiplex serves every yamux stream of conn as an RPC connection.
func (s *Server) serveMultiplex(conn net.Conn) {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	session, err := yamux.Server(conn, cfg)
	if err != nil {
		conn.Close()
		return
	}
	defer session.Close()
	done := make(chan struct{})
	defer close(done)
	s.closeOnShutdown(session, done)
	for {
		stream, err := session.Accept()
		if err != nil {
			return
		}
		s.goFunc(func() { s.serveRPC(stream) })
	}
}

func isClosedConnErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

// RPC calls an endpoint in process ("Job.Register", args, reply), through
// the same net/rpc dispatch as a network call but without encoding. The
// reply may share objects with the state store: callers must treat them
// as read-only.
func (s *Server) RPC(method string, args, reply interface{}) error {
	codec := &inmemCodec{method: method, args: args, reply: reply}
	if err := s.rpcServer.ServeRequest(codec); err != nil {
		return err
	}
	return codec.err
}

// inmemCodec is a net/rpc ServerCodec for one in-process call: it hands
// the caller's args to the endpoint and copies the endpoint's reply into
// the caller's reply by value.
type inmemCodec struct {
	method string
	args   interface{}
	reply  interface{}
	err    error
}

func (c *inmemCodec) ReadRequestHeader(req *rpc.Request) error {
	req.ServiceMethod = c.method
	return nil
}

func (c *inmemCodec) ReadRequestBody(args interface{}) error {
	if args == nil {
		return nil
	}
	src := reflect.Indirect(reflect.ValueOf(c.args))
	dst := reflect.Indirect(reflect.ValueOf(args))
	if src.Type() != dst.Type() {
		return fmt.Errorf("rpc %s: args are %s, the endpoint takes %s", c.method, src.Type(), dst.Type())
	}
	dst.Set(src)
	return nil
}

func (c *inmemCodec) WriteResponse(resp *rpc.Response, body interface{}) error {
	if resp.Error != "" {
		c.err = errors.New(resp.Error)
		if ce := structs.ParseCodedError(c.err); ce != nil {
			c.err = ce
		}
		return nil
	}
	src := reflect.Indirect(reflect.ValueOf(body))
	dst := reflect.Indirect(reflect.ValueOf(c.reply))
	dst.Set(src)
	return nil
}

func (c *inmemCodec) Close() error { return nil }

// raftLayer is the raft.StreamLayer over the RPC port: the RPC listener
// hands it connections that start with RPCRaft, and it dials other
// servers by writing rpcpool.ProtoRaft first.
type raftLayer struct {
	addr    net.Addr
	connCh  chan net.Conn
	closeCh chan struct{}
	once    sync.Once
}

func newRaftLayer(addr net.Addr) *raftLayer {
	return &raftLayer{addr: addr, connCh: make(chan net.Conn), closeCh: make(chan struct{})}
}

// Handoff gives the layer an accepted Raft connection.
func (l *raftLayer) Handoff(conn net.Conn) error {
	select {
	case l.connCh <- conn:
		return nil
	case <-l.closeCh:
		return fmt.Errorf("raft layer closed")
	}
}

// Accept implements net.Listener.
func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case conn := <-l.connCh:
		return conn, nil
	case <-l.closeCh:
		return nil, fmt.Errorf("raft layer closed")
	}
}

// Close implements net.Listener.
func (l *raftLayer) Close() error {
	l.once.Do(func() { close(l.closeCh) })
	return nil
}

// Addr implements net.Listener.
func (l *raftLayer) Addr() net.Addr { return l.addr }

// Dial implements raft.StreamLayer.
func (l *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{rpcpool.ProtoRaft}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
