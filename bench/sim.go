package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/internal/poll"
)

// simRegistered matches the simulator's registration progress line,
// "    2000/5000 registered (40%) in 3.2s".
var simRegistered = regexp.MustCompile(`^\s*(\d+)/(\d+) registered`)

// simProc is a `drover sim nodes` process.
type simProc struct {
	*proc
	count int

	// mu guards registered.
	mu         sync.Mutex
	registered int
}

// startSim runs count simulated nodes against the cluster's servers and
// waits until the leader lists them all ready. Registration progress is
// relayed as progress lines.
func (r *runner) startSim(ctx context.Context, dir string, c *cluster, count int, prefix string) (*simProc, error) {
	s := &simProc{count: count}
	s.proc = &proc{
		name: "simulator " + prefix,
		bin:  r.cfg.Binary,
		args: []string{"sim", "nodes", "-count", strconv.Itoa(count), "-servers", c.rpcAddrs(),
			"-name-prefix", prefix, "-stats-interval", "30s"},
		logPath: filepath.Join(dir, "sim-"+prefix+".log"),
		onLine: func(line string) {
			if m := simRegistered.FindStringSubmatch(line); m != nil {
				done, _ := strconv.Atoi(m[1])
				s.mu.Lock()
				s.registered = done
				s.mu.Unlock()
				r.progress("registering %d simulated nodes: %s/%s", count, m[1], m[2])
				return
			}
			if t := strings.TrimSpace(line); strings.Contains(t, "nodes registered,") {
				r.progress("simulator: %s", t)
			}
		},
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	r.progress("started %d simulated nodes (pid %d) against %s", count, s.pid(), c.rpcAddrs())
	timeout := 2*time.Minute + time.Duration(count)*20*time.Millisecond
	err := poll.Until(ctx, timeout, time.Second, func() (bool, error) {
		if !s.alive() {
			return false, s.exitError()
		}
		s.mu.Lock()
		n := s.registered
		s.mu.Unlock()
		return n >= count, fmt.Errorf("%d of %d nodes registered", n, count)
	})
	if err == nil {
		err = c.waitReadyNodes(ctx, count, time.Minute)
	}
	if err != nil {
		s.stop(5 * time.Second)
		return nil, fmt.Errorf("simulated nodes: %w", err)
	}
	return s, nil
}
