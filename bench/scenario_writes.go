package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/api"
)

var writesScenario = &scenario{
	name: "writes",
	help: `Write throughput through Raft (boltdb, fsync). Three server processes;
32 concurrent writers (quick: 8) register new jobs for 15 s (quick: 5 s),
writer i sending to server i mod 3, so two thirds of the writes are
forwarded by a follower to the leader. The jobs have count 0: each write
is one JobRegister Raft entry (job + evaluation) and the scheduler has
nothing to place.
  writes_per_second   registrations acknowledged (HTTP 200) per second
                      of the measured window.
  write_p50/p99       latency of an acknowledged registration as the
                      writer saw it (HTTP round trip).
  write_errors        registrations that failed (should be 0).
  raft_apply_p50/p99  leader's drover_raft_apply_seconds at the end.`,
	run: runWrites,
}

func runWrites(ctx context.Context, r *runner, res *Result, dir string) error {
	var (
		writers  = pick(r, 32, 8)
		duration = pick(r, 15*time.Second, 5*time.Second)
	)
	res.Parameters = map[string]interface{}{
		"servers": 3, "writers": writers, "duration_seconds": duration.Seconds(), "job_count": 0,
		"routing": "writer i -> server i mod 3 (followers forward to the leader)",
	}
	c, err := r.startCluster(ctx, dir, 3)
	if err != nil {
		return err
	}
	defer c.stop()
	leader, err := c.waitLeader(ctx, nil, 30*time.Second)
	if err != nil {
		return err
	}
	before, err := scrape(ctx, leader)
	if err != nil {
		return err
	}
	clients := make([]*api.Client, len(c.servers))
	for i, s := range c.servers {
		clients[i] = newAPIClient(s.httpAddr(), 30*time.Second)
	}
	stopProfile := r.profileCPU(ctx, leader, "writes")
	defer stopProfile()

	r.progress("%d writers registering jobs for %s", writers, duration)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errCount  atomic.Int64
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(duration)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cl := clients[w%len(clients)]
			var mine []time.Duration
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				job := serviceJob(fmt.Sprintf("w%02d-%07d", w, n), 0, 100, 128)
				t0 := time.Now()
				_, _, err := cl.Jobs().Register(job, nil)
				if err != nil {
					errCount.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}(w)
	}
	// Progress while the writers run.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			r.progress("%s of %s elapsed, %d errors so far", time.Since(start).Round(time.Second), duration, errCount.Load())
		}
	}
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.checkAlive(); err != nil {
		return err
	}
	after, err := scrape(ctx, leader)
	if err != nil {
		return err
	}
	if l, err := c.agreedLeader(nil); err != nil || l != leader {
		res.note("leadership changed during the run (leader now %v); Raft figures cover only %s", l, leader.name)
	}
	rate := float64(len(latencies)) / elapsed.Seconds()
	r.progress("%d writes acknowledged in %s: %.0f/s", len(latencies), elapsed.Round(time.Millisecond), rate)
	if firstErr != nil {
		res.note("first write error: %v", firstErr)
	}
	res.add("writes_per_second", "job registrations acknowledged per second", "writes/s", rate,
		fmt.Sprintf("registrations answered 200 by any of the three servers, divided by the %s window (%d writers)", duration, writers))
	res.add("writes_acked", "job registrations acknowledged", "writes", float64(len(latencies)), "registrations answered 200")
	res.add("write_p50", "write latency p50 (client side)", "ms", ms(percentile(latencies, 0.5)),
		"median HTTP round trip of an acknowledged PUT /v1/jobs")
	res.add("write_p99", "write latency p99 (client side)", "ms", ms(percentile(latencies, 0.99)),
		"99th percentile of the same")
	res.add("write_errors", "job registrations that failed", "writes", float64(errCount.Load()),
		"registrations answered with an error or not answered")
	res.add("raft_apply_p50", "Raft apply latency p50 on the leader", "ms", 1000*after.quantile(mRaftApply, 0.5),
		"median of the leader's drover_raft_apply_seconds at the end: commit (fsync on a quorum) and apply of one entry")
	res.add("raft_apply_p99", "Raft apply latency p99 on the leader", "ms", 1000*after.quantile(mRaftApply, 0.99),
		"99th percentile of the same")
	res.add("leader_cpu", "leader CPU during the run", "cores", delta(before, after, mProcessCPU)/after.at.Sub(before.at).Seconds(),
		"increase of the leader's process_cpu_seconds_total divided by wall time")
	return nil
}
