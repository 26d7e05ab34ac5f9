package jobspec

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Job files have no variables and no functions: everything is resolved
// either here, from literal values, or on the client when the task
// starts. The client resolves ${...} references rooted in the names
// below (node and attribute values, node meta, the task's environment,
// unique IDs, and the DROVER_/NOMAD_ variables it sets), so such an
// interpolation inside a string is copied into the result exactly as it
// was written. Any other reference is a mistake the author should hear
// about now, with its position, rather than an empty string at runtime.
var runtimeRoots = map[string]bool{
	"node":   true,
	"attr":   true,
	"meta":   true,
	"env":    true,
	"unique": true,
}

func isRuntimeRoot(name string) bool {
	return runtimeRoots[name] || strings.HasPrefix(name, "DROVER_") || strings.HasPrefix(name, "NOMAD_")
}

const runtimeRefHelp = `Job files support no variables or functions. Only runtime references, ` +
	`rooted in node, attr, meta, env, unique or a DROVER_ or NOMAD_ name, are kept inside strings ` +
	`for the client to resolve, e.g. "${meta.rack}" or "${DROVER_PORT_http}". ` +
	`To write a literal "${", escape it as "$${".`

// stringValue returns the string an expression denotes. Runtime
// references inside a template are kept verbatim; a bare $NAME is plain
// text to HCL and so is kept as well.
func (c *converter) stringValue(expr hcl.Expression, what string) (string, bool) {
	switch e := expr.(type) {
	case *hclsyntax.TemplateExpr:
		var b strings.Builder
		ok := true
		for _, part := range e.Parts {
			s, pok := c.templatePart(part, what)
			ok = ok && pok
			b.WriteString(s)
		}
		return b.String(), ok
	case *hclsyntax.TemplateWrapExpr:
		return c.templatePart(e.Wrapped, what)
	case *hclsyntax.ScopeTraversalExpr:
		if root := e.Traversal.RootName(); isRuntimeRoot(root) {
			src := c.source(e.SrcRange)
			c.errorf(e.SrcRange, "Runtime reference outside a string",
				fmt.Sprintf("%s is resolved on the client when the task starts, which only works inside a string; write \"${%s}\" instead.", src, src))
			return "", false
		}
	}
	v, ok := c.staticValue(expr, what)
	if !ok {
		return "", false
	}
	return c.toString(v, expr.Range(), what)
}

// templatePart returns the text of one part of a template.
func (c *converter) templatePart(part hclsyntax.Expression, what string) (string, bool) {
	if t, ok := part.(*hclsyntax.ScopeTraversalExpr); ok && isRuntimeRoot(t.Traversal.RootName()) {
		return c.interpolationSource(t.SrcRange), true
	}
	v, ok := c.staticValue(part, what)
	if !ok {
		return "", false
	}
	return c.toString(v, part.Range(), what)
}

func (c *converter) toString(v cty.Value, r hcl.Range, what string) (string, bool) {
	if v.IsNull() {
		c.errorf(r, "Invalid value", fmt.Sprintf("%s must be a string, not null.", what))
		return "", false
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil {
		c.errorf(r, "Incorrect value type", fmt.Sprintf("%s must be a string, e.g. \"text\"; got %s.", what, describe(v)))
		return "", false
	}
	return s.AsString(), true
}

// interpolationSource returns the source text of the ${...} around a
// runtime traversal, including any whitespace, so the client sees
// exactly what the author wrote.
func (c *converter) interpolationSource(r hcl.Range) string {
	src := c.src
	trav := c.source(r)
	start, end := r.Start.Byte, r.End.Byte
	if start < 0 || end > len(src) || start > end {
		return "${" + trav + "}"
	}
	i := start
	for i > 0 && isTemplateSpace(src[i-1]) {
		i--
	}
	j := end
	for j < len(src) && isTemplateSpace(src[j]) {
		j++
	}
	if i < 2 || src[i-2] != '$' || src[i-1] != '{' || j >= len(src) || src[j] != '}' {
		return "${" + trav + "}"
	}
	text := string(src[i-2 : j+1])
	// HCL has already trimmed the literal text next to a strip marker
	// (${~ ... ~}); the marker itself means nothing to the client.
	if strings.HasPrefix(text, "${~") {
		text = "${" + text[len("${~"):]
	}
	if strings.HasSuffix(text, "~}") {
		text = text[:len(text)-len("~}")] + "}"
	}
	return text
}

// isTemplateSpace reports whether b may sit between "${" or "}" and the
// traversal inside it: whitespace or a strip marker.
func isTemplateSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '~'
}

// source returns the source bytes of r.
func (c *converter) source(r hcl.Range) string {
	if r.Start.Byte < 0 || r.End.Byte > len(c.src) || r.Start.Byte > r.End.Byte {
		return ""
	}
	return string(c.src[r.Start.Byte:r.End.Byte])
}

// staticValue evaluates an expression that may use only literal values
// and operators. Every variable reference and function call in it is
// reported, each at its own position.
func (c *converter) staticValue(expr hcl.Expression, what string) (cty.Value, bool) {
	ok := true
	if se, isSyntax := expr.(hclsyntax.Expression); isSyntax {
		hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
			switch e := n.(type) {
			case *hclsyntax.FunctionCallExpr:
				ok = false
				c.errorf(e.NameRange, "Functions are not supported",
					fmt.Sprintf("%s(...) is a function call. %s", e.Name, runtimeRefHelp))
			case *hclsyntax.ScopeTraversalExpr:
				ok = false
				src := c.source(e.SrcRange)
				if isRuntimeRoot(e.Traversal.RootName()) {
					c.errorf(e.SrcRange, "Runtime reference not allowed here",
						fmt.Sprintf("%s is resolved on the client when the task starts, so it can only appear on its own as \"${%s}\" inside a string value; %s needs a value known when the job is parsed.", src, src, what))
				} else {
					c.errorf(e.SrcRange, "Variables are not supported",
						fmt.Sprintf("%s is a variable reference. %s", src, runtimeRefHelp))
				}
			}
			return nil
		})
	}
	if !ok {
		return cty.NilVal, false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		c.diags = append(c.diags, fromHCL(c.filename, diags)...)
		return cty.NilVal, false
	}
	return v, true
}

// describe names a value's type, and shows the value when short, for
// "got ..." in messages.
func describe(v cty.Value) string {
	switch {
	case v.IsNull():
		return "null"
	case !v.IsKnown():
		return "an unknown value"
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return fmt.Sprintf("the string %q", v.AsString())
	case ty == cty.Number:
		return "the number " + v.AsBigFloat().Text('g', -1)
	case ty == cty.Bool:
		return fmt.Sprintf("the bool %t", v.True())
	case ty.IsTupleType() || ty.IsListType() || ty.IsSetType():
		return "a list"
	case ty.IsObjectType() || ty.IsMapType():
		return "an object"
	}
	return ty.FriendlyName()
}
