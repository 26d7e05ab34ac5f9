package drainer

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// fakeState is a State over maps the tests change between passes.
type fakeState struct {
	nodes  []*structs.Node
	allocs map[string]*structs.Allocation
}

func (s *fakeState) Nodes(memdb.WatchSet) ([]*structs.Node, error) { return s.nodes, nil }

func (s *fakeState) AllocsByNode(_ memdb.WatchSet, nodeID string) ([]*structs.Allocation, error) {
	var out []*structs.Allocation
	for _, a := range s.allocs {
		if a.NodeID == nodeID {
			out = append(out, a)
		}
	}
	// Map order: the drainer must not depend on the state's order.
	return out, nil
}

func (s *fakeState) AllocByID(_ memdb.WatchSet, id string) (*structs.Allocation, error) {
	return s.allocs[id], nil
}

// fakeRaft records the drainer's writes and, like the FSM, applies the
// migrate marks to the state.
type fakeRaft struct {
	st        *fakeState
	migrated  [][]string // alloc names per MigrateAllocs call
	completed []string
	fail      error
}

func (r *fakeRaft) MigrateAllocs(nodeID string, allocs []*structs.Allocation) error {
	if r.fail != nil {
		return r.fail
	}
	var names []string
	for _, a := range allocs {
		if a.NodeID != nodeID {
			return fmt.Errorf("alloc %s is on node %s, not the drained %s", a.ID, a.NodeID, nodeID)
		}
		c := a.Copy()
		c.DesiredTransition.Migrate = true
		r.st.allocs[a.ID] = c
		names = append(names, a.Name)
	}
	sort.Strings(names)
	r.migrated = append(r.migrated, names)
	return nil
}

func (r *fakeRaft) CompleteDrain(nodeID string) error {
	if r.fail != nil {
		return r.fail
	}
	r.completed = append(r.completed, nodeID)
	return nil
}

// lastMigrated returns the names the last pass marked, "" for none.
func (r *fakeRaft) lastMigrated(before int) string {
	if len(r.migrated) == before {
		return ""
	}
	return fmt.Sprint(r.migrated[len(r.migrated)-1])
}

var now = time.Unix(1700000000, 0)

// drainingNode returns a node draining since now.
func drainingNode(ds *structs.DrainStrategy) *structs.Node {
	n := mock.Node()
	n.SchedulingEligibility = structs.NodeSchedulingIneligible
	ds.StartedAt = now.UnixNano()
	n.DrainStrategy = ds
	return n
}

// groupJob returns a service job "<name>" whose group migrates
// maxParallel at a time.
func groupJob(name string, maxParallel int) *structs.Job {
	j := mock.Job()
	j.ID = name
	j.TaskGroups[0].Migrate = &structs.MigrateStrategy{MaxParallel: maxParallel}
	return j
}

func systemJob(name string) *structs.Job {
	j := mock.Job()
	j.ID = name
	j.Type = structs.JobTypeSystem
	return j
}

// place puts count allocations of job on node.
func place(st *fakeState, job *structs.Job, node *structs.Node, count int) []*structs.Allocation {
	var out []*structs.Allocation
	for i := 0; i < count; i++ {
		a := mock.Alloc(job, node, i)
		st.allocs[a.ID] = a
		out = append(out, a)
	}
	return out
}

func newTestDrainer(nodes ...*structs.Node) (*Drainer, *fakeState, *fakeRaft) {
	st := &fakeState{nodes: nodes, allocs: map[string]*structs.Allocation{}}
	raft := &fakeRaft{st: st}
	d := New(Config{State: func() State { return st }, Raft: raft, Now: func() time.Time { return now }})
	return d, st, raft
}

// replace stops a migrating allocation and places its replacement on
// another node with the given client status, as the scheduler and the
// clients would.
func replace(st *fakeState, a *structs.Allocation, elsewhere *structs.Node, status string) *structs.Allocation {
	a = st.allocs[a.ID].Copy()
	next := mock.Alloc(a.Job, elsewhere, 0)
	next.Name = a.Name
	next.ClientStatus = status
	st.allocs[next.ID] = next
	a.DesiredStatus = structs.AllocDesiredStatusStop
	a.ClientStatus = structs.AllocClientStatusComplete
	a.NextAllocation = next.ID
	st.allocs[a.ID] = a
	return next
}

