package gc

import (
	"fmt"
	"sort"
	"time"

	"github.com/droverhq/drover/structs"
)

// What a pass collects, per job (namespace, ID; the job may be gone,
// purged by its user, and its rows left behind):
//
//   - A job that is done (structs.GCJobDone: stopped or dead, nothing
//     running or pending) and whose last activity (its submission, the
//     last change of any of its evaluations, allocations or
//     deployments) is older than JobThreshold goes whole: its
//     evaluations, allocations, deployments, then the job with its
//     versions.
//   - Otherwise, a terminal evaluation older than EvalThreshold
//     (BatchEvalThreshold for a batch job's) goes with the allocations
//     it placed, provided all of them are collectable
//     (structs.AllocCollectable). A job that still exists keeps its
//     newest evaluation: a job's status is derived from its
//     evaluations and allocations, and a job left with neither would
//     read as pending instead of dead.
//   - A collectable allocation whose evaluation is gone goes once it is
//     older than its evaluation would have to be.
//   - Of a job's finished allocations, the newest TerminalAllocs are
//     kept; older collectable ones go whatever their age.
//   - A finished deployment older than DeploymentThreshold goes,
//     except the newest deployment of a live job, which the scheduler
//     reads.
//   - Versions beyond the newest JobVersions go (never the current).
//
// And a down node whose status changed more than NodeThreshold ago and
// none of whose allocations runs.
//
// The FSM checks every row again when the entry applies; what changed
// meanwhile is skipped there.

// choice is what a pass chose: job groups (sorted by job key), then
// nodes (sorted by ID).
type choice struct {
	groups []*structs.GCJobRequest
	nodes  []string
	// purgedVersions are the versions that go with purged jobs, for the
	// report.
	purgedVersions []string
}

// choose decides, from one view of the state, what is old enough to
// go at now with thresholds th.
func choose(st State, now time.Time, th Settings) (*choice, error) {
	jobs, err := st.Jobs(nil)
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	evals, err := st.Evals(nil)
	if err != nil {
		return nil, fmt.Errorf("read evaluations: %w", err)
	}
	allocs, err := st.Allocs(nil)
	if err != nil {
		return nil, fmt.Errorf("read allocations: %w", err)
	}
	deployments, err := st.Deployments(nil)
	if err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	rows := make(map[structs.NamespacedID]*jobRows)
	get := func(k structs.NamespacedID) *jobRows {
		r := rows[k]
		if r == nil {
			r = &jobRows{}
			rows[k] = r
		}
		return r
	}
	for _, j := range jobs {
		get(j.Key()).job = j
	}
	for _, e := range evals {
		r := get(e.JobKey())
		r.evals = append(r.evals, e)
	}
	for _, a := range allocs {
		r := get(a.JobKey())
		r.allocs = append(r.allocs, a)
	}
	for _, d := range deployments {
		r := get(structs.NewNamespacedID(d.Namespace, d.JobID))
		r.deployments = append(r.deployments, d)
	}
	keys := make([]structs.NamespacedID, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })

	p := &picker{now: now.UnixNano(), th: th}
	ch := &choice{}
	for _, k := range keys {
		req, err := p.job(st, k, rows[k])
		if err != nil {
			return nil, err
		}
		if req == nil {
			continue
		}
		ch.groups = append(ch.groups, req)
		if req.Purge {
			versions, err := st.JobVersionsByID(nil, k.Namespace, k.ID)
			if err != nil {
				return nil, fmt.Errorf("read versions of job %s: %w", k, err)
			}
			for _, v := range versions {
				ch.purgedVersions = append(ch.purgedVersions, versionName(k, v.Version))
			}
		}
	}

	nodes, err := st.Nodes(nil)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	for _, n := range nodes {
		if n.Status != structs.NodeStatusDown || !p.older(n.StatusUpdatedAt, th.NodeThreshold) {
			continue
		}
		on, err := st.AllocsByNode(nil, n.ID)
		if err != nil {
			return nil, fmt.Errorf("read allocations of node %s: %w", n.ID, err)
		}
		if structs.NodeCollectable(n, on) {
			ch.nodes = append(ch.nodes, n.ID)
		}
	}
	sort.Strings(ch.nodes)
	return ch, nil
}

// jobRows are one job's rows (job nil: the job is gone).
type jobRows struct {
	job         *structs.Job
	evals       []*structs.Evaluation
	allocs      []*structs.Allocation
	deployments []*structs.Deployment
}

// picker applies the thresholds at one instant.
type picker struct {
	now int64
	th  Settings
}

// older reports whether Unix-nanosecond time t is at least d before
// now. A zero time (an object written before it had one) is old.
func (p *picker) older(t int64, d time.Duration) bool {
	return t <= p.now-int64(d)
}

// evalTime is when an evaluation last changed.
func evalTime(e *structs.Evaluation) int64 {
	if e.ModifyTime != 0 {
		return e.ModifyTime
	}
	return e.CreateTime
}

