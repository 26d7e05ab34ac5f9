package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/internal/poll"
)

var placementScenario = &scenario{
	name: "placement",
	help: `Scheduling throughput. Three server processes and 5,000 simulated nodes
(one "drover sim nodes" process; quick: 500); then 1,000 service jobs of
count 10 (quick: 100) with mixed sizes (cpu 100/250/500/1000 MHz, memory
128/256/512/1024 MB, no ports) registered by 8 concurrent writers spread
over the three servers.
  placements_per_second   allocations committed / time from the first
                          job submitted to the leader's
                          drover_allocs_placed_total reaching 10,000
                          (polled every 50 ms). Goal >= 5,000/s.
  time_to_place_all       that time, in seconds.
  plan_apply_p50/p99      leader's drover_plan_apply_seconds summary at
                          the end of the run: plan submitted by a worker
                          to its commit result (queue, re-check, Raft).
  plan_apply_mean         mean of the same over the run (sum/count).
  plan_queue_wait_p50     leader's drover_plan_queue_wait_seconds: the
                          part of plan apply spent waiting for the applier.
  eval_p50/p99            leader's drover_eval_seconds: evaluation ready
                          in the broker to acknowledged by a worker.
  register_p50/p99        client-side latency of the job registrations.
  plans, plan_rejected_nodes, evals_acked: leader counters over the run.
  evals_scheduled_<server>  evaluations that server's scheduler workers
                          scheduled over the run (its
                          drover_worker_evals_processed_total; followers
                          take them from the leader's broker over RPC).
  evals_scheduled_by_followers  their sum over the followers.
  leader_elections        times a server became leader during the run
                          (drover_leaderships_established_total summed
                          over the servers; 0 with one leader throughout).
  allocations_listed      non-terminal allocations listed through the API
                          at the end (must equal jobs x count).
  nodes_used              nodes holding allocations at the end: how
                          tightly the scheduler packed (fewer is tighter).
  nodes_over_capacity     nodes whose non-terminal allocations' cpu or
                          memory exceed NodeResources - ReservedResources
                          (must be 0).`,
	run: runPlacement,
}

// jobSizes are the placement scenario's mixed resource asks.
var (
	cpuSizes = []int{100, 250, 500, 1000}
	memSizes = []int{128, 256, 512, 1024}
)

func runPlacement(ctx context.Context, r *runner, res *Result, dir string) error {
	var (
		nodes   = pick(r, 5000, 500)
		numJobs = pick(r, 1000, 100)
		count   = 10
		writers = 8
		total   = numJobs * count
	)
	res.Parameters = map[string]interface{}{
		"servers": 3, "simulated_nodes": nodes, "jobs": numJobs, "count_per_job": count,
		"allocations": total, "writers": writers, "cpu_mhz_sizes": cpuSizes, "memory_mb_sizes": memSizes,
		"end_detection_poll_ms": 50,
	}
	c, err := r.startCluster(ctx, dir, 3)
	if err != nil {
		return err
	}
	defer c.stop()
	sim, err := r.startSim(ctx, dir, c, nodes, "sim")
	if err != nil {
		return err
	}
	defer sim.stop(5 * time.Second)

	rng := rand.New(rand.NewSource(1))
	jobs := make([]*api.Job, numJobs)
	for i := range jobs {
		jobs[i] = serviceJob(fmt.Sprintf("place-%04d", i), count, cpuSizes[rng.Intn(len(cpuSizes))], memSizes[rng.Intn(len(memSizes))])
	}
	m, err := r.placeAll(ctx, c, jobs, writers, "placement")
	if err != nil {
		return err
	}
	rate := float64(total) / m.elapsed.Seconds()
	res.add("placements_per_second", "placements committed per second (first submit -> last commit)", "placements/s", rate,
		fmt.Sprintf("%d allocations committed by the leader's plan applier (drover_allocs_placed_total) divided by the time from the first job registration sent to the counter reaching %d, polled every 50 ms", total, total)).goal(">=", 5000)
	res.add("time_to_place_all", "time from first submit to last allocation committed", "s", m.elapsed.Seconds(),
		"wall time from the first job registration sent to the leader's drover_allocs_placed_total reaching the total")
	m.report(res)
	m.reportWorkers(res)
	m.reportElections(res)

	over, listed, nodesUsed, err := checkCapacity(ctx, m.leader)
	if err != nil {
		return fmt.Errorf("capacity check: %w", err)
	}
	res.add("allocations_listed", "non-terminal allocations listed through the API", "allocations", float64(listed),
		"allocations listed by GET /v1/allocations on the leader at the end whose desired status is run and client status is not terminal").invariant("==", float64(total))
	res.add("nodes_used", "nodes holding allocations at the end (fewer: tighter packing)", "nodes", float64(nodesUsed),
		"distinct nodes of the non-terminal allocations listed at the end; the bin-packing scheduler fills nodes before using new ones")
	res.add("nodes_over_capacity", "nodes over capacity (cpu or memory)", "nodes", float64(len(over)),
		"nodes whose non-terminal allocations ask for more cpu or memory than NodeResources minus ReservedResources").invariant("==", 0)
	for i, o := range over {
		if i == 10 {
			res.note("... and %d more nodes over capacity", len(over)-10)
			break
		}
		res.note("over capacity: %s", o)
	}
	return nil
}

