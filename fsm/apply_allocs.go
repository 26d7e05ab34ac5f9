package fsm

import (
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

func (f *FSM) applyPlanResults(buf []byte, index uint64) interface{} {
	var req structs.ApplyPlanResultsRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkPlanResults(&req); err != nil {
		return refusal{err}
	}
	st := f.State()
	compactPlan(st, &req)
	if err := st.UpsertPlanResults(index, &req); err != nil {
		f.logger.Error("apply plan results failed", "error", err)
		return err
	}
	f.handleEvals(st, req.Evals)
	if len(req.AllocsStopped) > 0 {
		f.blocked.Unblock(index)
	}
	return nil
}

// applyPlanResultsBatch commits every plan of the batch in one
// transaction: all or none.
func (f *FSM) applyPlanResultsBatch(buf []byte, index uint64) interface{} {
	var req structs.ApplyPlanResultsBatchRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	return f.applyPlanBatch(&req, index)
}

// applyPlanResultsCompact applies a batch of plans in the compact
// encoding exactly as applyPlanResultsBatch applies the msgpack one.
func (f *FSM) applyPlanResultsCompact(buf []byte, index uint64) interface{} {
	req, err := structs.DecodeCompactPlanBatch(buf)
	if err != nil {
		return refusal{err}
	}
	return f.applyPlanBatch(req, index)
}

// applyPlanBatch checks and commits a decoded batch of plans.
func (f *FSM) applyPlanBatch(req *structs.ApplyPlanResultsBatchRequest, index uint64) interface{} {
	if err := checkPlanResultsBatch(req); err != nil {
		return refusal{err}
	}
	st := f.State()
	for _, p := range req.Plans {
		compactPlan(st, p)
	}
	if err := st.UpsertPlanResultsBatch(index, req.Plans); err != nil {
		f.logger.Error("apply plan results batch failed", "plans", len(req.Plans), "error", err)
		return err
	}
	stopped := false
	for _, p := range req.Plans {
		f.handleEvals(st, p.Evals)
		stopped = stopped || len(p.AllocsStopped) > 0
	}
	if stopped {
		f.blocked.Unblock(index)
	}
	return nil
}

// compactPlan makes a decoded plan's allocations share what they have
// in common with each other, the plan's job and the nodes table, before
// the state store keeps them.
func compactPlan(st *state.StateStore, req *structs.ApplyPlanResultsRequest) {
	if req.Job != nil {
		// A plan committed before namespaces existed is for a job of
		// the default namespace; its allocations take the job's.
		req.Job.Namespace = structs.NamespaceOrDefault(req.Job.Namespace)
	}
	req.Compact()
	st.ShareNodeStrings(req.AllocsPlaced)
}

func (f *FSM) applyAllocClientUpdate(buf []byte, index uint64) interface{} {
	var req structs.AllocUpdateRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	return f.applyClientUpdates(&req, index)
}

// applyAllocClientUpdateCompact applies client updates in the compact
// encoding exactly as applyAllocClientUpdate applies the msgpack ones.
func (f *FSM) applyAllocClientUpdateCompact(buf []byte, index uint64) interface{} {
	req, err := structs.DecodeCompactAllocUpdate(buf)
	if err != nil {
		return refusal{err}
	}
	return f.applyClientUpdates(req, index)
}

// applyClientUpdates checks and records decoded client updates.
func (f *FSM) applyClientUpdates(req *structs.AllocUpdateRequest, index uint64) interface{} {
	// The check also bounds the reported service check results
	// (boundChecks); the state store copies them onto the stored
	// allocations with the task states, and re-derives their service
	// instances in the same transaction.
	if err := checkAllocClientUpdate(req); err != nil {
		return refusal{err}
	}
	req.Compact()
	st := f.State()
	if err := st.UpdateAllocsFromClient(index, req.Alloc, req.UpdatedAt, req.Evals); err != nil {
		return err
	}
	f.handleEvals(st, req.Evals)
	for _, a := range req.Alloc {
		if a.ClientTerminalStatus() {
			f.blocked.Unblock(index)
			break
		}
	}
	return nil
}

func (f *FSM) applyAllocDesiredTransition(buf []byte, index uint64) interface{} {
	var req structs.AllocUpdateDesiredTransitionRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkDesiredTransition(&req); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.UpdateAllocsDesiredTransitions(index, req.Allocs, req.Evals); err != nil {
		return err
	}
	f.handleEvals(st, req.Evals)
	return nil
}
