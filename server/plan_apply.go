package server

import (
	"fmt"
	"sort"
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
// plans that arrive are checked, each against a snapshot that has every
// plan before it applied optimistically (the one in Raft and the ones
// already checked), and gathered into the next entry, which goes to
// Raft as soon as the previous one is done. At most one entry is in Raft
// at a time, so a plan is only ever checked against state that includes
// every plan committed before it; if an entry fails to commit, the plans
// gathered behind it are checked again against the real state.
func (s *Server) planApply(stopCh <-chan struct{}) {
	var (
		// snap is the state plans are checked against: the real state
		// plus, optimistically, inflight and pending. nil means "read
		// the real state".
		snap     *state.Snapshot
		inflight *planBatch
		pending  *planBatch
	)
	// settle handles the end of the inflight entry: submit what was
	// gathered behind it, re-checked first if the entry failed.
	settle := func() {
		failed := inflight.failed
		inflight = nil
		if failed {
			snap = nil
			if pending != nil {
				old := pending
				pending = nil
				for _, f := range old.futures {
					snap, pending = s.checkInto(snap, pending, f)
				}
			}
		}
		if pending != nil {
			inflight = s.submitPlanBatch(pending)
			pending = nil
			// Check the next plans against the newest state plus the
			// entry now in Raft, not against the fork used so far: kept
			// across entries, a fork grows with every plan (a second
			// copy of every allocation placed under load) and misses
			// everything else that changed meanwhile (clients' updates,
			// nodes going down).
			snap = s.State().Snapshot()
			for _, req := range inflight.reqs {
				if err := s.applyOptimistically(snap, req); err != nil {
					s.logger.Warn("optimistic plan apply failed; waiting for the entry to commit", "error", err)
					<-inflight.done
					snap = nil
					break
				}
			}
		} else {
			// Nothing optimistic is outstanding: the next plan reads the
			// real state, which now includes everything committed.
			snap = nil
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
			}
			return
		}
		if f == nil {
			continue // inflight is done: settled at the top
		}
		s.metrics.planQueueWait.Observe(time.Since(f.enqueued).Seconds())
		snap, pending = s.checkInto(snap, pending, f)
		if inflight == nil && pending != nil {
			inflight = s.submitPlanBatch(pending)
			pending = nil
		}
	}
}

// checkInto checks f's plan against snap (the real state when nil) and,
// if anything is to commit, adds it to batch and applies it to snap
// optimistically. Plans with nothing to commit, or that fail the check,
// are answered at once.
func (s *Server) checkInto(snap *state.Snapshot, batch *planBatch, f *PlanFuture) (*state.Snapshot, *planBatch) {
	if snap == nil {
		snap = s.State().Snapshot()
	}
	result, req, err := s.checkPlan(snap, f.plan)
	if err != nil || req == nil {
		s.finishPlan(f, result, err)
		return snap, batch
	}
	if err := s.applyOptimistically(snap, req); err != nil {
		// The plan cannot be applied even to the snapshot: it would fail
		// in the FSM too, and take its batch with it. The failed
		// transaction left snap unchanged.
		s.logger.Warn("plan does not apply to the state; rejecting it", "eval_id", f.plan.EvalID, "error", err)
		s.finishPlan(f, nil, fmt.Errorf("apply plan: %w", err))
		return snap, batch
	}
	if batch == nil {
		batch = &planBatch{}
	}
	batch.add(f, result, req)
	return snap, batch
}

// applyOptimistically applies a checked plan to snap as if committed.
// Every optimistic plan takes the index after the real state's newest,
// not one more than the previous optimistic plan: a rejected plan's
// RefreshIndex is read from snap, and a worker waits for the real state
// to reach it, which a count of uncommitted plans could overshoot.
func (s *Server) applyOptimistically(snap *state.Snapshot, req *structs.ApplyPlanResultsRequest) error {
	index, err := s.State().LatestIndex()
	if err != nil {
		return err
	}
	return snap.UpsertPlanResults(index+1, req)
}

// submitPlanBatch hands the batch to Raft and answers its plans once it
// commits. A batch of one is written as a plain plan entry.
func (s *Server) submitPlanBatch(b *planBatch) *planBatch {
	b.done = make(chan struct{})
	msgType := structs.ApplyPlanResultsRequestType
	var msg interface{} = b.reqs[0]
	if len(b.reqs) > 1 {
		msgType = structs.ApplyPlanResultsBatchRequestType
		msg = &structs.ApplyPlanResultsBatchRequest{Plans: b.reqs}
	}
	s.metrics.planBatchSize.Observe(float64(len(b.reqs)))
	applied, err := s.raftApplyAsync(msgType, msg)
	if err != nil {
		b.failed = true
		for _, f := range b.futures {
			s.finishPlan(f, nil, err)
		}
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
	f.respond(result, err)
}

// applyPlan checks and commits one plan, synchronously (tests; the
// plan applier pipelines the same two steps).
func (s *Server) applyPlan(plan *structs.Plan) (*structs.PlanResult, error) {
	result, req, err := s.checkPlan(s.State().Snapshot(), plan)
	if err != nil || req == nil {
		return result, err
	}
	_, index, err := s.raftApply(structs.ApplyPlanResultsRequestType, req)
	if err != nil {
		return nil, fmt.Errorf("commit plan: %w", err)
	}
	result.AllocIndex = index
	return result, nil
}

// checkPlan re-checks a plan against snap and builds the Raft request
// that commits what fits. A nil request means there is nothing to
// commit (the result says what was rejected, if anything).
func (s *Server) checkPlan(snap *state.Snapshot, plan *structs.Plan) (*structs.PlanResult, *structs.ApplyPlanResultsRequest, error) {
	// The submitting worker must still own the evaluation; a worker whose
	// delivery timed out must not commit.
	if err := s.evalBroker.Outstanding(plan.EvalID, plan.EvalToken); err != nil {
		return nil, nil, err
	}
	result, reasons, err := evaluatePlan(snap, plan)
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

// evaluatePlan re-checks plan against snap and returns what may commit,
// and why each rejected node was rejected.
func evaluatePlan(snap *state.Snapshot, plan *structs.Plan) (*structs.PlanResult, map[string]string, error) {
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

	for _, nodeID := range ids {
		fit, reason, err := evaluateNodePlan(snap, plan, nodeID)
		if err != nil {
			return nil, nil, err
		}
		if !fit {
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
		idx, err := snap.LatestIndex()
		if err != nil {
			return nil, nil, err
		}
		result.RefreshIndex = idx
	}
	return result, rejectReasons, nil
}

// evaluateNodePlan checks the plan's part for one node. It returns the
// reason when it does not fit.
func evaluateNodePlan(snap *state.Snapshot, plan *structs.Plan, nodeID string) (bool, string, error) {
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
	node, err := snap.NodeByID(nil, nodeID)
	if err != nil {
		return false, "", err
	}
	if node == nil {
		return false, "node does not exist", nil
	}
	existingAll, err := snap.AllocsByNode(nil, nodeID)
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
