package fsm

import "github.com/droverhq/drover/structs"

// applyGCBatch deletes what the leader's garbage collector chose and
// is still collectable (state.GCBatch decides, from the state alone).
// The response is the *structs.GCBatchResult. An entry no leader
// writes (nothing named, more than structs.MaxGCBatchObjects, empty
// IDs) is refused whole.
func (f *FSM) applyGCBatch(buf []byte, index uint64) interface{} {
	var req structs.GCBatchRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	if err := req.CheckShape(); err != nil {
		return refusal{err}
	}
	res, err := f.State().GCBatch(index, &req)
	if err != nil {
		f.logger.Error("garbage collection batch failed", "index", index, "error", err)
		return err
	}
	return res
}
