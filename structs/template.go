package structs

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode"
)

// Template defaults (Canonicalize; a job file's left-out splay gets
// DefaultTemplateSplay from jobspec) and limits (Validate).
const (
	DefaultTemplateChangeMode  = TemplateChangeRestart
	DefaultTemplatePerms       = "0644"
	DefaultTemplateSplay       = 5 * time.Second
	DefaultTemplateWaitMissing = 30 * time.Second

	// MaxTemplatesPerTask bounds a task's template blocks: each one
	// is rendered, watched and written by the client.
	MaxTemplatesPerTask = 32
	// MaxTemplateSize bounds a template's text (bytes).
	MaxTemplateSize = 64 << 10
	// MaxTemplateDestPathLength bounds a destination (bytes).
	MaxTemplateDestPathLength = 256
	// MaxTemplateSplay and MaxTemplateWaitMissing bound the delays.
	MaxTemplateSplay       = time.Hour
	MaxTemplateWaitMissing = time.Hour
	// MaxTemplateRangeDepth bounds nested range actions, and
	// MaxTemplateRangeCount a range over a number written in the
	// template: the client renders every template again on every
	// change, so the work one rendering can ask for is bounded.
	MaxTemplateRangeDepth = 2
	MaxTemplateRangeCount = 1_000
)

// TemplateDirs are the directories of a task a template may write into:
// its own local and secrets directories and the group's shared alloc
// directory, as the task sees them at /local, /secrets and /alloc.
var TemplateDirs = []string{"local", "secrets", "alloc"}

// TemplateFuncNames are the functions a template may call besides Go's
// text/template built-ins. The client (client/template) implements
// them:
//
//   - var "PATH": the items of the variable at PATH in the task's
//     namespace, a map of strings; rendering waits while it does not
//     exist (up to the template's WaitMissing before the task starts);
//   - service "NAME": the passing instances of a service in the task's
//     namespace (Address, Port, ...), sorted;
//   - env "NAME": a variable of the task's environment;
//   - node: the node the task runs on (ID, Name, Datacenter, NodeClass,
//     Attributes, Meta).
var TemplateFuncNames = []string{"var", "service", "env", "node"}

// templateStub stands in for the client's functions when a template is
// only parsed (validation, VariablePaths): parsing needs the names,
// not the functions.
func templateStub(...interface{}) (interface{}, error) {
	return nil, errors.New("template functions run only on the client")
}

// templateSignals are the signals change_signal may name: those a
// process can catch to reload. SIGKILL and SIGSTOP cannot be caught,
// and the fault signals (SIGSEGV, ...) mean something else.
var templateSignals = map[string]bool{
	"SIGHUP": true, "SIGINT": true, "SIGQUIT": true, "SIGUSR1": true, "SIGUSR2": true,
	"SIGTERM": true, "SIGALRM": true, "SIGWINCH": true, "SIGCONT": true, "SIGTSTP": true,
	"SIGTTIN": true, "SIGTTOU": true, "SIGIO": true, "SIGPWR": true, "SIGSYS": true,
	"SIGTRAP": true, "SIGABRT": true, "SIGPROF": true, "SIGURG": true, "SIGXCPU": true,
	"SIGXFSZ": true, "SIGVTALRM": true,
}

// NormalizeSignalName spells a signal name the canonical way: upper
// case with the SIG prefix ("hup" -> "SIGHUP").
func NormalizeSignalName(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s != "" && !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	return s
}

