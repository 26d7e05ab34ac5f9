package scheduler

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/droverhq/drover/structs"
)

// resolveTarget resolves a constraint target against a node: node
// properties (${node.unique.id}, ${node.unique.name} or ${node.name},
// ${node.datacenter}, ${node.class}, ${node.pool}), fingerprinted
// attributes (${attr.<name>}) and agent metadata (${meta.<name>}). A
// target without "${" is a literal. found is false for a property the
// node does not have.
func resolveTarget(target string, node *structs.Node) (string, bool) {
	if !strings.HasPrefix(target, "${") || !strings.HasSuffix(target, "}") {
		return target, true
	}
	name := strings.TrimSpace(target[2 : len(target)-1])
	switch name {
	case "node.unique.id":
		return node.ID, true
	case "node.unique.name", "node.name":
		return node.Name, true
	case "node.datacenter":
		return node.Datacenter, true
	case "node.class":
		return node.NodeClass, node.NodeClass != ""
	case "node.pool":
		pool := node.NodePool
		if pool == "" {
			pool = structs.DefaultNodePool
		}
		return pool, true
	}
	if k, ok := strings.CutPrefix(name, "attr."); ok {
		v, found := node.Attributes[k]
		return v, found
	}
	if k, ok := strings.CutPrefix(name, "meta."); ok {
		v, found := node.Meta[k]
		return v, found
	}
	return "", false
}

// matcher evaluates constraint operators, caching compiled regular
// expressions and version constraints for the evaluation.
type matcher struct {
	regexps  map[string]*regexp.Regexp
	versions map[string]structs.VersionConstraint
	sets     map[string][]string
}

func newMatcher() *matcher {
	return &matcher{regexps: make(map[string]*regexp.Regexp), versions: make(map[string]structs.VersionConstraint), sets: make(map[string][]string)}
}

// set returns the items of a comma-separated list, parsed once.
func (m *matcher) set(list string) []string {
	if items, ok := m.sets[list]; ok {
		return items
	}
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	m.sets[list] = parts
	return parts
}

// meets reports whether a node satisfies one constraint (or affinity)
// operator. distinct_hosts and distinct_property are not checked here:
// they depend on the plan, not on the node alone.
func (m *matcher) meets(operand, ltarget, rtarget string, node *structs.Node) bool {
	l, lFound := resolveTarget(ltarget, node)
	r, rFound := resolveTarget(rtarget, node)
	switch operand {
	case structs.ConstraintDistinctHosts, structs.ConstraintDistinctProperty:
		return true
	case structs.ConstraintAttributeIsSet:
		return lFound
	case structs.ConstraintAttributeIsUnset:
		return !lFound
	case structs.ConstraintEqual, "==", "is":
		return lFound && rFound && l == r
	case structs.ConstraintNotEqual, "not":
		return !(lFound && rFound && l == r)
	}
	if !lFound || !rFound {
		return false
	}
	switch operand {
	case structs.ConstraintLess, structs.ConstraintLessEqual, structs.ConstraintGreater, structs.ConstraintGreaterEqual:
		return compareOrdered(operand, l, r)
	case structs.ConstraintRegex:
		re, ok := m.regexps[r]
		if !ok {
			var err error
			if re, err = regexp.Compile(r); err != nil {
				re = nil
			}
			m.regexps[r] = re
		}
		return re != nil && re.MatchString(l)
	case structs.ConstraintSetContains:
		for _, want := range m.set(r) {
			if !setHas(l, want) {
				return false
			}
		}
		return true
	case structs.ConstraintSetContainsAny:
		for _, want := range m.set(r) {
			if setHas(l, want) {
				return true
			}
		}
		return false
	case structs.ConstraintVersion:
		vc, ok := m.versions[r]
		if !ok {
			vc, _ = structs.ParseVersionConstraint(r)
			m.versions[r] = vc
		}
		return vc != nil && vc.Check(l)
	}
	return false
}

// compareOrdered compares numerically when both sides are numbers,
// lexically otherwise.
func compareOrdered(op, l, r string) bool {
	var cmp int
	lf, lerr := strconv.ParseFloat(l, 64)
	rf, rerr := strconv.ParseFloat(r, 64)
	if lerr == nil && rerr == nil {
		switch {
		case lf < rf:
			cmp = -1
		case lf > rf:
			cmp = 1
		}
	} else {
		cmp = strings.Compare(l, r)
	}
	switch op {
	case structs.ConstraintLess:
		return cmp < 0
	case structs.ConstraintLessEqual:
		return cmp <= 0
	case structs.ConstraintGreater:
		return cmp > 0
	default:
		return cmp >= 0
	}
}

// setHas reports whether the comma-separated list contains item, without
// allocating.
func setHas(list, item string) bool {
	for list != "" {
		var v string
		v, list, _ = strings.Cut(list, ",")
		if strings.TrimSpace(v) == item {
			return true
		}
	}
	return false
}
