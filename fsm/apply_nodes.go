package fsm

import "github.com/droverhq/drover/structs"

func (f *FSM) applyNodeRegister(buf []byte, index uint64) interface{} {
	var req structs.NodeRegisterRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkNodeRegister(&req); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.UpsertNode(index, req.Node, req.UpdatedAt, req.Evals); err != nil {
		f.logger.Error("node register failed", "error", err)
		return err
	}
	f.handleEvals(st, req.Evals)
	if req.Node.Status == structs.NodeStatusReady {
		f.blocked.Unblock(index)
	}
	return nil
}

func (f *FSM) applyNodeDeregister(buf []byte, index uint64) interface{} {
	var req structs.NodeSpecificRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := f.State().DeleteNode(index, req.NodeID); err != nil {
		return err
	}
	return nil
}

func (f *FSM) applyNodeUpdateStatus(buf []byte, index uint64) interface{} {
	var req structs.NodeUpdateStatusRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkNotNil("Evals", req.Evals); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.UpdateNodeStatus(index, req.NodeID, req.Status, req.UpdatedAt, req.Evals); err != nil {
		return err
	}
	f.handleEvals(st, req.Evals)
	if req.Status == structs.NodeStatusReady {
		f.blocked.Unblock(index)
	}
	return nil
}

func (f *FSM) applyNodeUpdateDrain(buf []byte, index uint64) interface{} {
	var req structs.NodeUpdateDrainRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := f.State().UpdateNodeDrain(index, req.NodeID, req.DrainStrategy, req.MarkEligible, req.UpdatedAt); err != nil {
		return err
	}
	if req.DrainStrategy == nil && req.MarkEligible {
		f.blocked.Unblock(index)
	}
	return nil
}

func (f *FSM) applyNodeUpdateEligibility(buf []byte, index uint64) interface{} {
	var req structs.NodeUpdateEligibilityRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkNotNil("Evals", req.Evals); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.UpdateNodeEligibility(index, req.NodeID, req.Eligibility, req.Evals); err != nil {
		return err
	}
	f.handleEvals(st, req.Evals)
	if req.Eligibility == structs.NodeSchedulingEligible {
		f.blocked.Unblock(index)
	}
	return nil
}
