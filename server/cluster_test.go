package server

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// In-process clusters.
//
// testCluster runs servers in one process without sockets: Raft goes
// over raft.InmemTransport with in-memory stores, and the calls one
// server makes to another (forwarding to the leader) go through
// inmemNet, which calls Server.RPC on the other server with copies of
// the arguments, as the network would. inmemNet partitions and heals
// both at once, as a network partition would.

// inmemNet is the network between a test cluster's servers.
type inmemNet struct {
	// mu guards every field.
	mu         sync.Mutex
	servers    map[string]*Server
	transports map[string]*raft.InmemTransport
	// cut holds the pairs of addresses (sorted) that cannot reach each
	// other.
	cut map[[2]string]bool
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// reach returns the server at addr if from can reach it.
func (n *inmemNet) reach(from, addr string) (*Server, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.servers[addr]
	if !ok || n.cut[pair(from, addr)] || s.isShutdown() {
		return nil, false
	}
	return s, true
}

// setLink connects or disconnects the Raft transports of a and b, both
// ways.
func (n *inmemNet) setLinkLocked(a, b string, up bool) {
	ta, tb := n.transports[a], n.transports[b]
	if up {
		ta.Connect(raft.ServerAddress(b), tb)
		tb.Connect(raft.ServerAddress(a), ta)
		delete(n.cut, pair(a, b))
		return
	}
	ta.Disconnect(raft.ServerAddress(b))
	tb.Disconnect(raft.ServerAddress(a))
	n.cut[pair(a, b)] = true
}

// inmemPeers is one server's Peers on an inmemNet.
type inmemPeers struct {
	net  *inmemNet
	from string
}

// RPC calls method on the server at addr, as rpcpool.Pool would: the
// arguments and the reply cross as msgpack, so neither side shares
// objects with the other; an unreachable server is ErrNotSent (nothing
// was sent); an endpoint's error keeps its code.
func (p *inmemPeers) RPC(addr, method string, args, reply interface{}) error {
	target, ok := p.net.reach(p.from, addr)
	if !ok {
		return fmt.Errorf("rpc %s to %s: %w: %w: no route from %s", method, addr, rpcpool.ErrUnreachable, rpcpool.ErrNotSent, p.from)
	}
	argsCopy := reflect.New(reflect.TypeOf(args).Elem()).Interface()
	if err := msgpackCopy(args, argsCopy); err != nil {
		return fmt.Errorf("rpc %s to %s: encode args: %w", method, addr, err)
	}
	replyCopy := reflect.New(reflect.TypeOf(reply).Elem()).Interface()
	if err := target.RPC(method, argsCopy, replyCopy); err != nil {
		// Over the network only the message crosses.
		if ce := structs.ParseCodedError(err); ce != nil {
			return ce
		}
		return errors.New(err.Error())
	}
	return msgpackCopy(replyCopy, reply)
}

func msgpackCopy(from, to interface{}) error {
	var buf []byte
	if err := codec.NewEncoderBytes(&buf, structs.MsgpackHandle).Encode(from); err != nil {
		return err
	}
	return codec.NewDecoderBytes(buf, structs.MsgpackHandle).Decode(to)
}

// testCluster is servers bootstrapped together over an inmemNet.
type testCluster struct {
	t       *testing.T
	net     *inmemNet
	servers []*Server
}

// newTestCluster starts n servers that bootstrap one Raft configuration
// directly (no gossip), each with one scheduler worker, and waits for a
// leader. Heartbeat TTLs are an hour: nodes the tests register never
// expire behind their back.
func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith is newTestCluster with mutate applied to every
// server's configuration.
func newTestClusterWith(t *testing.T, n int, mutate func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: &inmemNet{
		servers:    make(map[string]*Server),
		transports: make(map[string]*raft.InmemTransport),
		cut:        make(map[[2]string]bool),
	}}
	type member struct {
		id    string
		addr  *net.TCPAddr
		store *raft.InmemStore
		snaps *raft.InmemSnapshotStore
		trans *raft.InmemTransport
	}
	var members []member
	var boot raft.Configuration
	for i := 0; i < n; i++ {
		// Addresses from TEST-NET-1: nothing listens there, and nothing
		// is dialled; they only name the servers.
		addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, byte(i+1)), Port: 4647}
		_, trans := raft.NewInmemTransport(raft.ServerAddress(addr.String()))
		m := member{id: fmt.Sprintf("server-%d", i), addr: addr, store: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore(), trans: trans}
		members = append(members, m)
		c.net.transports[addr.String()] = trans
		boot.Servers = append(boot.Servers, raft.Server{ID: raft.ServerID(m.id), Address: trans.LocalAddr(), Suffrage: raft.Voter})
	}
	c.net.mu.Lock()
	for i := range members {
		for j := i + 1; j < len(members); j++ {
			c.net.setLinkLocked(members[i].addr.String(), members[j].addr.String(), true)
		}
	}
	c.net.mu.Unlock()
	for _, m := range members {
		bootConf := raft.DefaultConfig()
		bootConf.LocalID = raft.ServerID(m.id)
		if err := raft.BootstrapCluster(bootConf, m.store, m.store, m.snaps, m.trans, boot); err != nil {
			t.Fatalf("bootstrap %s: %v", m.id, err)
		}
		cfg := DefaultConfig()
		cfg.NodeName = m.id
		cfg.NodeID = m.id
		cfg.RPCAddr = nil
		cfg.RPCAdvertise = m.addr
		cfg.BootstrapExpect = 0
		cfg.RaftTransport = m.trans
		cfg.RaftLogStore, cfg.RaftStableStore, cfg.RaftSnapshotStore = m.store, m.store, m.snaps
		cfg.Peers = &inmemPeers{net: c.net, from: m.addr.String()}
		cfg.NumSchedulers = 1
		cfg.RPCHoldTimeout = 500 * time.Millisecond
		cfg.MinHeartbeatTTL, cfg.HeartbeatGrace = time.Hour, time.Hour
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: m.id, Level: hclog.Error})
		if mutate != nil {
			mutate(cfg)
		}
		s, err := NewServer(cfg)
		if err != nil {
			t.Fatalf("start %s: %v", m.id, err)
		}
		t.Cleanup(func() { _ = s.Shutdown() })
		c.net.mu.Lock()
		c.net.servers[m.addr.String()] = s
		c.net.mu.Unlock()
		c.servers = append(c.servers, s)
	}
	c.waitLeader(c.servers...)
	return c
}