// TemplateSignals lists the signal names change_signal accepts, sorted.
func TemplateSignals() []string {
	out := make([]string, 0, len(templateSignals))
	for s := range templateSignals {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// canonicalize fills in a template's defaults. Splay is left alone: 0
// means no splay (a job file that leaves splay out gets
// DefaultTemplateSplay from jobspec, a Nomad client sends its 5s).
func (t *Template) canonicalize() {
	if t.ChangeMode == "" {
		t.ChangeMode = DefaultTemplateChangeMode
	}
	if t.Perms == "" {
		t.Perms = DefaultTemplatePerms
	}
	if t.WaitMissing == 0 {
		t.WaitMissing = DefaultTemplateWaitMissing
	}
	if t.ChangeSignal != "" {
		t.ChangeSignal = NormalizeSignalName(t.ChangeSignal)
	}
}

// Copy returns a copy of the template (it has no reference fields).
func (t *Template) Copy() *Template {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func copyTemplates(in []*Template) []*Template {
	if in == nil {
		return nil
	}
	out := make([]*Template, len(in))
	for i, t := range in {
		out[i] = t.Copy()
	}
	return out
}

// FileMode returns Perms as a file mode (DefaultTemplatePerms when
// unset); an invalid Perms is an error (Validate refuses it).
func (t *Template) FileMode() (uint32, error) {
	perms := t.Perms
	if perms == "" {
		perms = DefaultTemplatePerms
	}
	return parsePerms(perms)
}

func parsePerms(s string) (uint32, error) {
	if len(s) < 3 || len(s) > 4 {
		return 0, fmt.Errorf("%q is not an octal file mode; write three or four octal digits, e.g. \"0644\" or \"600\"", s)
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an octal file mode; write three or four octal digits, e.g. \"0644\" or \"600\"", s)
	}
	if n > 0o777 {
		return 0, fmt.Errorf("%q is over 0777: setuid, setgid and sticky bits are not allowed", s)
	}
	return uint32(n), nil
}

// TemplateDest splits a valid destination into its directory
// ("local", "secrets" or "alloc") and the path below it.
func TemplateDest(dest string) (dir, rel string, err error) {
	if msg := checkTemplateDest(dest); msg != "" {
		return "", "", errors.New(msg)
	}
	dir, rel, _ = strings.Cut(dest, "/")
	return dir, rel, nil
}

// checkTemplateDest returns what is wrong with a destination, or "".
func checkTemplateDest(dest string) string {
	const accepted = "a relative path under local/, secrets/ or alloc/, e.g. \"local/app.conf\" or \"secrets/db.env\""
	switch {
	case dest == "":
		return "must be set to " + accepted
	case len(dest) > MaxTemplateDestPathLength:
		return fmt.Sprintf("is %d bytes long; the limit is %d", len(dest), MaxTemplateDestPathLength)
	case strings.IndexFunc(dest, unicode.IsControl) >= 0:
		return fmt.Sprintf("%q has control characters; use %s", dest, accepted)
	case strings.HasPrefix(dest, "/"):
		return fmt.Sprintf("%q is absolute; use %s", dest, accepted)
	}
	for _, seg := range strings.Split(dest, "/") {
		if seg == ".." {
			return fmt.Sprintf("%q leaves the task directory (..); use %s", dest, accepted)
		}
	}
	if path.Clean(dest) != dest {
		return fmt.Sprintf("%q is not a clean path (empty or '.' segments, or a trailing '/'); write %q", dest, path.Clean(dest))
	}
	dir, rel, ok := strings.Cut(dest, "/")
	if !ok || rel == "" || !contains(TemplateDirs, dir) {
		return fmt.Sprintf("%q is not under local/, secrets/ or alloc/; use %s", dest, accepted)
	}
	if dir == "alloc" && (rel == "logs" || strings.HasPrefix(rel, "logs/")) {
		return fmt.Sprintf("%q is in alloc/logs, where the client keeps the tasks' output; use another directory", dest)
	}
	return ""
}

// ParseTemplateText parses a template's text the way the client renders
// it: Go text/template with the functions TemplateFuncNames names (from
// funcs, the client's; nil parses with stand-ins), a missing map key an
// error, and Drover's bounds on what one rendering may do: no define,
// block or template actions (a template cannot call itself), range
// nested at most MaxTemplateRangeDepth deep, and a range over a number
// written in the template at most MaxTemplateRangeCount.
func ParseTemplateText(name, text string, funcs template.FuncMap) (*template.Template, error) {
	fm := template.FuncMap{}
	for _, n := range TemplateFuncNames {
		fm[n] = templateStub
	}
	for n, f := range funcs {
		fm[n] = f
	}
	tmpl, err := template.New(name).Option("missingkey=error").Funcs(fm).Parse(text)
	if err != nil {
		return nil, err
	}
	if len(tmpl.Templates()) > 1 {
		return nil, fmt.Errorf("template: define and block actions are not supported")
	}
	if tmpl.Tree == nil || tmpl.Tree.Root == nil {
		return tmpl, nil
	}
	if err := checkTemplateNode(tmpl.Tree.Root, 0); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return tmpl, nil
}

// checkTemplateNode walks a parsed template and refuses what
// ParseTemplateText documents.
func checkTemplateNode(n parse.Node, ranges int) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkTemplateNode(c, ranges); err != nil {
				return err
			}
		}
	case *parse.TemplateNode:
		return fmt.Errorf("template actions are not supported (%s)", n)
	case *parse.RangeNode:
		if ranges+1 > MaxTemplateRangeDepth {
			return fmt.Errorf("range actions are nested more than %d deep", MaxTemplateRangeDepth)
		}
		if p := n.Pipe; p != nil && len(p.Cmds) == 1 && len(p.Cmds[0].Args) == 1 {
			if num, ok := p.Cmds[0].Args[0].(*parse.NumberNode); ok && (!num.IsInt || num.Int64 > MaxTemplateRangeCount) {
				return fmt.Errorf("range over %s: the limit is %d iterations", num.Text, MaxTemplateRangeCount)
			}
		}
		return checkBranch(&n.BranchNode, ranges+1, ranges)
	case *parse.IfNode:
		return checkBranch(&n.BranchNode, ranges, ranges)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode, ranges, ranges)
	}
	return nil
}

