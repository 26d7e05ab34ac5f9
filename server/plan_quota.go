package server

import (
	"sort"

	"github.com/droverhq/drover/structs"
)

// Quota enforcement in the plan applier.
//
// The plan applier is the one place where quotas cannot race: it is a
// single goroutine on the leader, and it checks each plan against the
// committed state plus every plan before it that is not committed yet
// (the entry in Raft and the plans gathered for the next, which the
// planView holds). So however many evaluations of a namespace plan at
// once, each against its own stale snapshot, the allocations committed
// in the namespace never hold more than its quota.
//
// A plan's part on a node that would take a namespace over its quota is
// rejected like a node that no longer fits: the worker refreshes its
// state and re-plans, and the scheduler, seeing the namespace full,
// explains the failure (quota "team-a" exhausted: ...) and blocks the
// evaluation. Parts that free usage or leave it unchanged are accepted
// first, so a rolling update that stops on one node and places on
// another is not refused for the order of its nodes.

// storedVersion returns the version of placed that the FSM will store
// over old (nil when new): an update keeps the client's status, and an
// allocation without a namespace gets the job's
// (state.UpsertPlanResults). The view stores the same, so its usage
// sums match the state's.
func storedVersion(old, placed *structs.Allocation, job *structs.Job) *structs.Allocation {
	fillNS := placed.Namespace == "" && job != nil
	if !fillNS && (old == nil || old.ClientStatus == placed.ClientStatus) {
		return placed
	}
	a := new(structs.Allocation)
	*a = *placed
	if old != nil {
		a.ClientStatus = old.ClientStatus
	}
	if fillNS {
		a.Namespace = structs.NamespaceOrDefault(job.Namespace)
	}
	return a
}

// countUsage records that an uncommitted plan changed an allocation
// from old (nil when new) to next.
func (v *planView) countUsage(old, next *structs.Allocation) {
	if v.usage == nil {
		v.usage = make(map[string]structs.QuotaLimits)
	}
	if old != nil {
		ns := structs.NamespaceOrDefault(old.Namespace)
		v.usage[ns] = v.usage[ns].Sub(structs.QuotaContribution(old))
	}
	ns := structs.NamespaceOrDefault(next.Namespace)
	v.usage[ns] = v.usage[ns].Add(structs.QuotaContribution(next))
}

// alloc returns an allocation as the view has it on nodeID, nil if
// unknown.
func (v *planView) alloc(nodeID, id string) (*structs.Allocation, error) {
	if m, ok := v.nodes[nodeID]; ok {
		return m[id], nil
	}
	a, err := v.snap.AllocByID(nil, id)
	if err != nil || a == nil || a.NodeID != nodeID {
		return nil, err
	}
	return a, nil
}

// used returns what namespace ns holds in the view: the committed usage
// plus that of the uncommitted plans.
func (v *planView) used(ns string) (structs.QuotaLimits, error) {
	u, err := v.snap.NamespaceUsage(nil, ns)
	if err != nil {
		return u, err
	}
	return u.Add(v.usage[ns]), nil
}

// nodeQuotaDelta returns how the plan's part on nodeID changes each
// namespace's usage, applying it as the FSM does: stops and evictions,
// then placements.
func (v *planView) nodeQuotaDelta(plan *structs.Plan, nodeID string) (map[string]structs.QuotaLimits, error) {
	before := make(map[string]*structs.Allocation)
	after := make(map[string]*structs.Allocation)
	load := func(id string) (*structs.Allocation, error) {
		if a, ok := after[id]; ok {
			return a, nil
		}
		a, err := v.alloc(nodeID, id)
		if err != nil {
			return nil, err
		}
		before[id], after[id] = a, a
		return a, nil
	}
	for _, list := range [][]*structs.Allocation{plan.NodeUpdate[nodeID], plan.NodePreemptions[nodeID]} {
		for _, stop := range list {
			cur, err := load(stop.ID)
			if err != nil {
				return nil, err
			}
			if cur == nil {
				continue // stopping what is gone is a no-op
			}
			a := new(structs.Allocation)
			*a = *cur
			a.DesiredStatus = stop.DesiredStatus
			if stop.ClientStatus != "" {
				a.ClientStatus = stop.ClientStatus
			}
			after[stop.ID] = a
		}
	}
	for _, placed := range plan.NodeAllocation[nodeID] {
		cur, err := load(placed.ID)
		if err != nil {
			return nil, err
		}
		after[placed.ID] = storedVersion(cur, placed, plan.Job)
	}
	delta := make(map[string]structs.QuotaLimits)
	for id, a := range after {
		if b := before[id]; b != nil {
			ns := structs.NamespaceOrDefault(b.Namespace)
			delta[ns] = delta[ns].Sub(structs.QuotaContribution(b))
		}
		ns := structs.NamespaceOrDefault(a.Namespace)
		delta[ns] = delta[ns].Add(structs.QuotaContribution(a))
	}
	return delta, nil
}

