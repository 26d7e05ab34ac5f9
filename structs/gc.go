package structs

import "fmt"

// Garbage collection.
//
// The leader's collector (server/gc) decides what is old enough to go,
// by the clock and its thresholds, and writes what it chose as
// GCBatchRequest entries. Every server's FSM then deletes what an
// entry names, but only what is still collectable when the entry is
// applied: the checks below look at the object and the state alone
// (no clock), so every server deletes exactly the same rows, and an
// object that changed between the leader's decision and the commit (a
// job registered again, an allocation that a client restarted) is
// skipped, not deleted.

// MaxGCBatchObjects bounds the objects one GCBatchRequest names (jobs,
// their versions, evaluations, allocations, deployments and nodes
// together). The FSM applies an entry in one state store transaction,
// and a transaction that changes more than a few thousand index nodes
// costs more than its writes (see server.maxAllocUpdatesPerEntry); the
// FSM refuses a larger entry.
const MaxGCBatchObjects = 512

// GCBatchRequest is a GCBatchRequestType entry: rows the leader's
// garbage collector chose to delete, grouped by job, and down nodes.
type GCBatchRequest struct {
	Jobs  []*GCJobRequest
	Nodes []string
}

// GCJobRequest names rows of one job (Namespace, JobID) to delete. The
// job need not exist any more: the rows of a purged job are collected
// too.
type GCJobRequest struct {
	Namespace string
	JobID     string
	// Purge collects the job: when it is done (GCJobDone) the rows
	// named here are deleted under the rules for a job that goes (its
	// allocations are not live), and the job itself, with all its
	// versions, once nothing else of it is left. A job with more rows
	// than fit in one entry is purged over several entries, each with
	// Purge set; the last one deletes the job. A purge of a job that is
	// gone or not done is skipped (its rows are then checked as those
	// of a live job).
	Purge       bool
	Evals       []string
	Allocs      []string
	Deployments []string
	// Versions are old versions of the job to delete; the current
	// version never is.
	Versions []uint64
}

// Objects counts the rows the request names.
func (r *GCBatchRequest) Objects() int {
	n := len(r.Nodes)
	for _, j := range r.Jobs {
		if j == nil {
			continue
		}
		n += j.objects()
	}
	return n
}

func (j *GCJobRequest) objects() int {
	n := len(j.Evals) + len(j.Allocs) + len(j.Deployments) + len(j.Versions)
	if j.Purge {
		n++
	}
	return n
}

// CheckShape refuses a request no leader writes: nothing named, more
// than MaxGCBatchObjects, a null or unnamed job group, an empty ID. It
// looks at the request alone.
func (r *GCBatchRequest) CheckShape() error {
	n := r.Objects()
	if n == 0 {
		return fmt.Errorf("the request names nothing to delete")
	}
	if n > MaxGCBatchObjects {
		return fmt.Errorf("the request names %d objects; at most %d fit in one entry", n, MaxGCBatchObjects)
	}
	for i, j := range r.Jobs {
		if j == nil {
			return fmt.Errorf("Jobs[%d] is null", i)
		}
		if j.JobID == "" {
			return fmt.Errorf("Jobs[%d].JobID is empty", i)
		}
		for _, l := range []struct {
			field string
			ids   []string
		}{{"Evals", j.Evals}, {"Allocs", j.Allocs}, {"Deployments", j.Deployments}} {
			for k, id := range l.ids {
				if id == "" {
					return fmt.Errorf("Jobs[%d].%s[%d] is empty", i, l.field, k)
				}
			}
		}
	}
	for i, id := range r.Nodes {
		if id == "" {
			return fmt.Errorf("Nodes[%d] is empty", i)
		}
	}
	return nil
}

// GCCounts counts rows by kind.
type GCCounts struct {
	Jobs        int
	JobVersions int
	Evals       int
	Allocs      int
	Deployments int
	Nodes       int
}

// Add adds o to c.
func (c *GCCounts) Add(o GCCounts) {
	c.Jobs += o.Jobs
	c.JobVersions += o.JobVersions
	c.Evals += o.Evals
	c.Allocs += o.Allocs
	c.Deployments += o.Deployments
	c.Nodes += o.Nodes
}

// Total is the sum over every kind.
func (c GCCounts) Total() int {
	return c.Jobs + c.JobVersions + c.Evals + c.Allocs + c.Deployments + c.Nodes
}

// GCBatchResult is the FSM's answer to a GCBatchRequest: what it
// deleted, and what it skipped because it was gone already or no
// longer collectable.
type GCBatchResult struct {
	Deleted GCCounts
	Skipped GCCounts
}

// AllocCollectable reports whether the garbage collector may delete
// allocation a. Its client must be done with it (complete, failed or
// lost: the tasks are gone), and nothing may still read it to decide
// what to run: the scheduler asked it to stop, a newer allocation
// replaced it, or its job is not live (jobLive false: the job is gone,
// stopped, or being collected with it). A failed or completed
// allocation of a live job that nothing replaced is kept: the
// scheduler counts it (a batch job's finished work, a failure waiting
// to be rescheduled within its policy), and deleting it would make the
// scheduler place it again.
func AllocCollectable(a *Allocation, jobLive bool) bool {
	if a == nil || !a.ClientTerminalStatus() {
		return false
	}
	return !jobLive || a.ServerTerminalStatus() || a.NextAllocation != ""
}

// GCJobDone reports whether job j, with these evaluations, allocations
// and deployments, is done: stopped or dead, every evaluation
// terminal, every allocation finished on its client, no deployment in
// progress. Only a done job is collected.
func GCJobDone(j *Job, evals []*Evaluation, allocs []*Allocation, deployments []*Deployment) bool {
	if j == nil || !(j.Stop || j.Status == JobStatusDead) {
		return false
	}
	for _, e := range evals {
		if !e.TerminalStatus() {
			return false
		}
	}
	for _, a := range allocs {
		if !a.ClientTerminalStatus() {
			return false
		}
	}
	for _, d := range deployments {
		if d.Active() {
			return false
		}
	}
	return true
}

// NodeCollectable reports whether node n, with these allocations on
// it, may be deleted: it is down and none of its allocations runs.
func NodeCollectable(n *Node, allocs []*Allocation) bool {
	if n == nil || n.Status != NodeStatusDown {
		return false
	}
	for _, a := range allocs {
		if !a.ClientTerminalStatus() {
			return false
		}
	}
	return true
}

// MaxGCReportIDs bounds the IDs of each kind a garbage collection
// report lists; the counts are always complete.
const MaxGCReportIDs = 10_000

// SystemGCRequest asks the leader for a garbage collection now, with
// every age threshold at zero (the caps stay as configured). DryRun
// only reports what would be deleted.
type SystemGCRequest struct {
	DryRun bool
	WriteRequest
}

// SystemGCResponse reports a garbage collection.
type SystemGCResponse struct {
	DryRun bool
	// Chosen counts what the collector chose to delete (what a dry run
	// would delete); Deleted what the servers deleted; Skipped what they
	// left because it was no longer collectable when its entry applied.
	Chosen  GCCounts
	Deleted GCCounts
	Skipped GCCounts
	// Objects lists what was chosen by kind, at most MaxGCReportIDs of
	// each; Truncated says some were left out of the lists.
	Objects   GCObjects
	Truncated bool
	// Entries is the number of Raft entries written.
	Entries int
	WriteMeta
}

// GCObjects lists objects by kind. Jobs are "namespace/id", versions
// "namespace/id@version".
type GCObjects struct {
	Jobs        []string
	JobVersions []string
	Evals       []string
	Allocs      []string
	Deployments []string
	Nodes       []string
}