// checkBranch checks an if, with or range: its body at depth body, its
// else at depth elseDepth (a range's else runs once, outside the loop).
func checkBranch(b *parse.BranchNode, body, elseDepth int) error {
	if err := checkTemplateNode(b.List, body); err != nil {
		return err
	}
	if b.ElseList != nil {
		return checkTemplateNode(b.ElseList, elseDepth)
	}
	return nil
}

// VariablePaths returns the paths of the variables the template reads
// with a constant argument ({{ var "app/config" }}, {{ "app/config" |
// var }}), sorted and without duplicates. A path computed while
// rendering (var (printf ...)) is not known before and not listed. The
// error is the template's parse error.
func (t *Template) VariablePaths() ([]string, error) {
	tmpl, err := ParseTemplateText(t.DestPath, t.EmbeddedTmpl, nil)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	if tmpl.Tree != nil && tmpl.Tree.Root != nil {
		walkTemplateCalls(tmpl.Tree.Root, func(p string) { seen[p] = true })
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// walkTemplateCalls calls found with the constant argument of every
// call of var under n.
func walkTemplateCalls(n parse.Node, found func(string)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkTemplateCalls(c, found)
		}
	case *parse.ActionNode:
		walkTemplateCalls(n.Pipe, found)
	case *parse.IfNode:
		walkBranchCalls(&n.BranchNode, found)
	case *parse.RangeNode:
		walkBranchCalls(&n.BranchNode, found)
	case *parse.WithNode:
		walkBranchCalls(&n.BranchNode, found)
	case *parse.ChainNode:
		walkTemplateCalls(n.Node, found)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for i, cmd := range n.Cmds {
			if isIdent(cmd.Args[0], "var") {
				switch {
				case len(cmd.Args) >= 2:
					if s, ok := cmd.Args[1].(*parse.StringNode); ok {
						found(s.Text)
					}
				case i > 0 && len(n.Cmds[i-1].Args) == 1:
					// "app/config" | var
					if s, ok := n.Cmds[i-1].Args[0].(*parse.StringNode); ok {
						found(s.Text)
					}
				}
			}
			for _, a := range cmd.Args {
				walkTemplateCalls(a, found)
			}
		}
	}
}

func walkBranchCalls(b *parse.BranchNode, found func(string)) {
	walkTemplateCalls(b.Pipe, found)
	walkTemplateCalls(b.List, found)
	if b.ElseList != nil {
		walkTemplateCalls(b.ElseList, found)
	}
}

func isIdent(n parse.Node, name string) bool {
	id, ok := n.(*parse.IdentifierNode)
	return ok && id.Ident == name
}

// validateTemplates checks a task's template blocks (path is the task's
// "TaskGroups[i].Tasks[j]").
func validateTemplates(p *problems, path string, templates []*Template) {
	if len(templates) > MaxTemplatesPerTask {
		p.add(path+".Templates", "has %d templates; the limit is %d per task", len(templates), MaxTemplatesPerTask)
		templates = templates[:MaxTemplatesPerTask]
	}
	dests := map[string]int{}
	for i, t := range templates {
		tpath := fmt.Sprintf("%s.Templates[%d]", path, i)
		if t == nil {
			p.add(tpath, "must not be null")
			continue
		}
		t.validate(p, tpath)
		if prev, dup := dests[t.DestPath]; dup && t.DestPath != "" {
			p.add(tpath+".DestPath", "%q is already the destination of Templates[%d]; each template needs its own file", t.DestPath, prev)
		} else {
			dests[t.DestPath] = i
		}
	}
}

