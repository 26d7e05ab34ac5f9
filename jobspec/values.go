package jobspec

import (
	"fmt"
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// The set* helpers read one optional attribute into a Go field. An
// absent attribute, or one set to a literal null, leaves the field as it
// is, so Canonicalize can fill in the default later; an attribute that
// is written, even as zero, is kept, so Validate can reject it. Each
// records the attribute's value range under the field's structs path.

// present returns the attribute called name, or nil when it is absent or
// a literal null. It records the attribute's range under path.
func (c *converter) present(attrs hcl.Attributes, name, path string) *hcl.Attribute {
	attr := attrs[name]
	if attr == nil {
		return nil
	}
	c.record(path, attr.Expr.Range())
	if isNullLiteral(attr.Expr) {
		return nil
	}
	return attr
}

func (c *converter) setString(attrs hcl.Attributes, name, path string, dst *string) {
	attr := c.present(attrs, name, path)
	if attr == nil {
		return
	}
	if s, ok := c.stringValue(attr.Expr, name); ok {
		*dst = s
	}
}

func (c *converter) setInt(attrs hcl.Attributes, name, path string, dst *int) {
	attr := c.present(attrs, name, path)
	if attr == nil {
		return
	}
	if n, ok := c.intValue(attr, name); ok {
		*dst = n
	}
}

// intIn reads an optional whole number that must lie in lo..hi, for
// fields narrower than int (weights, percentages). ok is false when the
// attribute is absent, null or wrong; out-of-range values are reported
// here, with the accepted range, rather than wrapped around.
func (c *converter) intIn(attrs hcl.Attributes, name, path string, lo, hi int) (n int, ok bool) {
	attr := c.present(attrs, name, path)
	if attr == nil {
		return 0, false
	}
	n, ok = c.intValue(attr, name)
	if !ok {
		return 0, false
	}
	if n < lo || n > hi {
		c.errorf(attr.Expr.Range(), "Number out of range",
			fmt.Sprintf("%s = %d is out of range; accepted: %d to %d.", name, n, lo, hi))
		return 0, false
	}
	return n, true
}

// intValue evaluates attr as a whole number that fits an int.
func (c *converter) intValue(attr *hcl.Attribute, name string) (int, bool) {
	v, ok := c.staticValue(attr.Expr, name)
	if !ok {
		return 0, false
	}
	r := attr.Expr.Range()
	n, err := convert.Convert(v, cty.Number)
	if err != nil || n.IsNull() {
		c.errorf(r, "Incorrect attribute value type",
			fmt.Sprintf("%s must be a whole number, e.g. %s = 3; got %s.", name, name, describe(v)))
		return 0, false
	}
	bf := n.AsBigFloat()
	if !bf.IsInt() {
		c.errorf(r, "Incorrect attribute value type",
			fmt.Sprintf("%s must be a whole number; got %s.", name, describe(n)))
		return 0, false
	}
	i, acc := bf.Int64()
	if acc != big.Exact || int64(int(i)) != i {
		c.errorf(r, "Number out of range", fmt.Sprintf("%s = %s is too large.", name, bf.Text('g', -1)))
		return 0, false
	}
	return int(i), true
}

func (c *converter) setBool(attrs hcl.Attributes, name, path string, dst *bool) {
	attr := c.present(attrs, name, path)
	if attr == nil {
		return
	}
	v, ok := c.staticValue(attr.Expr, name)
	if !ok {
		return
	}
	b, err := convert.Convert(v, cty.Bool)
	if err != nil || b.IsNull() {
		c.errorf(attr.Expr.Range(), "Incorrect attribute value type",
			fmt.Sprintf("%s must be true or false; got %s.", name, describe(v)))
		return
	}
	*dst = b.True()
}

func (c *converter) setDuration(attrs hcl.Attributes, name, path string, dst *time.Duration) {
	attr := c.present(attrs, name, path)
	if attr == nil {
		return
	}
	v, ok := c.staticValue(attr.Expr, name)
	if !ok {
		return
	}
	r := attr.Expr.Range()
	s, err := convert.Convert(v, cty.String)
	if err == nil && !s.IsNull() {
		if d, perr := time.ParseDuration(s.AsString()); perr == nil {
			*dst = d
			return
		}
	}
	c.errorf(r, "Invalid duration",
		fmt.Sprintf("%s must be a duration string: a number and a unit (ns, us, ms, s, m, h), e.g. %s = \"15s\", \"1m30s\" or \"24h\"; got %s.", name, name, describe(v)))
}

// setStrings reads a list of strings. Each element's range is recorded
// as path[i] when the list is written out literally.
func (c *converter) setStrings(attrs hcl.Attributes, name, path string, dst *[]string) {
	attr := c.present(attrs, name, path)
	if attr == nil {
		return
	}
	if tuple, ok := attr.Expr.(*hclsyntax.TupleConsExpr); ok {
		out := make([]string, 0, len(tuple.Exprs))
		allOK := true
		for i, e := range tuple.Exprs {
			c.record(fmt.Sprintf("%s[%d]", path, i), e.Range())
			s, ok := c.stringValue(e, fmt.Sprintf("%s[%d]", name, i))
			allOK = allOK && ok
			out = append(out, s)
		}
		if allOK {
			*dst = out
		}
		return
	}
	v, ok := c.staticValue(attr.Expr, name)
	if !ok {
		return
	}
	l, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || l.IsNull() {
		c.errorf(attr.Expr.Range(), "Incorrect attribute value type",
			fmt.Sprintf("%s must be a list of strings, e.g. %s = [\"a\", \"b\"]; got %s.", name, name, describe(v)))
		return
	}
	out := make([]string, 0, l.LengthInt())
	for it := l.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			c.errorf(attr.Expr.Range(), "Invalid value", fmt.Sprintf("%s must not contain null.", name))
			return
		}
		out = append(out, e.AsString())
	}
	*dst = out
}

