package structs

import "fmt"

// The compact encoding of a scheduler's plan and of the applier's
// answer, for Plan.Submit between a follower's worker and the leader
// (PlanSubmitRequest.Compact, PlanSubmitResponse.Compact). A plan
// carries its placements whole, as the plan applier re-checks them, so
// every field of every allocation is written (writeAlloc); allocations
// of the plan's job refer to it instead of carrying a copy. Unlike the
// log entries these bytes have no type byte: they start with the format
// version.

// EncodeCompactPlan writes p for Plan.Submit.
func EncodeCompactPlan(p *Plan) ([]byte, error) {
	if p == nil {
		return nil, fmt.Errorf("encode plan: no plan")
	}
	buf, err := compactEncode(nil, func(w *compactWriter) {
		w.str(p.EvalID)
		w.str(p.EvalToken)
		w.int(p.Priority)
		w.blob(p.Job, p.Job == nil)
		w.writeAllocMap(p.NodeUpdate, p.Job)
		w.writeAllocMap(p.NodeAllocation, p.Job)
		w.writeAllocMap(p.NodePreemptions, p.Job)
		w.blob(p.Deployment, p.Deployment == nil)
		w.writeDeploymentUpdates(p.DeploymentUpdates)
		w.blob(p.Annotations, p.Annotations == nil)
		w.uvarint(p.SnapshotIndex)
	})
	if err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	return buf, nil
}

// DecodeCompactPlan reads what EncodeCompactPlan wrote.
func DecodeCompactPlan(buf []byte) (*Plan, error) {
	p := &Plan{}
	err := decodeCompact(buf, "compact plan", func(r *compactReader) {
		p.EvalID = r.str()
		p.EvalToken = r.str()
		p.Priority = r.int()
		if j := new(Job); r.blob(j) {
			p.Job = j
		}
		p.NodeUpdate = r.readAllocMap(p.Job)
		p.NodeAllocation = r.readAllocMap(p.Job)
		p.NodePreemptions = r.readAllocMap(p.Job)
		if d := new(Deployment); r.blob(d) {
			p.Deployment = d
		}
		p.DeploymentUpdates = r.readDeploymentUpdates()
		if a := new(PlanAnnotations); r.blob(a) {
			p.Annotations = a
		}
		p.SnapshotIndex = r.uvarint()
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// EncodeCompactPlanResult writes the applier's result of a plan whose job
// is planJob (allocations pointing to it refer to it).
func EncodeCompactPlanResult(res *PlanResult, planJob *Job) ([]byte, error) {
	if res == nil {
		return nil, fmt.Errorf("encode plan result: no result")
	}
	buf, err := compactEncode(nil, func(w *compactWriter) {
		w.writeAllocMap(res.NodeUpdate, planJob)
		w.writeAllocMap(res.NodeAllocation, planJob)
		w.writeAllocMap(res.NodePreemptions, planJob)
		w.blob(res.Deployment, res.Deployment == nil)
		w.writeDeploymentUpdates(res.DeploymentUpdates)
		w.strings(res.RejectedNodes)
		w.uvarint(res.RefreshIndex)
		w.uvarint(res.AllocIndex)
	})
	if err != nil {
		return nil, fmt.Errorf("encode plan result: %w", err)
	}
	return buf, nil
}

// DecodeCompactPlanResult reads what EncodeCompactPlanResult wrote;
// planJob is the submitted plan's job, which the result's allocations of
// that job point to.
func DecodeCompactPlanResult(buf []byte, planJob *Job) (*PlanResult, error) {
	res := &PlanResult{}
	err := decodeCompact(buf, "compact plan result", func(r *compactReader) {
		res.NodeUpdate = r.readAllocMap(planJob)
		res.NodeAllocation = r.readAllocMap(planJob)
		res.NodePreemptions = r.readAllocMap(planJob)
		if d := new(Deployment); r.blob(d) {
			res.Deployment = d
		}
		res.DeploymentUpdates = r.readDeploymentUpdates()
		res.RejectedNodes = r.strings()
		res.RefreshIndex = r.uvarint()
		res.AllocIndex = r.uvarint()
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// writeAllocMap writes allocations per node ID, nodes in ascending order.
func (w *compactWriter) writeAllocMap(m map[string][]*Allocation, planJob *Job) {
	w.count(len(m), m == nil)
	for _, node := range sortedMapKeys(m) {
		w.str(node)
		list := m[node]
		w.count(len(list), list == nil)
		for _, a := range list {
			if w.present(a != nil) {
				w.writeAlloc(a, planJob)
			}
		}
	}
}

func (r *compactReader) readAllocMap(planJob *Job) map[string][]*Allocation {
	n, isNil := r.count()
	if isNil {
		return nil
	}
	m := make(map[string][]*Allocation, n)
	var prev string
	for i := 0; i < n && r.err == nil; i++ {
		node := r.key(prev, i == 0)
		prev = node
		k, isNil := r.count()
		if isNil {
			m[node] = nil
			continue
		}
		list := make([]*Allocation, k)
		for j := 0; j < k && r.err == nil; j++ {
			if r.present() {
				list[j] = r.readAlloc(planJob)
			}
		}
		m[node] = list
	}
	return m
}

func (w *compactWriter) writeDeploymentUpdates(list []*DeploymentStatusUpdate) {
	w.count(len(list), list == nil)
	for _, u := range list {
		if w.present(u != nil) {
			w.str(u.DeploymentID)
			w.str(u.Status)
			w.str(u.StatusDescription)
		}
	}
}

func (r *compactReader) readDeploymentUpdates() []*DeploymentStatusUpdate {
	n, isNil := r.count()
	if isNil {
		return nil
	}
	out := make([]*DeploymentStatusUpdate, n)
	for i := 0; i < n && r.err == nil; i++ {
		if r.present() {
			u := &DeploymentStatusUpdate{}
			u.DeploymentID = r.str()
			u.Status = r.str()
			u.StatusDescription = r.str()
			out[i] = u
		}
	}
	return out
}
