package scheduler

import (
	"fmt"

	"github.com/droverhq/drover/structs"
)

// quotaTracker checks a job's placements against its namespace's quota
// while the scheduler places them, so that a placement over the quota
// fails with an explanation (AllocMetric.QuotaExhausted) and the
// evaluation blocks until allocations of the namespace stop or the
// quota is raised, as it does for exhausted capacity.
//
// It is advice, not enforcement: the snapshot may be stale, and other
// evaluations place into the same namespace concurrently. The plan
// applier on the leader re-checks every plan against the newest state
// and refuses what would go over (server/plan_apply.go); this check
// makes its refusals rare and explains them.
type quotaTracker struct {
	spec *structs.QuotaSpec
	ns   string
	// used is what the namespace would hold if the plan so far
	// committed.
	used structs.QuotaLimits
}

// newQuotaTracker returns the tracker of namespace ns for plan as it
// stands, or nil when ns has no quota.
func newQuotaTracker(st State, ns string, plan *structs.Plan) (*quotaTracker, error) {
	ns = structs.NamespaceOrDefault(ns)
	spec, err := st.QuotaOfNamespace(nil, ns)
	if err != nil || spec == nil {
		return nil, err
	}
	used, err := st.NamespaceUsage(nil, ns)
	if err != nil {
		return nil, err
	}
	t := &quotaTracker{spec: spec, ns: ns, used: used}
	// What the plan already stops, evicts or updates in place changes
	// the usage the placements are checked against.
	for _, m := range []map[string][]*structs.Allocation{plan.NodeUpdate, plan.NodePreemptions} {
		for _, list := range m {
			for _, a := range list {
				if err := t.change(st, a, nil); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, list := range plan.NodeAllocation {
		for _, a := range list {
			if err := t.change(st, a, a); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// change counts the plan's change of allocation a (by ID) to next (nil
// for a stop or eviction).
func (t *quotaTracker) change(st State, a, next *structs.Allocation) error {
	cur, err := st.AllocByID(nil, a.ID)
	if err != nil {
		return err
	}
	if cur != nil && structs.NamespaceOrDefault(cur.Namespace) == t.ns {
		t.used = t.used.Sub(structs.QuotaContribution(cur))
	}
	if next == nil || structs.NamespaceOrDefault(next.Namespace) != t.ns {
		return nil
	}
	if cur != nil {
		// The FSM keeps the client's view of an updated allocation.
		c := *next
		c.ClientStatus = cur.ClientStatus
		next = &c
	}
	t.used = t.used.Add(structs.QuotaContribution(next))
	return nil
}

// exceeded explains why one more allocation of tg does not fit the
// quota, or returns "".
func (t *quotaTracker) exceeded(tg *structs.TaskGroup) string {
	if t == nil {
		return ""
	}
	ask := structs.AskOf(tg)
	why := t.spec.QuotaExceeded(t.used, structs.QuotaLimits{CPU: ask.CPU, MemoryMB: ask.MemoryMB, Allocations: 1})
	if why != "" {
		why += fmt.Sprintf(" (an allocation of group %q asks for %d MHz, %d MB)", tg.Name, ask.CPU, ask.MemoryMB)
	}
	return why
}

// placed counts a placement the plan made.
func (t *quotaTracker) placed(a *structs.Allocation) {
	if t != nil {
		t.used = t.used.Add(structs.QuotaContribution(a))
	}
}

// stopped counts a stop (or eviction) of a the plan made after the
// tracker was built.
func (t *quotaTracker) stopped(a *structs.Allocation) {
	if t != nil && structs.NamespaceOrDefault(a.Namespace) == t.ns {
		t.used = t.used.Sub(structs.QuotaContribution(a))
	}
}

// keptRunning counts a stop the plan took back.
func (t *quotaTracker) keptRunning(a *structs.Allocation) {
	if t != nil && structs.NamespaceOrDefault(a.Namespace) == t.ns {
		t.used = t.used.Add(structs.QuotaContribution(a))
	}
}
