package jobspec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/droverhq/drover/structs"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "job", LabelNames: []string{"name"}}},
}

// Parse parses the HCL job in src; filename is used in diagnostics.
// Fields the file leaves out stay at their zero value for
// structs.(*Job).Canonicalize to fill in, except a group's count, which
// is 1 when absent, the operator of a constraint or affinity ("=")
// and an affinity's weight (50), as in Nomad, and what a service block
// leaves out (structs.ApplyServiceDefaults: a check's name, path,
// interval and timeout; a task service's TaskName) and a template's
// splay (5s). A template block may name a source file only with the
// SourceDir option. On any problem it returns a nil job and an *Error
// listing every problem found.
func Parse(filename string, src []byte, opts ...Option) (*structs.Job, error) {
	job, _, err := parse(filename, src, opts)
	if err != nil {
		return nil, err
	}
	return job, nil
}

// ParseFile reads and parses the job file at path; template sources are
// read from the file's directory (SourceDir).
func ParseFile(path string, opts ...Option) (*structs.Job, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job file: %w", err)
	}
	return Parse(path, src, append([]Option{SourceDir(filepath.Dir(path))}, opts...)...)
}

// ParseAndValidate parses src, fills in defaults with
// structs.(*Job).Canonicalize and checks the result with
// structs.(*Job).Validate. Every validation problem is reported as a
// Diagnostic at the attribute or block it came from (or, for a missing
// attribute, at the enclosing block), with its structs field path in
// Diagnostic.Path. On any problem it returns a nil job and an *Error.
func ParseAndValidate(filename string, src []byte, opts ...Option) (*structs.Job, error) {
	job, c, err := parse(filename, src, opts)
	if err != nil {
		return nil, err
	}
	job.Canonicalize()
	verr := job.Validate()
	if verr == nil {
		return job, nil
	}
	var ve *structs.ValidationError
	if !errors.As(verr, &ve) {
		return nil, newError([]Diagnostic{{Filename: filename, Summary: "invalid job", Detail: verr.Error()}})
	}
	diags := make([]Diagnostic, 0, len(ve.Problems))
	for _, p := range ve.Problems {
		diags = append(diags, c.validationDiag(job, p))
	}
	return nil, newError(diags)
}

// parse returns the job and the converter that built it, whose recorded
// ranges locate validation problems.
func parse(filename string, src []byte, opts []Option) (*structs.Job, *converter, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		// Decoding a body the parser had to recover from mostly yields
		// follow-on noise; the syntax errors are what to fix first.
		return nil, nil, newError(fromHCL(filename, diags))
	}
	c := newConverter(filename, src, buildOptions(opts))
	content := c.content(file.Body, fileSchema)
	jobs := content.Blocks.OfType("job")
	switch {
	case len(jobs) == 0 && !hasBlock(file.Body, "job"):
		r := hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
		c.errorf(r, "No job block",
			`A job file must contain exactly one job block, e.g. job "web" { group "web" { task "server" { ... } } }.`)
	case len(jobs) > 1:
		for _, extra := range jobs[1:] {
			c.errorf(extra.DefRange, "Duplicate job block",
				fmt.Sprintf("A job file must contain exactly one job block; the first one is at %s. Put each job in its own file.", posString(jobs[0].DefRange)))
		}
	}
	var job *structs.Job
	if len(jobs) > 0 {
		job = c.job(jobs[0])
	}
	if err := newError(c.diags); err != nil {
		return nil, nil, err
	}
	return job, c, nil
}

// hasBlock reports whether body has a block of type typ, even one that
// failed to decode (say, a job block without its name label).
func hasBlock(body hcl.Body, typ string) bool {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return false
	}
	for _, b := range sb.Blocks {
		if b.Type == typ {
			return true
		}
	}
	return false
}

// isNullLiteral reports whether expr is the literal null.
func isNullLiteral(expr hcl.Expression) bool {
	lit, ok := expr.(*hclsyntax.LiteralValueExpr)
	return ok && lit.Val.IsNull()
}
