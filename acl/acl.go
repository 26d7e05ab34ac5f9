package acl

import (
	"sort"
	"strings"
)

// level is the merged disposition of a node, agent, operator or quota
// rule. Merging takes the highest; levelDeny is highest, so a deny in
// any of a token's policies wins over every grant.
type level uint8

const (
	levelNone level = iota
	levelRead
	levelWrite
	levelDeny
)

func levelOf(policy string) level {
	switch policy {
	case PolicyRead:
		return levelRead
	case PolicyWrite:
		return levelWrite
	case PolicyDeny:
		return levelDeny
	}
	return levelNone
}

func (l level) allowRead() bool  { return l == levelRead || l == levelWrite }
func (l level) allowWrite() bool { return l == levelWrite }

// capSet is the merged capabilities of one namespace label.
type capSet map[string]bool

func (c capSet) allow(capability string) bool {
	return !c[CapabilityDeny] && c[capability]
}

// globRule is a namespace rule whose label ends in "*".
type globRule struct {
	prefix string
	caps   capSet
}

// ACL is the compiled rules of one token: every policy of the token
// merged. It is immutable and safe for concurrent use.
//
// Merging: rules for the same namespace label (in any of the policies)
// are united, and a deny capability among them makes the label deny
// everything. A namespace is governed by the rule of its exact name if
// there is one, otherwise by the glob with the longest prefix that
// matches it ("team-*" before "*"): the most specific rule wins, so
// namespace "team-a" { policy = "deny" } carves team-a out of a
// "team-*" grant. Node, agent, operator and quota take the highest of
// their rules, where deny is highest.
//
// A nil *ACL allows nothing: code that forgot to resolve a token fails
// closed.
type ACL struct {
	management bool

	exact map[string]capSet
	// globs are sorted by prefix length, longest (most specific) first.
	globs []globRule

	node, agent, operator, quota level

	// vars holds the variables path rules by namespace label as written
	// ("team-a", "team-*", "*"), merged across policies.
	vars map[string]map[string]capSet
}

// management is the ACL of management tokens: everything is allowed.
var management = &ACL{management: true}

// ManagementACL returns the ACL of a management token, which allows
// everything.
func ManagementACL() *ACL { return management }

// Compile merges policies into one ACL. Nil policies are skipped. With
// no policies the ACL allows nothing.
func Compile(policies ...*Policy) *ACL {
	a := &ACL{exact: make(map[string]capSet)}
	globs := make(map[string]capSet)
	for _, p := range policies {
		if p == nil {
			continue
		}
		for _, r := range p.Namespaces {
			target := a.exact
			key := r.Name
			if prefix, ok := strings.CutSuffix(r.Name, "*"); ok {
				target, key = globs, prefix
			}
			set := target[key]
			if set == nil {
				set = make(capSet)
				target[key] = set
			}
			for _, c := range r.Expanded() {
				set[c] = true
			}
			for _, vr := range r.Variables {
				if a.vars == nil {
					a.vars = make(map[string]map[string]capSet)
				}
				byPath := a.vars[r.Name]
				if byPath == nil {
					byPath = make(map[string]capSet)
					a.vars[r.Name] = byPath
				}
				caps := byPath[vr.Path]
				if caps == nil {
					caps = make(capSet)
					byPath[vr.Path] = caps
				}
				for _, c := range vr.Capabilities {
					caps[c] = true
				}
			}
		}
		a.node = max(a.node, levelOf(p.Node))
		a.agent = max(a.agent, levelOf(p.Agent))
		a.operator = max(a.operator, levelOf(p.Operator))
		a.quota = max(a.quota, levelOf(p.Quota))
	}
	for prefix, caps := range globs {
		a.globs = append(a.globs, globRule{prefix: prefix, caps: caps})
	}
	sort.Slice(a.globs, func(i, j int) bool {
		if len(a.globs[i].prefix) != len(a.globs[j].prefix) {
			return len(a.globs[i].prefix) > len(a.globs[j].prefix)
		}
		return a.globs[i].prefix < a.globs[j].prefix
	})
	return a
}

// IsManagement reports whether this is a management token's ACL.
func (a *ACL) IsManagement() bool { return a != nil && a.management }

// namespaceRule returns the capabilities governing ns, nil when no rule
// matches.
func (a *ACL) namespaceRule(ns string) capSet {
	_, caps := a.governing(ns)
	return caps
}

// governing returns the label of the rule governing ns (as written:
// "team-a", "team-*") and its capabilities; "" and nil when none.
func (a *ACL) governing(ns string) (string, capSet) {
	if a == nil {
		return "", nil
	}
	if caps, ok := a.exact[ns]; ok {
		return ns, caps
	}
	for _, g := range a.globs {
		if strings.HasPrefix(ns, g.prefix) {
			return g.prefix + "*", g.caps
		}
	}
	return "", nil
}

