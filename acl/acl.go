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
	if a == nil {
		return nil
	}
	if caps, ok := a.exact[ns]; ok {
		return caps
	}
	for _, g := range a.globs {
		if strings.HasPrefix(ns, g.prefix) {
			return g.caps
		}
	}
	return nil
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
