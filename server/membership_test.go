package server

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// fakeMembership is a gossip pool whose members the test dictates,
// hostile ones included.
type fakeMembership struct {
	l       sync.Mutex
	local   gossip.Member
	servers []gossip.Member
	// changes, when set, is what Subscribe returns: a send wakes the
	// leader's reconcile loop as a gossip change would.
	changes chan struct{}
}

func (f *fakeMembership) Servers() []gossip.Member {
	f.l.Lock()
	defer f.l.Unlock()
	return append([]gossip.Member(nil), f.servers...)
}

func (f *fakeMembership) Subscribe() <-chan struct{} {
	if f.changes != nil {
		return f.changes
	}
	return make(chan struct{})
}

func (f *fakeMembership) LocalMember() gossip.Member {
	f.l.Lock()
	defer f.l.Unlock()
	return f.local
}

func (f *fakeMembership) set(local gossip.Member, servers ...gossip.Member) {
	f.l.Lock()
	f.local, f.servers = local, servers
	f.l.Unlock()
}

// serverMember is what a server advertises in gossip.
func serverMember(name, id, addr string, expect int) gossip.Member {
	return gossip.Member{Name: name, Status: gossip.StatusAlive,
		Meta: gossip.Meta{Server: true, RaftID: id, RPCAddr: addr, BootstrapExpect: expect, Region: "global"}}
}

// deadAddr returns an address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	l   sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.l.Lock()
	defer b.l.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.l.Lock()
	defer b.l.Unlock()
	return b.buf.String()
}

func raftConfig(t *testing.T, s *Server) map[string]string {
	t.Helper()
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, srv := range f.Configuration().Servers {
		out[string(srv.ID)] = string(srv.Address)
	}
	return out
}

// startUnbootstrapped starts a server that never bootstraps by itself:
// a leader adds it, or a bootstrap with others includes it.
func startUnbootstrapped(t *testing.T, id string) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.NodeName = id
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.BootstrapExpect = 0
	cfg.NumSchedulers = 0
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: t.Name() + "-" + id, Level: hclog.Error})
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	return s
}

func TestServer_ReconcileIgnoresForgedServerClaims(t *testing.T) {
	fake := &fakeMembership{}
	s := testServer(t, func(c *Config) { c.Membership = fake; c.NodeName = "s1" })
	self := serverMember("s1", s.raftID, s.RPCAddr().String(), 1)
	before := raftConfig(t, s)

	// One member claims the leader's own Raft ID at a bogus address (the
	// attack that re-addressed a voter and left the cluster leaderless);
	// one claims a fresh ID at an address where nothing listens; one
	// claims a fresh ID at the leader's address (a real server, but not
	// the one claimed); one is from another region.
	fake.set(self,
		self,
		serverMember("evil-existing", s.raftID, deadAddr(t), 1),
		serverMember("evil-fresh", "fresh-id", deadAddr(t), 1),
		serverMember("evil-borrowed", "borrowed-id", s.RPCAddr().String(), 1),
		func() gossip.Member {
			m := serverMember("other-region", "other-id", s.RPCAddr().String(), 1)
			m.Region = "elsewhere"
			return m
		}(),
	)
	logs := &syncBuffer{}
	checks := newMemberChecks(hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn}))
	for i := 0; i < 3; i++ {
		if err := s.reconcileOnce(checks); err != nil {
			t.Fatalf("reconcile pass %d: %v", i, err)
		}
	}

	after := raftConfig(t, s)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("Raft configuration changed: %v -> %v", before, after)
	}
	if err := s.raft.VerifyLeader().Error(); err != nil {
		t.Fatalf("leader lost leadership: %v", err)
	}
	registerJob(t, s, mock.Job())

	// Each forged member is logged once, not on every pass.
	out := logs.String()
	for _, name := range []string{"evil-existing", "evil-fresh", "evil-borrowed", "other-region"} {
		if n := strings.Count(out, "member="+name+" "); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", name, n, out)
		}
	}
	for _, want := range []string{"claims this server's Raft ID", `has Raft ID \"` + s.raftID, "another region"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestServer_ReconcileAddsOnlyVerifiedServers(t *testing.T) {
	fake := &fakeMembership{}
	s1 := testServer(t, func(c *Config) { c.Membership = fake; c.NodeName = "s1" })
	s2 := startUnbootstrapped(t, "s2-id")
	self := serverMember("s1", s1.raftID, s1.RPCAddr().String(), 1)
	checks := newMemberChecks(hclog.NewNullLogger())

	// s2's ID claimed at s1's address: whoever answers there is not s2.
	fake.set(self, self, serverMember("impostor", "s2-id", s1.RPCAddr().String(), 1))
	if err := s1.reconcileOnce(checks); err != nil {
		t.Fatal(err)
	}
	if cfg := raftConfig(t, s1); len(cfg) != 1 {
		t.Fatalf("impostor added: %v", cfg)
	}

	// The real s2 verifies and becomes a voter.
	real2 := serverMember("s2", "s2-id", s2.RPCAddr().String(), 1)
	fake.set(self, self, real2)
	if err := s1.reconcileOnce(checks); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		cfg := raftConfig(t, s2)
		return cfg["s2-id"] == s2.RPCAddr().String() && len(cfg) == 2, fmt.Errorf("s2's configuration: %v", cfg)
	})

	// Now a member claims s2's ID at a bogus address: the voter keeps
	// its address and the cluster its leader.
	fake.set(self, self, real2, serverMember("evil", "s2-id", deadAddr(t), 1))
	for i := 0; i < 2; i++ {
		if err := s1.reconcileOnce(checks); err != nil {
			t.Fatal(err)
		}
	}
	if cfg := raftConfig(t, s1); cfg["s2-id"] != s2.RPCAddr().String() {
		t.Fatalf("s2 re-addressed: %v", cfg)
	}
	if err := s1.raft.VerifyLeader().Error(); err != nil {
		t.Fatalf("leader lost leadership: %v", err)
	}

	// A "left" member claiming s2's ID while s2 is alive does not take s2
	// out of Raft.
	left := serverMember("evil-left", "s2-id", s2.RPCAddr().String(), 1)
	left.Status = gossip.StatusLeft
	fake.set(self, self, real2, left)
	if err := s1.reconcileOnce(checks); err != nil {
		t.Fatal(err)
	}
	if cfg := raftConfig(t, s1); len(cfg) != 2 {
		t.Fatalf("forged leave removed a server: %v", cfg)
	}
}