func (c *testCluster) name(s *Server) string { return s.config.NodeName }

// waitLeader waits until one of among leads with its leader loops
// running, and returns it.
func (c *testCluster) waitLeader(among ...*Server) *Server {
	c.t.Helper()
	var leader *Server
	testutil.WaitFor(c.t, 30*time.Second, func() (bool, error) {
		for _, s := range among {
			if s.IsLeader() && s.evalBroker.Enabled() {
				leader = s
				return true, nil
			}
		}
		return false, errors.New("no leader among the servers yet")
	})
	return leader
}

// others returns the cluster's servers except the given ones.
func (c *testCluster) others(except ...*Server) []*Server {
	var out []*Server
	for _, s := range c.servers {
		skip := false
		for _, e := range except {
			skip = skip || s == e
		}
		if !skip {
			out = append(out, s)
		}
	}
	return out
}

// partition cuts the given servers off from the rest, for Raft and RPC.
func (c *testCluster) partition(minority ...*Server) {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	for _, a := range minority {
		for _, b := range c.others(minority...) {
			c.net.setLinkLocked(a.config.RPCAdvertise.String(), b.config.RPCAdvertise.String(), false)
		}
	}
}

// heal reconnects every pair of servers.
func (c *testCluster) heal() {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	for i, a := range c.servers {
		for _, b := range c.servers[i+1:] {
			c.net.setLinkLocked(a.config.RPCAdvertise.String(), b.config.RPCAdvertise.String(), true)
		}
	}
}

// register registers a job through s and returns it once acknowledged.
func (c *testCluster) register(s *Server) *structs.Job {
	c.t.Helper()
	job := mock.Job()
	var resp structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp); err != nil {
		c.t.Fatalf("Job.Register on %s: %v", c.name(s), err)
	}
	if resp.Index == 0 {
		c.t.Fatalf("Job.Register on %s acknowledged without an index", c.name(s))
	}
	return job
}

// waitForJobs waits until s has applied every job.
func (c *testCluster) waitForJobs(s *Server, jobs ...*structs.Job) {
	c.t.Helper()
	testutil.WaitFor(c.t, 30*time.Second, func() (bool, error) {
		for _, j := range jobs {
			if got, err := s.State().JobByID(nil, "", j.ID); err != nil || got == nil {
				return false, fmt.Errorf("%s does not have job %s (%v)", c.name(s), j.ID, err)
			}
		}
		return true, nil
	})
}

