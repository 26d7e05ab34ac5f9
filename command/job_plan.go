package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/jobspec"
)

// Exit codes of `job plan`, as Nomad's: scripts run a plan and branch on
// whether submitting the job would disturb running allocations.
const (
	// ExitPlanChanges: submitting the job would create, destroy, replace,
	// migrate or preempt allocations. Not a failure.
	ExitPlanChanges = 1
	// ExitPlanError: the job file is invalid or the plan failed.
	ExitPlanError = 255
)

// errPlanChanges is what `job plan` returns, with ExitPlanChanges, when
// the plan has changes; the root command prints it to stderr.
var errPlanChanges = errors.New("plan has changes: submitting the job would create, destroy, replace, migrate or preempt allocations")

func newJobPlanCommand(g *globals) *cobra.Command {
	var diff, verbose, asJSON bool
	cmd := &cobra.Command{
		Use:   "plan [-diff] [-verbose] [-json] FILE",
		Short: "Dry-run a job: show what submitting it would change",
		Long: `Run the scheduler on the job in FILE as a dry run: nothing is submitted
and nothing changes in the cluster. The plan shows how the job differs
from the registered version, what the scheduler would do to each task
group's allocations (create, destroy, migrate, in-place update,
create/destroy update, canary, ignore, preempt), and why allocations
could not be placed, if any.

In the diff, "+" marks what is added, "-" what is deleted and "+/-" what
is edited; a new job is all "+". Annotations in parentheses say what a
change forces: "forces create" and "forces destroy" for a count change,
"forces in-place update" for a task whose kill timeout alone changed,
"forces create/destroy update" for any other task change (its
allocations are replaced). With -verbose, unchanged fields are shown for
context, and added or deleted groups and tasks are shown in full.

The plan ends with the job's modify index: submitting with
"drover job run -check-index INDEX FILE" registers the job only if nobody
changed it since the plan.

Exit codes:
  0    nothing would be created, destroyed, replaced, migrated or
       preempted (the plan only updates in place, or changes nothing)
  1    allocations would be created, destroyed, replaced, migrated or
       preempted; this is not an error
  255  the job file is invalid, or the plan could not be made`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return withCode(ExitPlanError, fmt.Errorf("job plan takes one job file, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			src, err := os.ReadFile(path)
			if err != nil {
				return withCode(ExitPlanError, err)
			}
			job, err := jobspec.ParseAndValidate(path, src, jobspec.SourceDir(filepath.Dir(path)))
			if err != nil {
				return withCode(ExitPlanError, err)
			}
			c, err := g.client()
			if err != nil {
				return withCode(ExitPlanError, err)
			}
			// Planned where `job run` would register it.
			ns, err := jobFileNamespace(c, path, src)
			if err != nil {
				return withCode(ExitPlanError, err)
			}
			job.Namespace = ns
			c = c.WithNamespace(ns)
			resp, err := c.Jobs().Plan(job, diff)
			if err != nil {
				return withCode(ExitPlanError, explainAPIError(err))
			}
			if asJSON {
				if err := printJSON(g.ui, resp); err != nil {
					return withCode(ExitPlanError, err)
				}
			} else {
				planned, err := toAPIJob(job)
				if err != nil {
					return withCode(ExitPlanError, err)
				}
				g.ui.Printf("%s", formatPlan(resp, planned, planOptions{
					path:    path,
					diff:    diff,
					verbose: verbose,
					color:   isTerminal(g.ui.out),
				}))
			}
			if code := planExitCode(resp); code != ExitOK {
				return silentExit(code, errPlanChanges)
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(ExitPlanError, err) })
	cmd.Flags().BoolVar(&diff, "diff", true, "show how the job differs from the registered version (-diff=false to hide)")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "show unchanged fields for context, and added or deleted groups and tasks in full")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan response as JSON instead of the text report")
	return cmd
}

// toAPIJob converts the parsed job to the API's view of it, through its
// JSON (the CLI does not import structs).
func toAPIJob(job interface{}) (*api.Job, error) {
	buf, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	var out api.Job
	if err := json.Unmarshal(buf, &out); err != nil {
		return nil, fmt.Errorf("decode job: %w", err)
	}
	return &out, nil
}

// isTerminal reports whether w is a terminal (colors are used only
// then, and not when NO_COLOR is set).
func isTerminal(w interface{}) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// planExitCode is 1 when the plan would create, destroy, replace,
// migrate or preempt allocations, else 0. Without annotations (an older
// server), any change in the diff counts.
func planExitCode(resp *api.JobPlanResponse) int {
	if resp.Annotations == nil {
		if resp.Diff != nil && resp.Diff.Type != api.DiffTypeNone {
			return ExitPlanChanges
		}
		return ExitOK
	}
	if len(resp.Annotations.PreemptedAllocs) > 0 {
		return ExitPlanChanges
	}
	for _, u := range resp.Annotations.DesiredTGUpdates {
		if u != nil && u.Place+u.Stop+u.Migrate+u.DestructiveUpdate+u.Canary+u.Preemptions > 0 {
			return ExitPlanChanges
		}
	}
	return ExitOK
}

// planOptions say how to print a plan.
type planOptions struct {
	// path is the job file, for the -check-index hint.
	path string
	// diff prints the job diff; verbose prints it with context.
	diff, verbose bool
	// color uses ANSI colors.
	color bool
}

// formatPlan renders a plan response as Nomad's `job plan` does: the
// diff, the scheduler's dry run, preemptions, and the check-index hint.
// job is the planned job (for its ID and type, and for the diff of a new
// job when the server sent none).
func formatPlan(resp *api.JobPlanResponse, job *api.Job, o planOptions) string {
	var b strings.Builder
	r := &planRenderer{b: &b, verbose: o.verbose, color: o.color, resp: resp}
	if o.diff {
		d := resp.Diff
		if d == nil {
			d = newJobDiff(job)
		}
		r.job(d)
		b.WriteString("\n")
	}

	if resp.Warnings != "" {
		b.WriteString(r.paint(ansiYellow, "Job Warnings:") + "\n")
		for _, w := range strings.Split(resp.Warnings, "\n") {
			b.WriteString("- " + r.paint(ansiYellow, "warning: "+w) + "\n")
		}
		b.WriteString("\n")
	}

	b.WriteString("Scheduler dry-run:\n")
	if len(resp.FailedTGAllocs) == 0 {
		b.WriteString(r.paint(ansiGreen, "- All tasks successfully allocated.") + "\n")
	} else {
		msg := "- WARNING: Failed to place all allocations."
		if job.Type == "system" {
			msg = "- WARNING: Failed to place allocations on all nodes."
		}
		b.WriteString(r.paint(ansiYellow, msg) + "\n")
		printPlacementFailures(&ui{out: &b}, resp.FailedTGAllocs)
	}
	b.WriteString("\n")

	if resp.Annotations != nil && len(resp.Annotations.PreemptedAllocs) > 0 {
		r.preemptions(resp.Annotations.PreemptedAllocs)
		b.WriteString("\n")
	}

	fmt.Fprintf(&b, "Job Modify Index: %d\n", resp.JobModifyIndex)
	fmt.Fprintf(&b, checkIndexHelp, resp.JobModifyIndex, shellQuote(o.path))
	return b.String()
}

const checkIndexHelp = `To submit the job with version verification run:

drover job run -check-index %d %s

When running the job with the check-index flag, the job will only be run if the
job modify index given matches the server-side version. If the index has
changed, another user has modified the job and the plan's results are
potentially invalid.
`

// shellQuote quotes a path for the suggested command when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// newJobDiff is the diff of a new job, for a server that sent none.
func newJobDiff(job *api.Job) *api.JobDiff {
	d := &api.JobDiff{Type: api.DiffTypeAdded, ID: job.ID}
	for _, tg := range job.TaskGroups {
		g := &api.TaskGroupDiff{Type: api.DiffTypeAdded, Name: tg.Name}
		g.Fields = []*api.FieldDiff{{Type: api.DiffTypeAdded, Name: "Count", New: fmt.Sprint(tg.Count), Annotations: []string{"forces create"}}}
		for _, t := range tg.Tasks {
			g.Tasks = append(g.Tasks, &api.TaskDiff{Type: api.DiffTypeAdded, Name: t.Name, Annotations: []string{"forces create"}})
		}
		d.TaskGroups = append(d.TaskGroups, g)
	}
	return d
}

// ANSI colors.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiCyan   = "\x1b[36m"
)

