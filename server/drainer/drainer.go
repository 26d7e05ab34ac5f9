package drainer

import (
	"sort"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// State is the read-only view the drainer decides from. *state.StateStore
// and *state.Snapshot satisfy it. The drainer never modifies what it
// returns.
type State interface {
	Nodes(ws memdb.WatchSet) ([]*structs.Node, error)
	AllocsByNode(ws memdb.WatchSet, nodeID string) ([]*structs.Allocation, error)
	// AllocByID returns nil, nil for an unknown ID.
	AllocByID(ws memdb.WatchSet, id string) (*structs.Allocation, error)
}

// Raft commits the drainer's decisions. The server implements it over
// its Raft log. Both methods are called on the drainer's goroutine and
// return an error when the write was not committed; the drainer then
// tries again on its next pass, from the state as it is then.
type Raft interface {
	// MigrateAllocs marks allocs (all on nodeID, none terminal) to
	// migrate, with one evaluation per job triggered by the node drain,
	// in one write.
	MigrateAllocs(nodeID string, allocs []*structs.Allocation) error
	// CompleteDrain ends the node's drain; the node stays ineligible.
	CompleteDrain(nodeID string) error
}

// DefaultInterval is how often the leader advances drains.
const DefaultInterval = 500 * time.Millisecond

// Config configures a Drainer.
type Config struct {
	// State returns the current view; it is called once per pass, so a
	// store replaced by a snapshot restore is seen at the next pass.
	State func() State
	Raft  Raft
	// Logger logs the drainer's decisions; nil logs nothing.
	Logger hclog.Logger
	// Now is the clock drain deadlines are compared with; nil is
	// time.Now.
	Now func() time.Time
	// Interval is the time between passes; zero is DefaultInterval.
	Interval time.Duration
}

// Drainer advances every node drain, on the leader.
type Drainer struct {
	cfg Config
}

// New returns a drainer; Run drives it.
func New(cfg Config) *Drainer {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	return &Drainer{cfg: cfg}
}

// Run makes a pass every Interval until stopCh closes. The leader runs
// it while it leads.
func (d *Drainer) Run(stopCh <-chan struct{}) {
	ticker := time.NewTicker(d.cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-stopCh:
			return
		case <-ticker.C:
		}
		d.pass()
	}
}

// pass advances the drain of every draining node once.
func (d *Drainer) pass() {
	st := d.cfg.State()
	nodes, err := st.Nodes(nil)
	if err != nil {
		d.cfg.Logger.Error("drainer cannot read nodes", "error", err)
		return
	}
	for _, n := range nodes {
		if n.DrainStrategy == nil {
			continue
		}
		if err := d.drainNode(st, n); err != nil {
			d.cfg.Logger.Warn("drain step failed", "node_id", n.ID, "error", err)
		}
	}
}

// groupKey names a task group of a job; jobs are named by namespace and
// ID, as IDs repeat across namespaces.
type groupKey struct {
	job   structs.NamespacedID
	group string
}

// drainNode makes one step of a node's drain. A draining node is
// already ineligible; here its allocations are marked to migrate, a few
// at a time: per group, at most the group's migrate max_parallel are in
// flight (marked and not yet stopped, or replaced by an allocation that
// does not run yet). System allocations go last, unless the drain
// ignores them. At the deadline everything left is marked at once. A
// node with nothing left to move ends its drain and stays ineligible.
func (d *Drainer) drainNode(st State, n *structs.Node) error {
	allocs, err := st.AllocsByNode(nil, n.ID)
	if err != nil {
		return err
	}
	ds := n.DrainStrategy
	force := ds.ForceDeadline > 0 && d.cfg.Now().UnixNano() >= ds.ForceDeadline

	var other, system []*structs.Allocation
	inFlight := map[groupKey]int{}
	for _, a := range allocs {
		key := groupKey{a.JobKey(), a.TaskGroup}
		if a.DesiredTransition.Migrate {
			if !a.TerminalStatus() {
				inFlight[key]++
			} else if a.NextAllocation != "" {
				if next, _ := st.AllocByID(nil, a.NextAllocation); next != nil && next.ClientStatus == structs.AllocClientStatusPending {
					inFlight[key]++
				}
			}
			continue
		}
		if a.TerminalStatus() {
			continue
		}
		if a.Job != nil && a.Job.Type == structs.JobTypeSystem {
			system = append(system, a)
		} else {
			other = append(other, a)
		}
	}

	var mark []*structs.Allocation
	if force {
		mark = append(mark, other...)
		if !ds.IgnoreSystemJobs {
			mark = append(mark, system...)
		}
	} else {
		// By name, so the same allocations are chosen whichever order
		// the state returns them in.
		sort.Slice(other, func(i, j int) bool { return other[i].Name < other[j].Name })
		for _, a := range other {
			key := groupKey{a.JobKey(), a.TaskGroup}
			limit := 1
			if a.Job != nil {
				if tg := a.Job.LookupTaskGroup(a.TaskGroup); tg != nil {
					limit = tg.MigrateMaxParallel()
				}
			}
			if inFlight[key] < limit {
				inFlight[key]++
				mark = append(mark, a)
			}
		}
		if len(other) == 0 && len(inFlight) == 0 && !ds.IgnoreSystemJobs {
			mark = append(mark, system...)
		}
	}

	if len(mark) > 0 {
		d.cfg.Logger.Info("draining: migrating allocations", "node_id", n.ID, "count", len(mark), "forced", force)
		return d.cfg.Raft.MigrateAllocs(n.ID, mark)
	}

	remaining := len(other) + len(inFlight)
	if !ds.IgnoreSystemJobs {
		remaining += len(system)
	}
	if remaining > 0 {
		return nil
	}
	d.cfg.Logger.Info("drain complete; the node stays ineligible", "node_id", n.ID)
	return d.cfg.Raft.CompleteDrain(n.ID)
}
