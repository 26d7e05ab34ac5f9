package gc

import (
	"errors"
	"fmt"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// State is the read-only view the collector decides from.
// *state.StateStore and *state.Snapshot satisfy it. The collector never
// modifies what it returns.
type State interface {
	Jobs(ws memdb.WatchSet) ([]*structs.Job, error)
	// JobVersionsByID returns a job's kept versions, newest first.
	JobVersionsByID(ws memdb.WatchSet, namespace, id string) ([]*structs.Job, error)
	Evals(ws memdb.WatchSet) ([]*structs.Evaluation, error)
	Allocs(ws memdb.WatchSet) ([]*structs.Allocation, error)
	Deployments(ws memdb.WatchSet) ([]*structs.Deployment, error)
	Nodes(ws memdb.WatchSet) ([]*structs.Node, error)
	AllocsByNode(ws memdb.WatchSet, nodeID string) ([]*structs.Allocation, error)
}

// Raft commits the collector's batches. The server implements it over
// its Raft log. CollectBatch is called on the goroutine of a pass (the
// loop's, or the one of a forced collection); it writes one
// GCBatchRequestType entry and returns the FSM's result and the
// entry's index, or an error when the entry was not committed (this
// server lost leadership, Raft timed out); the pass then stops, and the
// next one starts again from the state as it is.
type Raft interface {
	CollectBatch(req *structs.GCBatchRequest) (*structs.GCBatchResult, uint64, error)
}

// Settings are the collector's thresholds and caps (the agent's
// server { gc { ... } } block). A threshold is how long an object must
// have been finished (by its last modification) before it goes.
type Settings struct {
	// Interval is the time between passes.
	Interval time.Duration
	// EvalThreshold applies to terminal evaluations, and takes the
	// allocations they placed when those are collectable too;
	// BatchEvalThreshold to those of batch jobs, whose allocations are
	// their results.
	EvalThreshold      time.Duration
	BatchEvalThreshold time.Duration
	// DeploymentThreshold applies to finished deployments (a live job
	// keeps its newest one whatever its age).
	DeploymentThreshold time.Duration
	// JobThreshold applies to stopped or dead jobs, which go with
	// everything they have.
	JobThreshold time.Duration
	// NodeThreshold applies to down nodes without running allocations.
	NodeThreshold time.Duration
	// JobVersions is how many versions of a job are kept (the current
	// one always is), at most MaxJobVersions.
	JobVersions int
	// TerminalAllocs is how many finished allocations a job keeps
	// whatever their age; older collectable ones go at the next pass.
	TerminalAllocs int
}

// Defaults, Nomad's: terminal evaluations 1 h (batch 24 h),
// deployments 1 h, dead jobs 4 h, down nodes 24 h; a pass every 5
// minutes.
const (
	DefaultInterval            = 5 * time.Minute
	DefaultEvalThreshold       = time.Hour
	DefaultBatchEvalThreshold  = 24 * time.Hour
	DefaultDeploymentThreshold = time.Hour
	DefaultJobThreshold        = 4 * time.Hour
	DefaultNodeThreshold       = 24 * time.Hour
	// MaxJobVersions is the state store's own bound on the versions it
	// keeps of a job (state.JobVersionsKept, applied at every
	// registration on every server); the collector can only keep fewer.
	MaxJobVersions = 6
	// DefaultTerminalAllocs is the default cap on a job's finished
	// allocations.
	DefaultTerminalAllocs = 50
	// MaxTerminalAllocs bounds the cap: the job's rows are read by
	// every evaluation of the job.
	MaxTerminalAllocs = 10_000
)

// DefaultSettings returns the defaults.
func DefaultSettings() Settings {
	return Settings{
		Interval:            DefaultInterval,
		EvalThreshold:       DefaultEvalThreshold,
		BatchEvalThreshold:  DefaultBatchEvalThreshold,
		DeploymentThreshold: DefaultDeploymentThreshold,
		JobThreshold:        DefaultJobThreshold,
		NodeThreshold:       DefaultNodeThreshold,
		JobVersions:         MaxJobVersions,
		TerminalAllocs:      DefaultTerminalAllocs,
	}
}

// Validate refuses settings out of range, naming the agent setting.
func (s Settings) Validate() error {
	for _, d := range []struct {
		name string
		val  time.Duration
	}{
		{"interval", s.Interval}, {"eval_gc_threshold", s.EvalThreshold}, {"batch_eval_gc_threshold", s.BatchEvalThreshold},
		{"deployment_gc_threshold", s.DeploymentThreshold}, {"job_gc_threshold", s.JobThreshold}, {"node_gc_threshold", s.NodeThreshold},
	} {
		if d.val <= 0 {
			return fmt.Errorf("server gc %s = %s: want a positive duration like \"1h\"", d.name, d.val)
		}
	}
	if s.Interval < time.Second {
		return fmt.Errorf("server gc interval = %s: want at least 1s (every pass reads the whole state)", s.Interval)
	}
	if s.JobVersions < 1 || s.JobVersions > MaxJobVersions {
		return fmt.Errorf("server gc job_versions = %d: want 1 to %d (the state store keeps at most %d versions of a job)", s.JobVersions, MaxJobVersions, MaxJobVersions)
	}
	if s.TerminalAllocs < 1 || s.TerminalAllocs > MaxTerminalAllocs {
		return fmt.Errorf("server gc terminal_allocs = %d: want 1 to %d", s.TerminalAllocs, MaxTerminalAllocs)
	}
	return nil
}

// Config configures a Collector.
type Config struct {
	// State returns the current view; it is called once per pass, so a
	// store replaced by a snapshot restore is seen at the next pass.
	State func() State
	Raft  Raft
	// Logger logs what passes delete; nil logs nothing.
	Logger hclog.Logger
	// Now is the clock thresholds are measured with; nil is time.Now.
	Now func() time.Time
	// Settings are the thresholds and caps; zero fields take the
	// defaults.
	Settings Settings
	// MaxBatch bounds the objects of one entry; zero is
	// structs.MaxGCBatchObjects (tests use less).
	MaxBatch int
}

// Collector is the leader's garbage collector.
type Collector struct {
	cfg Config
	// passLock serializes passes: the loop's and forced ones never
	// interleave their batches.
	passLock sync.Mutex
}

// New returns a collector; Run drives its periodic passes.
func New(cfg Config) *Collector {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := DefaultSettings()
	s := &cfg.Settings
	for _, f := range []struct {
		dst *time.Duration
		def time.Duration
	}{
		{&s.Interval, def.Interval}, {&s.EvalThreshold, def.EvalThreshold}, {&s.BatchEvalThreshold, def.BatchEvalThreshold},
		{&s.DeploymentThreshold, def.DeploymentThreshold}, {&s.JobThreshold, def.JobThreshold}, {&s.NodeThreshold, def.NodeThreshold},
	} {
		if *f.dst <= 0 {
			*f.dst = f.def
		}
	}
	if s.JobVersions <= 0 || s.JobVersions > MaxJobVersions {
		s.JobVersions = def.JobVersions
	}
	if s.TerminalAllocs <= 0 {
		s.TerminalAllocs = def.TerminalAllocs
	}
	if cfg.MaxBatch <= 0 || cfg.MaxBatch > structs.MaxGCBatchObjects {
		cfg.MaxBatch = structs.MaxGCBatchObjects
	}
	return &Collector{cfg: cfg}
}

// Settings returns the settings in effect (defaults filled in).
func (c *Collector) Settings() Settings { return c.cfg.Settings }

// Run makes a pass every Interval until stopCh closes. The leader runs
// it while it leads.
func (c *Collector) Run(stopCh <-chan struct{}) {
	ticker := time.NewTicker(c.cfg.Settings.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-stopCh:
			return
		case <-ticker.C:
		}
		resp, err := c.Collect(false, false)
		if err != nil {
			c.cfg.Logger.Warn("garbage collection pass failed", "error", err)
			continue
		}
		if resp.Chosen.Total() > 0 {
			c.cfg.Logger.Info("garbage collected", summary(resp)...)
		}
	}
}

