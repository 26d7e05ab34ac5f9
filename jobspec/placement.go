package jobspec

import (
	"fmt"
	"sort"

	"github.com/droverhq/drover/structs"
	"github.com/hashicorp/hcl/v2"
)

// Placement blocks: constraint, affinity and spread, in Nomad's syntax.
//
// A constraint or affinity is a rule "attribute operator value". Besides
// the three long-hand arguments, Nomad lets a rule name its operator by
// the argument that carries its operand: `version = ">= 3.10"` is
// `operator = "version"` plus `value = ">= 3.10"`, and
// `distinct_property = "${meta.rack}"` is `operator =
// "distinct_property"` plus `attribute = "${meta.rack}"`. Nomad lets the
// later of two such arguments win silently; here two arguments that set
// the same part of a rule differently are an error at the second one.

var (
	constraintSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "attribute"}, {Name: "operator"}, {Name: "value"},
			{Name: structs.ConstraintVersion}, {Name: structs.ConstraintRegex},
			{Name: structs.ConstraintSetContains},
			{Name: structs.ConstraintDistinctHosts}, {Name: structs.ConstraintDistinctProperty},
		},
	}
	affinitySchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "attribute"}, {Name: "operator"}, {Name: "value"}, {Name: "weight"},
			{Name: structs.ConstraintVersion}, {Name: structs.ConstraintRegex},
			{Name: structs.ConstraintSetContains}, {Name: structs.ConstraintSetContainsAny},
		},
	}
	spreadSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "attribute"}, {Name: "weight"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "target", LabelNames: []string{"value"}}},
	}
	spreadTargetSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "percent"}},
	}
)

// valueShorthands are the arguments that set both a rule's operator
// (named like the argument) and its value.
var valueShorthands = map[string]bool{
	structs.ConstraintVersion:        true,
	structs.ConstraintRegex:          true,
	structs.ConstraintSetContains:    true,
	structs.ConstraintSetContainsAny: true,
}

// operatorAliases are Nomad's other spellings of two operators.
var operatorAliases = map[string]string{
	"==":  structs.ConstraintEqual,
	"is":  structs.ConstraintEqual,
	"not": structs.ConstraintNotEqual,
}

// Affinity weight bounds and default, and spread weight and percentage
// bounds, as structs validates them.
const (
	defaultAffinityWeight = 50
	minAffinityWeight     = -100
	maxAffinityWeight     = 100
	maxSpreadWeight       = 100
	maxSpreadPercent      = 100
)

// placement converts the constraint, affinity and (when spreads is not
// nil) spread blocks of a job, group or task whose structs path is
// prefix ("" for the job, "TaskGroups[0]." for a group).
func (c *converter) placement(blocks hcl.Blocks, prefix string, cs *[]*structs.Constraint, as *[]*structs.Affinity, ss *[]*structs.Spread) {
	for _, b := range blocks.OfType("constraint") {
		path := fmt.Sprintf("%sConstraints[%d]", prefix, len(*cs))
		if con := c.constraint(b, path); con != nil {
			*cs = append(*cs, con)
		}
	}
	for _, b := range blocks.OfType("affinity") {
		path := fmt.Sprintf("%sAffinities[%d]", prefix, len(*as))
		*as = append(*as, c.affinity(b, path))
	}
	if ss == nil {
		return
	}
	for i, b := range blocks.OfType("spread") {
		if i == 0 {
			// Validate reports "spread does not apply" to system jobs
			// at the Spreads path; point at the first block.
			c.record(prefix+"Spreads", b.DefRange)
		}
		path := fmt.Sprintf("%sSpreads[%d]", prefix, len(*ss))
		*ss = append(*ss, c.spread(b, path))
	}
}

// constraint converts a `constraint { ... }` block found at path. It
// returns nil for `distinct_hosts = false`, which Nomad reads as no
// constraint at all.
func (c *converter) constraint(b *hcl.Block, path string) *structs.Constraint {
	c.record(path, b.DefRange)
	attrs := c.content(b.Body, constraintSchema).Attributes
	r, keep := c.rule(attrs, path, "constraint")
	if !keep {
		// The next constraint takes this one's index.
		c.forget(path)
		return nil
	}
	return &structs.Constraint{LTarget: r.LTarget, RTarget: r.RTarget, Operand: r.Operand}
}

// affinity converts an `affinity { ... }` block found at path. An
// absent weight is 50, as in Nomad.
func (c *converter) affinity(b *hcl.Block, path string) *structs.Affinity {
	c.record(path, b.DefRange)
	attrs := c.content(b.Body, affinitySchema).Attributes
	r, _ := c.rule(attrs, path, "affinity")
	a := &structs.Affinity{LTarget: r.LTarget, RTarget: r.RTarget, Operand: r.Operand, Weight: defaultAffinityWeight}
	if w, ok := c.intIn(attrs, "weight", path+".Weight", minAffinityWeight, maxAffinityWeight); ok {
		a.Weight = int8(w)
	}
	return a
}

