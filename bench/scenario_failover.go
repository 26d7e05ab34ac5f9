package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/internal/poll"
)

var failoverScenario = &scenario{
	name: "failover",
	help: `Leader failover. Three server processes under a steady write load: 6
writers re-register jobs (each writer owns 10 jobs and changes one per
write, so every write makes a new job version), round-robin over the
running servers. The leader is killed with SIGKILL 20 times (quick: 3),
each time after the load ran 2 s (quick: 0.5 s) on the healthy cluster;
after each kill the killed server is restarted on its data dir and must
catch up before the next kill.
  new_leader_p50/p99/max   from the SIGKILL to the surviving servers
                           agreeing on a new leader (polled every 5 ms).
  first_write_p50/p99/max  from the SIGKILL to the first acknowledged
                           registration among those sent after the kill.
                           Goals: p50 < 1 s, p99 < 2 s.
  rejoin_p50/p99/max       from restarting the killed server on its data
                           dir to it following the new leader at the index
                           the leader had (grows with the Raft log).
  writes_acked             registrations acknowledged during the run.
  acked_writes_lost        acknowledged registrations missing at the end,
                           or older there than acknowledged (job modify
                           index below the acknowledged one), counted on
                           every server once all have converged. Must be 0.
  servers_identical        1 when the three servers' state fingerprints
                           (GET /v1/operator/state-hash) match at the end.`,
	run: runFailover,
}

// writeLog records the failover load's acknowledged writes.
type writeLog struct {
	// mu guards everything below.
	mu sync.Mutex
	// acked is, per job, the highest job modify index acknowledged.
	acked map[string]uint64
	// acks are the acknowledged writes' send and acknowledgement times.
	acks  [][2]time.Time
	count int
}

func (w *writeLog) ack(id string, index uint64, sent time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if index > w.acked[id] {
		w.acked[id] = index
	}
	w.acks = append(w.acks, [2]time.Time{sent, time.Now()})
	w.count++
}

// firstAckAfter returns when the first write sent after t was
// acknowledged (a write in flight at t may have been committed by the
// old leader and does not count).
func (w *writeLog) firstAckAfter(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first time.Time
	for _, a := range w.acks {
		if a[0].After(t) && (first.IsZero() || a[1].Before(first)) {
			first = a[1]
		}
	}
	return first, !first.IsZero()
}