// planRenderer writes a job diff. Layout, as Nomad's: every item starts
// with its marker ("+ ", "- ", "+/- ", or nothing), padded so that the
// names of siblings line up; field values line up too. Children are
// indented two spaces from their parent's marker; an object closes with
// "}" at the column its header starts (Nomad closes under the name,
// which lines up the braces of nested objects with different markers).
type planRenderer struct {
	b       *strings.Builder
	verbose bool
	color   bool
	resp    *api.JobPlanResponse
}

func (r *planRenderer) paint(color, s string) string {
	if !r.color || color == "" {
		return s
	}
	return color + s + ansiReset
}

// marker returns the marker of a diff type and its printed width.
func (r *planRenderer) marker(diffType string) (string, int) {
	switch diffType {
	case api.DiffTypeAdded:
		return r.paint(ansiGreen, "+") + " ", 2
	case api.DiffTypeDeleted:
		return r.paint(ansiRed, "-") + " ", 2
	case api.DiffTypeEdited:
		return r.paint(ansiYellow, "+/-") + " ", 4
	}
	return "", 0
}

func markerWidth(diffType string) int {
	switch diffType {
	case api.DiffTypeAdded, api.DiffTypeDeleted:
		return 2
	case api.DiffTypeEdited:
		return 4
	}
	return 0
}

