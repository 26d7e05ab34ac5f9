package structs

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Constraint operators.
const (
	ConstraintEqual            = "="
	ConstraintNotEqual         = "!="
	ConstraintLess             = "<"
	ConstraintLessEqual        = "<="
	ConstraintGreater          = ">"
	ConstraintGreaterEqual     = ">="
	ConstraintRegex            = "regexp"
	ConstraintSetContains      = "set_contains"
	ConstraintSetContainsAny   = "set_contains_any"
	ConstraintVersion          = "version"
	ConstraintAttributeIsSet   = "is_set"
	ConstraintAttributeIsUnset = "is_not_set"
	// ConstraintDistinctHosts places at most one allocation of the job
	// (or of the group, when set on a group) per node.
	ConstraintDistinctHosts = "distinct_hosts"
	// ConstraintDistinctProperty places at most RTarget (default 1)
	// allocations per value of the LTarget property.
	ConstraintDistinctProperty = "distinct_property"
)

// ConstraintOperators lists the accepted operators.
var ConstraintOperators = []string{
	ConstraintEqual, ConstraintNotEqual, ConstraintLess, ConstraintLessEqual,
	ConstraintGreater, ConstraintGreaterEqual, ConstraintRegex, ConstraintSetContains,
	ConstraintSetContainsAny, ConstraintVersion, ConstraintAttributeIsSet,
	ConstraintAttributeIsUnset, ConstraintDistinctHosts, ConstraintDistinctProperty,
}

// Constraint restricts which nodes may run a job, group or task:
// LTarget (e.g. "${meta.rack}") Operand RTarget (e.g. "r9").
type Constraint struct {
	LTarget string
	RTarget string
	Operand string
}

// String renders the constraint as operators read it, e.g.
// `${meta.rack} = r9`; placement explanations use it as the key.
func (c *Constraint) String() string {
	switch c.Operand {
	case ConstraintDistinctHosts:
		return ConstraintDistinctHosts
	case ConstraintAttributeIsSet, ConstraintAttributeIsUnset:
		return c.LTarget + " " + c.Operand
	}
	return strings.TrimSpace(c.LTarget + " " + c.Operand + " " + c.RTarget)
}

// Copy returns a copy.
func (c *Constraint) Copy() *Constraint {
	if c == nil {
		return nil
	}
	n := *c
	return &n
}

func (c *Constraint) validate(p *problems, path string) {
	if !contains(ConstraintOperators, c.Operand) {
		p.add(path+".Operand", "unknown operator %q; accepted: %s", c.Operand, quoteAll(ConstraintOperators))
		return
	}
	switch c.Operand {
	case ConstraintDistinctHosts:
		return
	case ConstraintDistinctProperty:
		if c.LTarget == "" {
			p.add(path+".LTarget", "distinct_property needs the attribute to keep distinct")
		}
		if c.RTarget != "" {
			if n, err := strconv.Atoi(c.RTarget); err != nil || n < 1 {
				p.add(path+".RTarget", "distinct_property's value is the number allowed per property value; %q is not a positive integer", c.RTarget)
			}
		}
		return
	case ConstraintAttributeIsSet, ConstraintAttributeIsUnset:
		if c.LTarget == "" {
			p.add(path+".LTarget", "must name an attribute")
		}
		return
	}
	if c.LTarget == "" {
		p.add(path+".LTarget", "must name an attribute, e.g. \"${meta.rack}\"")
	}
	switch c.Operand {
	case ConstraintRegex, ConstraintVersion:
		validateMatchValue(p, path+".RTarget", c.Operand, c.RTarget)
	case ConstraintLess, ConstraintLessEqual, ConstraintGreater, ConstraintGreaterEqual:
		if c.RTarget == "" {
			p.add(path+".RTarget", "must be set")
		}
	}
}

// Affinity prefers (positive Weight) or avoids (negative Weight) nodes;
// it only scores, it never filters.
type Affinity struct {
	LTarget string
	RTarget string
	Operand string
	// Weight is -100..100, not 0.
	Weight int8
}

// String renders the affinity for explanations.
func (a *Affinity) String() string {
	return fmt.Sprintf("%s %s %s (weight %d)", a.LTarget, a.Operand, a.RTarget, a.Weight)
}

// Copy returns a copy.
func (a *Affinity) Copy() *Affinity {
	if a == nil {
		return nil
	}
	n := *a
	return &n
}

func (a *Affinity) validate(p *problems, path string) {
	switch a.Operand {
	case ConstraintDistinctHosts, ConstraintDistinctProperty:
		p.add(path+".Operand", "%s is not an affinity operator", a.Operand)
		return
	}
	if !contains(ConstraintOperators, a.Operand) {
		p.add(path+".Operand", "unknown operator %q", a.Operand)
	}
	if a.LTarget == "" {
		p.add(path+".LTarget", "must name an attribute")
	}
	if a.Weight == 0 || a.Weight < -100 || a.Weight > 100 {
		p.add(path+".Weight", "%d is not allowed; accepted: -100 to 100, not 0", a.Weight)
	}
	if a.Operand == ConstraintRegex || a.Operand == ConstraintVersion {
		validateMatchValue(p, path+".RTarget", a.Operand, a.RTarget)
	}
}

