package server

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// The plan applier is the only writer of allocations placed by the
// scheduler, and it runs as one goroutine on the leader. Schedulers plan
// concurrently against snapshots that may be stale by the time their
// plan arrives: another worker may have filled a node in between. So
// every plan is re-checked here against the newest state (optimistic
// concurrency): for each node the plan touches, what would run there
// after the plan must fit the node's capacity and ports, and a node that
// receives new allocations must be ready. Nodes that fail the check are
// left out of the commit, and the result carries a RefreshIndex telling
// the worker to refresh its snapshot and re-plan what was rejected. What
// passes is committed in one Raft entry.
//
// Because the check uses the same structs.ProposedAllocs and
// structs.AllocsFit as the scheduler, a plan made from current state
// always passes; only genuine races are rejected. Committed allocations
// therefore never exceed a node's capacity.

// planBatchMax and planBatchMaxAllocs bound how many plans, and how many
// placed or stopped allocations, share one Raft entry. Entries stay a few
// megabytes at most: they are held in Raft's log cache and replicated
// whole, and a batch of large plans (a job of 1,000 allocations plans
// them all at once) would otherwise reach a hundred megabytes. The
// state store applies an entry in one transaction, which also should
// stay under a few thousand changed index nodes (see
// maxAllocUpdatesPerEntry).
const (
	planBatchMax       = 64
	planBatchMaxAllocs = 1024
)

// planBatch is a group of checked plans committed in one Raft entry.
type planBatch struct {
	futures []*PlanFuture
	results []*structs.PlanResult
	reqs    []*structs.ApplyPlanResultsRequest
	// allocs counts the allocations the batch places, stops or evicts.
	allocs int
	// done is closed once the entry committed or failed; failed is set
	// before that when it failed.
	done   chan struct{}
	failed bool
	// deferred are plans refused (in part, with nothing to commit)
	// against a view that held this batch: they are answered once it
	// committed, with its index as their RefreshIndex, so their workers
	// re-plan on a state that holds what refused them instead of
	// meeting the same refusal again (quota races between evaluations
	// of one namespace would otherwise use up their plan attempts).
	deferred []deferredPlan
	// mu guards deferred and closing: the applier adds to deferred
	// while the batch's commit goroutine may be answering them.
	mu      sync.Mutex
	closing bool
}

// addDeferred defers a refused plan to the batch's commit; false when
// the batch has committed already (the plan is then answered at once:
// the state holds the batch).
func (b *planBatch) addDeferred(d deferredPlan) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return false
	}
	b.deferred = append(b.deferred, d)
	return true
}

// deferredPlan is a refused plan waiting for a batch to commit.
type deferredPlan struct {
	f      *PlanFuture
	result *structs.PlanResult
}

// answerDeferred answers b's deferred plans; index is the batch's Raft
// index (0 when it failed: the refusal is answered as it was).
func (s *Server) answerDeferred(b *planBatch, index uint64) {
	for _, d := range b.deferred {
		if d.result != nil && index > d.result.RefreshIndex {
			d.result.RefreshIndex = index
		}
		s.finishPlan(d.f, d.result, nil)
	}
	b.deferred = nil
}

func (b *planBatch) add(f *PlanFuture, result *structs.PlanResult, req *structs.ApplyPlanResultsRequest) {
	b.futures = append(b.futures, f)
	b.results = append(b.results, result)
	b.reqs = append(b.reqs, req)
	b.allocs += len(req.AllocsPlaced) + len(req.AllocsStopped) + len(req.AllocsPreempted)
}

// full reports whether the batch should take no more plans.
func (b *planBatch) full() bool {
	return b != nil && (len(b.futures) >= planBatchMax || b.allocs >= planBatchMaxAllocs)
}