func (r *planRenderer) job(d *api.JobDiff) {
	marker, _ := r.marker(d.Type)
	fmt.Fprintf(r.b, "%sJob: %q\n", marker, d.ID)

	// A new or deleted job's own fields are shown only with -verbose.
	var fields []*api.FieldDiff
	var objects []*api.ObjectDiff
	if d.Type == api.DiffTypeEdited || r.verbose {
		fields, objects = r.visible(d.Fields, d.Objects)
	}
	longestField, longestMarker := longestPrefixes(fields, objects)
	for _, tg := range d.TaskGroups {
		longestMarker = max(longestMarker, markerWidth(tg.Type))
	}
	r.fieldsAndObjects(fields, objects, 0, longestField, longestMarker)
	for i, tg := range d.TaskGroups {
		if i > 0 {
			r.b.WriteString("\n")
		}
		r.group(tg, longestMarker-markerWidth(tg.Type))
	}
}

func (r *planRenderer) group(tg *api.TaskGroupDiff, prefix int) {
	marker, _ := r.marker(tg.Type)
	fmt.Fprintf(r.b, "%s%sTask Group: %q", marker, spaces(prefix), tg.Name)
	if updates := r.groupUpdates(tg); updates != "" {
		fmt.Fprintf(r.b, " (%s)", updates)
	}
	r.b.WriteString("\n")

	var fields []*api.FieldDiff
	var objects []*api.ObjectDiff
	if tg.Type == api.DiffTypeEdited || r.verbose {
		fields, objects = r.visible(tg.Fields, tg.Objects)
	}
	longestField, longestMarker := longestPrefixes(fields, objects)
	for _, t := range tg.Tasks {
		longestMarker = max(longestMarker, markerWidth(t.Type))
	}
	start := prefix + 2
	r.fieldsAndObjects(fields, objects, start, longestField, longestMarker)
	for _, t := range tg.Tasks {
		r.task(t, start, longestMarker-markerWidth(t.Type))
	}
}

// updateKinds are the kinds of group updates in the order the header
// lists them, with the DesiredUpdates field each counts.
var updateKinds = []struct {
	label string
	color string
	count func(*api.DesiredUpdates) int
}{
	{"create", ansiGreen, func(u *api.DesiredUpdates) int { return u.Place }},
	{"destroy", ansiRed, func(u *api.DesiredUpdates) int { return u.Stop }},
	{"migrate", ansiBlue, func(u *api.DesiredUpdates) int { return u.Migrate }},
	{"in-place update", ansiCyan, func(u *api.DesiredUpdates) int { return u.InPlaceUpdate }},
	{"create/destroy update", ansiYellow, func(u *api.DesiredUpdates) int { return u.DestructiveUpdate }},
	{"canary", ansiYellow, func(u *api.DesiredUpdates) int { return u.Canary }},
	{"ignore", "", func(u *api.DesiredUpdates) int { return u.Ignore }},
	{"preempt", ansiRed, func(u *api.DesiredUpdates) int { return u.Preemptions }},
}

// groupUpdates lists what the scheduler would do to the group, e.g.
// "1 create, 2 in-place update": from the plan's annotations, else from
// the diff's own counts.
func (r *planRenderer) groupUpdates(tg *api.TaskGroupDiff) string {
	var parts []string
	var u *api.DesiredUpdates
	if r.resp != nil && r.resp.Annotations != nil {
		u = r.resp.Annotations.DesiredTGUpdates[tg.Name]
	}
	switch {
	case u != nil:
		for _, k := range updateKinds {
			if n := k.count(u); n > 0 {
				parts = append(parts, r.paint(k.color, fmt.Sprintf("%d %s", n, k.label)))
			}
		}
	case len(tg.Updates) > 0:
		known := map[string]bool{}
		for _, k := range updateKinds {
			known[k.label] = true
			if n := tg.Updates[k.label]; n > 0 {
				parts = append(parts, r.paint(k.color, fmt.Sprintf("%d %s", n, k.label)))
			}
		}
		var other []string
		for label, n := range tg.Updates {
			if !known[label] && n > 0 {
				other = append(other, fmt.Sprintf("%d %s", n, label))
			}
		}
		sort.Strings(other)
		parts = append(parts, other...)
	}
	return strings.Join(parts, ", ")
}

