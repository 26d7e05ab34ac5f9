package structs

import "time"

// The compact encoding of an allocation and its nested types (see
// compact.go). Each writeX lists the type's fields in declaration order
// and its readX reads them in the same order; keep the two in step.

// Allocation.Job in a compact entry: none, the plan's job (the same
// pointer, written once in the plan), or its own msgpack blob.
const (
	compactJobNone = 0
	compactJobPlan = 1
	compactJobOwn  = 2
)

// writeAlloc writes every field of a. planJob is the job of the plan a
// belongs to (nil outside plans): an allocation pointing to it refers to
// it rather than carrying a copy.
func (w *compactWriter) writeAlloc(a *Allocation, planJob *Job) {
	w.str(a.ID)
	w.str(a.EvalID)
	w.str(a.Name)
	w.str(a.NodeID)
	w.str(a.NodeName)
	w.str(a.JobID)
	w.str(a.Namespace)
	switch {
	case a.Job == nil:
		w.uvarint(compactJobNone)
	case a.Job == planJob:
		w.uvarint(compactJobPlan)
	default:
		w.uvarint(compactJobOwn)
		w.blob(a.Job, false)
	}
	w.uvarint(a.JobVersion)
	w.str(a.TaskGroup)
	if ar := a.AllocatedResources; w.present(ar != nil) {
		w.count(len(ar.Tasks), ar.Tasks == nil)
		for _, k := range sortedMapKeys(ar.Tasks) {
			w.str(k)
			if t := ar.Tasks[k]; w.present(t != nil) {
				w.varint(t.Cpu.CpuShares)
				w.varint(t.Memory.MemoryMB)
			}
		}
		ports := ar.Shared.Ports
		w.count(len(ports), ports == nil)
		for _, p := range ports {
			w.str(p.Label)
			w.int(p.Value)
			w.int(p.To)
			w.str(p.HostIP)
		}
	}
	w.str(a.DesiredStatus)
	w.str(a.DesiredDescription)
	w.str(a.ClientStatus)
	w.str(a.ClientDescription)
	w.count(len(a.TaskStates), a.TaskStates == nil)
	for _, k := range sortedMapKeys(a.TaskStates) {
		w.str(k)
		if ts := a.TaskStates[k]; w.present(ts != nil) {
			w.writeTaskState(ts)
		}
	}
	// Checks is omitempty (its json tag, which msgpack honours too): an
	// empty map decodes as nil, here as in msgpack.
	w.count(len(a.Checks), len(a.Checks) == 0)
	for _, k := range sortedMapKeys(a.Checks) {
		w.str(k)
		if c := a.Checks[k]; w.present(c != nil) {
			w.str(c.Service)
			w.str(c.Check)
			w.str(c.Status)
			w.str(c.Output)
			w.varint(c.Timestamp)
		}
	}
	w.str(a.PreviousAllocation)
	w.str(a.NextAllocation)
	if rt := a.RescheduleTracker; w.present(rt != nil) {
		w.count(len(rt.Events), rt.Events == nil)
		for _, e := range rt.Events {
			if w.present(e != nil) {
				w.varint(e.RescheduleTime)
				w.str(e.PrevAllocID)
				w.str(e.PrevNodeID)
				w.varint(int64(e.Delay))
			}
		}
	}
	w.str(a.FollowupEvalID)
	w.str(a.DeploymentID)
	if ds := a.DeploymentStatus; w.present(ds != nil) {
		switch {
		case ds.Healthy == nil:
			w.uvarint(0)
		case !*ds.Healthy:
			w.uvarint(1)
		default:
			w.uvarint(2)
		}
		w.varint(ds.Timestamp)
		w.bool(ds.Canary)
	}
	w.bool(a.DesiredTransition.Migrate)
	if m := a.Metrics; w.present(m != nil) {
		w.writeMetric(m)
	}
	w.strings(a.PreemptedAllocations)
	w.str(a.PreemptedByAllocation)
	w.uvarint(a.CreateIndex)
	w.uvarint(a.ModifyIndex)
	w.uvarint(a.AllocModifyIndex)
	w.varint(a.CreateTime)
	w.varint(a.ModifyTime)
}