// waitSameState waits until the servers' Operator.StateHash answers
// are identical: same latest index, same hash of every table.
func (c *testCluster) waitSameState(servers ...*Server) {
	c.t.Helper()
	testutil.WaitFor(c.t, 30*time.Second, func() (bool, error) {
		var first *structs.StateHashResponse
		for _, s := range servers {
			// What Operator.StateHash answers, read directly: with ACLs
			// on the RPC needs an operator:read token this helper lacks.
			h := structs.StateHashResponse{Server: s.config.RPCAdvertise.String()}
			var err error
			if h.Index, h.Tables, err = s.State().Hash(); err != nil {
				return false, err
			}
			if first == nil {
				first = &h
				continue
			}
			if h.Index != first.Index || !reflect.DeepEqual(h.Tables, first.Tables) {
				return false, fmt.Errorf("%s is at index %d with %v; %s at %d with %v", h.Server, h.Index, h.Tables, first.Server, first.Index, first.Tables)
			}
		}
		return true, nil
	})
}

// waitScheduled waits until s has a completed evaluation of every job:
// what the scheduler placed for it is committed.
func (c *testCluster) waitScheduled(s *Server, jobs ...*structs.Job) {
	c.t.Helper()
	testutil.WaitFor(c.t, 30*time.Second, func() (bool, error) {
		for _, j := range jobs {
			evals, err := s.State().EvalsByJob(nil, "", j.ID)
			if err != nil {
				return false, err
			}
			done := false
			for _, e := range evals {
				done = done || e.Status == structs.EvalStatusComplete
			}
			if !done {
				return false, fmt.Errorf("job %s is not scheduled on %s yet", j.ID, c.name(s))
			}
		}
		return true, nil
	})
}

// wantNoLeader fails unless err is a no_leader refusal.
func wantNoLeader(t *testing.T, what string, err error) {
	t.Helper()
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Code != structs.CodeNoLeader {
		t.Fatalf("%s: err = %v, want a %s refusal", what, err, structs.CodeNoLeader)
	}
}

func TestCluster_FollowerForwardsToTheLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.servers...)
	follower := c.others(leader)[0]

	// A write sent to a follower is forwarded, committed and replicated.
	job := c.register(follower)
	for _, s := range c.servers {
		c.waitForJobs(s, job)
	}
	// So is a consistent read.
	var got structs.SingleJobResponse
	if err := follower.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: job.ID}, &got); err != nil {
		t.Fatalf("consistent read on a follower: %v", err)
	}
	if got.Job == nil || got.Job.ID != job.ID || !got.KnownLeader {
		t.Fatalf("consistent read on a follower answered %+v", got)
	}
	// A node registered through a follower gets the leader's heartbeat
	// timer.
	node := mock.Node()
	var nresp structs.NodeUpdateResponse
	if err := follower.RPC("Node.Register", &structs.NodeRegisterRequest{Node: node}, &nresp); err != nil {
		t.Fatalf("Node.Register on a follower: %v", err)
	}
	if nresp.HeartbeatTTL <= 0 || nresp.LeaderRPCAddr != leader.RPCAddr().String() {
		t.Fatalf("node registration through a follower answered %+v", nresp)
	}
}

func TestCluster_FollowerRefusesARequestMarkedForwarded(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.servers...)
	follower := c.others(leader)[0]

	// A request that claims another server forwarded it is served only
	// by a leader: a follower neither serves nor forwards it again.
	job := mock.Job()
	req := &structs.JobRegisterRequest{Job: job}
	req.Forwarded = true
	var resp structs.JobRegisterResponse
	wantNoLeader(t, "forwarded write on a follower", follower.RPC("Job.Register", req, &resp))

	// Nothing was stored, and the cluster still takes writes.
	later := c.register(follower)
	for _, s := range c.servers {
		c.waitForJobs(s, later)
		if got, _ := s.State().JobByID(nil, "", job.ID); got != nil {
			t.Fatalf("%s stored the refused job", c.name(s))
		}
	}
}

func TestCluster_LeaderShutdownElectsANewLeaderKeepingWrites(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.waitLeader(c.servers...)
	var acked []*structs.Job
	for _, s := range c.servers {
		acked = append(acked, c.register(s))
	}

	if err := old.Shutdown(); err != nil {
		t.Fatal(err)
	}
	rest := c.others(old)
	leader := c.waitLeader(rest...)
	if leader == old {
		t.Fatal("the shut down server still leads")
	}
	// Every acknowledged write is on the new leader, and a consistent
	// read through the remaining follower sees it.
	c.waitForJobs(leader, acked...)
	follower := c.others(old, leader)[0]
	for _, j := range acked {
		var got structs.SingleJobResponse
		if err := follower.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: j.ID}, &got); err != nil || got.Job == nil {
			t.Fatalf("acknowledged job %s after the leader died: %v %+v", j.ID, err, got)
		}
	}
	// The two servers left are a majority: writes go on.
	c.waitForJobs(leader, c.register(follower))
	c.waitSameState(rest...)
}

