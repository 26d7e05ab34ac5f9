package structs

import "fmt"

// Quotas bound what the allocations of one namespace may hold at once:
// CPU (MHz), memory (MB) and the number of allocations. Only
// non-terminal allocations count (desired to run, and not complete,
// failed or lost on their client).
//
// A quota binds to a namespace in one of two ways:
//
//   - the namespace's Quota field names it (Nomad's way:
//     `drover namespace apply -quota NAME ns`), or
//   - the quota's own Namespace field names the namespace.
//
// When both are set the namespace's Quota field wins: it is what an
// operator who manages namespaces chose. A quota spec whose Namespace
// names a namespace that is bound, by its Quota field, to another quota
// is refused (409), so the two bindings never disagree silently; two
// quota specs may not name the same namespace either.
//
// The plan applier on the leader enforces quotas (it cannot race); the
// scheduler checks them too, to explain a placement that fails on a
// quota and block the evaluation until allocations of the namespace
// stop or the quota is raised.

// Quota limits.
const (
	// MaxQuotaNameLength bounds a quota's name (bytes).
	MaxQuotaNameLength = 128
	// MaxQuotaDescriptionLength bounds a quota's description.
	MaxQuotaDescriptionLength = 256
	// MaxQuotaLimit bounds each limit: far above any cluster (2^40 MHz
	// or MB), and low enough that sums of usage and asks never overflow.
	MaxQuotaLimit = int64(1) << 40
)

// QuotaLimits is an amount per dimension. In a QuotaSpec, 0 means
// unlimited for that dimension.
type QuotaLimits struct {
	// CPU in MHz.
	CPU int64
	// MemoryMB in MB (MiB, as tasks ask for memory).
	MemoryMB int64
	// Allocations counts allocations.
	Allocations int64
}

// Add returns l + o. Sums wrap like int64 arithmetic: usage is kept as a
// running sum where every amount added is subtracted again later, which
// is exact under wrapping; the plan applier never commits allocations
// whose amounts overflow (structs.AllocsFit refuses them).
func (l QuotaLimits) Add(o QuotaLimits) QuotaLimits {
	return QuotaLimits{CPU: l.CPU + o.CPU, MemoryMB: l.MemoryMB + o.MemoryMB, Allocations: l.Allocations + o.Allocations}
}

// Sub returns l - o (wrapping, see Add).
func (l QuotaLimits) Sub(o QuotaLimits) QuotaLimits {
	return QuotaLimits{CPU: l.CPU - o.CPU, MemoryMB: l.MemoryMB - o.MemoryMB, Allocations: l.Allocations - o.Allocations}
}

// IsZero reports whether every dimension is zero.
func (l QuotaLimits) IsZero() bool { return l == QuotaLimits{} }

// Increases reports whether any dimension of the delta l is positive.
func (l QuotaLimits) Increases() bool { return l.CPU > 0 || l.MemoryMB > 0 || l.Allocations > 0 }

// QuotaSpec is a named set of limits bound to a namespace.
type QuotaSpec struct {
	Name        string
	Description string
	// Namespace binds the quota to a namespace (see the binding rules
	// above); empty when only a namespace's Quota field binds it.
	Namespace   string
	Limits      QuotaLimits
	CreateIndex uint64
	ModifyIndex uint64
}

// Copy returns a copy.
func (q *QuotaSpec) Copy() *QuotaSpec {
	if q == nil {
		return nil
	}
	c := *q
	return &c
}

// Validate checks a quota spec before it is written.
func (q *QuotaSpec) Validate() error {
	if q == nil {
		return fmt.Errorf("quota is missing")
	}
	if err := ValidateQuotaName(q.Name); err != nil {
		return err
	}
	if len(q.Description) > MaxQuotaDescriptionLength {
		return fmt.Errorf("quota %q: the description is %d bytes long; the limit is %d", q.Name, len(q.Description), MaxQuotaDescriptionLength)
	}
	if !printableName(q.Description) {
		return fmt.Errorf("quota %q: the description has control characters or invalid UTF-8", q.Name)
	}
	if q.Namespace != "" {
		if err := ValidateNamespaceName(q.Namespace); err != nil {
			return fmt.Errorf("quota %q: %w", q.Name, err)
		}
	}
	for _, d := range []struct {
		name string
		v    int64
	}{{"cpu", q.Limits.CPU}, {"memory", q.Limits.MemoryMB}, {"allocations", q.Limits.Allocations}} {
		if d.v < 0 || d.v > MaxQuotaLimit {
			return fmt.Errorf("quota %q: limit %s is %d; use 0 (unlimited) to %d", q.Name, d.name, d.v, MaxQuotaLimit)
		}
	}
	return nil
}

