package server

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// inmemConfig returns a config for a single server that keeps nothing on
// disk and has no RPC listener: Raft over an in-memory transport at
// addr, in-memory stores.
func inmemConfig(t *testing.T, addr string) *Config {
	cfg := DefaultConfig()
	cfg.NodeID = "inmem-" + addr
	cfg.RPCAddr = nil
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RPCAdvertise = tcp
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	store := raft.NewInmemStore()
	cfg.RaftTransport, cfg.RaftLogStore, cfg.RaftStableStore, cfg.RaftSnapshotStore = trans, store, store, raft.NewInmemSnapshotStore()
	cfg.NumSchedulers = 1
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn})
	return cfg
}

func TestConfig_RefusesIncompleteSeams(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{
			name:   "no RPC listener without a Raft transport",
			mutate: func(c *Config) { c.RaftTransport = nil },
			want:   "RPC address is required",
		},
		{
			name:   "no RPC listener and no advertise address",
			mutate: func(c *Config) { c.RPCAdvertise = nil },
			want:   "advertise address is required",
		},
		{
			name:   "no data dir but the server ID would be kept there",
			mutate: func(c *Config) { c.NodeID = "" },
			want:   "data dir is required",
		},
		{
			name:   "no data dir but a store would be kept there",
			mutate: func(c *Config) { c.RaftSnapshotStore = nil },
			want:   "data dir is required",
		},
		{
			name: "the transport's address is not where the server is reached",
			mutate: func(c *Config) {
				c.RPCAdvertise = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 99), Port: 4647}
			},
			want: "is not the RPC advertise address",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := inmemConfig(t, "192.0.2.1:4647")
			tc.mutate(cfg)
			s, err := NewServer(cfg)
			if err == nil {
				_ = s.Shutdown()
				t.Fatalf("NewServer accepted the config; want an error saying %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestServer_RunsWithoutListenerOrDataDir(t *testing.T) {
	cfg := inmemConfig(t, "192.0.2.1:4647")
	cfg.BootstrapExpect = 1
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	waitForLeader(t, s)
	registerNode(t, s, mock.Node())
	job := mock.Job()
	waitForEval(t, s, registerJob(t, s, job).EvalID)
	if n := len(liveAllocs(t, s, job.ID)); n != 3 {
		t.Fatalf("placed %d allocations, want 3", n)
	}
	if s.RPCAddr().String() != "192.0.2.1:4647" || s.LeaderAddr() != "192.0.2.1:4647" {
		t.Fatalf("advertises %s, leader at %s", s.RPCAddr(), s.LeaderAddr())
	}
}

func TestServer_OwnRaftTransportRefusesRaftOnTheRPCPort(t *testing.T) {
	cfg := inmemConfig(t, "192.0.2.1:4647")
	cfg.BootstrapExpect = 1
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	waitForLeader(t, s)
	listenAddr := s.rpcListener.Addr().String()

	// A peer that speaks Raft on the RPC port is dropped: this server's
	// Raft is elsewhere.
	conn, err := net.DialTimeout("tcp", listenAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{rpcpool.ProtoRaft}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(make([]byte, 16))
	var nerr net.Error
	if n != 0 || err == nil || (errors.As(err, &nerr) && nerr.Timeout()) {
		t.Fatalf("read %d bytes, %v: want the connection closed", n, err)
	}

	// The server is alive and its RPC port serves RPC.
	pool := rpcpool.New()
	defer pool.Shutdown()
	var resp structs.JobRegisterResponse
	if err := pool.RPC(listenAddr, "Job.Register", &structs.JobRegisterRequest{Job: mock.Job()}, &resp); err != nil || resp.EvalID == "" {
		t.Fatalf("RPC after the refused Raft connection: %v %+v", err, resp)
	}
}
