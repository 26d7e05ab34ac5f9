package acl

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Policy dispositions: the value of a rule's policy attribute.
// PolicyScale is for namespace rules only.
const (
	PolicyDeny  = "deny"
	PolicyRead  = "read"
	PolicyWrite = "write"
	PolicyScale = "scale"
)

// Namespace capabilities, with Nomad's names. A namespace rule grants
// the capabilities it lists plus those its policy expands to
// (expandNamespacePolicy). CapabilityDeny in a rule denies everything
// in the namespaces it matches, whatever else grants.
const (
	CapabilityDeny           = "deny"
	CapabilityListJobs       = "list-jobs"
	CapabilityReadJob        = "read-job"
	CapabilitySubmitJob      = "submit-job"
	CapabilityDispatchJob    = "dispatch-job"
	CapabilityReadLogs       = "read-logs"
	CapabilityReadFS         = "read-fs"
	CapabilityAllocExec      = "alloc-exec"
	CapabilityAllocLifecycle = "alloc-lifecycle"
	CapabilityScaleJob       = "scale-job"
	CapabilityReadJobScaling = "read-job-scaling"
	// Variables capabilities are accepted in policies now so that
	// policies written today keep parsing when variables arrive; no
	// endpoint checks them yet, and no policy shorthand grants them.
	CapabilityListVariables    = "list-variables"
	CapabilityReadVariables    = "read-variables"
	CapabilityWriteVariables   = "write-variables"
	CapabilityDestroyVariables = "destroy-variables"
)

// NamespaceCapabilities lists every capability a namespace rule may
// name, in the order error messages show them.
var NamespaceCapabilities = []string{
	CapabilityDeny, CapabilityListJobs, CapabilityReadJob, CapabilitySubmitJob, CapabilityDispatchJob,
	CapabilityReadLogs, CapabilityReadFS, CapabilityAllocExec, CapabilityAllocLifecycle,
	CapabilityScaleJob, CapabilityReadJobScaling,
	CapabilityListVariables, CapabilityReadVariables, CapabilityWriteVariables, CapabilityDestroyVariables,
}

// namespacePolicies and rulePolicies are the accepted policy values of
// namespace rules and of the other rules.
var (
	namespacePolicies = []string{PolicyDeny, PolicyRead, PolicyWrite, PolicyScale}
	rulePolicies      = []string{PolicyDeny, PolicyRead, PolicyWrite}
)

// expandNamespacePolicy returns the capabilities a namespace policy
// shorthand stands for: Nomad's expansion, restricted to the
// capabilities Drover has (Nomad's read also grants parse-job and the
// CSI and scaling-policy reads, which have no Drover counterpart).
func expandNamespacePolicy(policy string) []string {
	read := []string{CapabilityListJobs, CapabilityReadJob, CapabilityReadJobScaling}
	switch policy {
	case PolicyDeny:
		return []string{CapabilityDeny}
	case PolicyRead:
		return read
	case PolicyWrite:
		return append(read,
			CapabilityScaleJob, CapabilitySubmitJob, CapabilityDispatchJob, CapabilityReadLogs,
			CapabilityReadFS, CapabilityAllocExec, CapabilityAllocLifecycle)
	case PolicyScale:
		return []string{CapabilityReadJobScaling, CapabilityScaleJob}
	}
	return nil
}

// Policy is one parsed ACL policy.
type Policy struct {
	// Namespaces are the namespace rules in file order.
	Namespaces []*NamespaceRule
	// Node, Agent, Operator and Quota are each rule's policy (deny,
	// read or write), "" when the policy has no such rule.
	Node     string
	Agent    string
	Operator string
	Quota    string
}

// NamespaceRule is one namespace block.
// Capabilities of a variables path rule (Nomad's names).
const (
	VariableCapRead    = "read"
	VariableCapWrite   = "write"
	VariableCapList    = "list"
	VariableCapDestroy = "destroy"
	VariableCapDeny    = "deny"
)

// VariableCapabilities are those a variables path rule accepts.
var VariableCapabilities = []string{VariableCapRead, VariableCapWrite, VariableCapList, VariableCapDestroy, VariableCapDeny}

// VariablePathRule is path "GLOB" { capabilities = [...] } in a
// namespace's variables block: a path, or a prefix ending in "*".
type VariablePathRule struct {
	Path         string
	Capabilities []string
}