// stringMap reads a map of strings written either as a block
// (meta { owner = "ops" }) or as an attribute (meta = { owner = "ops" }).
// It returns nil when neither is present.
func (c *converter) stringMap(content *hcl.BodyContent, name, path string) map[string]string {
	attr := content.Attributes[name]
	blocks := content.Blocks.OfType(name)
	for _, extra := range blocks[min(1, len(blocks)):] {
		c.errorf(extra.DefRange, "Duplicate "+name+" block",
			fmt.Sprintf("Only one %s block is allowed here; the first one is at %s. Put all keys in it.", name, posString(blocks[0].DefRange)))
	}
	if attr != nil && len(blocks) > 0 {
		c.errorf(blocks[0].DefRange, "Duplicate "+name,
			fmt.Sprintf("%s is already set as an argument at %s; use either %s = { ... } or a %s { ... } block, not both.", name, posString(attr.NameRange), name, name))
		return nil
	}
	switch {
	case len(blocks) > 0:
		c.record(path, blocks[0].DefRange)
		attrs, diags := blocks[0].Body.JustAttributes()
		c.diags = append(c.diags, fromHCL(c.filename, diags)...)
		out := make(map[string]string, len(attrs))
		for k, a := range attrs {
			if s, ok := c.stringValue(a.Expr, name+"."+k); ok {
				out[k] = s
			}
		}
		return out
	case attr != nil:
		attr = c.present(content.Attributes, name, path)
		if attr == nil {
			return nil
		}
		return c.objectMap(attr, name)
	}
	return nil
}

// objectMap reads the attribute form of a string map: an object
// constructor such as { owner = "ops", "team.name" = "infra" }.
func (c *converter) objectMap(attr *hcl.Attribute, name string) map[string]string {
	obj, ok := attr.Expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		c.errorf(attr.Expr.Range(), "Incorrect attribute value type",
			fmt.Sprintf("%s must be a map of strings, e.g. %s = { key = \"value\" }, or a %s { ... } block.", name, name, name))
		return nil
	}
	out := make(map[string]string, len(obj.Items))
	keyAt := make(map[string]hcl.Range, len(obj.Items))
	for _, item := range obj.Items {
		key := hcl.ExprAsKeyword(item.KeyExpr)
		if key == "" {
			kexpr := item.KeyExpr
			if k, isKey := kexpr.(*hclsyntax.ObjectConsKeyExpr); isKey {
				kexpr = k.Wrapped
			}
			k, ok := c.stringValue(kexpr, name+" key")
			if !ok {
				continue
			}
			key = k
		}
		if prev, dup := keyAt[key]; dup {
			c.errorf(item.KeyExpr.Range(), "Duplicate key",
				fmt.Sprintf("%s key %q is already set at %s.", name, key, posString(prev)))
			continue
		}
		keyAt[key] = item.KeyExpr.Range()
		if s, ok := c.stringValue(item.ValueExpr, name+"."+key); ok {
			out[key] = s
		}
	}
	return out
}
