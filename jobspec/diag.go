package jobspec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Diagnostic is one problem in a job file.
type Diagnostic struct {
	// Filename, Line and Column locate the problem; Line and Column are
	// 1-based and zero when the problem has no position.
	Filename string
	Line     int
	Column   int
	// Summary says what is wrong, or for validation problems where it is
	// in HCL terms, e.g. `group "web" task "server": resources.memory`.
	Summary string
	// Detail says why and what would be accepted. It may be empty.
	Detail string
	// Path is the structs field path of a validation problem, e.g.
	// "TaskGroups[0].Tasks[0].Resources.MemoryMB"; empty for problems
	// found while parsing.
	Path string
}

// String formats the diagnostic as file:line:col: summary: detail (path).
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.Filename)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, d.Column)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	if d.Path != "" {
		fmt.Fprintf(&b, " (%s)", d.Path)
	}
	return b.String()
}

// Error is returned by Parse, ParseFile and ParseAndValidate when a job
// file has problems. It lists all of them, in source order.
type Error struct {
	Diagnostics []Diagnostic
}

// Error returns one line per diagnostic.
func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// newError builds an *Error from the error diagnostics in diags, sorted
// by position so that a person can fix them top to bottom. It returns
// nil when diags holds no errors (warnings are dropped: the job file
// format defines none).
func newError(diags []Diagnostic) *Error {
	if len(diags) == 0 {
		return nil
	}
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i], diags[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &Error{Diagnostics: diags}
}

// fromHCL converts HCL's error diagnostics.
func fromHCL(filename string, diags hcl.Diagnostics) []Diagnostic {
	var out []Diagnostic
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		out = append(out, diagAt(filename, d.Subject, d.Summary, d.Detail))
	}
	return out
}

// diagAt builds a diagnostic at the start of r, or without a position
// when r is nil.
func diagAt(filename string, r *hcl.Range, summary, detail string) Diagnostic {
	d := Diagnostic{Filename: filename, Summary: summary, Detail: detail}
	if r != nil {
		if r.Filename != "" {
			d.Filename = r.Filename
		}
		d.Line, d.Column = r.Start.Line, r.Start.Column
	}
	return d
}

// posString formats the start of r for use inside a message.
func posString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
