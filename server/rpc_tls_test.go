package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	msgpackrpc "github.com/hashicorp/net-rpc-msgpackrpc/v2"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
	"github.com/droverhq/drover/tlsutil"
)

// testPKI is a CA with a certificate of each role, written to a temp
// dir, loaded as Configurators.
type testPKI struct {
	server, client, cli *tlsutil.Configurator
	// foreign is a server certificate of another CA.
	foreign *tlsutil.Configurator
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := func(name string) (string, []byte, []byte) {
		cert, key, err := tlsutil.GenerateCA(tlsutil.CAOptions{})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(path, cert, 0o600); err != nil {
			t.Fatal(err)
		}
		return path, cert, key
	}
	load := func(caFile string, caCert, caKey []byte, role tlsutil.Role, name string) *tlsutil.Configurator {
		cert, key, err := tlsutil.GenerateCert(tlsutil.CertOptions{Role: role, CACert: caCert, CAKey: caKey})
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		if err := os.WriteFile(certFile, cert, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := tlsutil.NewConfigurator(tlsutil.Config{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, VerifyServerHostname: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	caFile, caCert, caKey := ca("ca")
	otherFile, otherCert, otherKey := ca("other-ca")
	return &testPKI{
		server:  load(caFile, caCert, caKey, tlsutil.RoleServer, "server"),
		client:  load(caFile, caCert, caKey, tlsutil.RoleClient, "client"),
		cli:     load(caFile, caCert, caKey, tlsutil.RoleCLI, "cli"),
		foreign: load(otherFile, otherCert, otherKey, tlsutil.RoleServer, "foreign"),
	}
}

// rawRPC opens one net/rpc connection (protocol byte 0x01) to addr, over
// TLS with conf or plaintext when conf is nil, as an outsider would.
func rawRPC(t *testing.T, addr string, conf *tls.Config) (*rpc.Client, net.Conn, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	if conf != nil {
		tc := tls.Client(conn, conf)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, nil, err
		}
		conn = tc
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte{rpcpool.ProtoRPC}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return rpc.NewClientWithCodec(msgpackrpc.NewCodecFromHandle(true, true, conn, structs.MsgpackHandle)), conn, nil
}

// rawCall makes one call on a fresh raw connection.
func rawCall(t *testing.T, addr string, conf *tls.Config, method string, args, reply interface{}) error {
	t.Helper()
	c, conn, err := rawRPC(t, addr, conf)
	if err != nil {
		return err
	}
	// Closing the conn, not the client: the msgpack codec's Close races
	// with the client's reading goroutine.
	defer conn.Close()
	return c.Call(method, args, reply)
}

func wantPermission(t *testing.T, err error, wantMsg string) {
	t.Helper()
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Code != structs.CodePermission || ce.Status != 403 {
		t.Fatalf("err = %v, want a permission_denied (403) error", err)
	}
	if !strings.Contains(ce.Message, wantMsg) {
		t.Fatalf("message %q does not say %q", ce.Message, wantMsg)
	}
}

func jobCount(t *testing.T, s *Server) int {
	t.Helper()
	jobs, err := s.State().Jobs(nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

func TestServerTLS_PlaintextRefused(t *testing.T) {
	pki := newTestPKI(t)
	s := testServer(t, func(c *Config) { c.TLS = pki.server })
	addr := s.RPCAddr().String()

	var leader string
	if err := rawCall(t, addr, nil, "Status.Leader", &structs.GenericRequest{}, &leader); err == nil {
		t.Fatalf("a plaintext call was answered: %q", leader)
	}
	var resp structs.JobRegisterResponse
	if err := rawCall(t, addr, nil, "Job.Register", &structs.JobRegisterRequest{Job: mock.Job()}, &resp); err == nil {
		t.Fatal("a plaintext Job.Register was accepted")
	}
	// A plaintext pool (an agent without TLS) fails as unreachable, so
	// its proxy would move on to another server.
	plain := rpcpool.New()
	defer plain.Shutdown()
	if err := plain.RPC(addr, "Status.Leader", &structs.GenericRequest{}, &leader); !errors.Is(err, rpcpool.ErrUnreachable) {
		t.Fatalf("plaintext pool: err = %v, want ErrUnreachable", err)
	}
	// A certificate of another CA fails the handshake.
	if err := rawCall(t, addr, pki.foreign.OutgoingRPC(), "Status.Leader", &structs.GenericRequest{}, &leader); err == nil {
		t.Fatal("a certificate of another CA was answered")
	}
	if n := jobCount(t, s); n != 0 {
		t.Fatalf("%d jobs stored", n)
	}
	// The server is alive and serves a server certificate.
	if err := rawCall(t, addr, pki.server.OutgoingRPC(), "Status.Leader", &structs.GenericRequest{}, &leader); err != nil || leader != addr {
		t.Fatalf("Status.Leader with a server certificate: %q %v", leader, err)
	}
}

func TestServerTLS_ClientCertificateCallsClientEndpointsOnly(t *testing.T) {
	pki := newTestPKI(t)
	s := testServer(t, func(c *Config) { c.TLS = pki.server })
	addr := s.RPCAddr().String()
	pool := rpcpool.New(rpcpool.WithTLS(pki.client.OutgoingRPC()))
	defer pool.Shutdown()

	node := mock.Node()
	var reg structs.NodeUpdateResponse
	if err := pool.RPC(addr, "Node.Register", &structs.NodeRegisterRequest{Node: node}, &reg); err != nil {
		t.Fatalf("Node.Register with a client certificate: %v", err)
	}

	refused := []struct {
		name   string
		method string
		args   interface{}
		reply  interface{}
		msg    string
	}{
		{"Job.Register", "Job.Register", &structs.JobRegisterRequest{Job: mock.Job()}, &structs.JobRegisterResponse{},
			"permission denied: Job.Register needs a server certificate (server.global.drover); this connection presented client.global.drover"},
		{"Operator.RaftRemovePeer", "Operator.RaftRemovePeer", &structs.RaftPeerRequest{Address: addr}, &struct{}{},
			"Operator.RaftRemovePeer needs a server certificate"},
		{"Node.UpdateDrain", "Node.UpdateDrain", &structs.NodeUpdateDrainRequest{NodeID: node.ID}, &structs.GenericResponse{},
			"Node.UpdateDrain needs a server certificate"},
		{"Node.GetNode", "Node.GetNode", &structs.NodeSpecificRequest{NodeID: node.ID}, &structs.SingleNodeResponse{},
			"Node.GetNode needs a server certificate"},
		{"unknown method", "Nope.Nothing", &structs.GenericRequest{}, &struct{}{}, "Nope.Nothing needs a server certificate"},
		{"forwarded Node.UpdateStatus", "Node.UpdateStatus",
			&structs.NodeUpdateStatusRequest{NodeID: node.ID, SecretID: node.SecretID, Status: structs.NodeStatusReady, WriteRequest: structs.WriteRequest{Forwarded: true}},
			&structs.NodeUpdateResponse{}, "Node.UpdateStatus with Forwarded set (only servers forward requests) needs a server certificate"},
		{"forwarded Alloc.GetAllocs", "Alloc.GetAllocs",
			&structs.AllocsGetRequest{NodeID: node.ID, SecretID: node.SecretID, QueryOptions: structs.QueryOptions{Forwarded: true}},
			&structs.AllocsGetResponse{}, "with Forwarded set"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := pool.RPC(addr, tc.method, tc.args, tc.reply)
			wantPermission(t, err, tc.msg)
			// The refusal leaves the session usable: the next call on
			// the pool (the same connection) is answered.
			var leader string
			if err := pool.RPC(addr, "Status.Leader", &structs.GenericRequest{}, &leader); err != nil || leader != addr {
				t.Fatalf("Status.Leader after a refusal: %q %v", leader, err)
			}
		})
	}
	if n := jobCount(t, s); n != 0 {
		t.Fatalf("%d jobs stored by refused calls", n)
	}

	t.Run("client endpoints", func(t *testing.T) {
		var hb structs.NodeUpdateResponse
		if err := pool.RPC(addr, "Node.UpdateStatus", &structs.NodeUpdateStatusRequest{NodeID: node.ID, SecretID: node.SecretID, Status: structs.NodeStatusReady}, &hb); err != nil {
			t.Fatalf("Node.UpdateStatus: %v", err)
		}
		var allocs structs.NodeClientAllocsResponse
		if err := pool.RPC(addr, "Node.GetClientAllocs", &structs.NodeSpecificRequest{NodeID: node.ID, SecretID: node.SecretID}, &allocs); err != nil {
			t.Fatalf("Node.GetClientAllocs: %v", err)
		}
		// Alloc.GetAllocs and Node.UpdateAlloc reach their endpoints:
		// whatever those answer, it is not the certificate refusal.
		reached := func(method string, err error) {
			t.Helper()
			if err != nil && strings.Contains(err.Error(), "needs a server certificate") {
				t.Fatalf("%s: %v", method, err)
			}
		}
		var got structs.AllocsGetResponse
		reached("Alloc.GetAllocs", pool.RPC(addr, "Alloc.GetAllocs", &structs.AllocsGetRequest{NodeID: node.ID, SecretID: node.SecretID}, &got))
		var upd structs.GenericResponse
		reached("Node.UpdateAlloc", pool.RPC(addr, "Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: node.ID, SecretID: node.SecretID}, &upd))
		var peers []string
		if err := pool.RPC(addr, "Status.Peers", &structs.GenericRequest{}, &peers); err != nil || len(peers) != 1 {
			t.Fatalf("Status.Peers: %v %v", peers, err)
		}
		if err := pool.RPC(addr, "Status.Ping", &structs.GenericRequest{}, &struct{}{}); err != nil {
			t.Fatalf("Status.Ping: %v", err)
		}
	})
	t.Run("every listed endpoint is registered", func(t *testing.T) {
		for method := range clientEndpoints {
			// Any body decodes into any request struct (unknown fields
			// are skipped), so the call reaches the endpoint if it is
			// registered and fails with "can't find" if not.
			err := rawCall(t, addr, pki.client.OutgoingRPC(), method, &structs.GenericRequest{}, &struct{}{})
			if err != nil && strings.Contains(err.Error(), "can't find") {
				t.Errorf("%s is listed but not registered: %v", method, err)
			}
		}
	})
}

func TestServerTLS_CLICertificateRefused(t *testing.T) {
	pki := newTestPKI(t)
	s := testServer(t, func(c *Config) { c.TLS = pki.server })
	addr := s.RPCAddr().String()
	var leader string
	if err := rawCall(t, addr, pki.cli.OutgoingRPC(), "Status.Leader", &structs.GenericRequest{}, &leader); err == nil {
		t.Fatalf("an RPC with a cli certificate was answered: %q", leader)
	}
	pool := rpcpool.New(rpcpool.WithTLS(pki.cli.OutgoingRPC()))
	defer pool.Shutdown()
	if err := pool.RPC(addr, "Status.Leader", &structs.GenericRequest{}, &leader); !errors.Is(err, rpcpool.ErrUnreachable) {
		t.Fatalf("cli pool: err = %v, want the connection dropped", err)
	}
}

func TestServerTLS_ServerCertificateCallsEverything(t *testing.T) {
	pki := newTestPKI(t)
	s := testServer(t, func(c *Config) { c.TLS = pki.server })
	pool := rpcpool.New(rpcpool.WithTLS(pki.server.OutgoingRPC()))
	defer pool.Shutdown()
	var resp structs.JobRegisterResponse
	if err := pool.RPC(s.RPCAddr().String(), "Job.Register", &structs.JobRegisterRequest{Job: mock.Job()}, &resp); err != nil || resp.EvalID == "" {
		t.Fatalf("Job.Register with a server certificate: %v %+v", err, resp)
	}
	if n := jobCount(t, s); n != 1 {
		t.Fatalf("%d jobs stored, want 1", n)
	}
}

// raftDialer is a raft.StreamLayer that dials with the Raft protocol
// byte, over TLS with conf or plaintext: an outsider appending to the
// log.
type raftDialer struct{ conf *tls.Config }

func (d *raftDialer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if d.conf != nil {
		tc := tls.Client(conn, d.conf)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
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
func (d *raftDialer) Accept() (net.Conn, error) { select {} }
func (d *raftDialer) Close() error              { return nil }
func (d *raftDialer) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestServerTLS_RaftNeedsServerCertificate(t *testing.T) {
	pki := newTestPKI(t)
	s := testServer(t, func(c *Config) { c.TLS = pki.server })
	addr := s.RPCAddr().String()
	job := mock.Job()
	buf, err := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		conf *tls.Config
	}{
		{"plaintext", nil},
		{"client certificate", pki.client.OutgoingRPC()},
		{"cli certificate", pki.cli.OutgoingRPC()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: &raftDialer{conf: tc.conf}, MaxPool: 1, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger(),
			})
			defer trans.Close()
			req := &raft.AppendEntriesRequest{
				RPCHeader: raft.RPCHeader{ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")},
				Term:      1 << 40, Leader: []byte("127.0.0.1:1"),
				Entries:           []*raft.Log{{Index: 1, Term: 1 << 40, Type: raft.LogCommand, Data: buf}},
				LeaderCommitIndex: 1,
			}
			var resp raft.AppendEntriesResponse
			if err := trans.AppendEntries("victim", raft.ServerAddress(addr), req, &resp); err == nil {
				t.Fatalf("a Raft append over %s was answered: %+v", tc.name, resp)
			}
		})
	}
	if got, _ := s.State().JobByID(nil, "", job.ID); got != nil {
		t.Fatal("the appended job is in the state")
	}
	if !s.IsLeader() {
		t.Fatal("the server lost leadership to an intruder")
	}
}

func TestServerTLS_NeedsServerCertificate(t *testing.T) {
	pki := newTestPKI(t)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.TLS = pki.client
	_, err := NewServer(cfg)
	if err == nil || !strings.Contains(err.Error(), "not a server certificate (server.global.drover)") {
		t.Fatalf("err = %v, want the client certificate refused for a server", err)
	}
}

// staticMembership is a gossip pool whose members the test sets.
type staticMembership struct {
	mu      sync.Mutex
	members []gossip.Member
}

func (m *staticMembership) Servers() []gossip.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]gossip.Member(nil), m.members...)
}
func (m *staticMembership) Subscribe() <-chan struct{} { return make(chan struct{}) }

func (m *staticMembership) add(name, raftID, rpcAddr string, expect int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members = append(m.members, gossip.Member{Name: name, Status: gossip.StatusAlive,
		Meta: gossip.Meta{Server: true, RaftID: raftID, RPCAddr: rpcAddr, BootstrapExpect: expect}})
}

func TestServerTLS_ThreeServersElectAndReplicate(t *testing.T) {
	pki := newTestPKI(t)
	members := &staticMembership{}
	var servers []*Server
	for i := 0; i < 3; i++ {
		cfg := DefaultConfig()
		cfg.NodeName = fmt.Sprintf("s%d", i)
		cfg.NodeID = fmt.Sprintf("tls-server-%d", i)
		cfg.DataDir = t.TempDir()
		cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
		cfg.BootstrapExpect = 3
		cfg.Membership = members
		cfg.NumSchedulers = 1
		cfg.TLS = pki.server
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeName, Level: hclog.Warn})
		s, err := NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Shutdown() })
		servers = append(servers, s)
	}
	for i, s := range servers {
		members.add(fmt.Sprintf("s%d", i), s.raftID, s.RPCAddr().String(), 3)
	}
	var leader *Server
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		for _, s := range servers {
			if s.IsLeader() && s.evalBroker.Enabled() {
				leader = s
				return true, nil
			}
		}
		return false, errors.New("no leader elected over TLS")
	})
	var follower *Server
	for _, s := range servers {
		if s != leader {
			follower = s
			break
		}
	}
	// The follower forwards the write to the leader through its pool,
	// with its server certificate.
	job := mock.Job()
	var resp structs.JobRegisterResponse
	if err := follower.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp); err != nil {
		t.Fatalf("Job.Register on a follower: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		for _, s := range servers {
			if got, err := s.State().JobByID(nil, "", job.ID); err != nil || got == nil {
				return false, fmt.Errorf("%s does not have the job yet (%v)", s.config.NodeName, err)
			}
		}
		return true, nil
	})
}
