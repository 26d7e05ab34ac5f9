package fsm

import "github.com/droverhq/drover/structs"

func (f *FSM) applySchedulerConfig(buf []byte, index uint64) interface{} {
	var req structs.SchedulerSetConfigRequest
	if err := decode(buf, &req); err != nil {
		return refusal{err}
	}
	return errOrNil(f.State().SetSchedulerConfig(index, &req.Config))
}