func runFailover(ctx context.Context, r *runner, res *Result, dir string) error {
	var (
		kills   = pick(r, 20, 3)
		writers = 6
		keys    = 10
		// settle is how long the load runs on a healthy cluster before
		// each kill, so that every kill hits a leader under load.
		settle = pick(r, 2*time.Second, 500*time.Millisecond)
	)
	res.Parameters = map[string]interface{}{
		"servers": 3, "kills": kills, "writers": writers, "jobs_per_writer": keys,
		"writer_pause_ms": 5, "kill_signal": "SIGKILL", "load_before_each_kill_seconds": settle.Seconds(),
	}
	c, err := r.startCluster(ctx, dir, 3)
	if err != nil {
		return err
	}
	defer c.stop()

	log := &writeLog{acked: map[string]uint64{}}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			failoverWriter(loadCtx, c, log, w, keys)
		}(w)
	}
	defer func() { stopLoad(); wg.Wait() }()

	var newLeader, firstWrite, rejoin []time.Duration
	for i := 0; i < kills; i++ {
		leader, err := c.waitLeader(ctx, nil, time.Minute)
		if err != nil {
			return fmt.Errorf("kill %d: %w", i+1, err)
		}
		if err := sleepCtx(ctx, settle); err != nil {
			return err
		}
		if l, err := c.agreedLeader(nil); err != nil || l != leader {
			i-- // leadership moved on its own: start over
			continue
		}
		killedAt := time.Now()
		leader.kill()
		next, err := c.waitLeaderFast(ctx, leader, 30*time.Second)
		if err != nil {
			return fmt.Errorf("kill %d: no new leader: %w", i+1, err)
		}
		nl := time.Since(killedAt)
		var fw time.Duration
		if err := poll.Until(ctx, 30*time.Second, 5*time.Millisecond, func() (bool, error) {
			at, ok := log.firstAckAfter(killedAt)
			fw = at.Sub(killedAt)
			return ok, errors.New("no write accepted since the kill")
		}); err != nil {
			return fmt.Errorf("kill %d: %w", i+1, err)
		}
		newLeader, firstWrite = append(newLeader, nl), append(firstWrite, fw)
		r.progress("kill %d/%d: %s was leader; %s leads after %s, first accepted write after %s",
			i+1, kills, leader.id, next.id, nl.Round(time.Millisecond), fw.Round(time.Millisecond))

		restartedAt := time.Now()
		if err := leader.restart(); err != nil {
			return err
		}
		if err := waitCaughtUp(ctx, c, leader, next); err != nil {
			return fmt.Errorf("kill %d: the restarted %s did not rejoin: %w", i+1, leader.id, err)
		}
		rejoin = append(rejoin, time.Since(restartedAt))
	}
	stopLoad()
	wg.Wait()

	r.progress("waiting for the servers to converge")
	hashes, err := waitConverged(ctx, c, time.Minute)
	identical := 1.0
	if err != nil {
		identical = 0
		res.note("servers did not converge: %v", err)
	}
	lost, checked, err := lostWrites(ctx, c, log)
	if err != nil {
		return err
	}
	for _, l := range lost {
		res.note("lost: %s", l)
		if len(res.Notes) > 20 {
			break
		}
	}
	if len(hashes) > 0 {
		r.progress("%d servers identical at index %d; %d acknowledged jobs checked on each", len(hashes), hashes[0].Index, checked)
	}

	res.add("kills", "leader SIGKILLs", "kills", float64(len(newLeader)), "leaders killed (each restarted and caught up before the next kill)")
	addDist := func(name, label, what string, ds []time.Duration, p50Goal, p99Goal float64) {
		m := res.add(name+"_p50", label+" p50", "ms", ms(percentile(ds, 0.5)), what+", median over the kills")
		if p50Goal > 0 {
			m.goal("<", p50Goal)
		}
		m = res.add(name+"_p99", label+" p99", "ms", ms(percentile(ds, 0.99)), what+", 99th percentile (nearest rank) over the kills")
		if p99Goal > 0 {
			m.goal("<", p99Goal)
		}
		res.add(name+"_max", label+" max", "ms", ms(percentile(ds, 1)), what+", worst kill")
	}
	addDist("new_leader", "kill -> new leader agreed by survivors", "time from the SIGKILL to both survivors naming the same new leader", newLeader, 0, 0)
	addDist("first_write", "kill -> first accepted write", "time from the SIGKILL to the acknowledgement of the first registration sent after it", firstWrite, 1000, 2000)
	addDist("rejoin", "restart of the killed server -> caught up", "time from starting the killed server again on its data dir to it following the new leader at the index the leader had", rejoin, 0, 0)
	log.mu.Lock()
	acked := log.count
	log.mu.Unlock()
	res.add("writes_acked", "registrations acknowledged during the run", "writes", float64(acked), "registrations answered 200")
	res.add("acked_writes_lost", "acknowledged writes lost", "writes", float64(len(lost)),
		"acknowledged jobs missing, or at a lower job modify index than acknowledged, on any server at the end").invariant("==", 0)
	res.add("servers_identical", "servers' states identical at the end", "", identical,
		"1 when every server reports the same state-hash fingerprint at the same index").invariant("==", 1)
	return nil
}