// variableNamespaceCaps maps a variables capability to the namespace
// capability that grants it on every path.
var variableNamespaceCaps = map[string]string{
	VariableCapRead:    CapabilityReadVariables,
	VariableCapWrite:   CapabilityWriteVariables,
	VariableCapList:    CapabilityListVariables,
	VariableCapDestroy: CapabilityDestroyVariables,
}

// AllowVariable reports whether the token has capability (read, write,
// list, destroy) on variable path in namespace ns. The namespace's rule
// governs; within it the most specific variables path rule (the exact
// path, else the longest matching prefix glob) decides: a deny there
// refuses, a grant allows, and otherwise the namespace-wide capability
// (read-variables, ...; the read and write policies include them)
// decides. A deny on the namespace refuses everything.
func (a *ACL) AllowVariable(ns, path, capability string) bool {
	if a == nil {
		return false
	}
	if a.IsManagement() {
		return true
	}
	label, caps := a.governing(ns)
	if caps[CapabilityDeny] {
		return false
	}
	if rule := bestVariableRule(a.vars[label], path); rule != nil {
		if rule[VariableCapDeny] {
			return false
		}
		if rule[capability] {
			return true
		}
	}
	return caps.allow(variableNamespaceCaps[capability])
}

// AllowAnyVariables reports whether the token may list some variables
// of ns (for refusing a list it could never see anything of).
func (a *ACL) AllowAnyVariables(ns string) bool {
	if a == nil {
		return false
	}
	if a.IsManagement() {
		return true
	}
	label, caps := a.governing(ns)
	if caps[CapabilityDeny] {
		return false
	}
	if caps.allow(CapabilityListVariables) {
		return true
	}
	for _, c := range a.vars[label] {
		if c[VariableCapList] && !c[VariableCapDeny] {
			return true
		}
	}
	return false
}

// bestVariableRule picks the rule for path: exact, else the longest
// prefix glob.
func bestVariableRule(rules map[string]capSet, path string) capSet {
	if c, ok := rules[path]; ok {
		return c
	}
	var best capSet
	bestLen := -1
	for glob, c := range rules {
		prefix, ok := strings.CutSuffix(glob, "*")
		if ok && strings.HasPrefix(path, prefix) && len(prefix) > bestLen {
			best, bestLen = c, len(prefix)
		}
	}
	return best
}

// AllowNamespace reports whether the token has capability in namespace
// ns.
func (a *ACL) AllowNamespace(ns, capability string) bool {
	if a.IsManagement() {
		return true
	}
	return a.namespaceRule(ns).allow(capability)
}

// NamespaceCapabilities returns the capabilities the token has in ns,
// sorted (empty for a denied namespace); for explaining refusals.
func (a *ACL) NamespaceCapabilities(ns string) []string {
	if a.IsManagement() {
		return append([]string(nil), NamespaceCapabilities[1:]...)
	}
	caps := a.namespaceRule(ns)
	if caps[CapabilityDeny] {
		return nil
	}
	var out []string
	for c, ok := range caps {
		if ok {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// ruleLevel returns the merged level of one of the non-namespace rules;
// management tokens have write everywhere.
func (a *ACL) ruleLevel(pick func(*ACL) level) level {
	switch {
	case a == nil:
		return levelNone
	case a.management:
		return levelWrite
	}
	return pick(a)
}

func nodeRule(a *ACL) level     { return a.node }
func agentRule(a *ACL) level    { return a.agent }
func operatorRule(a *ACL) level { return a.operator }
func quotaRule(a *ACL) level    { return a.quota }

// AllowNodeRead reports whether the token may read nodes.
func (a *ACL) AllowNodeRead() bool { return a.ruleLevel(nodeRule).allowRead() }

// AllowNodeWrite reports whether the token may change nodes (drain,
// eligibility).
func (a *ACL) AllowNodeWrite() bool { return a.ruleLevel(nodeRule).allowWrite() }

// AllowAgentRead reports whether the token may read agent information
// (self, members, metrics).
func (a *ACL) AllowAgentRead() bool { return a.ruleLevel(agentRule).allowRead() }

// AllowAgentWrite reports whether the token may act on agents (leave,
// keyring changes).
func (a *ACL) AllowAgentWrite() bool { return a.ruleLevel(agentRule).allowWrite() }

// AllowOperatorRead reports whether the token may read cluster operator
// information (Raft configuration, scheduler configuration).
func (a *ACL) AllowOperatorRead() bool { return a.ruleLevel(operatorRule).allowRead() }

// AllowOperatorWrite reports whether the token may change the cluster
// (Raft peer removal, scheduler configuration).
func (a *ACL) AllowOperatorWrite() bool { return a.ruleLevel(operatorRule).allowWrite() }

// AllowQuotaRead reports whether the token may read quotas.
func (a *ACL) AllowQuotaRead() bool { return a.ruleLevel(quotaRule).allowRead() }

// AllowQuotaWrite reports whether the token may change quotas.
func (a *ACL) AllowQuotaWrite() bool { return a.ruleLevel(quotaRule).allowWrite() }
