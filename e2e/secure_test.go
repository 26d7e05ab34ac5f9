package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	msgpackrpc "github.com/hashicorp/net-rpc-msgpackrpc/v2"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

// TestSecure_ClusterRunsJobAndSurvivesLeaderKills forms three servers
// and two clients with mTLS on RPC and HTTP (client certificates
// required) and a gossip key, all made with `drover tls` and `drover
// operator gossip keyring generate`; runs a job on real containerd; and
// passes the leader-kill chaos checks of TestHA_LeaderKillChaos.
func TestSecure_ClusterRunsJobAndSurvivesLeaderKills(t *testing.T) {
	m := newSecureMaterial(t, 3, 2)
	h := startServersSecure(t, 3, nil, nil, m)
	c1 := h.addClient("c1")
	c2 := h.addClient("c2")

	self, err := h.servers[0].api.Agent().Self()
	if err != nil {
		t.Fatal(err)
	}
	if self["Secure"] != true {
		t.Fatalf("a server with mTLS and a gossip key reports Secure=%v: %v", self["Secure"], self["Security"])
	}
	if res := h.servers[0].cli("agent", "info"); res.code != 0 || !strings.Contains(res.stdout, "Secure = true") {
		t.Fatalf("drover agent info: %s", res)
	}
	leaderKillChaos(t, h, c1, c2, 10)
}

// stateTables returns the leader's state fingerprint, table by table.
func stateTables(t *testing.T, h *haCluster) map[string]string {
	t.Helper()
	sh, err := h.waitLeader(nil).api.Operator().StateHash()
	if err != nil {
		t.Fatal(err)
	}
	return sh.Tables
}

// unchanged fails the test when the state differs from before.
func unchanged(t *testing.T, h *haCluster, before map[string]string, what string) {
	t.Helper()
	if after := stateTables(t, h); !reflect.DeepEqual(before, after) {
		t.Fatalf("%s changed the state:\nbefore %v\nafter  %v", what, before, after)
	}
}

// rpcClient opens a net/rpc connection to a server's RPC port the way
// Drover's own pool does (protocol byte 0x01, msgpack), over TLS with
// cfg, or plaintext when cfg is nil.
//
// Close the returned conn, not the client: msgpackrpc's codec Close
// races with the client's reader goroutine (the race detector sees it);
// closing the conn ends the reader cleanly.
func rpcClient(t *testing.T, addr string, cfg *tls.Config) (*rpc.Client, net.Conn, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	var conn net.Conn = raw
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.ServerName = "server.global.drover"
		tc := tls.Client(raw, cfg)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, nil, err
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte{0x01}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return rpc.NewClientWithCodec(msgpackrpc.NewCodecFromHandle(true, true, conn, structs.MsgpackHandle)), conn, nil
}

// call makes one RPC on a fresh connection.
func call(t *testing.T, addr string, cfg *tls.Config, method string, args, reply interface{}) error {
	t.Helper()
	c, conn, err := rpcClient(t, addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	return c.Call(method, args, reply)
}

// raftStream is a raft.StreamLayer that dials a server's RPC port with
// the Raft protocol byte, over TLS with cfg (plaintext when nil): an
// outsider trying to append to the log.
type raftStream struct{ cfg *tls.Config }

func (r *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	raw, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	var conn net.Conn = raw
	if r.cfg != nil {
		cfg := r.cfg.Clone()
		cfg.ServerName = "server.global.drover"
		tc := tls.Client(raw, cfg)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, err
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	if _, err := conn.Write([]byte{0x02}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
func (r *raftStream) Accept() (net.Conn, error) { select {} }
func (r *raftStream) Close() error              { return nil }
func (r *raftStream) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// appendJob tries to append a JobRegister entry (a job running a root
// container) straight to a server's Raft log, claiming a very high term.
func appendJob(t *testing.T, target string, cfg *tls.Config) error {
	t.Helper()
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &raftStream{cfg: cfg}, MaxPool: 1, Timeout: 5 * time.Second,
		Logger: hclog.NewNullLogger(),
	})
	defer trans.Close()
	job := &structs.Job{ID: "evil", Name: "evil", Type: "service", Datacenters: []string{"dc1"}}
	buf, err := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job})
	if err != nil {
		t.Fatal(err)
	}
	req := &raft.AppendEntriesRequest{
		RPCHeader:    raft.RPCHeader{ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")},
		Term:         1 << 40,
		Leader:       []byte("127.0.0.1:1"),
		PrevLogEntry: 0, PrevLogTerm: 0,
		Entries:           []*raft.Log{{Index: 1, Term: 1 << 40, Type: raft.LogCommand, Data: buf}},
		LeaderCommitIndex: 1,
	}
	var resp raft.AppendEntriesResponse
	if err := trans.AppendEntries("victim", raft.ServerAddress(target), req, &resp); err != nil {
		return err
	}
	if !resp.Success {
		return fmt.Errorf("append refused by raft (term %d)", resp.Term)
	}
	return nil
}

// wantPermission checks an RPC error is the coded permission refusal.
func wantPermission(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s was accepted", what)
	}
	if ce := structs.ParseCodedError(err); ce == nil || ce.Code != structs.CodePermission {
		t.Fatalf("%s: got %v, want a permission_denied error", what, err)
	}
}

