package server

import (
	"crypto/tls"
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
	"github.com/droverhq/drover/tlsutil"
)

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

// handleConn authenticates a connection and dispatches it by its
// protocol byte.
//
// With TLS configured, the connection is TLS from its first byte: the
// handshake runs here, per connection, on the raw accepted conn (so
// that the listener stays a plain TCP listener the connection limit can
// wrap, and a slow handshake holds up nobody else), and the protocol
// byte is read inside TLS. A peer that does not complete a handshake
// with a certificate of the cluster's CA is dropped. What a verified
// peer may do depends on its certificate's role:
//
//   - server.<region>.drover: Raft, and every RPC endpoint;
//   - client.<region>.drover: the client endpoints only (clientRPCServer),
//     never a forwarded request;
//   - anything else (a cli certificate is for the HTTP API): dropped.
//
// Without TLS every peer is trusted as a server, as the port is open.
func (s *Server) handleConn(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(s.config.RPCHandshakeTimeout))
	peer := peerInfo{role: tlsutil.RoleServer}
	if s.config.TLS != nil {
		tc := tls.Server(conn, s.incomingTLS)
		if err := tc.Handshake(); err != nil {
			// Debug only: strangers and port scanners end here.
			s.logger.Debug("refused an RPC connection: TLS handshake failed", "remote", conn.RemoteAddr(), "error", err)
			conn.Close()
			return
		}
		cs := tc.ConnectionState()
		peer = peerInfo{role: s.config.TLS.PeerRole(cs), name: s.config.TLS.PeerName(cs)}
		conn = tc
		if peer.role != tlsutil.RoleServer && peer.role != tlsutil.RoleClient {
			s.logger.Warn("refused an RPC connection: its certificate is for neither a server nor a client",
				"remote", conn.RemoteAddr(), "certificate", peer.name,
				"accepted", s.config.TLS.RoleName(tlsutil.RoleServer)+" or "+s.config.TLS.RoleName(tlsutil.RoleClient))
			conn.Close()
			return
		}
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(conn, buf); err != nil {
		if !errors.Is(err, io.EOF) {
			s.logger.Debug("failed to read RPC protocol byte", "remote", conn.RemoteAddr(), "error", err)
		}
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	switch buf[0] {
	case rpcpool.ProtoRPC:
		done := make(chan struct{})
		defer close(done)
		s.closeOnShutdown(conn, done)
		s.serveRPC(conn, peer)
	case rpcpool.ProtoRaft:
		if peer.role != tlsutil.RoleServer {
			s.logger.Warn("refused a Raft connection: Raft needs a server certificate",
				"remote", conn.RemoteAddr(), "certificate", peer.name, "needs", s.config.TLS.RoleName(tlsutil.RoleServer))
			conn.Close()
			return
		}
		if s.raftLayer == nil {
			// Raft runs over the transport Config.RaftTransport gave;
			// nothing on this port would answer.
			s.logger.Warn("refused a Raft connection: this server's Raft does not run on the RPC port", "remote", conn.RemoteAddr())
			conn.Close()
			return
		}
		if err := s.raftLayer.Handoff(conn); err != nil {
			conn.Close()
		}
	case rpcpool.ProtoMultiplex:
		s.serveMultiplex(conn, peer)
	default:
		s.logger.Warn("unknown RPC protocol byte", "byte", buf[0], "remote", conn.RemoteAddr())
		conn.Close()
	}
}

// peerInfo is who is at the other end of an RPC connection.
type peerInfo struct {
	role tlsutil.Role
	// name is what its certificate names, for refusals ("" without TLS).
	name string
}

// serveRPC serves net/rpc requests on conn until it closes: every
// endpoint for a server, the client endpoints for a client.
func (s *Server) serveRPC(conn io.ReadWriteCloser, peer peerInfo) {
	var codec rpc.ServerCodec = msgpackrpc.NewCodecFromHandle(true, true, conn, structs.MsgpackHandle)
	server := s.rpcServer
	if peer.role == tlsutil.RoleClient {
		server = s.clientRPCServer
		codec = &restrictedCodec{ServerCodec: codec, srv: s, peer: peer}
	}
	defer codec.Close()
	for {
		select {
		case <-s.shutdownCh:
			return
		default:
		}
		if err := server.ServeRequest(codec); err != nil {
			if !errors.Is(err, io.EOF) && !isClosedConnErr(err) {
				s.logger.Debug("RPC connection ended", "error", err)
			}
			return
		}
	}
}

// serveMultiplex serves every yamux stream of conn as an RPC connection.
func (s *Server) serveMultiplex(conn net.Conn, peer peerInfo) {
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
		s.goFunc(func() { s.serveRPC(stream, peer) })
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
// servers by writing rpcpool.ProtoRaft first (inside TLS when tls is
// set).
type raftLayer struct {
	addr    net.Addr
	tls     *tls.Config
	connCh  chan net.Conn
	closeCh chan struct{}
	once    sync.Once
}

func newRaftLayer(addr net.Addr, tlsConf *tls.Config) *raftLayer {
	return &raftLayer{addr: addr, tls: tlsConf, connCh: make(chan net.Conn), closeCh: make(chan struct{})}
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
	if l.tls != nil {
		tc := tls.Client(conn, l.tls)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake with server %s: %w", address, err)
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	if _, err := conn.Write([]byte{rpcpool.ProtoRaft}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Client endpoints.
//
// A client certificate reaches a separate net/rpc server on which only
// thin wrappers of the endpoints client agents call are registered
// (client/client.go, client/sim and the agent's server proxy), so no
// other method is reachable through it at all, whatever a bug elsewhere
// might allow. The wrappers also refuse forwarded requests: only servers
// forward, and a forwarded request is served without the leader checks
// a direct one gets. restrictedCodec answers calls of other methods
// with a permission error saying which certificate they need.

// clientEndpoints are the methods a client certificate may call.
var clientEndpoints = map[string]bool{
	"Node.Register":        true,
	"Node.UpdateStatus":    true,
	"Node.GetClientAllocs": true,
	"Node.UpdateAlloc":     true,
	"Alloc.GetAllocs":      true,
	"Status.Ping":          true,
	"Status.Leader":        true,
	"Status.Peers":         true,
	// Client-only agents resolve request tokens with it to authorize
	// their own HTTP endpoints (agent:read, read-logs, ...).
	"ACL.ResolveToken": true,
	// The DNS server and the proxy on every client read service
	// instances of every namespace with the node's secret.
	"Service.List":      true,
	"Service.Instances": true,
	"Service.Proxy":     true,
	// Templates read the variables of their allocation's namespace with
	// the node's secret (never a token over a client certificate).
	"Variable.Read": true,
}

// ClientEndpoint reports whether a client certificate may call method;
// every other method needs a server certificate when RPC TLS is on.
func ClientEndpoint(method string) bool { return clientEndpoints[method] }

// registerClientEndpoints fills clientRPCServer.
func (s *Server) registerClientEndpoints() error {
	s.clientRPCServer = rpc.NewServer()
	endpoints := map[string]interface{}{
		"Node":     &clientNode{srv: s, node: &Node{srv: s}},
		"Alloc":    &clientAlloc{srv: s, alloc: &Alloc{srv: s}},
		"Status":   &clientStatus{srv: s, status: &Status{srv: s}},
		"ACL":      &clientACL{srv: s, acl: &ACL{srv: s}},
		"Service":  &clientService{srv: s, svc: &Service{srv: s}},
		"Variable": &clientVariable{srv: s, v: &Variable{srv: s}},
	}
	for name, e := range endpoints {
		if err := s.clientRPCServer.RegisterName(name, e); err != nil {
			return fmt.Errorf("register client %s endpoint: %w", name, err)
		}
	}
	return nil
}

// needsServerCert is the refusal of a call a client certificate may not
// make.
func (s *Server) needsServerCert(what string, peer peerInfo) error {
	serverName := tlsutil.RoleServer.Name(tlsutil.DefaultRegion, tlsutil.DefaultDomain)
	if s.config.TLS != nil {
		serverName = s.config.TLS.RoleName(tlsutil.RoleServer)
	}
	return structs.NewError(structs.CodePermission, fmt.Sprintf("permission denied: %s needs a server certificate (%s); this connection presented %s", what, serverName, peer.name))
}

// refuseForwarded refuses a forwarded request from a client: forwarding
// is between servers.
func (s *Server) refuseForwarded(method string, info structs.RPCInfo) error {
	if !info.IsForwarded() {
		return nil
	}
	name := tlsutil.RoleClient.Name(tlsutil.DefaultRegion, tlsutil.DefaultDomain)
	if s.config.TLS != nil {
		name = s.config.TLS.RoleName(tlsutil.RoleClient)
	}
	return s.needsServerCert(method+" with Forwarded set (only servers forward requests)", peerInfo{role: tlsutil.RoleClient, name: name})
}

type clientNode struct {
	srv  *Server
	node *Node
}

func (c *clientNode) Register(args *structs.NodeRegisterRequest, reply *structs.NodeUpdateResponse) error {
	if err := c.srv.refuseForwarded("Node.Register", args); err != nil {
		return err
	}
	return c.node.Register(args, reply)
}

func (c *clientNode) UpdateStatus(args *structs.NodeUpdateStatusRequest, reply *structs.NodeUpdateResponse) error {
	if err := c.srv.refuseForwarded("Node.UpdateStatus", args); err != nil {
		return err
	}
	return c.node.UpdateStatus(args, reply)
}

func (c *clientNode) GetClientAllocs(args *structs.NodeSpecificRequest, reply *structs.NodeClientAllocsResponse) error {
	if err := c.srv.refuseForwarded("Node.GetClientAllocs", args); err != nil {
		return err
	}
	return c.node.GetClientAllocs(args, reply)
}

func (c *clientNode) UpdateAlloc(args *structs.AllocUpdateRequest, reply *structs.GenericResponse) error {
	if err := c.srv.refuseForwarded("Node.UpdateAlloc", args); err != nil {
		return err
	}
	return c.node.UpdateAlloc(args, reply)
}

type clientService struct {
	srv *Server
	svc *Service
}

func (c *clientService) List(args *structs.ServiceListRequest, reply *structs.ServiceListResponse) error {
	if err := c.srv.refuseForwarded("Service.List", args); err != nil {
		return err
	}
	return c.svc.List(args, reply)
}

func (c *clientService) Instances(args *structs.ServiceInstancesRequest, reply *structs.ServiceInstancesResponse) error {
	if err := c.srv.refuseForwarded("Service.Instances", args); err != nil {
		return err
	}
	return c.svc.Instances(args, reply)
}

func (c *clientService) Proxy(args *structs.ServiceProxyRequest, reply *structs.ServiceProxyResponse) error {
	if err := c.srv.refuseForwarded("Service.Proxy", args); err != nil {
		return err
	}
	return c.svc.Proxy(args, reply)
}

type clientVariable struct {
	srv *Server
	v   *Variable
}

// Read serves a template's read: a client certificate must come with
// the node's ID and secret and an allocation of that node.
func (c *clientVariable) Read(args *structs.VariableReadRequest, reply *structs.VariableReadResponse) error {
	if err := c.srv.refuseForwarded("Variable.Read", args); err != nil {
		return err
	}
	if args.NodeID == "" || args.SecretID == "" || args.AllocID == "" {
		return structs.NewError(structs.CodePermission, "permission denied: a client reads variables for one of its allocations, with its node ID and secret")
	}
	return c.v.Read(args, reply)
}

type clientAlloc struct {
	srv   *Server
	alloc *Alloc
}

func (c *clientAlloc) GetAllocs(args *structs.AllocsGetRequest, reply *structs.AllocsGetResponse) error {
	if err := c.srv.refuseForwarded("Alloc.GetAllocs", args); err != nil {
		return err
	}
	return c.alloc.GetAllocs(args, reply)
}

type clientStatus struct {
	srv    *Server
	status *Status
}

func (c *clientStatus) Ping(args *structs.GenericRequest, reply *struct{}) error {
	if err := c.srv.refuseForwarded("Status.Ping", args); err != nil {
		return err
	}
	return c.status.Ping(args, reply)
}

func (c *clientStatus) Leader(args *structs.GenericRequest, reply *string) error {
	if err := c.srv.refuseForwarded("Status.Leader", args); err != nil {
		return err
	}
	return c.status.Leader(args, reply)
}

func (c *clientStatus) Peers(args *structs.GenericRequest, reply *[]string) error {
	if err := c.srv.refuseForwarded("Status.Peers", args); err != nil {
		return err
	}
	return c.status.Peers(args, reply)
}

type clientACL struct {
	srv *Server
	acl *ACL
}

func (c *clientACL) ResolveToken(args *structs.ResolveACLTokenRequest, reply *structs.ResolveACLTokenResponse) error {
	if err := c.srv.refuseForwarded("ACL.ResolveToken", args); err != nil {
		return err
	}
	return c.acl.ResolveToken(args, reply)
}

// restrictedCodec serves a client certificate's connection. A call of a
// method outside clientEndpoints is answered here, with a permission
// error naming the certificate it needs, and never reaches net/rpc:
// net/rpc would answer "can't find service" and end the connection,
// which the pool would take for a dead server and fail over.
//
// net/rpc's ServeRequest reads, calls and answers one request at a
// time, so writing the refusal from ReadRequestHeader never races with
// another response on the same codec.
type restrictedCodec struct {
	rpc.ServerCodec
	srv  *Server
	peer peerInfo
}

func (c *restrictedCodec) ReadRequestHeader(req *rpc.Request) error {
	for {
		if err := c.ServerCodec.ReadRequestHeader(req); err != nil {
			return err
		}
		if clientEndpoints[req.ServiceMethod] {
			return nil
		}
		if err := c.ServerCodec.ReadRequestBody(nil); err != nil {
			return err
		}
		refusal := c.srv.needsServerCert(req.ServiceMethod, c.peer)
		c.srv.logger.Debug("refused an RPC from a client certificate", "method", req.ServiceMethod, "certificate", c.peer.name)
		resp := &rpc.Response{ServiceMethod: req.ServiceMethod, Seq: req.Seq, Error: refusal.Error()}
		if err := c.ServerCodec.WriteResponse(resp, struct{}{}); err != nil {
			return err
		}
		*req = rpc.Request{}
	}
}