// spread converts a `spread { ... }` block found at path. Each
// `target "<value>" { percent = N }` becomes a SpreadTarget. An absent
// weight stays 0 for Canonicalize to fill in.
func (c *converter) spread(b *hcl.Block, path string) *structs.Spread {
	sp := &structs.Spread{}
	c.record(path, b.DefRange)
	content := c.content(b.Body, spreadSchema)
	c.setString(content.Attributes, "attribute", path+".Attribute", &sp.Attribute)
	if w, ok := c.intIn(content.Attributes, "weight", path+".Weight", 0, maxSpreadWeight); ok {
		sp.Weight = int8(w)
	}
	for i, tb := range content.Blocks.OfType("target") {
		tpath := fmt.Sprintf("%s.SpreadTarget[%d]", path, i)
		if i == 0 {
			// Validate reports percentages adding up to over 100 at
			// the SpreadTarget path.
			c.record(path+".SpreadTarget", tb.DefRange)
		}
		c.record(tpath, tb.DefRange)
		c.record(tpath+".Value", tb.LabelRanges[0])
		t := &structs.SpreadTarget{Value: tb.Labels[0]}
		attrs := c.content(tb.Body, spreadTargetSchema).Attributes
		if p, ok := c.intIn(attrs, "percent", tpath+".Percent", 0, maxSpreadPercent); ok {
			t.Percent = uint8(p)
		}
		sp.SpreadTarget = append(sp.SpreadTarget, t)
	}
	return sp
}

// rule holds the parts shared by constraints and affinities.
type rule struct {
	LTarget, RTarget, Operand string
}

// ruleClaim remembers which argument set a part of a rule.
type ruleClaim struct {
	attr  *hcl.Attribute
	value string // the operator, for the operator part
}

// rule reads the attribute/operator/value arguments of a constraint or
// affinity (kind) at path, with their shorthands, in source order. The
// operator defaults to "=" and Nomad's aliases are normalized. keep is
// false when the block asks for no rule (distinct_hosts = false).
func (c *converter) rule(attrs hcl.Attributes, path, kind string) (r rule, keep bool) {
	keep = true
	claims := make(map[string]ruleClaim)
	// claim marks part as set by a, reporting a conflict with an
	// earlier argument. Two arguments naming the same operator agree.
	claim := func(part string, a *hcl.Attribute, value string) bool {
		prev, taken := claims[part]
		if !taken {
			claims[part] = ruleClaim{attr: a, value: value}
			return true
		}
		if part == "operator" && prev.value == value {
			return true
		}
		detail := fmt.Sprintf("%s and %s (at %s) both set the %s's %s; use only one of them.",
			a.Name, prev.attr.Name, posString(prev.attr.NameRange), kind, part)
		if part == "operator" {
			detail = fmt.Sprintf("%s makes the %s's operator %q, but %s (at %s) makes it %q; use only one of them.",
				a.Name, kind, value, prev.attr.Name, posString(prev.attr.NameRange), prev.value)
		}
		c.errorf(a.NameRange, "Conflicting "+kind+" arguments", detail)
		return false
	}
	// shorthand records that a set part of the rule was written as the
	// argument a, for the summary of a validation problem.
	shorthand := func(a *hcl.Attribute, fields ...string) {
		c.record(path+".Operand", a.NameRange)
		c.spell(path+".Operand", a.Name)
		for _, f := range fields {
			c.spell(path+"."+f, a.Name)
		}
	}
	for _, a := range inSourceOrder(attrs) {
		if isNullLiteral(a.Expr) {
			continue
		}
		switch name := a.Name; {
		case name == "attribute":
			if claim("attribute", a, "") {
				c.setString(attrs, name, path+".LTarget", &r.LTarget)
			}
		case name == "value":
			if claim("value", a, "") {
				c.setString(attrs, name, path+".RTarget", &r.RTarget)
			}
		case name == "operator":
			op, ok := c.stringValue(a.Expr, name)
			if !ok {
				continue
			}
			if alias, ok := operatorAliases[op]; ok {
				op = alias
			}
			// A shorthand that named the same operator first keeps
			// the position.
			_, taken := claims["operator"]
			if claim("operator", a, op) {
				r.Operand = op
				if !taken {
					c.record(path+".Operand", a.Expr.Range())
				}
			}
		case name == structs.ConstraintDistinctHosts:
			on := true
			c.setBool(attrs, name, path+".Operand", &on)
			keep = on
			if claim("operator", a, name) {
				r.Operand = name
				shorthand(a)
			}
		case name == structs.ConstraintDistinctProperty:
			if claim("operator", a, name) && claim("attribute", a, "") {
				r.Operand = name
				c.setString(attrs, name, path+".LTarget", &r.LTarget)
				shorthand(a, "LTarget")
			}
		case valueShorthands[name]:
			if claim("operator", a, name) && claim("value", a, "") {
				r.Operand = name
				c.setString(attrs, name, path+".RTarget", &r.RTarget)
				shorthand(a, "RTarget")
			}
		}
	}
	if r.Operand == "" {
		r.Operand = structs.ConstraintEqual
	}
	return r, keep
}

// inSourceOrder returns attrs sorted by position, so that a conflict is
// reported at the later of two arguments.
func inSourceOrder(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NameRange.Start.Byte < out[j].NameRange.Start.Byte })
	return out
}