// evalThreshold is the age a terminal evaluation of type typ (its
// job's) must reach.
func (p *picker) evalThreshold(typ string) time.Duration {
	if typ == structs.JobTypeBatch {
		return p.th.BatchEvalThreshold
	}
	return p.th.EvalThreshold
}

// job chooses the rows of one job, or returns nil for none.
func (p *picker) job(st State, key structs.NamespacedID, r *jobRows) (*structs.GCJobRequest, error) {
	sort.Slice(r.evals, func(i, j int) bool { return r.evals[i].CreateIndex < r.evals[j].CreateIndex })
	sort.Slice(r.allocs, func(i, j int) bool { return r.allocs[i].ID < r.allocs[j].ID })
	sort.Slice(r.deployments, func(i, j int) bool { return r.deployments[i].CreateIndex < r.deployments[j].CreateIndex })
	req := &structs.GCJobRequest{Namespace: key.Namespace, JobID: key.ID}

	if r.job != nil && structs.GCJobDone(r.job, r.evals, r.allocs, r.deployments) && p.older(lastActivity(r), p.th.JobThreshold) {
		req.Purge = true
		// Evaluations last: split keeps the final entry's share of
		// them, so the job is never left without any before it goes.
		for _, d := range r.deployments {
			req.Deployments = append(req.Deployments, d.ID)
		}
		for _, a := range r.allocs {
			req.Allocs = append(req.Allocs, a.ID)
		}
		for _, e := range r.evals {
			req.Evals = append(req.Evals, e.ID)
		}
		return req, nil
	}

	live := r.job != nil && !r.job.Stop
	chosen := make(map[string]bool)
	byEval := make(map[string][]*structs.Allocation)
	for _, a := range r.allocs {
		byEval[a.EvalID] = append(byEval[a.EvalID], a)
	}
	evalKept := make(map[string]bool, len(r.evals))
	for i, e := range r.evals {
		keep := (r.job != nil && i == len(r.evals)-1) || !e.TerminalStatus() || !p.older(evalTime(e), p.evalThreshold(e.Type))
		if !keep {
			for _, a := range byEval[e.ID] {
				if !structs.AllocCollectable(a, live) {
					keep = true
					break
				}
			}
		}
		if keep {
			evalKept[e.ID] = true
			continue
		}
		req.Evals = append(req.Evals, e.ID)
		for _, a := range byEval[e.ID] {
			req.Allocs = append(req.Allocs, a.ID)
			chosen[a.ID] = true
		}
	}
	// Allocations whose evaluation is gone (or goes now).
	for _, a := range r.allocs {
		if chosen[a.ID] || evalKept[a.EvalID] || !structs.AllocCollectable(a, live) {
			continue
		}
		typ := ""
		if a.Job != nil {
			typ = a.Job.Type
		}
		if p.older(a.ModifyTime, p.evalThreshold(typ)) {
			req.Allocs = append(req.Allocs, a.ID)
			chosen[a.ID] = true
		}
	}
	// The cap on finished allocations: the newest are kept.
	var finished []*structs.Allocation
	for _, a := range r.allocs {
		if a.ClientTerminalStatus() && !chosen[a.ID] {
			finished = append(finished, a)
		}
	}
	sort.SliceStable(finished, func(i, j int) bool { return finished[i].ModifyIndex > finished[j].ModifyIndex })
	for i, a := range finished {
		if i >= p.th.TerminalAllocs && structs.AllocCollectable(a, live) {
			req.Allocs = append(req.Allocs, a.ID)
		}
	}

	var latest *structs.Deployment
	if n := len(r.deployments); n > 0 {
		latest = r.deployments[n-1]
	}
	for _, d := range r.deployments {
		if d.Active() || (live && d == latest) || !p.older(d.ModifyTime, p.th.DeploymentThreshold) {
			continue
		}
		req.Deployments = append(req.Deployments, d.ID)
	}

	if r.job != nil && p.th.JobVersions < MaxJobVersions {
		versions, err := st.JobVersionsByID(nil, key.Namespace, key.ID)
		if err != nil {
			return nil, fmt.Errorf("read versions of job %s: %w", key, err)
		}
		for i, v := range versions {
			if i >= p.th.JobVersions && v.Version != r.job.Version {
				req.Versions = append(req.Versions, v.Version)
			}
		}
	}
	if len(req.Evals)+len(req.Allocs)+len(req.Deployments)+len(req.Versions) == 0 {
		return nil, nil
	}
	return req, nil
}

// lastActivity is the last time anything of a job changed: its
// submission, or the last change of any of its evaluations,
// allocations or deployments.
func lastActivity(r *jobRows) int64 {
	t := r.job.SubmitTime
	for _, e := range r.evals {
		t = max(t, evalTime(e))
	}
	for _, a := range r.allocs {
		t = max(t, a.ModifyTime, a.CreateTime)
	}
	for _, d := range r.deployments {
		t = max(t, d.ModifyTime, d.CreateTime)
	}
	return t
}

