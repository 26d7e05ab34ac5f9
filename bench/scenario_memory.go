package bench

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/internal/poll"
)

var memoryScenario = &scenario{
	name: "memory",
	help: `Server memory at scale. Three server processes, 5,000 simulated nodes
(quick: 500), then 100 service jobs of count 1,000 (quick: 5) with small
resources (cpu 20 MHz, memory 16 MB), placed until the leader's
drover_allocs_placed_total shows all 100,000 (quick: 5,000), and until
the clients' "running" updates are in (drover_alloc_client_updates_total,
summed over the servers).
  <server>_rss         each server's resident memory at the end
                       (process_resident_memory_bytes). Goal < 1 GiB.
  <server>_rss_max     the highest sampled during the run (every 2 s).
  <server>_heap_inuse  Go heap in use at the end (go_memstats_heap_inuse).
  <server>_heap_goal_max  the highest Go heap goal sampled, and when.
  <server>_goroutines, _stack_inuse, _heap_unreturned
                       goroutines, their stacks, and idle heap not yet
                       returned to the OS, at the end: the rest of RSS.
  placements_per_second  allocations / time to place them all (as in
                       placement, but with large jobs).
  leader_elections     times a server became leader while placing.`,
	run: runMemory,
}

func runMemory(ctx context.Context, r *runner, res *Result, dir string) error {
	var (
		nodes   = pick(r, 5000, 500)
		numJobs = pick(r, 100, 5)
		count   = 1000
		writers = 8
		total   = numJobs * count
	)
	res.Parameters = map[string]interface{}{
		"servers": 3, "simulated_nodes": nodes, "jobs": numJobs, "count_per_job": count, "allocations": total,
		"cpu_mhz": 20, "memory_mb": 16, "writers": writers, "rss_sample_interval_seconds": 2,
	}
	c, err := r.startCluster(ctx, dir, 3)
	if err != nil {
		return err
	}
	defer c.stop()
	sim, err := r.startSim(ctx, dir, c, nodes, "mem")
	if err != nil {
		return err
	}
	defer sim.stop(5 * time.Second)

	// Sample every server's RSS while the allocations go in.
	var (
		mu     sync.Mutex
		rssMax = make([]float64, len(c.servers))
		// goalMax is each server's highest Go heap goal sampled (twice
		// the live heap after a collection, at GOGC=100) and goalAt
		// when, in seconds since sampling began: the heap's peak, which
		// RSS keeps.
		goalMax = make([]float64, len(c.servers))
		goalAt  = make([]float64, len(c.servers))
		began   = time.Now()
	)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		for sleepCtx(sampleCtx, 2*time.Second) == nil {
			for i, s := range c.servers {
				if m, err := scrape(sampleCtx, s); err == nil {
					mu.Lock()
					rssMax[i] = math.Max(rssMax[i], m.value(mProcessRSS))
					if g := m.value(mGoNextGC); g > goalMax[i] {
						goalMax[i], goalAt[i] = g, time.Since(began).Seconds()
					}
					mu.Unlock()
				}
			}
		}
	}()
	defer func() { stopSampling(); sampling.Wait() }()

	jobs := make([]*api.Job, numJobs)
	for i := range jobs {
		jobs[i] = serviceJob(fmt.Sprintf("mem-%03d", i), count, 20, 16)
	}
	m, err := r.placeAll(ctx, c, jobs, writers, "memory")
	if err != nil {
		return err
	}
	r.progress("waiting for the clients to report %d allocations running", total)
	var updates float64
	if err := poll.Until(ctx, 3*time.Minute, time.Second, func() (bool, error) {
		// Summed over every server: the reports a deposed leader took
		// are on its counter, not its successor's.
		var err error
		if updates, err = increaseOnAll(ctx, c, m.serversBefore, mAllocUpdates); err != nil {
			return false, err
		}
		return updates >= float64(total), fmt.Errorf("%.0f of %d client updates", updates, total)
	}); err != nil {
		res.note("not every allocation was reported running: %v", err)
	}
	// Let the last Raft entries apply on the followers before measuring.
	if err := sleepCtx(ctx, 5*time.Second); err != nil {
		return err
	}
	stopSampling()
	sampling.Wait()

	res.add("placements_per_second", "placements committed per second (large jobs)", "placements/s", float64(total)/m.elapsed.Seconds(),
		fmt.Sprintf("%d allocations divided by the time from the first job registration to the leader's drover_allocs_placed_total reaching it", total))
	m.reportElections(res)
	res.add("client_updates", "allocation updates from clients received", "updates", updates,
		"increase of drover_alloc_client_updates_total summed over the servers (each allocation reported running at least once; a report retried after a leadership change counts twice)")
	for i, s := range c.servers {
		role := "follower"
		if s == m.leader {
			role = "leader"
		}
		after, err := scrape(ctx, s)
		if err != nil {
			return err
		}
		r.profileHeap(ctx, s, "memory")
		mu.Lock()
		peak := math.Max(rssMax[i], after.value(mProcessRSS))
		mu.Unlock()
		res.add(s.id+"_rss", fmt.Sprintf("%s (%s) RSS with %d nodes, %d allocations", s.id, role, nodes, total), "bytes", after.value(mProcessRSS),
			"process_resident_memory_bytes at the end").goal("<", 1<<30)
		res.add(s.id+"_rss_max", fmt.Sprintf("%s (%s) RSS, highest sample during the run", s.id, role), "bytes", peak,
			"highest process_resident_memory_bytes sampled every 2 s")
		res.add(s.id+"_heap_goal_max", fmt.Sprintf("%s (%s) highest Go heap goal sampled", s.id, role), "bytes", goalMax[i],
			fmt.Sprintf("highest go_memstats_next_gc_bytes sampled every 2 s (twice the live heap after a collection), %.0f s after the servers started taking jobs", goalAt[i]))
		res.add(s.id+"_heap_inuse", fmt.Sprintf("%s (%s) Go heap in use at the end", s.id, role), "bytes", after.value(mGoHeapInuse),
			"go_memstats_heap_inuse_bytes at the end")
		// Where the rest of the RSS is: goroutine stacks (one or two
		// per blocking query) and heap the runtime keeps but has not
		// returned to the kernel.
		res.add(s.id+"_goroutines", fmt.Sprintf("%s (%s) goroutines at the end", s.id, role), "goroutines", after.value(mGoGoroutines),
			"go_goroutines at the end")
		res.add(s.id+"_stack_inuse", fmt.Sprintf("%s (%s) goroutine stacks at the end", s.id, role), "bytes", after.value(mGoStackInuse),
			"go_memstats_stack_inuse_bytes at the end")
		res.add(s.id+"_heap_unreturned", fmt.Sprintf("%s (%s) idle heap not returned to the OS at the end", s.id, role), "bytes", after.value(mGoHeapIdle)-after.value(mGoHeapReleased),
			"go_memstats_heap_idle_bytes minus go_memstats_heap_released_bytes at the end")
	}
	return nil
}