// readAlloc reads what writeAlloc wrote. planJob is the decoded job of
// the plan (nil outside plans: a reference to it is corrupt).
func (r *compactReader) readAlloc(planJob *Job) *Allocation {
	a := &Allocation{}
	a.ID = r.str()
	a.EvalID = r.word()
	a.Name = r.str()
	a.NodeID = r.word()
	a.NodeName = r.word()
	a.JobID = r.word()
	a.Namespace = r.word()
	switch tag := r.uvarint(); tag {
	case compactJobNone:
	case compactJobPlan:
		if planJob == nil {
			r.fail("allocation refers to a plan job that is not there")
		}
		a.Job = planJob
	case compactJobOwn:
		j := new(Job)
		if r.blob(j) {
			a.Job = j
		} else {
			r.fail("allocation's own job is empty")
		}
	default:
		r.fail("allocation job tag %d", tag)
	}
	a.JobVersion = r.uvarint()
	a.TaskGroup = r.word()
	if r.present() {
		ar := &AllocatedResources{}
		ar.Tasks = shared(r, &r.tasks, r.readTasks)
		if n, isNil := r.count(); !isNil {
			ar.Shared.Ports = make([]AllocatedPortMapping, n)
			for i := 0; i < n && r.err == nil; i++ {
				p := &ar.Shared.Ports[i]
				p.Label = r.word()
				p.Value = r.int()
				p.To = r.int()
				p.HostIP = r.word()
			}
		}
		a.AllocatedResources = ar
	}
	a.DesiredStatus = r.word()
	a.DesiredDescription = r.word()
	a.ClientStatus = r.word()
	a.ClientDescription = r.word()
	if n, isNil := r.count(); !isNil {
		a.TaskStates = make(map[string]*TaskState, n)
		var prev string
		for i := 0; i < n && r.err == nil; i++ {
			k := r.key(prev, i == 0)
			var ts *TaskState
			if r.present() {
				ts = r.readTaskState()
			}
			a.TaskStates[k] = ts
			prev = k
		}
	}
	if n, isNil := r.count(); !isNil {
		a.Checks = make(map[string]*CheckStatus, n)
		var prev string
		for i := 0; i < n && r.err == nil; i++ {
			k := r.key(prev, i == 0)
			var c *CheckStatus
			if r.present() {
				c = &CheckStatus{}
				c.Service = r.word()
				c.Check = r.word()
				c.Status = r.word()
				c.Output = r.word()
				c.Timestamp = r.varint()
			}
			a.Checks[k] = c
			prev = k
		}
	}
	a.PreviousAllocation = r.str()
	a.NextAllocation = r.str()
	if r.present() {
		rt := &RescheduleTracker{}
		if n, isNil := r.count(); !isNil {
			rt.Events = make([]*RescheduleEvent, n)
			for i := 0; i < n && r.err == nil; i++ {
				if r.present() {
					e := &RescheduleEvent{}
					e.RescheduleTime = r.varint()
					e.PrevAllocID = r.str()
					e.PrevNodeID = r.str()
					e.Delay = time.Duration(r.varint())
					rt.Events[i] = e
				}
			}
		}
		a.RescheduleTracker = rt
	}
	a.FollowupEvalID = r.str()
	a.DeploymentID = r.word()
	if r.present() {
		ds := &AllocDeploymentStatus{}
		switch h := r.uvarint(); h {
		case 0:
		case 1, 2:
			healthy := h == 2
			ds.Healthy = &healthy
		default:
			r.fail("deployment health %d", h)
		}
		ds.Timestamp = r.varint()
		ds.Canary = r.bool()
		a.DeploymentStatus = ds
	}
	a.DesiredTransition.Migrate = r.bool()
	if r.present() {
		a.Metrics = r.readMetric()
	}
	a.PreemptedAllocations = r.strings()
	a.PreemptedByAllocation = r.str()
	a.CreateIndex = r.uvarint()
	a.ModifyIndex = r.uvarint()
	a.AllocModifyIndex = r.uvarint()
	a.CreateTime = r.varint()
	a.ModifyTime = r.varint()
	return a
}

// readTasks reads AllocatedResources.Tasks.
func (r *compactReader) readTasks() map[string]*AllocatedTaskResources {
	n, isNil := r.count()
	if isNil {
		return nil
	}
	tasks := make(map[string]*AllocatedTaskResources, n)
	var prev string
	for i := 0; i < n && r.err == nil; i++ {
		k := r.key(prev, i == 0)
		var t *AllocatedTaskResources
		if r.present() {
			t = &AllocatedTaskResources{}
			t.Cpu.CpuShares = r.varint()
			t.Memory.MemoryMB = r.varint()
		}
		tasks[k] = t
		prev = k
	}
	return tasks
}

func (w *compactWriter) writeTaskState(ts *TaskState) {
	w.str(ts.State)
	w.bool(ts.Failed)
	w.uvarint(ts.Restarts)
	w.time(ts.LastRestart)
	w.time(ts.StartedAt)
	w.time(ts.FinishedAt)
	w.count(len(ts.Events), ts.Events == nil)
	for _, e := range ts.Events {
		if w.present(e != nil) {
			w.str(e.Type)
			w.varint(e.Time)
			w.str(e.Message)
			w.int(e.ExitCode)
			w.int(e.Signal)
		}
	}
}