// planApply runs the plan applier until stopCh closes.
//
// It pipelines and batches: while one Raft entry of plans commits, the
// plans that arrive are checked, each against a view of the state with
// every plan before it applied optimistically (the one in Raft and the
// ones already checked; see planView), and gathered into the next entry, which goes to
// Raft as soon as the previous one is done. At most one entry is in Raft
// at a time, so a plan is only ever checked against state that includes
// every plan committed before it; if an entry fails to commit, the plans
// gathered behind it are checked again against the real state.
func (s *Server) planApply(stopCh <-chan struct{}) {
	var (
		// view is the state plans are checked against: the real state
		// plus, optimistically, inflight and pending. nil means "read
		// the real state".
		view     *planView
		inflight *planBatch
		pending  *planBatch
	)
	// settle handles the end of the inflight entry: submit what was
	// gathered behind it, re-checked first if the entry failed.
	settle := func() {
		failed := inflight.failed
		inflight = nil
		if failed {
			view = nil
			if pending != nil {
				old := pending
				pending = nil
				old.mu.Lock()
				old.closing = true
				old.mu.Unlock()
				s.answerDeferred(old, 0)
				for _, f := range old.futures {
					view, pending = s.checkInto(view, pending, nil, f)
				}
			}
		}
		if pending != nil {
			inflight = s.submitPlanBatch(pending)
			pending = nil
			// Check the next plans against the newest state plus the
			// entry now in Raft, not against the view used so far: kept
			// across entries, it would hold every plan placed under load
			// and miss everything else that changed meanwhile (clients'
			// updates, nodes going down).
			view = s.newPlanView()
			for _, req := range inflight.reqs {
				view.apply(req)
			}
		} else {
			// Nothing optimistic is outstanding: the next plan reads the
			// real state, which now includes everything committed.
			view = nil
		}
	}
	for {
		if inflight != nil {
			if pending.full() {
				<-inflight.done
			}
			select {
			case <-inflight.done:
				settle()
				continue
			default:
			}
		}
		var doneCh chan struct{}
		if inflight != nil {
			doneCh = inflight.done
		}
		f, err := s.planQueue.DequeueOr(stopCh, doneCh)
		if err != nil {
			if inflight != nil {
				<-inflight.done
			}
			if pending != nil {
				for _, pf := range pending.futures {
					s.finishPlan(pf, nil, ErrPlanQueueDisabled)
				}
				pending.mu.Lock()
				pending.closing = true
				deferred := pending.deferred
				pending.mu.Unlock()
				for _, d := range deferred {
					s.finishPlan(d.f, nil, ErrPlanQueueDisabled)
				}
			}
			return
		}
		if f == nil {
			continue // inflight is done: settled at the top
		}
		s.metrics.planQueueWait.Observe(time.Since(f.enqueued).Seconds())
		// A refusal waits for the newest uncommitted batch the view
		// holds: pending, else the one in Raft.
		behind := pending
		if behind == nil {
			behind = inflight
		}
		view, pending = s.checkInto(view, pending, behind, f)
		if inflight == nil && pending != nil {
			inflight = s.submitPlanBatch(pending)
			pending = nil
		}
	}
}

// checkInto checks f's plan against view (the real state when nil) and,
// if anything is to commit, adds it to batch and to view. Plans with
// nothing to commit, or that fail the check, are answered at once; but
// a plan refused while the view holds an uncommitted batch (behind,
// nil when none) is answered when that batch commits (see
// planBatch.deferred).
func (s *Server) checkInto(view *planView, batch, behind *planBatch, f *PlanFuture) (*planView, *planBatch) {
	if view == nil {
		view = s.newPlanView()
	}
	result, req, err := s.checkPlan(view, f.plan)
	if err == nil && req == nil && behind != nil && result != nil && len(result.RejectedNodes) > 0 &&
		behind.addDeferred(deferredPlan{f: f, result: result}) {
		return view, batch
	}
	if err != nil || req == nil {
		s.finishPlan(f, result, err)
		return view, batch
	}
	if err := view.canApply(req); err != nil {
		// The plan would fail in the FSM, and take its batch with it.
		s.logger.Warn("plan does not apply to the state; rejecting it", "eval_id", f.plan.EvalID, "error", err)
		s.finishPlan(f, nil, fmt.Errorf("apply plan: %w", err))
		return view, batch
	}
	view.apply(req)
	if batch == nil {
		batch = &planBatch{}
	}
	batch.add(f, result, req)
	return view, batch
}

