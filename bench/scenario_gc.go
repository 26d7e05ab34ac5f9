package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/internal/poll"
)

var gcScenario = &scenario{
	name: "gc",
	help: `Garbage collection soak. Three server processes and 10 simulated nodes
(quick: 5); 8 writers (quick: 4) run register/stop cycles: each
registers a new service job (count 1, an update block, so a deployment
too), waits until its allocation runs on a simulated node, stops the
job and waits until the allocation is complete. 2,000 cycles by default
(-gc-cycles N; quick: 100), in two halves. After each half a forced
collection (PUT /v1/system/gc) deletes what the cycles left, the servers
converge, and every server's state rows, RSS, Go heap (after a Go GC)
and raft.db are measured; the second measurement must be within 10% of
the first: the state, the memory and the Raft log do not grow with the
cycles. At the end one follower is restarted with -compact-raft.
The servers run with raft_snapshot_threshold = raft_trailing_logs = 1536
(quick: 256), raft_snapshot_interval = "1s" and event_buffer_size = 5000
(quick: 1000). The Raft log, and raft.db with it, holds at most about
threshold + trailing entries (plus what is written between two snapshot
checks), and the first half fills that window; the event stream's
buffer, bounded in events, fills in the first few hundred cycles (at
its default of 50,000 it would still be filling at 2,000 cycles, some
20 MiB of heap per 1,000 cycles). So the second half measures the
steady state. With the default Raft settings (8,192 + 10,240) the bound
is the same mechanism at a larger size, reached after ~18,000 entries.
bolt grows raft.db to the largest log it held (in doubling steps up to
16 MiB, then to what it needs plus 16 MiB) and never shrinks it while
the server runs.
  rows_before_gc          state rows on the leader before the second
                          collection (every table, derived ones too)
  rows_first/second       rows after each collection
  rows_growth             (second - first) / first, %. Invariant <= 10.
  <server>_rss_growth     the same for process_resident_memory_bytes.
                          Goal <= 10.
  <server>_heap_growth    the same for go_memstats_heap_inuse_bytes read
                          after a Go GC (/debug/pprof/heap?gc=1). Goal <= 10.
  <server>_raft_db_growth the same for the size of raft.db. Goal <= 10.
  <server>_raft_db_free   bytes on raft.db's freelist at the end
                          (drover_raft_db_free_bytes); _raft_db_used the
                          size less those.
  raft_db_compacted       the restarted follower's raft.db after the
                          start-up compaction (-compact-raft).
  gc_seconds              the second forced collection's round trip.
  gc_deleted              rows it deleted; gc_entries its Raft entries.
  cycles_per_second       register/stop cycles per second (all writers).
  servers_identical       1 if every server has the same state hash after
                          each collection (and after the restart).
                          Invariant.`,
	run: runGC,
}

// gcCheckpoint is what one measurement after a collection saw.
type gcCheckpoint struct {
	report *api.GCReport
	took   time.Duration
	// rowsBefore and rows are the leader's total rows before and after
	// the collection; tables its rows by table after.
	rowsBefore, rows int
	tables           map[string]int
	rss, heap        []float64
	raftDB, raftFree []float64
	identical        bool
}

