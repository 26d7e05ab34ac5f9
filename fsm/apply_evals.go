package fsm

import "github.com/droverhq/drover/structs"

func (f *FSM) applyEvalUpdate(buf []byte, index uint64) interface{} {
	var req structs.EvalUpdateRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := checkNotNil("Evals", req.Evals); err != nil {
		return refusal{err}
	}
	st := f.State()
	if err := st.UpsertEvals(index, req.Evals); err != nil {
		return err
	}
	f.handleEvals(st, req.Evals)
	return nil
}