// placeMeasure is what placeAll observed.
type placeMeasure struct {
	leader        *agentProc
	elapsed       time.Duration
	before, after *metrics
	submit        *submitStats
	// servers, serversBefore and serversAfter are every server and its
	// scrapes around the run, for the per-server worker counters.
	servers                     []*agentProc
	serversBefore, serversAfter []*metrics
}

// placeAll registers jobs through every server with writers concurrent
// writers and waits until the leader's drover_allocs_placed_total has
// grown by the sum of their counts (or, after a leadership change, the
// sum of every server's). The clock starts at the first
// registration sent.
func (r *runner) placeAll(ctx context.Context, c *cluster, jobs []*api.Job, writers int, what string) (*placeMeasure, error) {
	total := 0
	for _, j := range jobs {
		for _, tg := range j.TaskGroups {
			total += tg.Count
		}
	}
	leader, err := c.waitLeader(ctx, nil, 30*time.Second)
	if err != nil {
		return nil, err
	}
	before, err := scrape(ctx, leader)
	if err != nil {
		return nil, err
	}
	serversBefore, err := scrapeAll(ctx, c.servers)
	if err != nil {
		return nil, err
	}
	var clients []*api.Client
	for _, s := range c.servers {
		clients = append(clients, newAPIClient(s.httpAddr(), time.Minute))
	}
	stopProfile := r.profileCPU(ctx, leader, what)
	defer stopProfile()

	r.progress("submitting %d jobs (%d allocations) with %d writers", len(jobs), total, writers)
	start := time.Now()
	var (
		wg        sync.WaitGroup
		submitted struct {
			sync.Mutex
			n int
		}
		st        *submitStats
		submitErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		st, submitErr = submitJobs(ctx, clients, writers, jobs, func(n int) {
			submitted.Lock()
			submitted.n = n
			submitted.Unlock()
		})
	}()
	submitDone := make(chan struct{})
	go func() { wg.Wait(); close(submitDone) }()

	var (
		placed       float64
		moved        bool
		lastPrint    = time.Now()
		lastCheck    = time.Now()
		lastProgress = time.Now()
		lastPlaced   float64
		counted      bool
		placeWindow  = 5*time.Minute + time.Duration(total)*5*time.Millisecond
	)
	err = poll.Until(ctx, placeWindow, 50*time.Millisecond, func() (bool, error) {
		select {
		case <-submitDone:
			if submitErr != nil {
				return false, submitErr
			}
		default:
		}
		m, err := scrape(ctx, leader)
		if err != nil {
			return false, err
		}
		placed = delta(before, m, mAllocsPlaced)
		if placed >= float64(total) {
			return true, nil
		}
		if time.Since(lastPrint) >= 2*time.Second {
			submitted.Lock()
			n := submitted.n
			submitted.Unlock()
			r.progress("%s: %d/%d jobs submitted, %.0f/%d allocations placed", what, n, len(jobs), placed, total)
			lastPrint = time.Now()
		}
		if time.Since(lastCheck) >= 2*time.Second {
			lastCheck = time.Now()
			if err := c.checkAlive(); err != nil {
				return false, err
			}
			// A leadership change (even one that came back, which the
			// agreed leader does not show) leaves some placements on
			// another server's counter: every committed plan is counted
			// by the one leader that applied it, so the sum over the
			// servers is the run's total.
			// The leader's own figure comes from the same round of
			// scrapes: the one above is older, and the placements
			// committed since would look like another server's.
			if per, errs := increasePerServer(ctx, c, serversBefore, mAllocsPlaced); errors.Join(errs...) == nil {
				var all, others float64
				for i, s := range c.servers {
					all += per[i]
					if s != leader {
						others += per[i]
					}
				}
				if others > 0 && all > placed {
					if !moved {
						moved = true
						r.progress("%s: %.0f placements committed by other servers' appliers (a leadership change); counting every server's", what, others)
					}
					placed = all
					if placed >= float64(total) {
						return true, nil
					}
				}
			}
			if placed > lastPlaced {
				lastPlaced, lastProgress = placed, time.Now()
			}
			// A plan entry that a deposed leader reported as failed
			// but its successor committed is counted by no applier:
			// when the counters stop short after every job was
			// submitted, count the allocations in the state instead.
			select {
			case <-submitDone:
				if time.Since(lastProgress) >= 10*time.Second {
					n, err := liveAllocations(ctx, clients[0], jobs)
					if err != nil {
						return false, err
					}
					if !counted {
						counted = true
						r.progress("%s: the counters stopped at %.0f; the state holds %d allocations to run", what, placed, n)
					}
					if float64(n) > placed {
						placed = float64(n)
					}
					lastProgress = time.Now()
					if placed >= float64(total) {
						return true, nil
					}
				}
			default:
			}
		}
		return false, fmt.Errorf("%.0f of %d allocations placed", placed, total)
	})
	elapsed := time.Since(start)
	if err != nil {
		if submitErr != nil {
			err = submitErr
		} else {
			err = fmt.Errorf("%w (%s)", err, placedByServer(ctx, c, serversBefore))
		}
		<-submitDone
		return nil, err
	}
	<-submitDone
	if submitErr != nil {
		return nil, submitErr
	}
	r.progress("%s: all %d allocations placed in %s (%.0f/s)", what, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	after, err := scrape(ctx, leader)
	if err != nil {
		return nil, err
	}
	serversAfter, err := scrapeAll(ctx, c.servers)
	if err != nil {
		return nil, err
	}
	return &placeMeasure{leader: leader, elapsed: elapsed, before: before, after: after, submit: st,
		servers: c.servers, serversBefore: serversBefore, serversAfter: serversAfter}, nil
}

// liveAllocations counts the allocations of jobs that are to run, from
// a stale read of one server's state.
func liveAllocations(ctx context.Context, c *api.Client, jobs []*api.Job) (int, error) {
	n := 0
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		allocs, _, err := c.Jobs().Allocations(j.ID, &api.QueryOptions{AllowStale: true})
		if err != nil {
			return 0, fmt.Errorf("allocations of %s: %w", j.ID, err)
		}
		for _, a := range allocs {
			if a.DesiredStatus == "run" {
				n++
			}
		}
	}
	return n, nil
}