// TestSecure_StrangersAreRefused attacks a closed cluster (three servers
// and a client, mTLS and a gossip key) the ways an attacker on the same
// network would, and checks each refusal and that the state did not
// change (the leader's /v1/operator/state-hash, table by table).
func TestSecure_StrangersAreRefused(t *testing.T) {
	m := newSecureMaterial(t, 4, 1)
	h := startServersSecure(t, 3, m.serverHosts[:3], nil, m)
	c1 := h.addClient("c1")
	if res := h.servers[0].cli("job", "run", writeFile(t, "one.hcl", countJob("one", h.ctrd.image, 1, 16))); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	rpcAddr := h.servers[0].host + ":4647"
	serverTLS := m.tlsConfig(t, true, m.serverCert, m.serverKey)
	clientTLS := m.tlsConfig(t, true, m.clientCert, m.clientKey)
	cliTLS := m.tlsConfig(t, true, m.cliCert, m.cliKey)
	before := stateTables(t, h)

	t.Run("plaintext RPC is refused", func(t *testing.T) {
		var leader string
		err := call(t, rpcAddr, nil, "Status.Leader", &structs.GenericRequest{}, &leader)
		if err == nil {
			t.Fatalf("a plaintext RPC was answered: leader %q", leader)
		}
		var resp structs.JobRegisterResponse
		job := &structs.Job{ID: "plain", Name: "plain", Type: "service"}
		if err := call(t, rpcAddr, nil, "Job.Register", &structs.JobRegisterRequest{Job: job}, &resp); err == nil {
			t.Fatal("a plaintext Job.Register was accepted")
		}
		unchanged(t, h, before, "plaintext RPC")
	})

	t.Run("raw Raft without a server certificate is refused", func(t *testing.T) {
		for name, cfg := range map[string]*tls.Config{"plaintext": nil, "client certificate": clientTLS, "cli certificate": cliTLS} {
			if err := appendJob(t, rpcAddr, cfg); err == nil {
				t.Fatalf("a Raft append over %s was accepted", name)
			} else {
				t.Logf("raft append over %s: %v", name, err)
			}
		}
		unchanged(t, h, before, "raw Raft appends")
		for _, s := range h.alive() {
			if !s.alive() {
				t.Fatalf("%s died", s.name)
			}
		}
	})

	t.Run("a client certificate calls only client endpoints", func(t *testing.T) {
		var resp structs.JobRegisterResponse
		job := &structs.Job{ID: "byclient", Name: "byclient", Type: "service"}
		err := call(t, rpcAddr, clientTLS, "Job.Register", &structs.JobRegisterRequest{Job: job}, &resp)
		wantPermission(t, err, "Job.Register with a client certificate")
		// Forwarding is for servers only.
		var nresp structs.NodeUpdateResponse
		fwd := &structs.NodeUpdateStatusRequest{NodeID: "x", SecretID: "y", Status: "ready", WriteRequest: structs.WriteRequest{Forwarded: true}}
		err = call(t, rpcAddr, clientTLS, "Node.UpdateStatus", fwd, &nresp)
		wantPermission(t, err, "a forwarded request with a client certificate")
		// The cli certificate is for the HTTP API only.
		var leader string
		if err := call(t, rpcAddr, cliTLS, "Status.Leader", &structs.GenericRequest{}, &leader); err == nil {
			t.Fatal("an RPC with a cli certificate was answered")
		}
		// A server certificate works (the control).
		if err := call(t, rpcAddr, serverTLS, "Status.Leader", &structs.GenericRequest{}, &leader); err != nil || leader == "" {
			t.Fatalf("Status.Leader with a server certificate: %q %v", leader, err)
		}
		unchanged(t, h, before, "client-certificate RPCs")
	})

	t.Run("HTTPS without a client certificate fails the handshake", func(t *testing.T) {
		_, err := m.httpClient(t, false).Get(h.servers[0].url() + "/v1/agent/self")
		if err == nil {
			t.Fatal("the HTTPS API answered a caller without a client certificate")
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("want a TLS certificate error, got %v", err)
		}
		if _, err := (&http11{}).plainGet(h.servers[0].host + ":4646"); err == nil {
			t.Fatal("the HTTPS port answered plain HTTP with success")
		}
	})

	// A node of our own, registered with a client certificate, with a
	// secret only we know.
	fake := &structs.Node{ID: "00000000-fake-0000-0000-000000000001", SecretID: "11111111-2222-3333-4444-555555555555",
		Name: "intruder", Datacenter: "dc1", Status: "ready", HTTPAddr: "169.254.169.254:80",
		NodeResources: &structs.NodeResources{Cpu: structs.NodeCpuResources{CpuShares: 1000}, Memory: structs.NodeMemoryResources{MemoryMB: 1000}}}
	var reg structs.NodeUpdateResponse
	if err := call(t, rpcAddr, clientTLS, "Node.Register", &structs.NodeRegisterRequest{Node: fake}, &reg); err != nil {
		t.Fatalf("register a node with a client certificate: %v", err)
	}
	afterReg := stateTables(t, h)

	t.Run("a node touches only its own allocations and heartbeat", func(t *testing.T) {
		allocs, _, err := h.servers[0].api.Jobs().Allocations("one", nil)
		if err != nil || len(allocs) == 0 {
			t.Fatalf("allocations of job one: %v %v", allocs, err)
		}
		victim := allocs[0]
		var gr structs.GenericResponse
		upd := &structs.AllocUpdateRequest{NodeID: fake.ID, SecretID: fake.SecretID, Alloc: []*structs.Allocation{
			{ID: victim.ID, NodeID: victim.NodeID, ClientStatus: "failed"}}}
		wantPermission(t, call(t, rpcAddr, clientTLS, "Node.UpdateAlloc", upd, &gr), "updating another node's allocation")
		hb := &structs.NodeUpdateStatusRequest{NodeID: victim.NodeID, SecretID: fake.SecretID, Status: "down"}
		var nresp structs.NodeUpdateResponse
		wantPermission(t, call(t, rpcAddr, clientTLS, "Node.UpdateStatus", hb, &nresp), "heartbeating for another node")
		var ar structs.AllocsGetResponse
		get := &structs.AllocsGetRequest{NodeID: fake.ID, SecretID: fake.SecretID, AllocIDs: []string{victim.ID}}
		if err := call(t, rpcAddr, clientTLS, "Alloc.GetAllocs", get, &ar); err != nil || len(ar.Allocs) != 0 {
			t.Fatalf("a node read another node's allocation: %d allocations, %v", len(ar.Allocs), err)
		}
		unchanged(t, h, afterReg, "a node's attempts on another node")
	})

	t.Run("no read returns a node's secret", func(t *testing.T) {
		for _, path := range []string{"/v1/node/" + fake.ID, "/v1/nodes", "/v1/node/" + fake.ID + "?stale=true"} {
			var body []byte
			// A stale read on a follower may lag the registration by a
			// few milliseconds.
			testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
				resp, err := h.servers[1].httpc.Get(h.servers[1].url() + path)
				if err != nil {
					return false, err
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode == 200, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
			})
			if strings.Contains(string(body), fake.SecretID) || strings.Contains(string(body), "SecretID") {
				t.Fatalf("GET %s returned the node's secret: %s", path, body)
			}
		}
		var nr structs.SingleNodeResponse
		if err := call(t, rpcAddr, serverTLS, "Node.GetNode", &structs.NodeSpecificRequest{NodeID: fake.ID}, &nr); err != nil || nr.Node == nil {
			t.Fatalf("Node.GetNode: %v %v", nr.Node, err)
		}
		if nr.Node.SecretID != "" {
			t.Fatal("Node.GetNode over RPC returned the node's secret")
		}
	})

	t.Run("a gossip member without the key is not seen and never votes", func(t *testing.T) {
		// A fourth server with a valid server certificate but another
		// gossip key tries to join.
		other := strings.TrimSpace(m.run(t, "operator", "gossip", "keyring", "generate"))
		host := m.serverHosts[3]
		args := []string{"agent", "-server", "-bootstrap-expect", "3", "-bind", host, "-node-name", "s4", "-log-level", "debug"}
		for _, j := range h.hosts {
			args = append(args, "-join", j)
		}
		s4 := newAgent(t, "s4", host, "", args)
		m.apply(s4, "server")
		for i, a := range s4.args {
			if a == "-encrypt" {
				s4.args[i+1] = other
			}
		}
		s4.start()
		// Give it time to try: joins are retried every few seconds.
		deadline := time.Now().Add(12 * time.Second)
		for time.Now().Before(deadline) {
			members, err := h.servers[0].api.Agent().Members()
			if err != nil {
				t.Fatal(err)
			}
			for _, mem := range members {
				if mem.Name == "s4" {
					t.Fatalf("a member with the wrong gossip key was seen: %+v", mem)
				}
			}
			peers := raftPeers(t, h.servers[0])
			if len(peers) != 3 {
				t.Fatalf("Raft has %d peers: %v", len(peers), peers)
			}
			time.Sleep(time.Second)
		}
		s4.stop(syscall.SIGTERM)
		unchanged(t, h, afterReg, "a stranger's join attempts")
	})

	t.Run("the logs proxy never sends a request to a rogue node's address", func(t *testing.T) {
		// A listener standing for an internal service the rogue node
		// wants the servers to reach: it records what it receives.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		got := make(chan string, 16)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func(c net.Conn) {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					b := make([]byte, 512)
					n, _ := c.Read(b)
					got <- string(b[:n])
				}(c)
			}
		}()
		// The rogue node advertises that address, with the driver and
		// meta a job of ours selects, and keeps heartbeating.
		rogue := fake.Copy()
		rogue.HTTPAddr = l.Addr().String()
		rogue.Attributes = map[string]string{"unique.network.ip-address": "127.0.0.1", "kernel.name": "linux"}
		rogue.Meta = map[string]string{"role": "intruder"}
		rogue.Drivers = map[string]*structs.DriverInfo{"containerd": {Detected: true, Healthy: true}}
		var rr structs.NodeUpdateResponse
		if err := call(t, rpcAddr, clientTLS, "Node.Register", &structs.NodeRegisterRequest{Node: rogue}, &rr); err != nil {
			t.Fatal(err)
		}
		job := countJob("lured", h.ctrd.image, 1, 16)
		job = strings.Replace(job, "group ", "constraint {\n    attribute = \"${meta.role}\"\n    value     = \"intruder\"\n  }\n  group ", 1)
		if res := h.servers[0].cli("job", "run", "-detach", writeFile(t, "lured.hcl", job)); res.code != 0 {
			t.Fatalf("job run: %s", res)
		}
		var allocID string
		testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
			var hb structs.NodeUpdateResponse
			_ = call(t, rpcAddr, clientTLS, "Node.UpdateStatus", &structs.NodeUpdateStatusRequest{NodeID: rogue.ID, SecretID: rogue.SecretID, Status: "ready"}, &hb)
			allocs, _, err := h.servers[0].api.Jobs().Allocations("lured", nil)
			if err != nil || len(allocs) == 0 {
				return false, fmt.Errorf("no allocation yet: %v", err)
			}
			allocID = allocs[0].ID
			return allocs[0].NodeID == rogue.ID, fmt.Errorf("allocation on %s", allocs[0].NodeID)
		})
		resp, err := h.servers[0].httpc.Get(h.servers[0].url() + "/v1/client/fs/logs/" + allocID + "?task=t")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("logs through a rogue node: HTTP %d %s", resp.StatusCode, body)
		}
		t.Logf("logs through a rogue node: HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		for {
			select {
			case b := <-got:
				if strings.Contains(b, "HTTP/1.1") || strings.Contains(b, "/v1/") {
					t.Fatalf("the proxy sent a request to the rogue node's address: %q", b)
				}
				continue
			default:
			}
			break
		}
	})

	t.Run("certificates reload on SIGHUP", func(t *testing.T) {
		// A fresh server certificate replaces the files the agent was
		// started with; after SIGHUP new connections present it.
		args := []string{"tls", "cert", "create", "-server", "-dc", "dc1"}
		for _, hst := range m.serverHosts {
			args = append(args, "-additional-ipaddress", hst)
		}
		m.run(t, args...)
		newCert, err := os.ReadFile(m.dir + "/dc1-server-drover-1.pem")
		if err != nil {
			t.Fatal(err)
		}
		newKey, err := os.ReadFile(m.dir + "/dc1-server-drover-1-key.pem")
		if err != nil {
			t.Fatal(err)
		}
		s := h.servers[2]
		oldSerial := peerSerial(t, s.host+":4647", clientTLS)
		if err := os.WriteFile(m.serverCert, newCert, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m.serverKey, newKey, 0o600); err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(newCert)
		want, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		cmd, _ := s.proc()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
			got := peerSerial(t, s.host+":4647", clientTLS)
			return got == want.SerialNumber.String(), fmt.Errorf("server presents serial %s (old %s), want %s", got, oldSerial, want.SerialNumber)
		})
		if !s.alive() {
			t.Fatal("SIGHUP stopped the agent")
		}
		// The cluster still works on the new certificate.
		h.waitLeader(nil)
	})
	_ = c1
}

// peerSerial returns the serial number of the certificate a TLS server
// presents.
func peerSerial(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// http11 speaks plain HTTP/1.1 to a port, to check an HTTPS-only port
// does not answer it.
type http11 struct{}

func (http11) plainGet(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	b, _ := io.ReadAll(conn)
	if strings.HasPrefix(string(b), "HTTP/1.1 200") {
		return string(b), nil
	}
	return string(b), errors.New("no success")
}