// validateMatchValue checks a regexp or version constraint's value. A
// value that refers to a node attribute ("${meta.min_version}") is only
// known on the node, so it is checked there.
func validateMatchValue(p *problems, path, operand, value string) {
	if strings.Contains(value, "${") {
		return
	}
	switch operand {
	case ConstraintRegex:
		if _, err := regexp.Compile(value); err != nil {
			p.add(path, "invalid regular expression: %v", err)
		}
	case ConstraintVersion:
		if _, err := ParseVersionConstraint(value); err != nil {
			p.add(path, "%v", err)
		}
	}
}

// Spread distributes a group's allocations over the values of an
// attribute: by the targets' percentages, or evenly when none are
// given.
type Spread struct {
	Attribute string
	// Weight is 0..100: how much the spread counts against the other
	// scores (default 50).
	Weight       int8
	SpreadTarget []*SpreadTarget
}

// SpreadTarget is a desired share of allocations for one value.
type SpreadTarget struct {
	Value   string
	Percent uint8
}

// Copy returns a deep copy.
func (s *Spread) Copy() *Spread {
	if s == nil {
		return nil
	}
	n := *s
	if s.SpreadTarget == nil {
		return &n
	}
	n.SpreadTarget = make([]*SpreadTarget, len(s.SpreadTarget))
	for i, t := range s.SpreadTarget {
		tc := *t
		n.SpreadTarget[i] = &tc
	}
	return &n
}

func (s *Spread) validate(p *problems, path string) {
	if s.Attribute == "" {
		p.add(path+".Attribute", "must name an attribute, e.g. \"${meta.rack}\"")
	}
	if s.Weight < 0 || s.Weight > 100 {
		p.add(path+".Weight", "%d is out of range; accepted: 0 to 100", s.Weight)
	}
	sum := 0
	seen := map[string]bool{}
	for i, t := range s.SpreadTarget {
		tpath := fmt.Sprintf("%s.SpreadTarget[%d]", path, i)
		if t.Value == "" {
			p.add(tpath+".Value", "must be set")
		}
		if seen[t.Value] {
			p.add(tpath+".Value", "target %q is given twice", t.Value)
		}
		seen[t.Value] = true
		if t.Percent > 100 {
			p.add(tpath+".Percent", "%d is over 100", t.Percent)
		}
		sum += int(t.Percent)
	}
	if sum > 100 {
		p.add(path+".SpreadTarget", "the targets' percentages add up to %d, over 100", sum)
	}
}

// VersionConstraint is a parsed "version" operand: comparisons joined by
// commas, all of which must hold, e.g. ">= 1.2, < 2.0".
type VersionConstraint []versionCheck

type versionCheck struct {
	op  string
	ver []int
}

var versionCheckPattern = regexp.MustCompile(`^\s*(>=|<=|!=|=|>|<|~>)?\s*v?([0-9]+(\.[0-9]+)*)\s*$`)

// ParseVersionConstraint parses a version constraint.
func ParseVersionConstraint(s string) (VersionConstraint, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("a version constraint such as \">= 1.2, < 2\" is required")
	}
	var out VersionConstraint
	for _, part := range strings.Split(s, ",") {
		m := versionCheckPattern.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("%q is not a version constraint; use comparisons like \">= 1.2.0, < 2\"", strings.TrimSpace(part))
		}
		op := m[1]
		if op == "" {
			op = "="
		}
		v, _ := parseVersion(m[2])
		out = append(out, versionCheck{op: op, ver: v})
	}
	return out, nil
}

// parseVersion parses the leading numeric part of a version string
// ("5.10.0-1-amd64" -> [5 10 0]).
func parseVersion(s string) ([]int, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	var out []int
	for _, part := range strings.Split(s, ".") {
		digits := part
		for i, r := range part {
			if r < '0' || r > '9' {
				digits = part[:i]
				break
			}
		}
		if digits == "" {
			break
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
		if len(digits) != len(part) {
			break
		}
	}
	return out, len(out) > 0
}

func compareVersions(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Check reports whether version satisfies every comparison.
func (vc VersionConstraint) Check(version string) bool {
	v, ok := parseVersion(version)
	if !ok {
		return false
	}
	for _, c := range vc {
		cmp := compareVersions(v, c.ver)
		var pass bool
		switch c.op {
		case "=":
			pass = cmp == 0
		case "!=":
			pass = cmp != 0
		case ">":
			pass = cmp > 0
		case ">=":
			pass = cmp >= 0
		case "<":
			pass = cmp < 0
		case "<=":
			pass = cmp <= 0
		case "~>":
			// Pessimistic: >= c.ver and below the next release of its
			// second-to-last component.
			upper := append([]int(nil), c.ver...)
			if len(upper) > 1 {
				upper = upper[:len(upper)-1]
			}
			upper[len(upper)-1]++
			pass = cmp >= 0 && compareVersions(v, upper) < 0
		}
		if !pass {
			return false
		}
	}
	return true
}