func (r *planRenderer) task(t *api.TaskDiff, start, prefix int) {
	marker, _ := r.marker(t.Type)
	fmt.Fprintf(r.b, "%s%s%sTask: %q%s\n", spaces(start), marker, spaces(prefix), t.Name, r.annotations(t.Annotations))
	// A new or deleted task is shown in full only with -verbose.
	if t.Type == api.DiffTypeNone || (t.Type != api.DiffTypeEdited && !r.verbose) {
		return
	}
	fields, objects := r.visible(t.Fields, t.Objects)
	longestField, longestMarker := longestPrefixes(fields, objects)
	r.fieldsAndObjects(fields, objects, start+prefix+2, longestField, longestMarker)
}

func (r *planRenderer) fieldsAndObjects(fields []*api.FieldDiff, objects []*api.ObjectDiff, start, longestField, longestMarker int) {
	for _, f := range fields {
		r.field(f, start, longestField, longestMarker)
	}
	for _, o := range objects {
		r.object(o, start, longestMarker-markerWidth(o.Type))
	}
}

func (r *planRenderer) field(f *api.FieldDiff, start, longestField, longestMarker int) {
	marker, width := r.marker(f.Type)
	var value string
	switch f.Type {
	case api.DiffTypeAdded:
		value = fmt.Sprintf("%q", f.New)
	case api.DiffTypeDeleted:
		value = fmt.Sprintf("%q", f.Old)
	case api.DiffTypeEdited:
		value = fmt.Sprintf("%q => %q", f.Old, f.New)
	default:
		value = fmt.Sprintf("%q", f.New)
	}
	fmt.Fprintf(r.b, "%s%s%s%s: %s%s%s\n",
		spaces(start), marker, spaces(longestMarker-width),
		f.Name, spaces(longestField-len(f.Name)), value, r.annotations(f.Annotations))
}

func (r *planRenderer) object(o *api.ObjectDiff, start, prefix int) {
	marker, _ := r.marker(o.Type)
	fmt.Fprintf(r.b, "%s%s%s%s {\n", spaces(start), marker, spaces(prefix), o.Name)
	fields, objects := r.visible(o.Fields, o.Objects)
	longestField, longestMarker := longestPrefixes(fields, objects)
	r.fieldsAndObjects(fields, objects, start+prefix+2, longestField, longestMarker)
	fmt.Fprintf(r.b, "%s}\n", spaces(start))
}

// visible drops unchanged fields and objects unless -verbose: a server
// may send them (a contextual diff) either way.
func (r *planRenderer) visible(fields []*api.FieldDiff, objects []*api.ObjectDiff) ([]*api.FieldDiff, []*api.ObjectDiff) {
	if r.verbose {
		return fields, objects
	}
	var fs []*api.FieldDiff
	for _, f := range fields {
		if f.Type != api.DiffTypeNone {
			fs = append(fs, f)
		}
	}
	var objs []*api.ObjectDiff
	for _, o := range objects {
		if o.Type != api.DiffTypeNone {
			objs = append(objs, o)
		}
	}
	return fs, objs
}

func (r *planRenderer) annotations(as []string) string {
	if len(as) == 0 {
		return ""
	}
	colored := make([]string, len(as))
	for i, a := range as {
		color := ""
		switch a {
		case "forces create":
			color = ansiGreen
		case "forces destroy":
			color = ansiRed
		case "forces in-place update":
			color = ansiCyan
		case "forces create/destroy update":
			color = ansiYellow
		}
		colored[i] = r.paint(color, a)
	}
	return " (" + strings.Join(colored, ", ") + ")"
}

// preemptionListMax is how many preempted allocations are listed one by
// one; more are summarized per job.
const preemptionListMax = 10

func (r *planRenderer) preemptions(allocs []*api.AllocationListStub) {
	r.b.WriteString(r.paint(ansiYellow, "Preemptions:") + "\n\n")
	u := &ui{out: r.b}
	if len(allocs) <= preemptionListMax {
		rows := [][]string{{"Alloc ID", "Job ID", "Task Group", "Node ID"}}
		for _, a := range allocs {
			rows = append(rows, []string{short(a.ID), a.JobID, a.TaskGroup, short(a.NodeID)})
		}
		printTable(u, rows)
		return
	}
	perJob := map[string]int{}
	for _, a := range allocs {
		perJob[a.JobID]++
	}
	rows := [][]string{{"Job ID", "Preemptions"}}
	for _, id := range sortedKeys(perJob) {
		rows = append(rows, []string{id, fmt.Sprint(perJob[id])})
	}
	printTable(u, rows)
}

// longestPrefixes returns the longest field name and the widest marker
// among fields and objects, to align them.
func longestPrefixes(fields []*api.FieldDiff, objects []*api.ObjectDiff) (longestField, longestMarker int) {
	for _, f := range fields {
		longestField = max(longestField, len(f.Name))
		longestMarker = max(longestMarker, markerWidth(f.Type))
	}
	for _, o := range objects {
		longestMarker = max(longestMarker, markerWidth(o.Type))
	}
	return longestField, longestMarker
}

func spaces(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat(" ", n)
}