// increasePerServer scrapes the increase of counter on each server since
// before (errs[i] set where server i could not be scraped).
func increasePerServer(ctx context.Context, c *cluster, before []*metrics, counter string) (inc []float64, errs []error) {
	inc, errs = make([]float64, len(c.servers)), make([]error, len(c.servers))
	for i, s := range c.servers {
		m, err := scrape(ctx, s)
		if err != nil {
			errs[i] = err
			continue
		}
		inc[i] = delta(before[i], m, counter)
	}
	return inc, errs
}

// increaseOnAll sums the increase of counter on every server since
// before: a leader-only counter summed this way survives leadership
// changes.
func increaseOnAll(ctx context.Context, c *cluster, before []*metrics, counter string) (float64, error) {
	inc, errs := increasePerServer(ctx, c, before, counter)
	var sum float64
	for i := range inc {
		if errs[i] != nil {
			return 0, errs[i]
		}
		sum += inc[i]
	}
	return sum, nil
}

// placedByServer describes, for a run that did not finish, what each
// server's plan applier committed since before and whom it follows: the
// run counts the leader's commits only, so a leadership change it did
// not see (one server leading for a moment, then the first again) shows
// here as commits on another server.
func placedByServer(ctx context.Context, c *cluster, before []*metrics) string {
	placed, errs := increasePerServer(ctx, c, before, mAllocsPlaced)
	var parts []string
	for i, s := range c.servers {
		if errs[i] != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", s.id, errs[i]))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s placed %.0f, follows %q", s.id, placed[i], leaderOf(s, time.Second)))
	}
	return "per server: " + strings.Join(parts, "; ")
}