// ErrNoState is returned by Collect on a collector configured without
// a state view.
var ErrNoState = errors.New("gc: the collector has no state view")

// Collect makes one pass now and reports it. With force every age
// threshold is zero: whatever is finished goes (the caps and the
// rules for live jobs still hold). With dryRun nothing is written: the
// report lists what would go. A pass that fails partway reports what
// it did before the error.
func (c *Collector) Collect(force, dryRun bool) (*structs.SystemGCResponse, error) {
	c.passLock.Lock()
	defer c.passLock.Unlock()
	if c.cfg.State == nil {
		return nil, ErrNoState
	}
	th := c.cfg.Settings
	if force {
		th.EvalThreshold, th.BatchEvalThreshold, th.DeploymentThreshold, th.JobThreshold, th.NodeThreshold = 0, 0, 0, 0, 0
	}
	ch, err := choose(c.cfg.State(), c.cfg.Now(), th)
	if err != nil {
		return nil, err
	}
	resp := ch.report()
	resp.DryRun = dryRun
	if dryRun {
		return resp, nil
	}
	for _, b := range split(ch, c.cfg.MaxBatch) {
		res, index, err := c.cfg.Raft.CollectBatch(b)
		if err != nil {
			if ce := structs.ParseCodedError(err); ce != nil {
				// Keep the code in front, where it crosses RPC and
				// picks the HTTP status (a refusal is not a 500).
				return resp, structs.NewError(ce.Code, fmt.Sprintf("garbage collection entry %d: %s", resp.Entries+1, ce.Message))
			}
			return resp, fmt.Errorf("garbage collection entry %d: %w", resp.Entries+1, err)
		}
		resp.Entries++
		resp.Index = index
		if res != nil {
			resp.Deleted.Add(res.Deleted)
			resp.Skipped.Add(res.Skipped)
		}
	}
	return resp, nil
}

// summary is a report as log key/value pairs.
func summary(r *structs.SystemGCResponse) []interface{} {
	return []interface{}{
		"jobs", r.Deleted.Jobs, "job_versions", r.Deleted.JobVersions, "evals", r.Deleted.Evals,
		"allocs", r.Deleted.Allocs, "deployments", r.Deleted.Deployments, "nodes", r.Deleted.Nodes,
		"skipped", r.Skipped.Total(), "entries", r.Entries,
	}
}