// planView is what the plan applier checks plans against: a snapshot of
// the real state, and the allocations of plans checked but not yet in
// it (the entry in Raft and the plans gathered for the next), per node.
// It replaces applying each plan to a copy of the state store, which
// cost the leader a second set of index writes per placement and a
// second copy of their index nodes until the entry committed.
type planView struct {
	snap *state.Snapshot
	// nodes holds, for every node an uncommitted plan touched, the
	// node's allocations as those plans leave them, by ID.
	nodes map[string]map[string]*structs.Allocation
	// deployments are the deployments uncommitted plans create.
	deployments map[string]bool
	// optIndex is the index after the real state's newest when a plan
	// was last added: a rejected plan's RefreshIndex, which a worker
	// waits for the real state to reach. Not one more per uncommitted
	// plan, which could overshoot what Raft reaches.
	optIndex uint64
	// latest is the real state's newest index, read through it.
	latest func() (uint64, error)
	// usage holds, per namespace, how much the uncommitted plans change
	// its quota usage (plan_quota.go).
	usage map[string]structs.QuotaLimits
}

func (s *Server) newPlanView() *planView {
	return &planView{snap: s.State().Snapshot(), latest: s.State().LatestIndex}
}

// newPlanViewOf returns a view of snap alone.
func newPlanViewOf(snap *state.Snapshot) *planView {
	return &planView{snap: snap, latest: snap.LatestIndex}
}

// allocsByNode returns the node's allocations with the uncommitted plans
// applied.
func (v *planView) allocsByNode(nodeID string) ([]*structs.Allocation, error) {
	if m, ok := v.nodes[nodeID]; ok {
		out := make([]*structs.Allocation, 0, len(m))
		for _, a := range m {
			out = append(out, a)
		}
		return out, nil
	}
	return v.snap.AllocsByNode(nil, nodeID)
}

// latestIndex is the index a worker must see to include everything the
// view holds.
func (v *planView) latestIndex() (uint64, error) {
	idx, err := v.snap.LatestIndex()
	if err != nil {
		return 0, err
	}
	return max(idx, v.optIndex), nil
}

// node returns the node's allocations for changing, read from the
// snapshot the first time.
func (v *planView) node(nodeID string) map[string]*structs.Allocation {
	if m, ok := v.nodes[nodeID]; ok {
		return m
	}
	existing, err := v.snap.AllocsByNode(nil, nodeID)
	if err != nil {
		// A snapshot read does not fail; if it did, checking against
		// the plans alone only risks a rejection in the next check.
		existing = nil
	}
	m := make(map[string]*structs.Allocation, len(existing)+4)
	for _, a := range existing {
		m[a.ID] = a
	}
	if v.nodes == nil {
		v.nodes = make(map[string]map[string]*structs.Allocation)
	}
	v.nodes[nodeID] = m
	return m
}

// canApply reports what would make the FSM fail to apply req, as it
// would fail the whole batch: a deployment update for a deployment that
// neither the state nor an uncommitted plan has.
func (v *planView) canApply(req *structs.ApplyPlanResultsRequest) error {
	for _, u := range req.DeploymentUpdates {
		if u.DeploymentID == "" || v.deployments[u.DeploymentID] || (req.Deployment != nil && req.Deployment.ID == u.DeploymentID) {
			continue
		}
		d, err := v.snap.DeploymentByID(nil, u.DeploymentID)
		if err != nil {
			return err
		}
		if d == nil {
			return fmt.Errorf("deployment %s: %w", u.DeploymentID, state.ErrNotFound)
		}
	}
	return nil
}