// scrapeAll scrapes every server.
func scrapeAll(ctx context.Context, servers []*agentProc) ([]*metrics, error) {
	out := make([]*metrics, len(servers))
	for i, s := range servers {
		m, err := scrape(ctx, s)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// reportWorkers adds how many evaluations each server's workers
// scheduled over the run (drover_worker_evals_processed_total on every
// server), and the followers' share.
func (m *placeMeasure) reportWorkers(res *Result) {
	followers := 0.0
	for i, s := range m.servers {
		before, after := m.serversBefore[i], m.serversAfter[i]
		local := after.labelled(mEvalsProcessed, "path", "local") - before.labelled(mEvalsProcessed, "path", "local")
		rpc := after.labelled(mEvalsProcessed, "path", "rpc") - before.labelled(mEvalsProcessed, "path", "rpc")
		role := "follower"
		if s == m.leader {
			role = "leader"
		} else {
			followers += local + rpc
		}
		res.add("evals_scheduled_"+s.id, fmt.Sprintf("evaluations scheduled by %s (%s)", s.id, role), "evals", local+rpc,
			fmt.Sprintf("increase of %s's drover_worker_evals_processed_total over the run: %.0f as leader (in-process broker), %.0f as follower (over RPC to the leader's broker)", s.id, local, rpc))
	}
	res.add("evals_scheduled_by_followers", "evaluations scheduled by followers", "evals", followers,
		"sum over the servers that did not lead of the increase of drover_worker_evals_processed_total (absent on binaries before follower scheduling: null)")
}

// reportElections adds how many times a server became leader during the
// run (drover_leaderships_established_total summed over the servers):
// 0 for a run with one leader throughout. Raft's 300 ms timeouts on two
// saturated cores can lose leadership under load, which stalls
// placements for the election and the new leader's start.
func (m *placeMeasure) reportElections(res *Result) {
	var n float64
	for i := range m.servers {
		n += delta(m.serversBefore[i], m.serversAfter[i], mLeaderships)
	}
	res.add("leader_elections", "leader elections during the run", "elections", n,
		"increase of drover_leaderships_established_total summed over the servers between the first job submitted and the last placement (absent on older binaries: 0)")
}

// report adds the leader's scheduling figures over the run.
func (m *placeMeasure) report(res *Result) {
	secs := func(v float64) float64 { return v * 1000 }
	res.add("plan_apply_p50", "plan apply latency p50 (submit -> commit result)", "ms", secs(m.after.quantile(mPlanApply, 0.5)),
		"median of the leader's drover_plan_apply_seconds summary (10-minute window) at the end of the run: a plan's submission by a worker to its commit result")
	res.add("plan_apply_p99", "plan apply latency p99", "ms", secs(m.after.quantile(mPlanApply, 0.99)),
		"99th percentile of the leader's drover_plan_apply_seconds at the end of the run")
	res.add("plan_apply_mean", "plan apply latency mean over the run", "ms", secs(meanBetween(m.before, m.after, mPlanApply)),
		"increase of drover_plan_apply_seconds' sum divided by the increase of its count over the run")
	res.add("plan_queue_wait_p50", "plan queue wait p50 (part of plan apply)", "ms", secs(m.after.quantile(mPlanQueueWait, 0.5)),
		"median of the leader's drover_plan_queue_wait_seconds: how long a plan waited for the single plan applier")
	res.add("eval_p50", "evaluation latency p50 (ready in broker -> ack)", "ms", secs(m.after.quantile(mEval, 0.5)),
		"median of the leader's drover_eval_seconds at the end of the run: an evaluation ready in the broker to its acknowledgement by a worker")
	res.add("eval_p99", "evaluation latency p99", "ms", secs(m.after.quantile(mEval, 0.99)),
		"99th percentile of the leader's drover_eval_seconds at the end of the run")
	res.add("raft_apply_p50", "Raft apply latency p50 on the leader", "ms", secs(m.after.quantile(mRaftApply, 0.5)),
		"median of the leader's drover_raft_apply_seconds: commit and apply of one Raft entry")
	res.add("plans", "plans applied by the leader", "plans", delta(m.before, m.after, mPlans), "increase of drover_plans_total")
	res.add("plan_rejected_nodes", "nodes rejected by the plan re-check", "nodes", delta(m.before, m.after, mPlanRejectNode),
		"increase of drover_plan_rejected_nodes_total: nodes whose part of a plan no longer fit and was sent back for re-planning")
	res.add("evals_acked", "evaluations acknowledged", "evals", delta(m.before, m.after, mEvalsAcked), "increase of drover_evals_acked_total")
	res.add("register_p50", "job registration latency p50 (client side)", "ms", ms(percentile(m.submit.latencies, 0.5)),
		"HTTP round trip of PUT /v1/jobs as the writers saw it, successful attempts")
	res.add("register_p99", "job registration latency p99 (client side)", "ms", ms(percentile(m.submit.latencies, 0.99)),
		"99th percentile of the same")
	res.add("register_retries", "job registrations retried after a server error", "requests", float64(m.submit.retries),
		"registrations that failed with a server-side error (5xx, timeout) and were sent again")
}

// checkCapacity lists every node and allocation through the leader's API
// and returns a description of each node whose non-terminal allocations
// exceed its resources less its reserved resources, and the number of
// non-terminal allocations.
func checkCapacity(ctx context.Context, leader *agentProc) (over []string, live, nodesUsed int, err error) {
	cl := newAPIClient(leader.httpAddr(), 5*time.Minute)
	allocs, _, err := cl.Allocations().List(&api.QueryOptions{Context: ctx})
	if err != nil {
		return nil, 0, 0, err
	}
	type use struct{ cpu, mem int64 }
	used := map[string]*use{}
	for _, a := range allocs {
		if a.DesiredStatus != "run" || a.ClientStatus == "complete" || a.ClientStatus == "failed" || a.ClientStatus == "lost" {
			continue
		}
		live++
		u := used[a.NodeID]
		if u == nil {
			u = &use{}
			used[a.NodeID] = u
		}
		if a.AllocatedResources != nil {
			for _, t := range a.AllocatedResources.Tasks {
				u.cpu += t.Cpu.CpuShares
				u.mem += t.Memory.MemoryMB
			}
		}
	}
	stubs, _, err := cl.Nodes().List(&api.QueryOptions{Context: ctx})
	if err != nil {
		return nil, 0, 0, err
	}
	known := map[string]bool{}
	for _, n := range stubs {
		known[n.ID] = true
	}
	// The list does not carry reserved resources: read the nodes that
	// hold allocations, 16 at a time.
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 16)
		errs []error
	)
	for id, u := range used {
		if !known[id] {
			over = append(over, fmt.Sprintf("allocations on unknown node %s", id))
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(id string, u *use) {
			defer func() { <-sem; wg.Done() }()
			n, _, err := cl.Nodes().Info(id, &api.QueryOptions{Context: ctx})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			var capCPU, capMem int64
			if n.NodeResources != nil {
				capCPU, capMem = n.NodeResources.Cpu.CpuShares, n.NodeResources.Memory.MemoryMB
			}
			if n.ReservedResources != nil {
				capCPU -= n.ReservedResources.Cpu.CpuShares
				capMem -= n.ReservedResources.Memory.MemoryMB
			}
			if u.cpu > capCPU || u.mem > capMem {
				over = append(over, fmt.Sprintf("node %s: %d/%d MHz, %d/%d MB", n.Name, u.cpu, capCPU, u.mem, capMem))
			}
		}(id, u)
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, 0, 0, fmt.Errorf("read %d nodes: %w", len(errs), errs[0])
	}
	return over, live, len(used), nil
}