type NamespaceRule struct {
	// Name is a namespace name, "*" (every namespace) or a prefix glob
	// ending in "*" ("team-*").
	Name string
	// Policy is the shorthand ("" when only capabilities are listed).
	Policy string
	// Capabilities are the ones listed, without the policy's expansion.
	Capabilities []string
	// Variables are the rule's variables { path ... } rules.
	Variables []*VariablePathRule `json:",omitempty"`
}

// Expanded returns the rule's capabilities with its policy expanded,
// without duplicates, sorted.
func (r *NamespaceRule) Expanded() []string {
	caps := append(slices.Clone(r.Capabilities), expandNamespacePolicy(r.Policy)...)
	sort.Strings(caps)
	return slices.Compact(caps)
}

// Problem is one thing wrong with a policy, at a position of its source.
type Problem struct {
	// Filename, Line and Column locate it; Line and Column are 1-based,
	// zero when it has no position.
	Filename string
	Line     int
	Column   int
	Message  string
}

// String formats the problem as file:line:col: message.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Filename)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ParseError is returned by Parse: every problem of the policy, in
// source order.
type ParseError struct {
	Problems []Problem
}

// Error returns one line per problem.
func (e *ParseError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// namespaceNameRE is a namespace name (Nomad's rule); a rule's label may
// also end in "*".
var namespaceNameRE = regexp.MustCompile(`^[a-zA-Z0-9-]{1,128}$`)

// ruleBlocks are the top-level blocks besides namespace, each with one
// policy attribute.
var ruleBlocks = []string{"node", "agent", "operator", "quota"}

const acceptedBlocks = `namespace "NAME" { policy = "..." capabilities = [...] }, node { policy = "..." }, agent { ... }, operator { ... }, quota { ... }`

// parser collects problems while walking one policy.
type parser struct {
	filename string
	problems []Problem
}

func (p *parser) add(rng hcl.Range, format string, args ...interface{}) {
	p.problems = append(p.problems, Problem{Filename: p.filename, Line: rng.Start.Line, Column: rng.Start.Column, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) addDiags(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		pr := Problem{Filename: p.filename, Message: msg}
		if d.Subject != nil {
			pr.Line, pr.Column = d.Subject.Start.Line, d.Subject.Start.Column
		}
		p.problems = append(p.problems, pr)
	}
}

// Parse parses an ACL policy in HCL (native syntax). filename names the
// source in problems ("ci.hcl", or "rules" for rules sent over the API).
// It returns a *ParseError listing every problem, each with its
// position and what would be accepted.
func Parse(filename, src string) (*Policy, error) {
	p := &parser{filename: filename}
	file, diags := hclsyntax.ParseConfig([]byte(src), filename, hcl.InitialPos)
	if diags.HasErrors() {
		p.addDiags(diags)
		return nil, p.err()
	}
	body, ok := file.Body.(*hclsyntax.Body)
	if !ok {
		return nil, &ParseError{Problems: []Problem{{Filename: filename, Message: "not an HCL policy"}}}
	}
	policy := &Policy{}
	for _, attr := range sortedAttributes(body) {
		p.add(attr.NameRange, "unexpected attribute %q at the top of the policy; a policy holds only blocks: %s", attr.Name, acceptedBlocks)
	}
	seenNS := map[string]bool{}
	seenRule := map[string]bool{}
	for _, blk := range body.Blocks {
		switch blk.Type {
		case "namespace":
			rule := p.namespaceBlock(blk)
			if rule == nil {
				continue
			}
			if seenNS[rule.Name] {
				p.add(blk.LabelRanges[0], "namespace %q appears twice in this policy; merge the two blocks", rule.Name)
				continue
			}
			seenNS[rule.Name] = true
			policy.Namespaces = append(policy.Namespaces, rule)
		case "node", "agent", "operator", "quota":
			if seenRule[blk.Type] {
				p.add(blk.TypeRange, "%s block appears twice in this policy; keep one", blk.Type)
				continue
			}
			seenRule[blk.Type] = true
			v := p.ruleBlock(blk)
			switch blk.Type {
			case "node":
				policy.Node = v
			case "agent":
				policy.Agent = v
			case "operator":
				policy.Operator = v
			case "quota":
				policy.Quota = v
			}
		default:
			p.add(blk.TypeRange, "unknown block %q; accepted blocks: %s", blk.Type, acceptedBlocks)
		}
	}
	if len(p.problems) == 0 && len(policy.Namespaces) == 0 && len(seenRule) == 0 {
		p.add(body.SrcRange, "the policy has no rules and would grant nothing; accepted blocks: %s", acceptedBlocks)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return policy, nil
}

func (p *parser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	sort.SliceStable(p.problems, func(i, j int) bool {
		a, b := p.problems[i], p.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &ParseError{Problems: p.problems}
}

// sortedAttributes returns a body's attributes in source order (the
// body holds them in a map).
func sortedAttributes(body *hclsyntax.Body) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(body.Attributes))
	for _, a := range body.Attributes {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SrcRange.Start.Byte < out[j].SrcRange.Start.Byte })
	return out
}

// namespaceBlock parses namespace "NAME" { policy capabilities }; nil
// when it has problems (recorded).
func (p *parser) namespaceBlock(blk *hclsyntax.Block) *NamespaceRule {
	if len(blk.Labels) != 1 {
		p.add(blk.TypeRange, `a namespace block takes one label, the namespace name or a glob: namespace "team-a" { ... } or namespace "team-*" { ... }`)
		return nil
	}
	name := blk.Labels[0]
	before := len(p.problems)
	if err := checkNamespaceLabel(name); err != nil {
		p.add(blk.LabelRanges[0], "%v", err)
	}
	rule := &NamespaceRule{Name: name}
	seenVars := false
	for _, nested := range blk.Body.Blocks {
		if nested.Type == "variables" {
			if seenVars {
				p.add(nested.TypeRange, "variables block appears twice in namespace %q; merge the two", name)
				continue
			}
			seenVars = true
			rule.Variables = p.variablesBlock(nested, name)
			continue
		}
		p.add(nested.TypeRange, "unexpected block %q in namespace %q; a namespace rule holds the attributes policy and capabilities and a variables block", nested.Type, name)
	}
	for _, attr := range sortedAttributes(blk.Body) {
		switch attr.Name {
		case "policy":
			v, ok := p.stringValue(attr.Expr, fmt.Sprintf("namespace %q policy", name))
			if !ok {
				continue
			}
			if !slices.Contains(namespacePolicies, v) {
				p.add(attr.Expr.Range(), "unknown policy %q in namespace %q; accepted: %s", v, name, strings.Join(namespacePolicies, ", "))
				continue
			}
			rule.Policy = v
		case "capabilities":
			rule.Capabilities = p.capabilities(attr, name)
		default:
			p.add(attr.NameRange, "unknown attribute %q in namespace %q; accepted: policy, capabilities", attr.Name, name)
		}
	}
	if len(p.problems) > before {
		return nil
	}
	if rule.Policy == "" && len(rule.Capabilities) == 0 && len(rule.Variables) == 0 {
		p.add(blk.TypeRange, `namespace %q sets neither policy nor capabilities nor variables; set policy = "read" (or deny, write, scale) and/or capabilities = [...]`, name)
		return nil
	}
	return rule
}

// variablesBlock parses variables { path "GLOB" { capabilities = [...] } }.
func (p *parser) variablesBlock(blk *hclsyntax.Block, ns string) []*VariablePathRule {
	if len(blk.Labels) > 0 {
		p.add(blk.LabelRanges[0], "a variables block takes no label: variables { path \"app/*\" { capabilities = [\"read\"] } }")
		return nil
	}
	for _, attr := range sortedAttributes(blk.Body) {
		p.add(attr.NameRange, "unexpected attribute %q in the variables block of namespace %q; it holds path \"GLOB\" { capabilities = [...] } blocks", attr.Name, ns)
	}
	var out []*VariablePathRule
	seen := map[string]bool{}
	for _, nested := range blk.Body.Blocks {
		if nested.Type != "path" || len(nested.Labels) != 1 {
			p.add(nested.TypeRange, "the variables block of namespace %q holds only path \"GLOB\" { capabilities = [...] } blocks", ns)
			continue
		}
		glob := nested.Labels[0]
		if err := checkVariableGlob(glob); err != nil {
			p.add(nested.LabelRanges[0], "%v", err)
			continue
		}
		if seen[glob] {
			p.add(nested.LabelRanges[0], "path %q appears twice in the variables of namespace %q; merge the two", glob, ns)
			continue
		}
		seen[glob] = true
		rule := &VariablePathRule{Path: glob}
		for _, nb := range nested.Body.Blocks {
			p.add(nb.TypeRange, "unexpected block %q in variables path %q", nb.Type, glob)
		}
		for _, attr := range sortedAttributes(nested.Body) {
			if attr.Name != "capabilities" {
				p.add(attr.NameRange, "unknown attribute %q in variables path %q; accepted: capabilities", attr.Name, glob)
				continue
			}
			tuple, ok := attr.Expr.(*hclsyntax.TupleConsExpr)
			if !ok {
				p.add(attr.Expr.Range(), `capabilities of variables path %q must be a list of strings, e.g. ["read", "list"]`, glob)
				continue
			}
			for _, el := range tuple.Exprs {
				v, ok := p.stringValue(el, fmt.Sprintf("variables path %q capabilities", glob))
				if !ok {
					continue
				}
				if !slices.Contains(VariableCapabilities, v) {
					p.add(el.Range(), "unknown capability %q in variables path %q; accepted: %s", v, glob, strings.Join(VariableCapabilities, ", "))
					continue
				}
				rule.Capabilities = append(rule.Capabilities, v)
			}
		}
		if len(rule.Capabilities) == 0 {
			p.add(nested.TypeRange, "variables path %q grants no capability; set capabilities = [\"read\", \"list\"] (or write, destroy, deny)", glob)
			continue
		}
		out = append(out, rule)
	}
	return out
}

// checkVariableGlob accepts a variable path, "*", or a prefix ending in
// "*".
func checkVariableGlob(glob string) error {
	prefix, _ := strings.CutSuffix(glob, "*")
	if strings.Contains(prefix, "*") {
		return fmt.Errorf(`variables path %q: a "*" may only end the path, as a prefix glob like "app/*"`, glob)
	}
	if len(glob) > 256 {
		return fmt.Errorf("variables path %.32q... is longer than 256 bytes", glob)
	}
	return nil
}

// checkNamespaceLabel accepts a namespace name, "*", or a prefix glob.
func checkNamespaceLabel(label string) error {
	name, glob := strings.CutSuffix(label, "*")
	if glob && name == "" {
		return nil
	}
	if strings.Contains(name, "*") {
		return fmt.Errorf(`namespace %q: a "*" may only end the name, as a prefix glob like "team-*", or stand alone ("*")`, label)
	}
	if !namespaceNameRE.MatchString(name) {
		return fmt.Errorf("namespace %q: a namespace name is 1-128 letters, digits and dashes (optionally ending in \"*\" as a prefix glob)", label)
	}
	return nil
}

// capabilities evaluates a capabilities list, element by element so that
// a problem points at the element.
func (p *parser) capabilities(attr *hclsyntax.Attribute, ns string) []string {
	tuple, ok := attr.Expr.(*hclsyntax.TupleConsExpr)
	if !ok {
		p.add(attr.Expr.Range(), `capabilities in namespace %q must be a list of strings, e.g. ["read-job", "submit-job"]`, ns)
		return nil
	}
	var out []string
	for _, el := range tuple.Exprs {
		v, ok := p.stringValue(el, fmt.Sprintf("namespace %q capabilities", ns))
		if !ok {
			continue
		}
		if !slices.Contains(NamespaceCapabilities, v) {
			p.add(el.Range(), "unknown capability %q in namespace %q; accepted: %s", v, ns, strings.Join(NamespaceCapabilities, ", "))
			continue
		}
		out = append(out, v)
	}
	return out
}

// ruleBlock parses node/agent/operator/quota { policy = "..." }.
func (p *parser) ruleBlock(blk *hclsyntax.Block) string {
	if len(blk.Labels) > 0 {
		p.add(blk.LabelRanges[0], "a %s block takes no label: %s { policy = \"read\" }", blk.Type, blk.Type)
		return ""
	}
	for _, nested := range blk.Body.Blocks {
		p.add(nested.TypeRange, "unexpected block %q in %s; it holds only policy", nested.Type, blk.Type)
	}
	var policy string
	for _, attr := range sortedAttributes(blk.Body) {
		if attr.Name != "policy" {
			p.add(attr.NameRange, "unknown attribute %q in %s; accepted: policy", attr.Name, blk.Type)
			continue
		}
		v, ok := p.stringValue(attr.Expr, blk.Type+" policy")
		if !ok {
			continue
		}
		if !slices.Contains(rulePolicies, v) {
			p.add(attr.Expr.Range(), "unknown policy %q in %s; accepted: %s", v, blk.Type, strings.Join(rulePolicies, ", "))
			continue
		}
		policy = v
	}
	if _, set := blk.Body.Attributes["policy"]; !set {
		p.add(blk.TypeRange, `%s block without a policy; set policy = "deny", "read" or "write"`, blk.Type)
	}
	return policy
}

// stringValue evaluates a literal string; variables and functions are
// not available in policies.
func (p *parser) stringValue(expr hclsyntax.Expression, what string) (string, bool) {
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		p.addDiags(diags)
		return "", false
	}
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		p.add(expr.Range(), "%s must be a string in quotes", what)
		return "", false
	}
	return v.AsString(), true
}
