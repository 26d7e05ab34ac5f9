package bench

import (
	"context"
	"fmt"
	"math"
	"time"
)

var heartbeatsScenario = &scenario{
	name: "heartbeats",
	help: `Heartbeat load. Three server processes and 10,000 simulated nodes
(quick: 1,000) that heartbeat within the TTLs the leader gives them
(stretched to at most 50 heartbeats/s in big clusters), watched for 5
minutes after all registered (-heartbeat-duration; quick: 30 s). No node
ever stops, so every "down" is false.
  false_downs            leader's drover_nodes_down_total at the end:
                         nodes marked down by heartbeat expiry since the
                         cluster started. Must be 0.
  nodes_not_ready        nodes not "ready" at the end. Must be 0.
  heartbeats_per_second  leader's drover_heartbeats_total increase over
                         the watch window, per second.
  <server>_cpu           each server's CPU over the window, in cores
                         (process_cpu_seconds_total increase / wall time).
  <server>_rss / _rss_max  each server's resident memory at the end and
                         the highest sampled (every 10 s).
  simulator_cpu          the simulator's own CPU (from /proc), which
                         shares the machine with the servers.`,
	run: runHeartbeats,
}

func runHeartbeats(ctx context.Context, r *runner, res *Result, dir string) error {
	nodes := pick(r, 10000, 1000)
	duration := r.cfg.HeartbeatDuration
	if duration <= 0 {
		duration = pick(r, 5*time.Minute, 30*time.Second)
	}
	sample := pick(r, 10*time.Second, 5*time.Second)
	res.Parameters = map[string]interface{}{
		"servers": 3, "simulated_nodes": nodes, "watch_seconds": duration.Seconds(), "sample_interval_seconds": sample.Seconds(),
	}
	c, err := r.startCluster(ctx, dir, 3)
	if err != nil {
		return err
	}
	defer c.stop()
	sim, err := r.startSim(ctx, dir, c, nodes, "hb")
	if err != nil {
		return err
	}
	defer sim.stop(5 * time.Second)
	leader, err := c.waitLeader(ctx, nil, 30*time.Second)
	if err != nil {
		return err
	}

	before := make([]*metrics, len(c.servers))
	rssMax := make([]float64, len(c.servers))
	for i, s := range c.servers {
		if before[i], err = scrape(ctx, s); err != nil {
			return err
		}
	}
	leaderIdx := indexOf(c, leader)
	simCPU0, _ := procStatCPU(sim.pid())
	start := time.Now()
	r.progress("watching %d nodes for %s", nodes, duration)
	stopProfile := r.profileCPU(ctx, leader, "heartbeats")
	defer stopProfile()
	var last []*metrics
	for {
		wait := time.Until(start.Add(duration))
		if wait <= 0 {
			break
		}
		if err := sleepCtx(ctx, min(wait, sample)); err != nil {
			return err
		}
		if err := c.checkAlive(); err != nil {
			return err
		}
		if !sim.alive() {
			return sim.exitError()
		}
		last = make([]*metrics, len(c.servers))
		for i, s := range c.servers {
			if last[i], err = scrape(ctx, s); err != nil {
				return err
			}
			rssMax[i] = math.Max(rssMax[i], last[i].value(mProcessRSS))
		}
		lm := last[leaderIdx]
		r.progress("%s/%s: %.0f heartbeats on the leader, %.0f nodes down, leader CPU %.2f cores, RSS %s",
			time.Since(start).Round(time.Second), duration, delta(before[leaderIdx], lm, mHeartbeats), lm.value(mNodesDown),
			delta(before[leaderIdx], lm, mProcessCPU)/lm.at.Sub(before[leaderIdx].at).Seconds(), formatBytes(lm.value(mProcessRSS)))
	}
	simCPU1, _ := procStatCPU(sim.pid())
	wall := time.Since(start)
	if last == nil {
		return fmt.Errorf("the watch window %s is shorter than one sample", duration)
	}
	if l, err := c.agreedLeader(nil); err != nil || l != leader {
		res.note("leadership changed during the window (now %v); the leader's counters cover only %s", l, leader.name)
	}
	notReady, err := countNotReady(ctx, leader, nodes)
	if err != nil {
		return err
	}

	lb, la := before[leaderIdx], last[leaderIdx]
	res.add("false_downs", "nodes falsely marked down (heartbeat expiry)", "nodes", la.value(mNodesDown),
		"leader's drover_nodes_down_total at the end, since the cluster started (no simulated node ever stops)").invariant("==", 0)
	res.add("nodes_not_ready", "nodes not ready at the end", "nodes", float64(notReady),
		"simulated nodes the leader does not list as ready at the end").invariant("==", 0)
	res.add("heartbeats_per_second", "heartbeats received by the leader per second", "heartbeats/s",
		delta(lb, la, mHeartbeats)/la.at.Sub(lb.at).Seconds(), "increase of the leader's drover_heartbeats_total over the window, per second")
	for i, s := range c.servers {
		role := "follower"
		if i == leaderIdx {
			role = "leader"
		}
		b, a := before[i], last[i]
		res.add(s.id+"_cpu", fmt.Sprintf("%s (%s) CPU", s.id, role), "cores", delta(b, a, mProcessCPU)/a.at.Sub(b.at).Seconds(),
			"increase of process_cpu_seconds_total over the window divided by wall time")
		res.add(s.id+"_rss", fmt.Sprintf("%s (%s) RSS at the end", s.id, role), "bytes", a.value(mProcessRSS), "process_resident_memory_bytes at the end")
		res.add(s.id+"_rss_max", fmt.Sprintf("%s (%s) RSS, highest sample", s.id, role), "bytes", rssMax[i],
			fmt.Sprintf("highest process_resident_memory_bytes sampled every %s", sample))
	}
	res.add("simulator_cpu", "simulator process CPU", "cores", (simCPU1-simCPU0)/wall.Seconds(),
		"CPU of the drover sim nodes process over the window (utime+stime from /proc), which competes with the servers for the machine")
	return nil
}

// indexOf returns the position of s among the cluster's servers.
func indexOf(c *cluster, s *agentProc) int {
	for i, x := range c.servers {
		if x == s {
			return i
		}
	}
	return -1
}

// countNotReady returns how many of want nodes the leader does not list
// as ready.
func countNotReady(ctx context.Context, leader *agentProc, want int) (int, error) {
	nodes, _, err := newAPIClient(leader.httpAddr(), time.Minute).Nodes().List(nil)
	if err != nil {
		return 0, err
	}
	ready := 0
	for _, n := range nodes {
		if n.Status == "ready" {
			ready++
		}
	}
	return want - ready, nil
}