// apply adds a checked plan to the view as if committed: its stops and
// evictions mark the allocations stopped, its placements are added or
// replace the allocations they update.
func (v *planView) apply(req *structs.ApplyPlanResultsRequest) {
	if idx, err := v.latest(); err == nil {
		v.optIndex = idx + 1
	}
	if req.Deployment != nil {
		if v.deployments == nil {
			v.deployments = make(map[string]bool)
		}
		v.deployments[req.Deployment.ID] = true
	}
	for _, list := range [][]*structs.Allocation{req.AllocsStopped, req.AllocsPreempted} {
		for _, stop := range list {
			m := v.node(stop.NodeID)
			if cur, ok := m[stop.ID]; ok {
				a := new(structs.Allocation)
				*a = *cur
				a.DesiredStatus = stop.DesiredStatus
				if stop.ClientStatus != "" {
					a.ClientStatus = stop.ClientStatus
				}
				m[stop.ID] = a
				v.countUsage(cur, a)
			}
		}
	}
	for _, a := range req.AllocsPlaced {
		m := v.node(a.NodeID)
		old := m[a.ID]
		a = storedVersion(old, a, req.Job)
		m[a.ID] = a
		v.countUsage(old, a)
	}
}

// submitPlanBatch hands the batch to Raft and answers its plans once it
// commits. Every batch, one plan or many, is written as a compact entry
// (structs/compact.go): every server's FSM decodes it, and msgpack's
// reflective decoding of plan entries was a fifth of a follower's CPU.
// While a server of an older version is in the cluster, it is written
// in msgpack instead (log_types.go).
func (s *Server) submitPlanBatch(b *planBatch) *planBatch {
	b.done = make(chan struct{})
	msgType := s.planResultsType()
	msg := &structs.ApplyPlanResultsBatchRequest{Plans: b.reqs}
	s.metrics.planBatchSize.Observe(float64(len(b.reqs)))
	applied, err := s.raftApplyAsync(msgType, msg)
	if err != nil {
		b.failed = true
		for _, f := range b.futures {
			s.finishPlan(f, nil, err)
		}
		b.mu.Lock()
		b.closing = true
		b.mu.Unlock()
		s.answerDeferred(b, 0)
		close(b.done)
		return b
	}
	go func() {
		_, index, err := s.raftResult(msgType, applied)
		if err != nil {
			b.failed = true
			err = fmt.Errorf("commit plan: %w", err)
		}
		for i, f := range b.futures {
			if err != nil {
				s.finishPlan(f, nil, err)
				continue
			}
			b.results[i].AllocIndex = index
			s.finishPlan(f, b.results[i], nil)
		}
		if err != nil {
			index = 0
		}
		// The applier may defer more plans to this batch while this
		// goroutine runs: closing stops that, under the batch's lock.
		b.mu.Lock()
		b.closing = true
		b.mu.Unlock()
		s.answerDeferred(b, index)
		close(b.done)
	}()
	return b
}

// finishPlan answers a plan's submitter and records the plan metrics.
func (s *Server) finishPlan(f *PlanFuture, result *structs.PlanResult, err error) {
	s.metrics.planApply.Observe(time.Since(f.enqueued).Seconds())
	if err == nil && result != nil {
		s.metrics.plans.Inc()
		s.metrics.planRejectNodes.Add(float64(len(result.RejectedNodes)))
		for _, allocs := range result.NodeAllocation {
			s.metrics.allocsPlaced.Add(float64(len(allocs)))
		}
		for _, allocs := range result.NodeUpdate {
			s.metrics.allocsStopped.Add(float64(len(allocs)))
		}
		for _, allocs := range result.NodePreemptions {
			s.metrics.allocsStopped.Add(float64(len(allocs)))
		}
	}
	if s.planAnswered != nil {
		s.planAnswered(f, result)
	}
	f.respond(result, err)
}