func TestServer_BootstrapCountsOnlyVerifiedServers(t *testing.T) {
	fake := &fakeMembership{}
	cfg := DefaultConfig()
	cfg.NodeID = "s1-id"
	cfg.NodeName = "s1"
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	cfg.BootstrapExpect = 2
	cfg.NumSchedulers = 0
	cfg.Membership = fake
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Error})
	s1, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s1.Shutdown() })
	self := serverMember("s1", "s1-id", s1.RPCAddr().String(), 2)
	checks := newMemberChecks(hclog.NewNullLogger())

	// Two strangers would make up bootstrap_expect, and one disagrees
	// about it: neither counts, neither blocks.
	fake.set(self, self,
		serverMember("evil-fresh", "fresh-id", deadAddr(t), 2),
		serverMember("evil-expect", "other-id", s1.RPCAddr().String(), 5))
	if s1.tryBootstrap(checks) || s1.hasRaftConfiguration() {
		t.Fatal("bootstrapped with unverified servers")
	}

	// A real second server verifies: the cluster bootstraps with s1 and
	// s2, the strangers left out.
	s2 := startUnbootstrapped(t, "s2-id")
	fake.set(self, self,
		serverMember("evil-fresh", "fresh-id", deadAddr(t), 2),
		serverMember("evil-expect", "other-id", s1.RPCAddr().String(), 5),
		serverMember("s2", "s2-id", s2.RPCAddr().String(), 2))
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		return s1.tryBootstrap(checks) && s1.hasRaftConfiguration(), nil
	})
	got := raftConfig(t, s1)
	want := map[string]string{"s1-id": s1.RPCAddr().String(), "s2-id": s2.RPCAddr().String()}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bootstrapped with %v, want %v", got, want)
	}
}

func TestStatus_ServerInfoAnswersWhoItIs(t *testing.T) {
	fake := &fakeMembership{}
	s := testServer(t, func(c *Config) { c.Membership = fake })
	fake.set(gossip.Member{Name: "node-a", Meta: gossip.Meta{Region: "eu"}})
	pool := rpcpool.New()
	defer pool.Shutdown()
	var info ServerInfo
	if err := pool.RPC(s.RPCAddr().String(), "Status.ServerInfo", &structs.GenericRequest{}, &info); err != nil {
		t.Fatal(err)
	}
	if info.RaftID != s.raftID || info.NodeName != "node-a" || info.Region != "eu" || info.RPCAddr != s.RPCAddr().String() {
		t.Fatalf("server info %+v", info)
	}
	// Garbage on the RPC port gets no answer and leaves the server up.
	conn, err := net.Dial("tcp", s.RPCAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte{rpcpool.ProtoRPC, 0xc1, 0xff, 0x00, 0x13})
	conn.Close()
	if err := pool.RPC(s.RPCAddr().String(), "Status.ServerInfo", &structs.GenericRequest{}, &info); err != nil || info.RaftID != s.raftID {
		t.Fatalf("after garbage: %+v %v", info, err)
	}
}