// failoverWriter re-registers its jobs until ctx is done, each write
// with a new meta value (a new job version), round-robin over the
// running servers.
func failoverWriter(ctx context.Context, c *cluster, log *writeLog, w, keys int) {
	clients := map[*agentProc]*api.Client{}
	for _, s := range c.servers {
		clients[s] = newAPIClient(s.httpAddr(), 10*time.Second)
	}
	for n := 0; ctx.Err() == nil; n++ {
		alive := c.alive()
		if len(alive) == 0 {
			_ = sleepCtx(ctx, 20*time.Millisecond)
			continue
		}
		s := alive[(n+w)%len(alive)]
		id := fmt.Sprintf("fo-w%d-k%d", w, n%keys)
		job := serviceJob(id, 0, 100, 128)
		job.Meta = map[string]string{"v": fmt.Sprint(n)}
		sent := time.Now()
		resp, _, err := clients[s].Jobs().Register(job, nil)
		if err == nil {
			log.ack(id, resp.JobModifyIndex, sent)
		} else if isDialError(err) {
			// The server is down: try the next one at once.
			continue
		}
		_ = sleepCtx(ctx, 5*time.Millisecond)
	}
}

// isDialError reports whether a request failed before reaching a server.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// waitLeaderFast is waitLeader with a 5 ms poll and a short per-server
// timeout, for timing elections.
func (c *cluster) waitLeaderFast(ctx context.Context, not *agentProc, timeout time.Duration) (*agentProc, error) {
	var leader *agentProc
	err := poll.Until(ctx, timeout, 5*time.Millisecond, func() (bool, error) {
		var err error
		leader, err = c.agreedLeader(not)
		return leader != nil, err
	})
	return leader, err
}

// waitCaughtUp waits until a restarted server follows the leader and has
// applied at least the index the leader had when it came back.
func waitCaughtUp(ctx context.Context, c *cluster, s, leader *agentProc) error {
	var want uint64
	return poll.Until(ctx, 2*time.Minute, 20*time.Millisecond, func() (bool, error) {
		if !s.alive() {
			return false, s.exitError()
		}
		if l := leaderOf(s, time.Second); l != leader.rpcAddr() {
			return false, fmt.Errorf("%s sees leader %q, want %s", s.id, l, leader.rpcAddr())
		}
		if want == 0 {
			lh, err := leader.api.Operator().StateHash()
			if err != nil {
				return false, err
			}
			want = lh.Index
		}
		got, err := s.api.Operator().StateHash()
		if err != nil {
			return false, err
		}
		return got.Index >= want, fmt.Errorf("%s at index %d, leader was at %d", s.id, got.Index, want)
	})
}

// waitConverged waits until every server has applied the same index
// with identical state, table by table.
func waitConverged(ctx context.Context, c *cluster, timeout time.Duration) ([]*api.StateHash, error) {
	var hs []*api.StateHash
	err := poll.Until(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
		hs = hs[:0]
		for _, s := range c.servers {
			h, err := s.api.Operator().StateHash()
			if err != nil {
				return false, fmt.Errorf("%s: %w", s.id, err)
			}
			hs = append(hs, h)
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
	return hs, err
}

// lostWrites reads every server's jobs (from its own state) and returns
// the acknowledged writes that are missing or older there, and how many
// jobs were checked per server.
func lostWrites(ctx context.Context, c *cluster, log *writeLog) ([]string, int, error) {
	log.mu.Lock()
	acked := make(map[string]uint64, len(log.acked))
	for id, idx := range log.acked {
		acked[id] = idx
	}
	log.mu.Unlock()
	var lost []string
	for _, s := range c.servers {
		jobs, _, err := s.api.Jobs().List(&api.QueryOptions{AllowStale: true, Context: ctx})
		if err != nil {
			return nil, 0, fmt.Errorf("list jobs on %s: %w", s.id, err)
		}
		have := map[string]uint64{}
		for _, j := range jobs {
			have[j.ID] = j.JobModifyIndex
		}
		for id, idx := range acked {
			got, ok := have[id]
			switch {
			case !ok:
				lost = append(lost, fmt.Sprintf("job %s (acknowledged at index %d) is missing on %s", id, idx, s.id))
			case got < idx:
				lost = append(lost, fmt.Sprintf("job %s is at index %d on %s, acknowledged at %d", id, got, s.id, idx))
			}
		}
	}
	return lost, len(acked), nil
}