func runGC(ctx context.Context, r *runner, res *Result, dir string) error {
	cycles := r.cfg.GCCycles
	if cycles <= 0 {
		cycles = pick(r, 2000, 100)
	}
	var (
		nodes   = pick(r, 10, 5)
		writers = pick(r, 8, 4)
		window  = pick(r, 1536, 256)
		events  = pick(r, 5000, 1000)
	)
	res.Parameters = map[string]interface{}{
		"servers": 3, "simulated_nodes": nodes, "writers": writers, "cycles": cycles,
		"raft_snapshot_threshold": window, "raft_trailing_logs": window, "raft_snapshot_interval": "1s", "event_buffer_size": events,
		"job": "service, count 1, update { max_parallel = 1 }, cpu 20 MHz, memory 16 MB",
	}
	cfgPath := filepath.Join(dir, "gc-server.hcl")
	cfg := fmt.Sprintf("server {\n  raft_snapshot_threshold = %d\n  raft_trailing_logs = %d\n  raft_snapshot_interval = \"1s\"\n  event_buffer_size = %d\n}\n", window, window, events)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	c, err := r.startClusterWith(ctx, dir, 3, cfgPath)
	if err != nil {
		return err
	}
	defer c.stop()
	sim, err := r.startSim(ctx, dir, c, nodes, "gc")
	if err != nil {
		return err
	}
	defer sim.stop(5 * time.Second)

	clients := make([]*api.Client, len(c.servers))
	for i, s := range c.servers {
		clients[i] = newAPIClient(s.httpAddr(), 30*time.Second)
	}
	half := cycles / 2
	start := time.Now()
	if err := gcCycles(ctx, r, clients, writers, 0, half); err != nil {
		return err
	}
	first, err := gcMeasure(ctx, r, c)
	if err != nil {
		return err
	}
	if err := gcCycles(ctx, r, clients, writers, half, cycles); err != nil {
		return err
	}
	cycleTime := time.Since(start) - first.took
	second, err := gcMeasure(ctx, r, c)
	if err != nil {
		return err
	}
	compacted, compactedFrom, follower, err := gcCompactFollower(ctx, r, c)
	if err != nil {
		return err
	}

	growth := func(a, b float64) float64 { return 100 * (b - a) / a }
	res.add("cycles_per_second", "register/stop cycles per second", "cycles/s", float64(cycles)/cycleTime.Seconds(),
		fmt.Sprintf("%d cycles (register, allocation running, stop, allocation complete) by %d writers, divided by their time (the first collection excluded)", cycles, writers))
	res.add("rows_before_gc", "state rows on the leader before the second collection", "rows", float64(second.rowsBefore),
		"sum of Operator.StateHash Rows over every table, derived ones included, after the second half of the cycles")
	res.add("rows_first", "state rows after the first collection", "rows", float64(first.rows), "the same, after the first forced collection")
	res.add("rows_second", "state rows after the second collection", "rows", float64(second.rows), "the same, after the second forced collection")
	res.add("rows_growth", "state rows, growth between the collections", "%", growth(float64(first.rows), float64(second.rows)),
		"(second - first) / first").invariant("<=", 10)
	res.add("gc_seconds", "forced collection round trip (second)", "s", second.took.Seconds(),
		"PUT /v1/system/gc until it answered (the leader chose, wrote and applied every entry)")
	res.add("gc_deleted", "rows the second collection deleted", "rows", float64(second.report.Deleted.Total()),
		fmt.Sprintf("jobs %d, versions %d, evaluations %d, allocations %d, deployments %d, nodes %d; skipped %d",
			second.report.Deleted.Jobs, second.report.Deleted.JobVersions, second.report.Deleted.Evals, second.report.Deleted.Allocs,
			second.report.Deleted.Deployments, second.report.Deleted.Nodes, second.report.Skipped.Total()))
	res.add("gc_entries", "Raft entries of the second collection", "entries", float64(second.report.Entries),
		"GCBatch entries written (at most 512 objects each)")
	identical := 0.0
	if first.identical && second.identical && compacted > 0 {
		identical = 1
	}
	res.add("raft_db_compacted", follower.id+" raft.db after a restart with -compact-raft", "bytes", compacted,
		fmt.Sprintf("size of raft.db after the start-up compaction; it was %s before (killed with SIGKILL, restarted with -compact-raft, caught up)", formatBytes(compactedFrom)))
	res.add("servers_identical", "servers identical after each collection", "bool", identical,
		"1 when every server's state hash matched after both collections").invariant("==", 1)
	for i, s := range c.servers {
		res.add(s.id+"_rss_first", s.id+" RSS after the first collection", "bytes", first.rss[i], "process_resident_memory_bytes")
		res.add(s.id+"_rss_second", s.id+" RSS after the second collection", "bytes", second.rss[i], "process_resident_memory_bytes")
		res.add(s.id+"_rss_growth", s.id+" RSS, growth between the collections", "%", growth(first.rss[i], second.rss[i]), "(second - first) / first").goal("<=", 10)
		res.add(s.id+"_heap_first", s.id+" Go heap after the first collection", "bytes", first.heap[i], "go_memstats_heap_inuse_bytes after a Go GC")
		res.add(s.id+"_heap_second", s.id+" Go heap after the second collection", "bytes", second.heap[i], "go_memstats_heap_inuse_bytes after a Go GC")
		res.add(s.id+"_heap_growth", s.id+" Go heap, growth between the collections", "%", growth(first.heap[i], second.heap[i]), "(second - first) / first").goal("<=", 10)
		res.add(s.id+"_raft_db_first", s.id+" raft.db after the first collection", "bytes", first.raftDB[i], "size of <data_dir>/raft/raft.db")
		res.add(s.id+"_raft_db_second", s.id+" raft.db after the second collection", "bytes", second.raftDB[i], "size of <data_dir>/raft/raft.db")
		res.add(s.id+"_raft_db_growth", s.id+" raft.db, growth between the collections", "%", growth(first.raftDB[i], second.raftDB[i]), "(second - first) / first").goal("<=", 10)
		res.add(s.id+"_raft_db_free", s.id+" raft.db free bytes at the end", "bytes", second.raftFree[i], "drover_raft_db_free_bytes: pages on bolt's freelist, reused for new entries")
		res.add(s.id+"_raft_db_used", s.id+" raft.db used bytes at the end", "bytes", second.raftDB[i]-second.raftFree[i], "size less the free bytes: the log's pages")
	}
	var tables []string
	for t := range second.tables {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	rows := map[string]interface{}{}
	for _, t := range tables {
		rows[t] = fmt.Sprintf("%d -> %d", first.tables[t], second.tables[t])
	}
	res.Parameters["rows_by_table_first_to_second"] = rows
	return nil
}

// gcCycles runs cycles from..to-1 with writers concurrent writers,
// writer w sending to clients[w % len(clients)].
func gcCycles(ctx context.Context, r *runner, clients []*api.Client, writers, from, to int) error {
	var (
		next  atomic.Int64
		done  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next.Store(int64(from))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(cl *api.Client) {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= to {
					return
				}
				if err := gcCycle(ctx, cl, fmt.Sprintf("gc-%05d", i)); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					return
				}
				if n := done.Add(1); n%250 == 0 {
					r.progress("%d/%d cycles", int(n)+from, to)
				}
			}
		}(clients[w%len(clients)])
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// gcJob is the job of one cycle: serviceJob with an update block, so
// that its registration also creates a deployment (cancelled by the
// stop).
func gcJob(id string) *api.Job {
	j := serviceJob(id, 1, 20, 16)
	j.TaskGroups[0].Update = &api.UpdateStrategy{MaxParallel: 1, MinHealthyTime: time.Second, HealthyDeadline: time.Minute, ProgressDeadline: 2 * time.Minute}
	return j
}

// gcCycle registers job id, waits for its allocation to run, stops the
// job and waits for the allocation to complete.
func gcCycle(ctx context.Context, cl *api.Client, id string) error {
	if _, _, err := registerRetry(ctx, cl, gcJob(id)); err != nil {
		return fmt.Errorf("register %s: %w", id, err)
	}
	if err := waitAllocs(ctx, cl, id, func(a *api.Allocation) bool { return a.ClientStatus == "running" }); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, _, err = cl.Jobs().Deregister(id, false); err == nil {
			break
		}
		if sleepCtx(ctx, time.Duration(attempt+1)*200*time.Millisecond) != nil {
			return ctx.Err()
		}
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	terminal := func(a *api.Allocation) bool {
		return a.ClientStatus == "complete" || a.ClientStatus == "failed" || a.ClientStatus == "lost"
	}
	if err := waitAllocs(ctx, cl, id, terminal); err != nil {
		return fmt.Errorf("stopped job %s: %w", id, err)
	}
	return nil
}

// waitAllocs polls the job's allocations until there is one and every
// one satisfies ok.
func waitAllocs(ctx context.Context, cl *api.Client, id string, ok func(*api.Allocation) bool) error {
	return poll.Until(ctx, time.Minute, 50*time.Millisecond, func() (bool, error) {
		allocs, _, err := cl.Jobs().Allocations(id, nil)
		if err != nil {
			return false, err
		}
		if len(allocs) == 0 {
			return false, errors.New("no allocation yet")
		}
		for _, a := range allocs {
			if !ok(a) {
				return false, fmt.Errorf("allocation %s is %s/%s", a.ID, a.DesiredStatus, a.ClientStatus)
			}
		}
		return true, nil
	})
}

// gcMeasure forces a collection through the leader, waits for the
// servers to converge and for a snapshot interval to pass (so a due
// snapshot truncates the log), and measures every server.
func gcMeasure(ctx context.Context, r *runner, c *cluster) (*gcCheckpoint, error) {
	leader, err := c.waitLeader(ctx, nil, 30*time.Second)
	if err != nil {
		return nil, err
	}
	cp := &gcCheckpoint{}
	h, err := leader.api.Operator().StateHash()
	if err != nil {
		return nil, err
	}
	cp.rowsBefore = sumRows(h.Rows)
	start := time.Now()
	cp.report, err = newAPIClient(leader.httpAddr(), 10*time.Minute).System().GarbageCollect(false)
	if err != nil {
		return nil, fmt.Errorf("forced collection: %w", err)
	}
	cp.took = time.Since(start)
	r.progress("collected in %s: deleted %d rows in %d entries (skipped %d); %d rows before",
		cp.took.Round(time.Millisecond), cp.report.Deleted.Total(), cp.report.Entries, cp.report.Skipped.Total(), cp.rowsBefore)
	hashes, err := waitConverged(ctx, c, time.Minute)
	if err != nil {
		return nil, fmt.Errorf("servers after the collection: %w", err)
	}
	cp.identical = true
	if err := sleepCtx(ctx, 6*time.Second); err != nil {
		return nil, err
	}
	for _, h := range hashes {
		if h.Server == leader.rpcAddr() {
			cp.rows, cp.tables = sumRows(h.Rows), h.Rows
		}
	}
	for _, s := range c.servers {
		// A Go GC first (the heap profile's gc=1), so the heap figure is
		// what is live, not what the last cycle left for the collector.
		if err := fetchTo(ctx, s.httpAddr()+"/debug/pprof/heap?gc=1", os.DevNull, time.Minute); err != nil {
			return nil, fmt.Errorf("GC %s: %w", s.name, err)
		}
		m, err := scrape(ctx, s)
		if err != nil {
			return nil, err
		}
		cp.heap = append(cp.heap, m.value(mGoHeapInuse))
		fi, err := os.Stat(filepath.Join(s.dataDir, "raft", "raft.db"))
		if err != nil {
			return nil, err
		}
		cp.rss = append(cp.rss, m.value(mProcessRSS))
		cp.raftDB = append(cp.raftDB, float64(fi.Size()))
		cp.raftFree = append(cp.raftFree, m.value(mRaftDBFree))
	}
	r.progress("%d rows; RSS %s; heap %s; raft.db %s (free %s)", cp.rows, formatList(cp.rss), formatList(cp.heap), formatList(cp.raftDB), formatList(cp.raftFree))
	return cp, nil
}

// gcCompactFollower kills a follower, restarts it with -compact-raft and
// waits until it caught up; it returns the size of its raft.db after
// and before, and the follower. Zero size: the servers did not
// converge.
func gcCompactFollower(ctx context.Context, r *runner, c *cluster) (float64, float64, *agentProc, error) {
	leader, err := c.waitLeader(ctx, nil, 30*time.Second)
	if err != nil {
		return 0, 0, nil, err
	}
	var f *agentProc
	for _, s := range c.servers {
		if s != leader {
			f = s
			break
		}
	}
	path := filepath.Join(f.dataDir, "raft", "raft.db")
	f.kill()
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, f, err
	}
	before := float64(fi.Size())
	f.args = append(f.args, "-compact-raft")
	if err := f.restart(); err != nil {
		return 0, before, f, err
	}
	if _, err := c.waitLeader(ctx, nil, time.Minute); err != nil {
		return 0, before, f, err
	}
	if _, err := waitConverged(ctx, c, 2*time.Minute); err != nil {
		r.progress("%s did not catch up after the compaction: %v", f.id, err)
		return 0, before, f, nil
	}
	if fi, err = os.Stat(path); err != nil {
		return 0, before, f, err
	}
	r.progress("%s restarted with -compact-raft: raft.db %s -> %s", f.id, formatBytes(before), formatBytes(float64(fi.Size())))
	return float64(fi.Size()), before, f, nil
}

func sumRows(rows map[string]int) int {
	n := 0
	for _, v := range rows {
		n += v
	}
	return n
}

func formatList(vs []float64) string {
	out := ""
	for i, v := range vs {
		if i > 0 {
			out += " / "
		}
		out += formatBytes(v)
	}
	return out
}