func (r *compactReader) readTaskState() *TaskState {
	ts := &TaskState{}
	ts.State = r.word()
	ts.Failed = r.bool()
	ts.Restarts = r.uvarint()
	ts.LastRestart = r.time()
	ts.StartedAt = r.time()
	ts.FinishedAt = r.time()
	if n, isNil := r.count(); !isNil {
		ts.Events = make([]*TaskEvent, n)
		// One allocation for the events, not one each.
		events := make([]TaskEvent, n)
		for i := 0; i < n && r.err == nil; i++ {
			if r.present() {
				e := &events[i]
				e.Type = r.word()
				e.Time = r.varint()
				e.Message = r.word()
				e.ExitCode = r.int()
				e.Signal = r.int()
				ts.Events[i] = e
			}
		}
	}
	return ts
}

func (w *compactWriter) writeMetric(m *AllocMetric) {
	w.int(m.NodesEvaluated)
	w.int(m.NodesFiltered)
	w.intMap(m.NodesAvailable)
	w.intMap(m.ClassFiltered)
	w.intMap(m.ConstraintFiltered)
	w.int(m.NodesExhausted)
	w.intMap(m.ClassExhausted)
	w.intMap(m.DimensionExhausted)
	w.count(len(m.ScoreMetaData), m.ScoreMetaData == nil)
	for _, s := range m.ScoreMetaData {
		if w.present(s != nil) {
			w.str(s.NodeID)
			w.count(len(s.Scores), s.Scores == nil)
			for _, c := range s.Scores {
				w.str(c.Name)
				w.f64(c.Score)
			}
			w.f64(s.NormScore)
		}
	}
	w.varint(int64(m.AllocationTime))
	w.int(m.CoalescedFailures)
	w.strings(m.QuotaExhausted)
}

func (r *compactReader) readMetric() *AllocMetric {
	m := &AllocMetric{}
	m.NodesEvaluated = r.int()
	m.NodesFiltered = r.int()
	m.NodesAvailable = shared(r, &r.nodesAvailable, r.intMap)
	m.ClassFiltered = shared(r, &r.classFiltered, r.intMap)
	m.ConstraintFiltered = shared(r, &r.constraintFiltered, r.intMap)
	m.NodesExhausted = r.int()
	m.ClassExhausted = shared(r, &r.classExhausted, r.intMap)
	m.DimensionExhausted = shared(r, &r.dimensionExhausted, r.intMap)
	if n, isNil := r.count(); !isNil {
		m.ScoreMetaData = make([]*NodeScoreMeta, n)
		metas := make([]NodeScoreMeta, n)
		for i := 0; i < n && r.err == nil; i++ {
			if !r.present() {
				continue
			}
			s := &metas[i]
			s.NodeID = r.str()
			if k, isNil := r.count(); !isNil {
				s.Scores = make(ScoreComponents, k)
				for j := 0; j < k && r.err == nil; j++ {
					s.Scores[j].Name = r.word()
					s.Scores[j].Score = r.f64()
				}
			}
			s.NormScore = r.f64()
			m.ScoreMetaData[i] = s
		}
	}
	m.AllocationTime = time.Duration(r.varint())
	m.CoalescedFailures = r.int()
	m.QuotaExhausted = r.strings()
	return m
}

// writeStop writes what the state store reads from a stopped or
// preempted allocation of a plan (state.upsertPlanResultsTxn): its ID,
// the new desired status and description, the client status (lost, or
// empty to keep the stored one) and the preempting allocation.
func (w *compactWriter) writeStop(a *Allocation) {
	w.str(a.ID)
	w.str(a.DesiredStatus)
	w.str(a.DesiredDescription)
	w.str(a.ClientStatus)
	w.str(a.PreemptedByAllocation)
}

func (r *compactReader) readStop() *Allocation {
	a := &Allocation{}
	a.ID = r.str()
	a.DesiredStatus = r.word()
	a.DesiredDescription = r.word()
	a.ClientStatus = r.word()
	a.PreemptedByAllocation = r.str()
	return a
}

// CompactStop returns the part of a stopped or preempted allocation
// that a compact plan entry carries: what the FSM reads from it.
func CompactStop(a *Allocation) *Allocation {
	if a == nil {
		return nil
	}
	return &Allocation{
		ID:                    a.ID,
		DesiredStatus:         a.DesiredStatus,
		DesiredDescription:    a.DesiredDescription,
		ClientStatus:          a.ClientStatus,
		PreemptedByAllocation: a.PreemptedByAllocation,
	}
}