// quotaRejects returns, for the nodes (of those given, in sorted order)
// whose part of the plan would take a namespace over its quota, why.
// Parts that increase no namespace's usage are counted first and always
// accepted; then each increasing part is accepted while every namespace
// it grows stays within its quota, counting the parts accepted before.
func (v *planView) quotaRejects(plan *structs.Plan, nodes []string) (map[string]string, error) {
	if limited, err := v.placesUnderQuota(plan); err != nil || !limited {
		return nil, err
	}
	deltas := make(map[string]map[string]structs.QuotaLimits, len(nodes))
	var growing []string
	for _, nodeID := range nodes {
		if len(plan.NodeAllocation[nodeID]) == 0 {
			continue // stops alone free usage
		}
		d, err := v.nodeQuotaDelta(plan, nodeID)
		if err != nil {
			return nil, err
		}
		deltas[nodeID] = d
		for _, delta := range d {
			if delta.Increases() {
				growing = append(growing, nodeID)
				break
			}
		}
	}
	if len(growing) == 0 {
		return nil, nil
	}
	isGrowing := make(map[string]bool, len(growing))
	for _, n := range growing {
		isGrowing[n] = true
	}
	// accepted is the plan's change so far, per namespace.
	accepted := make(map[string]structs.QuotaLimits)
	for nodeID, d := range deltas {
		if isGrowing[nodeID] {
			continue
		}
		for ns, delta := range d {
			accepted[ns] = accepted[ns].Add(delta)
		}
	}
	var rejects map[string]string
	sort.Strings(growing)
	for _, nodeID := range growing {
		d := deltas[nodeID]
		why := ""
		for _, ns := range sortedNamespaces(d) {
			delta := d[ns]
			if !delta.Increases() {
				continue
			}
			spec, err := v.snap.QuotaOfNamespace(nil, ns)
			if err != nil {
				return nil, err
			}
			if spec == nil {
				continue
			}
			used, err := v.used(ns)
			if err != nil {
				return nil, err
			}
			if why = spec.QuotaExceeded(used.Add(accepted[ns]), delta); why != "" {
				break
			}
		}
		if why != "" {
			if rejects == nil {
				rejects = make(map[string]string)
			}
			rejects[nodeID] = why
			continue
		}
		for ns, delta := range d {
			accepted[ns] = accepted[ns].Add(delta)
		}
	}
	return rejects, nil
}

// placesUnderQuota reports whether the plan places into a namespace
// that has a quota: only those can be taken over one, and most plans
// are spared the per-node accounting.
func (v *planView) placesUnderQuota(plan *structs.Plan) (bool, error) {
	seen := make(map[string]bool, 1)
	for _, list := range plan.NodeAllocation {
		for _, a := range list {
			ns := a.Namespace
			if ns == "" && plan.Job != nil {
				ns = plan.Job.Namespace
			}
			ns = structs.NamespaceOrDefault(ns)
			if seen[ns] {
				continue
			}
			seen[ns] = true
			spec, err := v.snap.QuotaOfNamespace(nil, ns)
			if err != nil || spec != nil {
				return spec != nil, err
			}
		}
	}
	return false, nil
}

func sortedNamespaces(m map[string]structs.QuotaLimits) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