func TestCluster_PartitionedLeaderStepsDownAndCatchesUp(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.waitLeader(c.servers...)
	var acked []*structs.Job
	for _, s := range c.servers {
		acked = append(acked, c.register(s))
	}

	c.partition(old)
	// Cut off from the majority, the old leader steps down once its lease
	// runs out, and the majority elects a new one.
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		return !old.IsLeader(), errors.New("the partitioned leader still leads")
	})
	majority := c.others(old)
	leader := c.waitLeader(majority...)
	c.waitForJobs(leader, acked...)

	// The old leader refuses writes and consistent reads.
	refused := mock.Job()
	var resp structs.JobRegisterResponse
	wantNoLeader(t, "write on the partitioned ex-leader", old.RPC("Job.Register", &structs.JobRegisterRequest{Job: refused}, &resp))
	var read structs.SingleJobResponse
	wantNoLeader(t, "consistent read on the partitioned ex-leader", old.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: acked[0].ID}, &read))

	// The majority goes on.
	var during []*structs.Job
	for _, s := range majority {
		during = append(during, c.register(s))
	}
	if got, _ := old.State().JobByID(nil, "", during[0].ID); got != nil {
		t.Fatal("the partitioned server applied a write it was cut off from")
	}

	c.heal()
	c.waitForJobs(old, during...)
	c.waitSameState(c.servers...)
	for _, s := range c.servers {
		if got, _ := s.State().JobByID(nil, "", refused.ID); got != nil {
			t.Fatalf("%s has the job the partitioned server refused", c.name(s))
		}
	}
}

func TestCluster_PartitionedFollowerRefusesAndCatchesUp(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.servers...)
	cutOff := c.others(leader)[0]
	// A node with allocations, so the catch-up carries plans too.
	node := mock.Node()
	var nresp structs.NodeUpdateResponse
	if err := leader.RPC("Node.Register", &structs.NodeRegisterRequest{Node: node}, &nresp); err != nil {
		t.Fatal(err)
	}
	// A job with nothing to place: the node is empty when the partition
	// starts.
	before := mock.Job()
	before.TaskGroups[0].Count = 0
	var bresp structs.JobRegisterResponse
	if err := cutOff.RPC("Job.Register", &structs.JobRegisterRequest{Job: before}, &bresp); err != nil {
		t.Fatal(err)
	}
	c.waitForJobs(cutOff, before)

	c.partition(cutOff)
	refused := mock.Job()
	var resp structs.JobRegisterResponse
	wantNoLeader(t, "write on the minority", cutOff.RPC("Job.Register", &structs.JobRegisterRequest{Job: refused}, &resp))
	var read structs.SingleJobResponse
	wantNoLeader(t, "consistent read on the minority", cutOff.RPC("Job.GetJob", &structs.JobSpecificRequest{JobID: before.ID}, &read))
	// A stale read is still served from what the server has.
	stale := &structs.JobSpecificRequest{JobID: before.ID, QueryOptions: structs.QueryOptions{AllowStale: true}}
	if err := cutOff.RPC("Job.GetJob", stale, &read); err != nil || read.Job == nil {
		t.Fatalf("stale read on the minority: %v %+v", err, read)
	}

	// The majority goes on: jobs, and their placements on the node.
	var during []*structs.Job
	for _, s := range c.others(cutOff) {
		during = append(during, c.register(s))
	}
	c.waitScheduled(c.waitLeader(c.others(cutOff)...), during...)
	if allocs, _ := cutOff.State().AllocsByNode(nil, node.ID); len(allocs) != 0 {
		t.Fatalf("the partitioned server applied %d placements it was cut off from", len(allocs))
	}

	c.heal()
	c.waitForJobs(cutOff, during...)
	c.waitSameState(c.servers...)
	allocs, err := cutOff.State().AllocsByNode(nil, node.ID)
	if err != nil || len(allocs) == 0 {
		t.Fatalf("the healed server has none of the placements made while it was cut off (%v)", err)
	}
	for _, s := range c.servers {
		if got, _ := s.State().JobByID(nil, "", refused.ID); got != nil {
			t.Fatalf("%s has the job the minority refused", c.name(s))
		}
	}
}
