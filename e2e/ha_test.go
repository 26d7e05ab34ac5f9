package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// raftPeers returns the Raft configuration as "address:state" strings,
// through the given agent.
func raftPeers(t *testing.T, via *agent) map[string]string {
	t.Helper()
	cfg, err := via.api.Operator().RaftGetConfiguration(nil)
	if err != nil {
		t.Fatalf("raft configuration: %v", err)
	}
	out := map[string]string{}
	for _, s := range cfg.Servers {
		state := "follower"
		if s.Leader {
			state = "leader"
		}
		if !s.Voter {
			state += ",nonvoter"
		}
		out[s.Address] = state
	}
	return out
}

func waitPeers(t *testing.T, via *agent, n int) map[string]string {
	t.Helper()
	var peers map[string]string
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		cfg, err := via.api.Operator().RaftGetConfiguration(nil)
		if err != nil {
			return false, err
		}
		peers = map[string]string{}
		for _, s := range cfg.Servers {
			peers[s.Address] = fmt.Sprint(s.Leader)
		}
		return len(cfg.Servers) == n, fmt.Errorf("%d peers: %v", len(cfg.Servers), peers)
	})
	return peers
}

// TestHA_ClusterFormsFromGossip: three servers and two clients come up
// with only -bootstrap-expect 3 and -join, elect one leader, and the CLI
// shows them. Then a fourth server is added as a voter by the leader, a
// server that leaves gracefully is removed, and a dead one is removed
// with remove-peer.
func TestHA_ClusterFormsFromGossip(t *testing.T) {
	start := time.Now()
	h := startServers(t, 3, nil, nil)
	t.Logf("%s: servers elected a leader", time.Since(start))
	c1 := h.addClient("c1")
	h.addClient("c2")
	t.Logf("%s: clients ready", time.Since(start))
	via := h.servers[1]

	members := via.cli("server", "members")
	if members.code != 0 {
		t.Fatalf("server members: %s", members)
	}
	leaders := 0
	for _, name := range []string{"s1", "s2", "s3"} {
		line := lineWith(members.stdout, name+" ")
		if !strings.Contains(line, "alive") {
			t.Fatalf("server %s not alive in:\n%s", name, members.stdout)
		}
		if strings.Contains(line, " true ") {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders in `server members`:\n%s", leaders, members.stdout)
	}
	peers := c1.cli("operator", "raft", "list-peers")
	if peers.code != 0 || strings.Count(peers.stdout, "leader") != 1 || strings.Count(peers.stdout, "follower") != 2 {
		t.Fatalf("list-peers: %s", peers)
	}
	for _, s := range h.servers {
		if !strings.Contains(peers.stdout, s.host+":4647") {
			t.Fatalf("list-peers lacks %s:\n%s", s.host, peers.stdout)
		}
	}
	nodes := via.cli("node", "status")
	if nodes.code != 0 || strings.Count(nodes.stdout, "ready") != 2 || !strings.Contains(nodes.stdout, "c1") || !strings.Contains(nodes.stdout, "c2") {
		t.Fatalf("node status: %s", nodes)
	}

	// A fourth server joining the running cluster becomes a voter.
	s4 := newAgent(t, "s4", newHost(), "", append([]string{"agent", "-server", "-bootstrap-expect", "3",
		"-node-name", "s4", "-log-level", "debug"}, joinArgs(h.hosts)...))
	s4.args = append(s4.args, "-bind", s4.host)
	s4.start()
	waitPeers(t, via, 4)
	t.Logf("%s: s4 added", time.Since(start))

	// It leaves gracefully: the leader removes it.
	if res := s4.cli("server", "leave"); res.code != 0 {
		t.Fatalf("server leave: %s", res)
	}
	waitPeers(t, via, 3)
	t.Logf("%s: s4 removed after leaving", time.Since(start))
	_, exited := s4.proc()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("a server that left did not shut down")
	}

	// A fifth server joins and dies; an operator removes it.
	s5 := newAgent(t, "s5", newHost(), "", append([]string{"agent", "-server", "-bootstrap-expect", "3",
		"-node-name", "s5", "-log-level", "debug"}, joinArgs(h.hosts)...))
	s5.args = append(s5.args, "-bind", s5.host)
	s5.start()
	waitPeers(t, via, 4)
	t.Logf("%s: s5 added", time.Since(start))
	s5.kill()
	if res := via.cli("operator", "raft", "remove-peer", "-peer-address", s5.host+":4647"); res.code != 0 {
		t.Fatalf("remove-peer: %s", res)
	}
	final := waitPeers(t, via, 3)
	t.Logf("%s: s5 removed", time.Since(start))
	if _, still := final[s5.host+":4647"]; still {
		t.Fatalf("dead server still a peer: %v", final)
	}
	// The cluster still takes writes.
	if res := via.cli("job", "run", writeFile(t, "j.hcl", countJob("after", h.ctrd.image, 1, 16))); res.code != 0 {
		t.Fatalf("job run after membership changes: %s", res)
	}
}

func joinArgs(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, "-join", h)
	}
	return out
}

func lineWith(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
