package structs

// Every server decodes each allocation from the Raft log, and the decoder
// gives every string and map its own copy: the same evaluation ID, job
// ID, group name and status words a thousand times over in a plan of a
// thousand placements, and the same per-datacenter counts in each
// placement's metrics. Compact, run by the FSM on what it decoded before
// the state store keeps it, makes those share one copy. Nothing here
// changes a value, only which memory holds it; the state store treats
// stored objects as immutable, so sharing is safe.

// internTable holds the fixed words of the model: statuses, task event
// types and score component names.
var internTable = func() map[string]string {
	words := []string{
		AllocDesiredStatusRun, AllocDesiredStatusStop, AllocDesiredStatusEvict,
		AllocClientStatusPending, AllocClientStatusRunning, AllocClientStatusComplete,
		AllocClientStatusFailed, AllocClientStatusLost,
		TaskStatePending, TaskStateRunning, TaskStateDead,
		TaskEventReceived, TaskEventDriverStart, TaskEventStarted, TaskEventTerminated,
		TaskEventRestarting, TaskEventNotRestart, TaskEventKilling, TaskEventKilled,
		TaskEventDriverError, TaskEventReattached, TaskEventSetupFailure,
		TaskEventTemplate, TaskEventRestartSignal, TaskEventSignaling,
		ScoreBinpack, ScoreJobAntiAffinity, ScoreNodeAffinity, ScoreSpread,
		ScoreReschedulePenalty, ScorePreemption,
	}
	m := make(map[string]string, len(words))
	for _, w := range words {
		m[w] = w
	}
	return m
}()

// internWord returns the shared copy of a fixed word, or s.
func internWord(s string) string {
	if s == "" {
		return s
	}
	if w, ok := internTable[s]; ok {
		return w
	}
	return s
}

// sameIntMap reports whether a and b hold the same entries.
func sameIntMap(a, b map[string]int) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// shareIntMap returns prev when it holds the same entries as m, else m.
func shareIntMap(prev, m map[string]int) map[string]int {
	if prev != nil && sameIntMap(prev, m) {
		return prev
	}
	return m
}

// sameTaskResources reports whether a and b grant the same resources.
func sameTaskResources(a, b map[string]*AllocatedTaskResources) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || (v == nil) != (w == nil) || (v != nil && *v != *w) {
			return false
		}
	}
	return true
}

// Compact makes the placed allocations of a decoded plan share the
// strings, granted task resources and metric maps they have in common
// with each other and with the plan's job.
func (r *ApplyPlanResultsRequest) Compact() {
	var (
		prev      *AllocMetric
		prevTasks map[string]*AllocatedTaskResources
	)
	for _, a := range r.AllocsPlaced {
		if ar := a.AllocatedResources; ar != nil {
			if prevTasks != nil && sameTaskResources(prevTasks, ar.Tasks) {
				ar.Tasks = prevTasks
			}
			prevTasks = ar.Tasks
		}
		if a.EvalID == r.EvalID {
			a.EvalID = r.EvalID
		}
		if r.Job != nil {
			if a.JobID == r.Job.ID {
				a.JobID = r.Job.ID
			}
			if a.Namespace == r.Job.Namespace {
				a.Namespace = r.Job.Namespace
			}
			if tg := r.Job.LookupTaskGroup(a.TaskGroup); tg != nil {
				a.TaskGroup = tg.Name
			}
		}
		a.DesiredStatus = internWord(a.DesiredStatus)
		a.ClientStatus = internWord(a.ClientStatus)
		if m := a.Metrics; m != nil {
			if prev != nil {
				m.NodesAvailable = shareIntMap(prev.NodesAvailable, m.NodesAvailable)
				m.ClassFiltered = shareIntMap(prev.ClassFiltered, m.ClassFiltered)
				m.ConstraintFiltered = shareIntMap(prev.ConstraintFiltered, m.ConstraintFiltered)
				m.ClassExhausted = shareIntMap(prev.ClassExhausted, m.ClassExhausted)
				m.DimensionExhausted = shareIntMap(prev.DimensionExhausted, m.DimensionExhausted)
			}
			// Scored node IDs are shared with the nodes table by
			// state.ShareNodeStrings, which has it.
			for _, s := range m.ScoreMetaData {
				for i := range s.Scores {
					s.Scores[i].Name = internWord(s.Scores[i].Name)
				}
			}
			prev = m
		}
	}
	for _, list := range [][]*Allocation{r.AllocsStopped, r.AllocsPreempted} {
		for _, a := range list {
			a.DesiredStatus = internWord(a.DesiredStatus)
			a.ClientStatus = internWord(a.ClientStatus)
		}
	}
}

// Compact makes the decoded client updates share the fixed words of
// their statuses and task events.
func (r *AllocUpdateRequest) Compact() {
	for _, a := range r.Alloc {
		a.ClientStatus = internWord(a.ClientStatus)
		for _, ts := range a.TaskStates {
			if ts == nil {
				continue
			}
			ts.State = internWord(ts.State)
			for _, e := range ts.Events {
				if e != nil {
					e.Type = internWord(e.Type)
				}
			}
		}
	}
}