// ValidateQuotaName checks a quota's name: like a namespace's, it is
// used in URLs, CLI arguments and namespace specs.
func ValidateQuotaName(name string) error {
	switch {
	case len(name) > MaxQuotaNameLength:
		return fmt.Errorf("quota name is %d bytes long; the limit is %d", len(name), MaxQuotaNameLength)
	case !namespaceNameRE.MatchString(name):
		return fmt.Errorf("quota name %q is invalid: use 1-128 letters, digits and dashes", name)
	}
	return nil
}

// QuotaContribution is what an allocation counts against its namespace's
// quota: its CPU and memory and one allocation while it is non-terminal
// (desired to run and not finished on its client), nothing after.
func QuotaContribution(a *Allocation) QuotaLimits {
	if a == nil || a.TerminalStatus() {
		return QuotaLimits{}
	}
	u := a.Usage()
	return QuotaLimits{CPU: u.CPU, MemoryMB: u.MemoryMB, Allocations: 1}
}

// QuotaExceeded checks used against the spec's limits and, for the
// first dimension over its limit, returns the explanation shown in
// placement failures: `quota "team-a" exhausted: memory 4096/4096 MB`
// (dimension, used/limit, unit). used is what the namespace holds
// without the allocation that does not fit; ask is what that
// allocation would add. It returns "" when used+ask fits.
func (q *QuotaSpec) QuotaExceeded(used, ask QuotaLimits) string {
	if q == nil {
		return ""
	}
	for _, d := range []struct {
		name, unit       string
		used, ask, limit int64
	}{
		{"cpu", " MHz", used.CPU, ask.CPU, q.Limits.CPU},
		{"memory", " MB", used.MemoryMB, ask.MemoryMB, q.Limits.MemoryMB},
		{"allocations", "", used.Allocations, ask.Allocations, q.Limits.Allocations},
	} {
		if d.limit == 0 || d.ask <= 0 {
			continue
		}
		// Compared as used > limit-ask so that a huge ask (a corrupt
		// allocation near MaxInt64) cannot overflow the sum into "fits".
		if d.ask > d.limit || d.used > d.limit-d.ask {
			return fmt.Sprintf("quota %q exhausted: %s %d/%d%s", q.Name, d.name, d.used, d.limit, d.unit)
		}
	}
	return ""
}

// QuotaUsage is a quota's limits and what its namespace uses.
type QuotaUsage struct {
	Name string
	// Namespace is the namespace the quota binds to ("" when none does).
	Namespace string
	Used      QuotaLimits
	Limits    QuotaLimits
}

// QuotaListRequest lists quota specs (by name prefix with Prefix).
type QuotaListRequest struct {
	QueryOptions
}

// QuotaListResponse carries quota specs, sorted by name.
type QuotaListResponse struct {
	Quotas []*QuotaSpec
	QueryMeta
}

// QuotaSpecificRequest reads one quota spec, or its usage.
type QuotaSpecificRequest struct {
	Name string
	QueryOptions
}

// SingleQuotaResponse carries one quota spec, nil if unknown.
type SingleQuotaResponse struct {
	Quota *QuotaSpec
	QueryMeta
}

// QuotaUsageResponse carries a quota's usage, nil if the quota is
// unknown.
type QuotaUsageResponse struct {
	Usage *QuotaUsage
	QueryMeta
}

// QuotaUpsertRequest creates or updates quota specs (the Raft entry
// QuotaUpsertRequestType).
type QuotaUpsertRequest struct {
	Quotas []*QuotaSpec
	WriteRequest
}

// QuotaDeleteRequest deletes quota specs by name (the Raft entry
// QuotaDeleteRequestType).
type QuotaDeleteRequest struct {
	Names []string
	WriteRequest
}
