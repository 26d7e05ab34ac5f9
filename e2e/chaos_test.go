package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// The linearizability check treats each job as a register: writing is
// registering the job with a value in its meta ("v"), reading is GET of
// the job (a consistent read) and its meta value ("" when absent).

type regOp struct {
	Write bool
	Key   string
	Value string
}

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(regOp).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(regOp)
		if in.Write {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regOp)
		if in.Write {
			return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.Key, output)
	},
}

// history records operations with their invocation and response times.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// acked holds unique jobs whose registration was acknowledged, with
	// when the write was sent and when it was acknowledged.
	acked map[string][2]time.Time
}

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) ack(id string, sent time.Time) {
	h.mu.Lock()
	h.acked[id] = [2]time.Time{sent, time.Now()}
	h.mu.Unlock()
}

// firstAckAfter returns when the first write sent after t was
// acknowledged, if one was (a write in flight at t may have been
// committed by the old leader and does not count).
func (h *history) firstAckAfter(t time.Time) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var first time.Time
	for _, at := range h.acked {
		if at[0].After(t) && (first.IsZero() || at[1].Before(first)) {
			first = at[1]
		}
	}
	return first, !first.IsZero()
}

// regJob is the smallest valid job, count 0, carrying value in its meta.
func regJob(id, value string) map[string]interface{} {
	return map[string]interface{}{
		"ID":   id,
		"Meta": map[string]string{"v": value},
		"TaskGroups": []map[string]interface{}{{
			"Name": "g", "Count": 0,
			"Tasks": []map[string]interface{}{{
				"Name": "t", "Driver": "containerd",
				"Config":    map[string]string{"image": "localhost/none"},
				"Resources": map[string]int{"CPU": 10, "MemoryMB": 10},
			}},
		}},
	}
}

// notSent reports whether a request failed before reaching the server
// (so it certainly had no effect).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// putJob registers a job through agent a; ok is an acknowledgement, and
// unknown is a failure after the request was sent.
func putJob(a *agent, job map[string]interface{}) (ok, unknown bool) {
	body, _ := json.Marshal(map[string]interface{}{"Job": job})
	req, _ := http.NewRequest(http.MethodPut, a.url()+"/v1/jobs", bytes.NewReader(body))
	resp, err := a.httpc.Do(req)
	if err != nil {
		return false, !notSent(err)
	}
	defer resp.Body.Close()
	var sink bytes.Buffer
	_, _ = sink.ReadFrom(resp.Body)
	return resp.StatusCode == 200, resp.StatusCode != 200 && resp.StatusCode != 400
}

// getValue reads a job's meta value with a consistent read.
func getValue(a *agent, id string) (string, bool) {
	resp, err := a.httpc.Get(a.url() + "/v1/job/" + url.PathEscape(id))
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case 404:
		return "", true
	case 200:
		var job api.Job
		if json.NewDecoder(resp.Body).Decode(&job) != nil {
			return "", false
		}
		return job.Meta["v"], true
	}
	return "", false
}