// validateGroupTemplates refuses two tasks of a group writing the same
// file of the shared alloc directory.
func validateGroupTemplates(p *problems, path string, tasks []*Task) {
	shared := map[string]string{}
	for j, t := range tasks {
		if t == nil {
			continue
		}
		for i, tmpl := range t.Templates {
			if i >= MaxTemplatesPerTask || tmpl == nil || !strings.HasPrefix(tmpl.DestPath, "alloc/") {
				continue
			}
			at := fmt.Sprintf("%s.Tasks[%d].Templates[%d]", path, j, i)
			if prev, dup := shared[tmpl.DestPath]; dup && !strings.HasPrefix(prev, fmt.Sprintf("%s.Tasks[%d].", path, j)) {
				p.add(at+".DestPath", "%q is already written by %s; tasks of a group share alloc/, so give each template its own file", tmpl.DestPath, prev)
				continue
			}
			shared[tmpl.DestPath] = at
		}
	}
}

func (t *Template) validate(p *problems, path string) {
	if msg := checkTemplateDest(t.DestPath); msg != "" {
		p.add(path+".DestPath", "%s", msg)
	}
	switch {
	case t.EmbeddedTmpl == "" && t.SourcePath != "":
		p.add(path+".EmbeddedTmpl", "is empty: the source %q was not read. The drover CLI reads a template's source file next to the job file; a job sent as JSON carries the template's text in EmbeddedTmpl", t.SourcePath)
	case t.EmbeddedTmpl == "":
		p.add(path+".EmbeddedTmpl", "must be set: the template's text (data), or a source file next to the job file")
	case len(t.EmbeddedTmpl) > MaxTemplateSize:
		p.add(path+".EmbeddedTmpl", "is %d bytes long; the limit is %d (64 KiB)", len(t.EmbeddedTmpl), MaxTemplateSize)
	default:
		t.validateText(p, path+".EmbeddedTmpl")
	}
	switch t.ChangeMode {
	case TemplateChangeRestart, TemplateChangeNoop:
		if t.ChangeSignal != "" {
			p.add(path+".ChangeSignal", "applies only with change_mode = %q (change_mode is %q)", TemplateChangeSignal, t.ChangeMode)
		}
	case TemplateChangeSignal:
		switch {
		case t.ChangeSignal == "":
			p.add(path+".ChangeSignal", "must be set with change_mode = %q, e.g. \"SIGHUP\"", TemplateChangeSignal)
		case !templateSignals[NormalizeSignalName(t.ChangeSignal)]:
			p.add(path+".ChangeSignal", "%q is not a signal a task can be sent on a change; accepted: %s", t.ChangeSignal, strings.Join(TemplateSignals(), ", "))
		}
	case "":
		p.add(path+".ChangeMode", "must be set; accepted: %q, %q, %q", TemplateChangeRestart, TemplateChangeSignal, TemplateChangeNoop)
	default:
		p.add(path+".ChangeMode", "unknown change mode %q; accepted: %q, %q, %q", t.ChangeMode, TemplateChangeRestart, TemplateChangeSignal, TemplateChangeNoop)
	}
	if t.Splay < 0 || t.Splay > MaxTemplateSplay {
		p.add(path+".Splay", "%s is out of range; accepted: 0s to %s", t.Splay, MaxTemplateSplay)
	}
	if t.WaitMissing < 0 || t.WaitMissing > MaxTemplateWaitMissing {
		p.add(path+".WaitMissing", "%s is out of range; accepted: 0s (the default, %s) to %s", t.WaitMissing, DefaultTemplateWaitMissing, MaxTemplateWaitMissing)
	}
	if t.Perms != "" {
		if _, err := parsePerms(t.Perms); err != nil {
			p.add(path+".Perms", "%v", err)
		}
	}
}

// validateText parses the template and checks the variable paths it
// names.
func (t *Template) validateText(p *problems, path string) {
	paths, err := t.VariablePaths()
	if err != nil {
		p.add(path, "does not parse: %v", err)
		return
	}
	for _, vp := range paths {
		if err := ValidateVariablePath(vp); err != nil {
			p.add(path, "var %q: %v", vp, err)
		}
	}
}