// applyPlan checks and commits one plan, synchronously (tests; the
// plan applier pipelines the same two steps).
func (s *Server) applyPlan(plan *structs.Plan) (*structs.PlanResult, error) {
	result, req, err := s.checkPlan(s.newPlanView(), plan)
	if err != nil || req == nil {
		return result, err
	}
	_, index, err := s.raftApply(s.planResultsType(), &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{req}})
	if err != nil {
		return nil, fmt.Errorf("commit plan: %w", err)
	}
	result.AllocIndex = index
	return result, nil
}

// checkPlan re-checks a plan against view and builds the Raft request
// that commits what fits. A nil request means there is nothing to
// commit (the result says what was rejected, if anything).
func (s *Server) checkPlan(view *planView, plan *structs.Plan) (*structs.PlanResult, *structs.ApplyPlanResultsRequest, error) {
	// The submitting worker must still own the evaluation; a worker whose
	// delivery timed out must not commit.
	if err := s.evalBroker.Outstanding(plan.EvalID, plan.EvalToken); err != nil {
		return nil, nil, err
	}
	result, reasons, err := evaluatePlan(view, plan)
	if err != nil {
		return nil, nil, err
	}
	for node, reason := range reasons {
		s.logger.Debug("plan rejected for node, the worker will re-plan", "eval_id", plan.EvalID, "node_id", node, "reason", reason)
	}
	// A deployment commits with the plan even if every node was
	// rejected: the re-plan finds it and continues it.
	result.Deployment = plan.Deployment
	result.DeploymentUpdates = plan.DeploymentUpdates
	if len(result.NodeUpdate) == 0 && len(result.NodeAllocation) == 0 && result.Deployment == nil && len(result.DeploymentUpdates) == 0 {
		return result, nil, nil
	}

	req := &structs.ApplyPlanResultsRequest{
		Job:               plan.Job,
		EvalID:            plan.EvalID,
		Deployment:        plan.Deployment,
		DeploymentUpdates: plan.DeploymentUpdates,
		UpdatedAt:         time.Now().UnixNano(),
	}
	for _, node := range sortedKeys(result.NodeUpdate) {
		req.AllocsStopped = append(req.AllocsStopped, result.NodeUpdate[node]...)
	}
	for _, node := range sortedKeys(result.NodePreemptions) {
		req.AllocsPreempted = append(req.AllocsPreempted, result.NodePreemptions[node]...)
	}
	for _, node := range sortedKeys(result.NodeAllocation) {
		for _, a := range result.NodeAllocation[node] {
			// The job travels once, in the request.
			if a.Job != nil && plan.Job != nil && a.Job.JobModifyIndex == plan.Job.JobModifyIndex {
				a = a.Copy()
				a.Job = nil
			}
			req.AllocsPlaced = append(req.AllocsPlaced, a)
		}
	}
	return result, req, nil
}