func TestDrainer_MigratesAtMostMaxParallelPerGroup(t *testing.T) {
	node := drainingNode(&structs.DrainStrategy{})
	other := mock.Node()
	d, st, raft := newTestDrainer(node, other)
	web := place(st, groupJob("web", 2), node, 5)
	api := place(st, groupJob("api", 1), node, 3)
	name := func(a *structs.Allocation) string { return a.Name }

	d.pass()
	want := []string{name(api[0]), name(web[0]), name(web[1])}
	sort.Strings(want)
	if got := raft.lastMigrated(0); got != fmt.Sprint(want) {
		t.Fatalf("first pass migrated %s, want %v", got, want)
	}

	// Nothing more while the marked allocations still run.
	d.pass()
	if got := raft.lastMigrated(1); got != "" {
		t.Fatalf("migrated %s while max_parallel allocations were in flight", got)
	}

	// web[0] stopped, but its replacement is still pending: in flight.
	next := replace(st, web[0], other, structs.AllocClientStatusPending)
	d.pass()
	if got := raft.lastMigrated(1); got != "" {
		t.Fatalf("migrated %s while a replacement was pending", got)
	}

	// The replacement runs: one more of web may go, none of api.
	next.ClientStatus = structs.AllocClientStatusRunning
	d.pass()
	if got, want := raft.lastMigrated(1), fmt.Sprint([]string{name(web[2])}); got != want {
		t.Fatalf("after a replacement started, migrated %s, want %s", got, want)
	}
	if len(raft.completed) != 0 {
		t.Fatal("the drain completed with allocations left")
	}
}

func TestDrainer_ForceDeadlineMarksEverythingLeft(t *testing.T) {
	cases := []struct {
		name         string
		ignoreSystem bool
		want         int
	}{
		{"system allocations too", false, 4 + 1},
		{"system allocations stay", true, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			node := drainingNode(&structs.DrainStrategy{IgnoreSystemJobs: tc.ignoreSystem, ForceDeadline: now.UnixNano()})
			d, st, raft := newTestDrainer(node)
			place(st, groupJob("web", 1), node, 4)
			place(st, systemJob("logs"), node, 1)
			d.pass()
			if len(raft.migrated) != 1 || len(raft.migrated[0]) != tc.want {
				t.Fatalf("migrated %v, want %d allocations at once", raft.migrated, tc.want)
			}
		})
	}
}

func TestDrainer_BeforeTheDeadlineRespectsMaxParallel(t *testing.T) {
	node := drainingNode(&structs.DrainStrategy{ForceDeadline: now.Add(time.Nanosecond).UnixNano()})
	d, st, raft := newTestDrainer(node)
	place(st, groupJob("web", 1), node, 4)
	d.pass()
	if len(raft.migrated) != 1 || len(raft.migrated[0]) != 1 {
		t.Fatalf("migrated %v before the deadline, want one allocation", raft.migrated)
	}
}

func TestDrainer_SystemAllocationsGoLast(t *testing.T) {
	node := drainingNode(&structs.DrainStrategy{})
	other := mock.Node()
	d, st, raft := newTestDrainer(node, other)
	svc := place(st, groupJob("web", 1), node, 1)
	sys := place(st, systemJob("logs"), node, 1)

	d.pass()
	if got := raft.lastMigrated(0); got != fmt.Sprint([]string{svc[0].Name}) {
		t.Fatalf("first pass migrated %s, want only the service allocation", got)
	}
	replace(st, svc[0], other, structs.AllocClientStatusRunning)
	d.pass()
	if got := raft.lastMigrated(1); got != fmt.Sprint([]string{sys[0].Name}) {
		t.Fatalf("second pass migrated %s, want the system allocation", got)
	}
	replace(st, sys[0], other, structs.AllocClientStatusRunning)
	d.pass()
	if fmt.Sprint(raft.completed) != fmt.Sprint([]string{node.ID}) {
		t.Fatalf("drain completions %v, want the node's", raft.completed)
	}
}

func TestDrainer_EmptyNodeCompletesItsDrain(t *testing.T) {
	cases := []struct {
		name         string
		ignoreSystem bool
		systemAllocs int
		wantComplete bool
	}{
		{"no allocations", false, 0, true},
		{"only ignored system allocations", true, 1, true},
		{"system allocations still to move", false, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			node := drainingNode(&structs.DrainStrategy{IgnoreSystemJobs: tc.ignoreSystem})
			d, st, raft := newTestDrainer(node)
			place(st, systemJob("logs"), node, tc.systemAllocs)
			d.pass()
			if got := len(raft.completed) == 1; got != tc.wantComplete {
				t.Fatalf("completed %v, want %v (migrated %v)", raft.completed, tc.wantComplete, raft.migrated)
			}
		})
	}
}

func TestDrainer_LeavesNodesThatDoNotDrain(t *testing.T) {
	node := mock.Node()
	d, st, raft := newTestDrainer(node)
	place(st, groupJob("web", 1), node, 3)
	d.pass()
	if len(raft.migrated) != 0 || len(raft.completed) != 0 {
		t.Fatalf("touched a node that is not draining: %v %v", raft.migrated, raft.completed)
	}
}

func TestDrainer_FailedWriteIsRetriedNextPass(t *testing.T) {
	node := drainingNode(&structs.DrainStrategy{})
	d, st, raft := newTestDrainer(node)
	web := place(st, groupJob("web", 1), node, 2)
	raft.fail = errors.New("no cluster leader")
	d.pass()
	raft.fail = nil
	d.pass()
	if got := raft.lastMigrated(0); got != fmt.Sprint([]string{web[0].Name}) {
		t.Fatalf("after a failed write, migrated %s, want %s", got, web[0].Name)
	}
}
