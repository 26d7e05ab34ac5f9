package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/internal/poll"
)

// agentProc is a drover agent process (server or dev agent) on its own
// address, restartable on its data dir.
type agentProc struct {
	*proc
	// id is the agent's node name (s1, s2, dev).
	id      string
	host    string
	dataDir string
	api     *api.Client
}

// httpAddr is the agent's HTTP API.
func (a *agentProc) httpAddr() string { return fmt.Sprintf("http://%s:%d", a.host, httpPort) }

// rpcAddr is the agent's RPC address, as /v1/status/leader names it.
func (a *agentProc) rpcAddr() string { return fmt.Sprintf("%s:%d", a.host, rpcPort) }

// restart starts the agent again on the same data dir after a kill.
func (a *agentProc) restart() error {
	if a.alive() {
		return fmt.Errorf("%s still runs", a.name)
	}
	return a.start()
}

// newAPIClient returns an API client with timeouts and enough idle
// connections for many concurrent writers.
func newAPIClient(addr string, timeout time.Duration) *api.Client {
	c, err := api.NewClient(&api.Config{Address: addr, HTTPClient: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
	}})
	if err != nil {
		panic(err) // the address is built here and always valid
	}
	return c
}

// cluster is a set of server processes that bootstrapped together.
type cluster struct {
	r       *runner
	servers []*agentProc
}

// startCluster starts n servers with -bootstrap-expect n, each joining
// all the others, and waits until they agree on a leader.
func (r *runner) startCluster(ctx context.Context, dir string, n int) (*cluster, error) {
	return r.startClusterWith(ctx, dir, n, "")
}

// startClusterWith is startCluster with the scenario's own agent config
// file (when not ""), given before the -server-config file, which
// therefore overrides it.
func (r *runner) startClusterWith(ctx context.Context, dir string, n int, scenarioConfig string) (*cluster, error) {
	c := &cluster{r: r}
	var hostList []string
	for i := 0; i < n; i++ {
		h, err := newHost()
		if err != nil {
			return nil, err
		}
		hostList = append(hostList, h)
	}
	for i, h := range hostList {
		name := fmt.Sprintf("s%d", i+1)
		dataDir := filepath.Join(dir, name)
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, err
		}
		args := []string{"agent", "-server", "-bootstrap-expect", fmt.Sprint(n), "-bind", h,
			"-node-name", name, "-data-dir", dataDir, "-log-level", "info", "-enable-debug"}
		for _, j := range hostList {
			args = append(args, "-join", j)
		}
		if scenarioConfig != "" {
			args = append(args, "-config", scenarioConfig)
		}
		if r.cfg.ServerConfig != "" {
			args = append(args, "-config", r.cfg.ServerConfig)
		}
		s := &agentProc{
			proc:    &proc{name: "server " + name, bin: r.cfg.Binary, args: args, logPath: filepath.Join(dir, name+".log")},
			id:      name,
			host:    h,
			dataDir: dataDir,
		}
		s.api = newAPIClient(s.httpAddr(), 30*time.Second)
		if err := s.start(); err != nil {
			c.stop()
			return nil, err
		}
		c.servers = append(c.servers, s)
	}
	r.progress("started %d servers (%s); waiting for a leader", n, strings.Join(hostList, ", "))
	if _, err := c.waitLeader(ctx, nil, time.Minute); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// stop ends every server with SIGKILL: their state is thrown away, and a
// graceful shutdown is not what is measured (it can take seconds: closing
// the Raft boltdb unmaps its file).
func (c *cluster) stop() {
	for _, s := range c.servers {
		s.kill()
	}
}

// rpcAddrs returns the servers' RPC addresses, comma-separated, for
// `drover sim nodes -servers`.
func (c *cluster) rpcAddrs() string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.rpcAddr())
	}
	return strings.Join(out, ",")
}

// alive returns the running servers.
func (c *cluster) alive() []*agentProc {
	var out []*agentProc
	for _, s := range c.servers {
		if s.alive() {
			out = append(out, s)
		}
	}
	return out
}

// leaderOf asks one server whom it follows; "" when it does not know or
// does not answer.
func leaderOf(s *agentProc, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.httpAddr()+"/v1/status/leader", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	var buf [256]byte
	n, _ := resp.Body.Read(buf[:])
	return strings.Trim(strings.TrimSpace(string(buf[:n])), `"`)
}

// agreedLeader returns the server every running server names as leader
// (other than not), or nil and why not.
func (c *cluster) agreedLeader(not *agentProc) (*agentProc, error) {
	alive := c.alive()
	if len(alive) == 0 {
		return nil, fmt.Errorf("no server runs")
	}
	seen := ""
	for _, s := range alive {
		l := leaderOf(s, time.Second)
		if l == "" || (seen != "" && l != seen) {
			return nil, fmt.Errorf("%s sees leader %q (others: %q)", s.name, l, seen)
		}
		seen = l
	}
	for _, s := range alive {
		if s.rpcAddr() == seen && s != not {
			return s, nil
		}
	}
	return nil, fmt.Errorf("leader %q is not a running server", seen)
}

// waitLeader polls until the running servers agree on a leader other
// than not.
func (c *cluster) waitLeader(ctx context.Context, not *agentProc, timeout time.Duration) (*agentProc, error) {
	var leader *agentProc
	err := poll.Until(ctx, timeout, 10*time.Millisecond, func() (bool, error) {
		for _, s := range c.servers {
			if !s.alive() && s != not {
				return false, s.exitError()
			}
		}
		var err error
		leader, err = c.agreedLeader(not)
		return leader != nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("wait for a leader: %w", err)
	}
	return leader, nil
}

// checkAlive returns an error naming the first server that exited.
func (c *cluster) checkAlive() error {
	for _, s := range c.servers {
		if !s.alive() {
			return s.exitError()
		}
	}
	return nil
}

// waitReadyNodes waits until the leader lists want nodes, all ready,
// reporting progress.
func (c *cluster) waitReadyNodes(ctx context.Context, want int, timeout time.Duration) error {
	var lastPrint time.Time
	return poll.Until(ctx, timeout, 500*time.Millisecond, func() (bool, error) {
		if err := c.checkAlive(); err != nil {
			return false, err
		}
		l, err := c.agreedLeader(nil)
		if err != nil {
			return false, err
		}
		nodes, _, err := l.api.Nodes().List(nil)
		if err != nil {
			return false, err
		}
		ready := 0
		for _, n := range nodes {
			if n.Status == "ready" {
				ready++
			}
		}
		if ready < want && time.Since(lastPrint) > 5*time.Second {
			c.r.progress("nodes ready on the leader: %d/%d", ready, want)
			lastPrint = time.Now()
		}
		return ready >= want, fmt.Errorf("%d of %d nodes ready (%d listed)", ready, want, len(nodes))
	})
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