// evaluatePlan re-checks plan against view and returns what may commit,
// and why each rejected node was rejected.
func evaluatePlan(view *planView, plan *structs.Plan) (*structs.PlanResult, map[string]string, error) {
	rejectReasons := make(map[string]string)
	result := &structs.PlanResult{
		NodeUpdate:      make(map[string][]*structs.Allocation),
		NodeAllocation:  make(map[string][]*structs.Allocation),
		NodePreemptions: make(map[string][]*structs.Allocation),
	}
	nodes := make(map[string]struct{})
	for n := range plan.NodeUpdate {
		nodes[n] = struct{}{}
	}
	for n := range plan.NodeAllocation {
		nodes[n] = struct{}{}
	}
	for n := range plan.NodePreemptions {
		nodes[n] = struct{}{}
	}
	ids := make([]string, 0, len(nodes))
	for n := range nodes {
		ids = append(ids, n)
	}
	sort.Strings(ids)

	fitting := make([]string, 0, len(ids))
	for _, nodeID := range ids {
		fit, reason, err := evaluateNodePlan(view, plan, nodeID)
		if err != nil {
			return nil, nil, err
		}
		if !fit {
			result.RejectedNodes = append(result.RejectedNodes, nodeID)
			rejectReasons[nodeID] = reason
			continue
		}
		fitting = append(fitting, nodeID)
	}
	// Quotas are per namespace, across nodes: what fits each node may
	// still take a namespace over its quota (plan_quota.go).
	overQuota, err := view.quotaRejects(plan, fitting)
	if err != nil {
		return nil, nil, err
	}
	for _, nodeID := range fitting {
		if reason, over := overQuota[nodeID]; over {
			result.RejectedNodes = append(result.RejectedNodes, nodeID)
			rejectReasons[nodeID] = reason
			continue
		}
		if u := plan.NodeUpdate[nodeID]; len(u) > 0 {
			result.NodeUpdate[nodeID] = u
		}
		if a := plan.NodeAllocation[nodeID]; len(a) > 0 {
			result.NodeAllocation[nodeID] = a
		}
		if p := plan.NodePreemptions[nodeID]; len(p) > 0 {
			result.NodePreemptions[nodeID] = p
		}
	}
	if len(result.RejectedNodes) > 0 {
		sort.Strings(result.RejectedNodes)
		idx, err := view.latestIndex()
		if err != nil {
			return nil, nil, err
		}
		result.RefreshIndex = idx
	}
	return result, rejectReasons, nil
}

// evaluateNodePlan checks the plan's part for one node. It returns the
// reason when it does not fit.
func evaluateNodePlan(view *planView, plan *structs.Plan, nodeID string) (bool, string, error) {
	placed := plan.NodeAllocation[nodeID]
	needsRoom := false
	for _, a := range placed {
		if !a.TerminalStatus() {
			needsRoom = true
		}
	}
	if !needsRoom {
		// Stopping allocations, or annotating finished ones (a failed
		// allocation's follow-up evaluation), takes no room and fits even
		// on a down node.
		return true, "", nil
	}
	node, err := view.snap.NodeByID(nil, nodeID)
	if err != nil {
		return false, "", err
	}
	if node == nil {
		return false, "node does not exist", nil
	}
	existingAll, err := view.allocsByNode(nodeID)
	if err != nil {
		return false, "", err
	}
	existing := make([]*structs.Allocation, 0, len(existingAll))
	known := make(map[string]bool, len(existingAll))
	for _, a := range existingAll {
		known[a.ID] = true
		if !a.TerminalStatus() {
			existing = append(existing, a)
		}
	}
	// New allocations need a ready, eligible node; updates to allocations
	// already there only need the node not to be down.
	for _, a := range placed {
		if !known[a.ID] && !a.TerminalStatus() && !node.Ready() {
			return false, fmt.Sprintf("node is %s/%s", node.Status, node.SchedulingEligibility), nil
		}
	}
	if node.TerminalStatus() {
		return false, "node is down", nil
	}
	removed := plan.NodeUpdate[nodeID]
	if pre := plan.NodePreemptions[nodeID]; len(pre) > 0 {
		removed = append(append([]*structs.Allocation(nil), removed...), pre...)
	}
	proposed := structs.ProposedAllocs(existing, removed, placed)
	// AllocsFit's sums are overflow-checked: a plan whose allocations
	// add up past int64 (a task asking for 2^63-1 MHz, say) is refused
	// as exhausted, never wrapped around into "fits".
	if fit, dim, _ := structs.AllocsFit(node, proposed); !fit {
		return false, "node exhausted: " + dim, nil
	}
	return true, "", nil
}

func sortedKeys(m map[string][]*structs.Allocation) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
