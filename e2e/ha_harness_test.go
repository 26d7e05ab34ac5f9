package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// haCluster is a multi-process cluster: servers (no containerd) and
// client agents (each with its own containerd namespace), every agent on
// its own address, found by gossip.
type haCluster struct {
	t       testing.TB
	servers []*agent
	clients []*agent
	// ctrd is the containerd the clients share, when there are clients.
	ctrd *cluster
	// hosts are the servers' addresses, the -join list of every agent.
	hosts []string
	// secure, when set, is the mTLS and gossip material every agent of
	// the cluster runs with.
	secure *secureMaterial
	// token, when set, is the ACL token the harness's own API calls use
	// on agents added from then on (a cluster with ACLs on).
	token string
}

// startServers starts n servers with -bootstrap-expect n, each joining
// all the others, and waits for a leader. hosts may name the addresses
// (and netns the namespaces) to use; nil means fresh loopback addresses.
func startServers(t testing.TB, n int, hosts, netns []string, extra ...string) *haCluster {
	t.Helper()
	return startServersSecure(t, n, hosts, netns, nil, extra...)
}

// startServersSecure is startServers with every agent running mTLS and
// gossip encryption from m (nil: neither).
func startServersSecure(t testing.TB, n int, hosts, netns []string, m *secureMaterial, extra ...string) *haCluster {
	t.Helper()
	h := &haCluster{t: t, secure: m}
	if hosts == nil && m != nil {
		hosts = m.serverHosts
	}
	if hosts == nil {
		for i := 0; i < n; i++ {
			hosts = append(hosts, newHost())
		}
	}
	h.hosts = hosts
	for i := 0; i < n; i++ {
		args := []string{"agent", "-server", "-bootstrap-expect", fmt.Sprint(n), "-bind", hosts[i],
			"-node-name", fmt.Sprintf("s%d", i+1), "-log-level", "debug"}
		for _, j := range hosts {
			args = append(args, "-join", j)
		}
		args = append(args, extra...)
		ns := ""
		if netns != nil {
			ns = netns[i]
		}
		a := newAgent(t, fmt.Sprintf("s%d", i+1), hosts[i], ns, args)
		if m != nil {
			m.apply(a, "server")
		}
		a.start()
		h.servers = append(h.servers, a)
	}
	h.waitLeader(nil)
	return h
}

// addClient starts a client-only agent that finds the servers by gossip.
func (h *haCluster) addClient(name string, extra ...string) *agent {
	h.t.Helper()
	if h.ctrd == nil {
		h.ctrd = newCluster(h.t)
	}
	ns := h.ctrd.ctrd.Namespace + "-" + name
	testutil.ImportBusybox(h.t, h.ctrd.ctrd.Address, ns, testutil.BusyboxRef)
	host := newHost()
	if h.secure != nil {
		host = h.secure.clientHost(len(h.clients))
	}
	args := []string{"agent", "-client", "-bind", host, "-node-name", name,
		"-containerd-address", h.ctrd.ctrd.Address, "-containerd-namespace", ns, "-log-level", "debug"}
	for _, j := range h.hosts {
		args = append(args, "-join", j)
	}
	a := newAgent(h.t, name, host, "", append(args, extra...))
	if h.secure != nil {
		h.secure.apply(a, "client")
	}
	if h.token != "" {
		a.useToken(h.token)
	}
	a.start()
	if h.secure != nil {
		h.waitSecureClientReady(a)
	} else {
		a.waitReady()
	}
	h.clients = append(h.clients, a)
	return a
}

// clientNamespace returns the containerd namespace of a client.
func (h *haCluster) clientNamespace(a *agent) string {
	return h.ctrd.ctrd.Namespace + "-" + a.name
}

// alive returns the running servers.
func (h *haCluster) alive() []*agent {
	var out []*agent
	for _, s := range h.servers {
		if s.alive() {
			out = append(out, s)
		}
	}
	return out
}

// leaderOf asks one server who leads.
func leaderOf(a *agent) string {
	l, err := a.api.Status().Leader()
	if err != nil {
		return ""
	}
	return l
}

// waitLeader waits until every running server names the same leader,
// different from not (when set), and returns the leading agent.
func (h *haCluster) waitLeader(not *agent) *agent {
	h.t.Helper()
	var leader *agent
	testutil.WaitFor(h.t, 30*time.Second, func() (bool, error) {
		var seen string
		for _, s := range h.alive() {
			l := leaderOf(s)
			if l == "" || (seen != "" && l != seen) {
				return false, fmt.Errorf("%s sees leader %q (others: %q)", s.name, l, seen)
			}
			seen = l
		}
		for _, s := range h.servers {
			if strings.HasPrefix(seen, s.host+":") && s.alive() && s != not {
				leader = s
				return true, nil
			}
		}
		return false, fmt.Errorf("leader %q is not a running server", seen)
	})
	return leader
}

// hashes returns each running server's state fingerprint.
func (h *haCluster) hashes() ([]*api.StateHash, error) {
	var out []*api.StateHash
	for _, s := range h.alive() {
		sh, err := s.api.Operator().StateHash()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		out = append(out, sh)
	}
	return out, nil
}

// waitConverged waits until every running server has applied the same
// index with identical state, table by table, and returns the hashes.
func (h *haCluster) waitConverged(timeout time.Duration) []*api.StateHash {
	h.t.Helper()
	var hs []*api.StateHash
	testutil.WaitFor(h.t, timeout, func() (bool, error) {
		var err error
		if hs, err = h.hashes(); err != nil {
			return false, err
		}
		for _, x := range hs[1:] {
			if x.Index != hs[0].Index {
				return false, fmt.Errorf("%s at index %d, %s at %d", hs[0].Server, hs[0].Index, x.Server, x.Index)
			}
			for table, sum := range hs[0].Tables {
				if x.Tables[table] != sum {
					return false, fmt.Errorf("table %s differs between %s and %s at index %d", table, hs[0].Server, x.Server, x.Index)
				}
			}
		}
		return true, nil
	})
	return hs
}

// countJob is a job of count tasks that sleep forever, small enough to
// pack many on a client.
func countJob(id, image string, count, memoryMB int) string {
	return fmt.Sprintf(`job %q {
  group "g" {
    count = %d
    restart {
      attempts = 1
      delay    = "1s"
    }
    task "t" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
      }
      resources {
        cpu    = 50
        memory = %d
      }
      kill_timeout = "2s"
    }
  }
}
`, id, count, image, memoryMB)
}
