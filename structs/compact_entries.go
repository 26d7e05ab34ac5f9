package structs

import (
	"fmt"
	"reflect"
)

// The two compact entries: a batch of plan results and a batch of
// client allocation updates (see compact.go for the format).

// EncodeCompactPlanBatch writes req as an ApplyPlanResultsCompactRequestType
// entry (type byte included). Stopped and preempted allocations are cut
// to what the FSM reads (CompactStop).
func EncodeCompactPlanBatch(req *ApplyPlanResultsBatchRequest) ([]byte, error) {
	return encodeCompact(ApplyPlanResultsCompactRequestType, func(w *compactWriter) {
		w.count(len(req.Plans), req.Plans == nil)
		for _, p := range req.Plans {
			if w.present(p != nil) {
				w.writePlan(p)
			}
		}
	})
}

func (w *compactWriter) writePlan(p *ApplyPlanResultsRequest) {
	w.blob(p.Job, p.Job == nil)
	w.count(len(p.AllocsPlaced), p.AllocsPlaced == nil)
	for _, a := range p.AllocsPlaced {
		if w.present(a != nil) {
			w.writeAlloc(a, p.Job)
		}
	}
	for _, list := range [][]*Allocation{p.AllocsStopped, p.AllocsPreempted} {
		w.count(len(list), list == nil)
		for _, a := range list {
			if w.present(a != nil) {
				w.writeStop(a)
			}
		}
	}
	w.blob(p.Deployment, p.Deployment == nil)
	w.count(len(p.DeploymentUpdates), p.DeploymentUpdates == nil)
	for _, u := range p.DeploymentUpdates {
		if w.present(u != nil) {
			w.str(u.DeploymentID)
			w.str(u.Status)
			w.str(u.StatusDescription)
		}
	}
	w.blob(p.Evals, p.Evals == nil)
	w.str(p.EvalID)
	w.varint(p.UpdatedAt)
}

// DecodeCompactPlanBatch reads an entry written by
// EncodeCompactPlanBatch, without its type byte.
func DecodeCompactPlanBatch(buf []byte) (*ApplyPlanResultsBatchRequest, error) {
	req := &ApplyPlanResultsBatchRequest{}
	err := decodeCompact(buf, "compact plan batch", func(r *compactReader) {
		n, isNil := r.count()
		if isNil {
			return
		}
		req.Plans = make([]*ApplyPlanResultsRequest, n)
		for i := 0; i < n && r.err == nil; i++ {
			if r.present() {
				req.Plans[i] = r.readPlan()
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (r *compactReader) readPlan() *ApplyPlanResultsRequest {
	p := &ApplyPlanResultsRequest{}
	if j := new(Job); r.blob(j) {
		p.Job = j
	}
	if n, isNil := r.count(); !isNil {
		p.AllocsPlaced = make([]*Allocation, n)
		for i := 0; i < n && r.err == nil; i++ {
			if r.present() {
				p.AllocsPlaced[i] = r.readAlloc(p.Job)
			}
		}
	}
	for _, list := range []*[]*Allocation{&p.AllocsStopped, &p.AllocsPreempted} {
		n, isNil := r.count()
		if isNil {
			continue
		}
		*list = make([]*Allocation, n)
		for i := 0; i < n && r.err == nil; i++ {
			if r.present() {
				(*list)[i] = r.readStop()
			}
		}
	}
	if d := new(Deployment); r.blob(d) {
		p.Deployment = d
	}
	if n, isNil := r.count(); !isNil {
		p.DeploymentUpdates = make([]*DeploymentStatusUpdate, n)
		for i := 0; i < n && r.err == nil; i++ {
			if r.present() {
				u := &DeploymentStatusUpdate{}
				u.DeploymentID = r.str()
				u.Status = r.str()
				u.StatusDescription = r.str()
				p.DeploymentUpdates[i] = u
			}
		}
	}
	r.blob(&p.Evals)
	p.EvalID = r.word()
	p.UpdatedAt = r.varint()
	return p
}

// EncodeCompactAllocUpdate writes req as an
// AllocClientUpdateCompactRequestType entry (type byte included). Every
// field of the allocations is written; of the request, all but the
// secrets (SecretID, AuthToken), which never go to the log.
func EncodeCompactAllocUpdate(req *AllocUpdateRequest) ([]byte, error) {
	return encodeCompact(AllocClientUpdateCompactRequestType, func(w *compactWriter) {
		w.str(req.NodeID)
		w.count(len(req.Alloc), req.Alloc == nil)
		for _, a := range req.Alloc {
			if w.present(a != nil) {
				w.writeAlloc(a, nil)
			}
		}
		w.blob(req.Evals, req.Evals == nil)
		w.varint(req.UpdatedAt)
		w.bool(req.Forwarded)
		w.str(req.Namespace)
	})
}

// DecodeCompactAllocUpdate reads an entry written by
// EncodeCompactAllocUpdate, without its type byte.
func DecodeCompactAllocUpdate(buf []byte) (*AllocUpdateRequest, error) {
	req := &AllocUpdateRequest{}
	err := decodeCompact(buf, "compact alloc update", func(r *compactReader) {
		req.NodeID = r.str()
		if n, isNil := r.count(); !isNil {
			req.Alloc = make([]*Allocation, n)
			for i := 0; i < n && r.err == nil; i++ {
				if r.present() {
					req.Alloc[i] = r.readAlloc(nil)
				}
			}
		}
		r.blob(&req.Evals)
		req.UpdatedAt = r.varint()
		req.Forwarded = r.bool()
		req.Namespace = r.str()
	})
	if err != nil {
		return nil, err
	}
	return req, nil
}

// encodeCompactMsg is Encode for the compact message types.
func encodeCompactMsg(t MessageType, msg interface{}) ([]byte, error) {
	var (
		buf []byte
		err error
	)
	if v := reflect.ValueOf(msg); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return nil, fmt.Errorf("encode %s: no request", t)
	}
	switch m := msg.(type) {
	case *ApplyPlanResultsBatchRequest:
		if t&^IgnoreUnknownTypeFlag != ApplyPlanResultsCompactRequestType {
			return nil, fmt.Errorf("encode %s: a %T is written as %s", t, msg, ApplyPlanResultsCompactRequestType)
		}
		buf, err = EncodeCompactPlanBatch(m)
	case *AllocUpdateRequest:
		if t&^IgnoreUnknownTypeFlag != AllocClientUpdateCompactRequestType {
			return nil, fmt.Errorf("encode %s: a %T is written as %s", t, msg, AllocClientUpdateCompactRequestType)
		}
		buf, err = EncodeCompactAllocUpdate(m)
	default:
		return nil, fmt.Errorf("encode %s: %T has no compact encoding", t, msg)
	}
	if err != nil {
		return nil, err
	}
	buf[0] = byte(t)
	return buf, nil
}
