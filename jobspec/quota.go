package jobspec

import (
	"fmt"
	"math/big"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/droverhq/drover/structs"
)

// Quota files (`drover quota apply FILE`):
//
//	name        = "team-a"
//	description = "team A's share"
//	namespace   = "team-a"
//	limit {
//	  cpu         = 4000 # MHz
//	  memory      = 1024 # MB
//	  allocations = 20
//	}
//
// Nomad's shape is accepted too, and maps to the same limits:
//
//	limit {
//	  region = "global"
//	  region_limit {
//	    cpu    = 4000
//	    memory = 1024
//	  }
//	}
//
// A missing dimension is 0: unlimited. Drover has one region, so the
// region is accepted and not used.

var quotaFileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "name", Required: true},
		{Name: "description"},
		{Name: "namespace"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "limit"}},
}

var quotaLimitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "cpu"}, {Name: "memory"}, {Name: "allocations"}, {Name: "region"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "region_limit"}},
}

var quotaRegionLimitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "cpu"}, {Name: "memory"}, {Name: "allocations"}},
}

// ParseQuotaFile reads and parses the quota file at path.
func ParseQuotaFile(path string) (*structs.QuotaSpec, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read quota file: %w", err)
	}
	return ParseQuota(path, src)
}

// ParseQuota parses and validates the quota file in src; filename is
// used in diagnostics. On any problem it returns a nil spec and an
// *Error listing every problem found, each at file:line:col.
func ParseQuota(filename string, src []byte) (*structs.QuotaSpec, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, newError(fromHCL(filename, diags))
	}
	p := &quotaParser{filename: filename}
	content, diags := file.Body.Content(quotaFileSchema)
	p.diags = append(p.diags, fromHCL(filename, diags)...)
	spec := &structs.QuotaSpec{}
	if a := content.Attributes["name"]; a != nil {
		spec.Name = p.str(a)
		if spec.Name != "" {
			if err := structs.ValidateQuotaName(spec.Name); err != nil {
				p.at(a.Expr.Range(), "invalid name", err.Error())
			}
		}
	}
	if a := content.Attributes["description"]; a != nil {
		spec.Description = p.str(a)
	}
	if a := content.Attributes["namespace"]; a != nil {
		spec.Namespace = p.str(a)
		if spec.Namespace != "" {
			if err := structs.ValidateNamespaceName(spec.Namespace); err != nil {
				p.at(a.Expr.Range(), "invalid namespace", err.Error())
			}
		}
	}
	limits := content.Blocks.OfType("limit")
	switch {
	case len(limits) == 0:
		r := file.Body.MissingItemRange()
		p.at(r, "missing limit block", `a quota needs one limit { cpu = MHZ  memory = MB  allocations = N } block (0 or absent means unlimited)`)
	case len(limits) > 1:
		p.at(limits[1].DefRange, "more than one limit block", fmt.Sprintf("the first is at %s; Drover has one region, so a quota has one limit block", posString(limits[0].DefRange)))
	default:
		spec.Limits = p.limit(limits[0])
	}
	if len(p.diags) == 0 {
		if err := spec.Validate(); err != nil {
			p.diags = append(p.diags, diagAt(filename, nil, "invalid quota", err.Error()))
		}
	}
	if len(p.diags) > 0 {
		return nil, newError(p.diags)
	}
	return spec, nil
}

type quotaParser struct {
	filename string
	diags    []Diagnostic
}

func (p *quotaParser) at(r hcl.Range, summary, detail string) {
	p.diags = append(p.diags, diagAt(p.filename, &r, summary, detail))
}

// limit reads a limit block, in either shape.
func (p *quotaParser) limit(b *hcl.Block) structs.QuotaLimits {
	content, diags := b.Body.Content(quotaLimitSchema)
	p.diags = append(p.diags, fromHCL(p.filename, diags)...)
	if a := content.Attributes["region"]; a != nil {
		p.str(a)
	}
	regional := content.Blocks.OfType("region_limit")
	if len(regional) > 1 {
		p.at(regional[1].DefRange, "more than one region_limit block", "a limit block has one region_limit")
	}
	if len(regional) > 0 {
		for _, name := range []string{"cpu", "memory", "allocations"} {
			if a := content.Attributes[name]; a != nil {
				p.at(a.NameRange, "limit set twice", fmt.Sprintf("%s is set here and in the region_limit block at %s; use one shape: limit { %s = N } or limit { region_limit { %s = N } }", name, posString(regional[0].DefRange), name, name))
			}
		}
		rc, diags := regional[0].Body.Content(quotaRegionLimitSchema)
		p.diags = append(p.diags, fromHCL(p.filename, diags)...)
		return p.amounts(rc.Attributes)
	}
	return p.amounts(content.Attributes)
}

func (p *quotaParser) amounts(attrs hcl.Attributes) structs.QuotaLimits {
	var l structs.QuotaLimits
	for name, dst := range map[string]*int64{"cpu": &l.CPU, "memory": &l.MemoryMB, "allocations": &l.Allocations} {
		if a := attrs[name]; a != nil {
			*dst = p.amount(a)
		}
	}
	return l
}

// amount reads a whole number from 0 to structs.MaxQuotaLimit.
func (p *quotaParser) amount(a *hcl.Attribute) int64 {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		p.diags = append(p.diags, fromHCL(p.filename, diags)...)
		return 0
	}
	detail := fmt.Sprintf("use a whole number from 0 (unlimited) to %d", structs.MaxQuotaLimit)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		p.at(a.Expr.Range(), fmt.Sprintf("%s must be a number", a.Name), detail)
		return 0
	}
	f := v.AsBigFloat()
	if !f.IsInt() || f.Sign() < 0 || f.Cmp(new(big.Float).SetInt64(structs.MaxQuotaLimit)) > 0 {
		p.at(a.Expr.Range(), fmt.Sprintf("%s = %s is out of range", a.Name, f.Text('g', 20)), detail)
		return 0
	}
	n, _ := f.Int64()
	return n
}

// str reads a string.
func (p *quotaParser) str(a *hcl.Attribute) string {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		p.diags = append(p.diags, fromHCL(p.filename, diags)...)
		return ""
	}
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		p.at(a.Expr.Range(), fmt.Sprintf("%s must be a string", a.Name), `quote it: "..."`)
		return ""
	}
	return v.AsString()
}

// ExampleQuotaFile is what `drover quota init` writes.
const ExampleQuotaFile = `# A quota bounds what the allocations of one namespace hold at once.
# Apply it with: drover quota apply quota.hcl
# 0 (or a missing attribute) means unlimited for that dimension.

name        = "team-a"
description = "team A's share"

# The namespace held to this quota. A namespace can also name its quota
# itself (drover namespace apply -quota team-a team-a); if both are set,
# the namespace's choice wins.
namespace = "team-a"

limit {
  cpu         = 4000 # MHz
  memory      = 1024 # MB
  allocations = 20
}
`