func versionName(k structs.NamespacedID, v uint64) string {
	return fmt.Sprintf("%s@%d", k, v)
}

// report counts and lists what the pass chose.
func (ch *choice) report() *structs.SystemGCResponse {
	resp := &structs.SystemGCResponse{}
	o := &resp.Objects
	add := func(list *[]string, id string) {
		if len(*list) >= structs.MaxGCReportIDs {
			resp.Truncated = true
			return
		}
		*list = append(*list, id)
	}
	for _, g := range ch.groups {
		k := structs.NewNamespacedID(g.Namespace, g.JobID)
		if g.Purge {
			resp.Chosen.Jobs++
			add(&o.Jobs, k.String())
		}
		for _, v := range g.Versions {
			resp.Chosen.JobVersions++
			add(&o.JobVersions, versionName(k, v))
		}
		for _, id := range g.Evals {
			resp.Chosen.Evals++
			add(&o.Evals, id)
		}
		for _, id := range g.Allocs {
			resp.Chosen.Allocs++
			add(&o.Allocs, id)
		}
		for _, id := range g.Deployments {
			resp.Chosen.Deployments++
			add(&o.Deployments, id)
		}
	}
	for _, v := range ch.purgedVersions {
		resp.Chosen.JobVersions++
		add(&o.JobVersions, v)
	}
	for _, id := range ch.nodes {
		resp.Chosen.Nodes++
		add(&o.Nodes, id)
	}
	return resp
}

// split cuts what was chosen into entries of at most max objects, in
// order. A job group that does not fit in one entry is cut into parts
// of its own, each with the group's Purge: every part deletes its rows
// under the rules for a job that goes, and the FSM deletes the job
// itself with the last part, once nothing else of it is left. Between
// the parts the job keeps rows (the evaluations come last), so its
// status stays what it was.
func split(ch *choice, max int) []*structs.GCBatchRequest {
	var out []*structs.GCBatchRequest
	cur := &structs.GCBatchRequest{}
	n := 0
	flush := func() {
		if n > 0 {
			out = append(out, cur)
			cur, n = &structs.GCBatchRequest{}, 0
		}
	}
	for _, g := range ch.groups {
		size := groupSize(g)
		if n+size > max {
			flush()
		}
		if size <= max {
			cur.Jobs = append(cur.Jobs, g)
			n += size
			continue
		}
		for _, part := range cutGroup(g, max) {
			out = append(out, &structs.GCBatchRequest{Jobs: []*structs.GCJobRequest{part}})
		}
	}
	for _, id := range ch.nodes {
		if n+1 > max {
			flush()
		}
		cur.Nodes = append(cur.Nodes, id)
		n++
	}
	flush()
	return out
}

func groupSize(g *structs.GCJobRequest) int {
	n := len(g.Evals) + len(g.Allocs) + len(g.Deployments) + len(g.Versions)
	if g.Purge {
		n++
	}
	return n
}

// gcItem is one row of a job group.
type gcItem struct {
	kind    int
	id      string
	version uint64
}

const (
	itemVersion = iota
	itemDeployment
	itemAlloc
	itemEval
)

// cutGroup cuts a job group into parts of at most max objects each
// (max >= 2; a purge counts as one), rows in the order versions,
// deployments, allocations, evaluations.
func cutGroup(g *structs.GCJobRequest, max int) []*structs.GCJobRequest {
	var items []gcItem
	for _, v := range g.Versions {
		items = append(items, gcItem{kind: itemVersion, version: v})
	}
	for _, id := range g.Deployments {
		items = append(items, gcItem{kind: itemDeployment, id: id})
	}
	for _, id := range g.Allocs {
		items = append(items, gcItem{kind: itemAlloc, id: id})
	}
	for _, id := range g.Evals {
		items = append(items, gcItem{kind: itemEval, id: id})
	}
	per := max
	if g.Purge {
		per--
	}
	var parts []*structs.GCJobRequest
	for len(items) > 0 {
		k := min(per, len(items))
		parts = append(parts, groupOf(g, items[:k]))
		items = items[k:]
	}
	return parts
}

func groupOf(g *structs.GCJobRequest, items []gcItem) *structs.GCJobRequest {
	part := &structs.GCJobRequest{Namespace: g.Namespace, JobID: g.JobID, Purge: g.Purge}
	for _, it := range items {
		switch it.kind {
		case itemVersion:
			part.Versions = append(part.Versions, it.version)
		case itemDeployment:
			part.Deployments = append(part.Deployments, it.id)
		case itemAlloc:
			part.Allocs = append(part.Allocs, it.id)
		case itemEval:
			part.Evals = append(part.Evals, it.id)
		}
	}
	return part
}