// load runs writers and readers against the running servers until stop
// closes.
func load(h *haCluster, hist *history, stop <-chan struct{}, wg *sync.WaitGroup) {
	keys := []string{"reg-0", "reg-1", "reg-2"}
	pick := func(i int) (*agent, bool) {
		alive := h.alive()
		if len(alive) == 0 {
			return nil, false
		}
		return alive[i%len(alive)], true
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// Writers: alternate a contended register key with a unique job.
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(client int) {
			defer wg.Done()
			for n := 0; !stopped(); n++ {
				host, ok := pick(n + client)
				if !ok {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if n%2 == 0 {
					key := keys[(n/2+client)%len(keys)]
					val := fmt.Sprintf("w%d-%d", client, n)
					call := hist.now()
					acked, unknown := putJob(host, regJob(key, val))
					ret := hist.now()
					switch {
					case acked:
						hist.add(porcupine.Operation{ClientId: client, Input: regOp{Write: true, Key: key, Value: val}, Call: call, Output: "", Return: ret})
					case unknown:
						// It may have taken effect at any time after call.
						hist.add(porcupine.Operation{ClientId: client, Input: regOp{Write: true, Key: key, Value: val}, Call: call, Output: "", Return: math.MaxInt64})
					}
				} else {
					id := fmt.Sprintf("uniq-%d-%d", client, n)
					sent := time.Now()
					if acked, _ := putJob(host, regJob(id, "x")); acked {
						hist.ack(id, sent)
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}(w)
	}
	// Readers.
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func(client int) {
			defer wg.Done()
			for n := 0; !stopped(); n++ {
				host, ok := pick(n + client)
				if !ok {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				key := keys[n%len(keys)]
				call := hist.now()
				val, ok := getValue(host, key)
				ret := hist.now()
				if ok {
					hist.add(porcupine.Operation{ClientId: client, Input: regOp{Key: key}, Call: call, Output: val, Return: ret})
				}
				time.Sleep(10 * time.Millisecond)
			}
		}(r + 2)
	}
}

// taskPIDs returns the PID of every task in a containerd namespace.
func taskPIDs(t *testing.T, c *cluster, ns string) map[string]uint32 {
	t.Helper()
	cl, err := c.ctrd.Client(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := nsContext(ns)
	containers, err := cl.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, cont := range containers {
		task, err := cont.Task(ctx, nil)
		if err != nil {
			continue
		}
		st, err := task.Status(ctx)
		if err == nil && st.Status == "running" {
			out[cont.ID()] = task.Pid()
		}
	}
	return out
}

// checkCapacity fails when a node's live allocations exceed its
// resources.
func checkCapacity(t *testing.T, via *agent) {
	t.Helper()
	nodes, _, err := via.api.Nodes().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		allocs, _, err := via.api.Nodes().Allocations(n.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		var cpu, mem int64
		for _, a := range allocs {
			if a.DesiredStatus != "run" || a.ClientStatus == "complete" || a.ClientStatus == "failed" || a.ClientStatus == "lost" {
				continue
			}
			for _, tr := range a.AllocatedResources.Tasks {
				cpu += tr.Cpu.CpuShares
				mem += tr.Memory.MemoryMB
			}
		}
		if cpu > n.NodeResources.Cpu.CpuShares || mem > n.NodeResources.Memory.MemoryMB {
			t.Fatalf("node %s over capacity: %d/%d MHz, %d/%d MB", n.Name, cpu, n.NodeResources.Cpu.CpuShares, mem, n.NodeResources.Memory.MemoryMB)
		}
	}
}

// failoverTimes are measured per leader kill.
type failoverTimes struct {
	newLeader, firstWrite time.Duration
}

// killLeaders kills the leader n times under load and returns the
// timings. After each kill it waits for a new leader and an accepted
// write, then restarts the killed server on its data dir and waits
// until it has caught up.
func killLeaders(t testing.TB, h *haCluster, hist *history, n int) []failoverTimes {
	var out []failoverTimes
	for i := 0; i < n; i++ {
		leader := h.waitLeader(nil)
		killedAt := time.Now()
		leader.kill()
		next := h.waitLeader(leader)
		newLeader := time.Since(killedAt)
		var firstWrite time.Duration
		if err := testutil.Poll(30*time.Second, func() (bool, error) {
			at, ok := hist.firstAckAfter(killedAt)
			firstWrite = at.Sub(killedAt)
			return ok, fmt.Errorf("no write accepted since the kill")
		}); err != nil {
			t.Fatalf("kill %d: %v", i+1, err)
		}
		out = append(out, failoverTimes{newLeader, firstWrite})
		t.Logf("kill %d: %s was leader; %s leads after %s, first accepted write after %s", i+1, leader.name, next.name, newLeader.Round(time.Millisecond), firstWrite.Round(time.Millisecond))

		leader.restart()
		if err := testutil.Poll(60*time.Second, func() (bool, error) {
			want, err := next.api.Operator().StateHash()
			if err != nil {
				return false, err
			}
			got, err := leader.api.Operator().StateHash()
			if err != nil {
				return false, err
			}
			return got.Index >= want.Index, fmt.Errorf("restarted %s at index %d, leader at %d", leader.name, got.Index, want.Index)
		}); err != nil {
			t.Fatalf("kill %d: the restarted server did not catch up: %v", i+1, err)
		}
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	idx := int(math.Ceil(p*float64(len(s)))) - 1
	if idx < 0 {
		idx = 0
	}
	return s[idx]
}

// TestHA_LeaderKillChaos kills the leader with SIGKILL ten times while
// writers register jobs and readers read them through the surviving
// servers. At the end: every acknowledged job is on all three servers,
// their state stores are identical, the containers placed before the
// chaos run with the same PIDs, no node is over capacity, and the
// recorded history is linearizable.
func TestHA_LeaderKillChaos(t *testing.T) {
	h := startServers(t, 3, nil, nil)
	c1 := h.addClient("c1")
	c2 := h.addClient("c2")
	leaderKillChaos(t, h, c1, c2, 10)
}

// leaderKillChaos runs a 4-instance job on the clients c1 and c2, then
// kills the leader `kills` times under load and checks the invariants
// (see TestHA_LeaderKillChaos).
func leaderKillChaos(t *testing.T, h *haCluster, c1, c2 *agent, kills int) {
	// Submitted through a server: with mTLS on, a client agent's
	// certificate may not register jobs.
	if res := h.servers[0].cli("job", "run", writeFile(t, "pinned.hcl", countJob("pinned", h.ctrd.image, 4, 16))); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	before := map[string]uint32{}
	for _, c := range []*agent{c1, c2} {
		for id, pid := range taskPIDs(t, h.ctrd, h.clientNamespace(c)) {
			before[id] = pid
		}
	}
	if len(before) != 4 {
		t.Fatalf("%d running tasks before the chaos, want 4", len(before))
	}

	hist := &history{start: time.Now(), acked: map[string][2]time.Time{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	load(h, hist, stop, &wg)
	times := killLeaders(t, h, hist, kills)
	close(stop)
	wg.Wait()

	var newLeader, firstWrite []time.Duration
	for _, ft := range times {
		newLeader = append(newLeader, ft.newLeader)
		firstWrite = append(firstWrite, ft.firstWrite)
	}
	t.Logf("failover over %d kills: new leader p50 %s max %s; first accepted write p50 %s max %s",
		len(times), percentile(newLeader, 0.5), percentile(newLeader, 1), percentile(firstWrite, 0.5), percentile(firstWrite, 1))

	// Every server has the same state...
	hashes := h.waitConverged(60 * time.Second)
	t.Logf("all %d servers identical at index %d", len(hashes), hashes[0].Index)
	// ...holding every acknowledged job.
	hist.mu.Lock()
	acked := make([]string, 0, len(hist.acked))
	for id := range hist.acked {
		acked = append(acked, id)
	}
	hist.mu.Unlock()
	if len(acked) < 20 {
		t.Fatalf("only %d writes were acknowledged; the load did not run", len(acked))
	}
	for _, s := range h.servers {
		jobs, _, err := s.api.Jobs().List(&api.QueryOptions{AllowStale: true})
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, j := range jobs {
			have[j.ID] = true
		}
		for _, id := range acked {
			if !have[id] {
				t.Fatalf("acknowledged job %s is missing on %s", id, s.name)
			}
		}
	}
	// The containers placed before the chaos were never touched.
	after := map[string]uint32{}
	for _, c := range []*agent{c1, c2} {
		for id, pid := range taskPIDs(t, h.ctrd, h.clientNamespace(c)) {
			after[id] = pid
		}
	}
	for id, pid := range before {
		if after[id] != pid {
			t.Fatalf("task %s: PID %d before the chaos, %d after", id, pid, after[id])
		}
	}
	checkCapacity(t, h.servers[0])

	hist.mu.Lock()
	ops := append([]porcupine.Operation(nil), hist.ops...)
	hist.mu.Unlock()
	res := porcupine.CheckOperationsTimeout(registerModel, ops, 2*time.Minute)
	if res != porcupine.Ok {
		explainHistory(t, ops)
		t.Fatalf("history of %d operations is not linearizable (result %v)", len(ops), res)
	}
	t.Logf("%d operations linearizable; %d unique jobs acknowledged", len(ops), len(acked))
}

// explainHistory logs, for each key whose history is not linearizable,
// its operations in invocation order.
func explainHistory(t *testing.T, ops []porcupine.Operation) {
	for _, part := range registerModel.Partition(ops) {
		if porcupine.CheckOperationsTimeout(registerModel, part, time.Minute) == porcupine.Ok {
			continue
		}
		sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
		var b bytes.Buffer
		for _, op := range part {
			ret := "never"
			if op.Return != math.MaxInt64 {
				ret = time.Duration(op.Return).String()
			}
			fmt.Fprintf(&b, "  client %d  %-10s .. %-10s  %s\n", op.ClientId, time.Duration(op.Call), ret, registerModel.DescribeOperation(op.Input, op.Output))
		}
		t.Logf("key %s is not linearizable:\n%s", part[0].Input.(regOp).Key, b.String())
	}
}
