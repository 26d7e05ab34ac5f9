package structs

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldError is one problem found by Validate, at a field path such as
// "TaskGroups[0].Tasks[1].Resources.MemoryMB" (the JSON field names).
type FieldError struct {
	Path    string
	Message string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ValidationError holds every problem Validate found, not just the first.
type ValidationError struct {
	Problems []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	if len(msgs) == 1 {
		return "invalid job: " + msgs[0]
	}
	return fmt.Sprintf("invalid job: %d problems:\n  * %s", len(msgs), strings.Join(msgs, "\n  * "))
}

type problems struct {
	list []FieldError
	// dropped counts problems past maxProblemsPerValidate: a hostile
	// job with a million bad entries gets a short answer, not one the
	// size of its request.
	dropped int
}

func (p *problems) add(path, format string, args ...interface{}) {
	if len(p.list) >= maxProblemsPerValidate {
		p.dropped++
		return
	}
	p.list = append(p.list, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	list := p.list
	if p.dropped > 0 {
		list = append(list, FieldError{Message: fmt.Sprintf("%d more problems not shown", p.dropped)})
	}
	return &ValidationError{Problems: list}
}

// KnownDrivers are the task drivers Drover ships.
var KnownDrivers = []string{"containerd"}

var (
	// jobIDPattern keeps job IDs safe in URLs, file names and logs.
	jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)
	// namePattern is for group and task names; task names end up in
	// containerd container IDs, which allow only these characters.
	namePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9])?$`)
	// labelPattern is for port labels, which become environment variable
	// names (DROVER_PORT_<label>).
	labelPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envPattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]*$`)
)

const (
	maxJobIDLength = 128
	maxNameLength  = 38
)

// Validate checks the job after Canonicalize and returns a
// *ValidationError listing every problem with its field path, or nil.
// It holds the job to the hard limits (limits.go) but not to a server's
// admission limits (JobLimits.Validate): it depends on nothing but the
// job, so the FSM can run it on every server alike.
func (j *Job) Validate() error {
	return j.validate(HardJobLimits())
}

// validate checks the job, holding it to limits l (resolved: see
// JobLimits.ForCapacity).
func (j *Job) validate(l JobLimits) error {
	var p problems
	if j == nil {
		p.add("Job", "missing")
		return p.err()
	}
	switch {
	case j.ID == "":
		p.add("ID", "must be set")
	case len(j.ID) > maxJobIDLength:
		p.add("ID", "is %d characters long; the limit is %d", len(j.ID), maxJobIDLength)
	case !jobIDPattern.MatchString(j.ID):
		p.add("ID", "%q has characters that are not allowed; use letters, digits, '_', '-' and '.', starting with a letter or digit", j.ID)
	}
	// An unset namespace is the default one (Canonicalize sets it; log
	// entries written before namespaces existed have none).
	if j.Namespace != "" {
		if err := ValidateNamespaceName(j.Namespace); err != nil {
			p.add("Namespace", "%v", err)
		}
	}
	// The name is shown in listings and logs: no control characters,
	// no invalid UTF-8, bounded.
	switch {
	case len(j.Name) > maxJobNameLength:
		p.add("Name", "is %d bytes long; the limit is %d", len(j.Name), maxJobNameLength)
	case !printableName(j.Name):
		p.add("Name", "%q has control characters or invalid UTF-8; use printable characters", j.Name)
	}
	switch j.Type {
	case JobTypeService, JobTypeBatch, JobTypeSystem:
	case "":
		p.add("Type", "must be set; accepted: %q, %q, %q", JobTypeService, JobTypeBatch, JobTypeSystem)
	default:
		p.add("Type", "unknown job type %q; accepted: %q, %q, %q", j.Type, JobTypeService, JobTypeBatch, JobTypeSystem)
	}
	validatePlacement(&p, "", j.Constraints, j.Affinities, j.Spreads)
	if j.Type == JobTypeSystem && len(j.Spreads) > 0 {
		p.add("Spreads", "system jobs run on every node; spread does not apply")
	}
	if j.NodePool != "" && !validPoolName(j.NodePool) {
		p.add("NodePool", "%q is not a valid node pool name; use letters, digits, '-', '_' and '.', at most 128 characters", j.NodePool)
	}
	if j.Priority < MinJobPriority || j.Priority > MaxJobPriority {
		p.add("Priority", "%d is out of range; accepted: %d to %d", j.Priority, MinJobPriority, MaxJobPriority)
	}
	if len(j.Datacenters) == 0 {
		p.add("Datacenters", "must list at least one datacenter")
	}
	if len(j.Datacenters) > MaxDatacentersPerJob {
		p.add("Datacenters", "lists %d datacenters; the limit is %d", len(j.Datacenters), MaxDatacentersPerJob)
	}
	validateMeta(&p, "Meta", j.Meta)
	for i, dc := range j.Datacenters {
		if strings.TrimSpace(dc) == "" {
			p.add(fmt.Sprintf("Datacenters[%d]", i), "must not be empty")
		}
	}
	if len(j.TaskGroups) == 0 {
		p.add("TaskGroups", "the job has no groups; it needs at least one group with one task")
	}
	groups := j.TaskGroups
	if len(groups) > l.MaxGroupsPerJob {
		l.over(&p, "TaskGroups", fmt.Sprintf("%d groups", len(groups)), strconv.Itoa(l.MaxGroupsPerJob), "max_groups_per_job", "")
		// The groups past the limit are not looked at: the job is
		// refused anyway, and checking them all costs what they cost.
		groups = groups[:l.MaxGroupsPerJob]
	}
	seen := make(map[string]int)
	for i, tg := range groups {
		path := fmt.Sprintf("TaskGroups[%d]", i)
		if tg == nil {
			p.add(path, "must not be null")
			continue
		}
		if prev, dup := seen[tg.Name]; dup && tg.Name != "" {
			p.add(path+".Name", "group %q is defined twice (also TaskGroups[%d])", tg.Name, prev)
		}
		seen[tg.Name] = i
		tg.validate(&p, path, j.Type, l)
	}
	validateServices(&p, groups)
	return p.err()
}

func (tg *TaskGroup) validate(p *problems, path, jobType string, l JobLimits) {
	validateName(p, path+".Name", tg.Name, "group")
	if tg.Count < 0 {
		p.add(path+".Count", "%d is negative; use 0 or more", tg.Count)
	}
	if tg.Count > l.MaxCountPerGroup {
		l.over(p, path+".Count", strconv.Itoa(tg.Count), strconv.Itoa(l.MaxCountPerGroup), "max_count_per_group", "")
	}
	validateMeta(p, path+".Meta", tg.Meta)
	validatePlacement(p, path+".", tg.Constraints, tg.Affinities, tg.Spreads)
	if jobType == JobTypeSystem && len(tg.Spreads) > 0 {
		p.add(path+".Spreads", "system jobs run on every node; spread does not apply")
	}
	if tg.Update != nil {
		tg.Update.validate(p, path+".Update")
		if tg.Update.Canary > tg.Count && tg.Count > 0 {
			p.add(path+".Update.Canary", "%d canaries for a count of %d; use at most the count", tg.Update.Canary, tg.Count)
		}
	}
	if tg.Migrate != nil && tg.Migrate.MaxParallel < 0 {
		p.add(path+".Migrate.MaxParallel", "%d is negative", tg.Migrate.MaxParallel)
	}
	if len(tg.Networks) > 1 {
		p.add(path+".Networks", "only one network block is supported per group, found %d", len(tg.Networks))
	}
	labels := make(map[string]bool)
	for i, n := range tg.Networks {
		npath := fmt.Sprintf("%s.Networks[%d]", path, i)
		if n == nil {
			p.add(npath, "must not be null")
			continue
		}
		if n.Mode != "" && n.Mode != "host" {
			p.add(npath+".Mode", "unsupported network mode %q; accepted: \"host\"", n.Mode)
		}
		check := func(kind string, ports []Port, static bool) {
			for k, port := range ports {
				ppath := fmt.Sprintf("%s.%s[%d]", npath, kind, k)
				switch {
				case port.Label == "":
					p.add(ppath+".Label", "must be set")
				case !labelPattern.MatchString(port.Label):
					p.add(ppath+".Label", "%q is not a valid port label; use letters, digits and '_' (it becomes DROVER_PORT_<label>)", port.Label)
				case labels[port.Label]:
					p.add(ppath+".Label", "port %q is defined twice in the group", port.Label)
				}
				labels[port.Label] = true
				if static && (port.Value < 1 || port.Value > 65535) {
					p.add(ppath+".Value", "static port %d is out of range; accepted: 1 to 65535", port.Value)
				}
				if !static && port.Value != 0 {
					p.add(ppath+".Value", "a dynamic port's value is chosen by the scheduler; leave it unset or use a static port")
				}
				if port.To < 0 || port.To > 65535 {
					p.add(ppath+".To", "%d is out of range; accepted: 0 to 65535", port.To)
				}
			}
		}
		check("ReservedPorts", n.ReservedPorts, true)
		check("DynamicPorts", n.DynamicPorts, false)
	}
	if len(labels) > MaxPortsPerGroup {
		p.add(path+".Networks", "asks for %d ports; the limit is %d per group", len(labels), MaxPortsPerGroup)
	}
	if rp := tg.RestartPolicy; rp != nil {
		rpath := path + ".RestartPolicy"
		if rp.Attempts < 0 {
			p.add(rpath+".Attempts", "%d is negative", rp.Attempts)
		}
		if rp.Interval < 0 {
			p.add(rpath+".Interval", "must not be negative")
		}
		if rp.Delay < 0 {
			p.add(rpath+".Delay", "must not be negative")
		}
		if rp.Mode != RestartPolicyModeFail && rp.Mode != RestartPolicyModeDelay {
			p.add(rpath+".Mode", "unknown mode %q; accepted: %q, %q", rp.Mode, RestartPolicyModeFail, RestartPolicyModeDelay)
		}
	}
	if rp := tg.ReschedulePolicy; rp != nil {
		rpath := path + ".ReschedulePolicy"
		if rp.Attempts < 0 {
			p.add(rpath+".Attempts", "%d is negative", rp.Attempts)
		}
		if rp.Interval < 0 || rp.Delay < 0 || rp.MaxDelay < 0 {
			p.add(rpath, "intervals and delays must not be negative")
		}
		switch rp.DelayFunction {
		case DelayFunctionConstant, DelayFunctionExponential, DelayFunctionFibonacci:
		default:
			p.add(rpath+".DelayFunction", "unknown delay function %q; accepted: %q, %q, %q", rp.DelayFunction,
				DelayFunctionConstant, DelayFunctionExponential, DelayFunctionFibonacci)
		}
		if !rp.Unlimited && rp.Attempts > 0 && rp.Interval == 0 {
			p.add(rpath+".Interval", "must be set when attempts are limited")
		}
	}
	if len(tg.Tasks) == 0 {
		p.add(path+".Tasks", "group %q has no tasks; it needs at least one", tg.Name)
	}
	tasks := tg.Tasks
	if len(tasks) > l.MaxTasksPerGroup {
		l.over(p, path+".Tasks", fmt.Sprintf("%d tasks", len(tasks)), strconv.Itoa(l.MaxTasksPerGroup), "max_tasks_per_group", "")
		tasks = tasks[:l.MaxTasksPerGroup]
	}
	seen := make(map[string]int)
	for i, t := range tasks {
		tpath := fmt.Sprintf("%s.Tasks[%d]", path, i)
		if t == nil {
			p.add(tpath, "must not be null")
			continue
		}
		if prev, dup := seen[t.Name]; dup && t.Name != "" {
			p.add(tpath+".Name", "task %q is defined twice in the group (also Tasks[%d])", t.Name, prev)
		}
		seen[t.Name] = i
		t.validate(p, tpath, l)
	}
	validateGroupTemplates(p, path, tasks)
}

func (t *Task) validate(p *problems, path string, l JobLimits) {
	validateName(p, path+".Name", t.Name, "task")
	switch {
	case t.Driver == "":
		p.add(path+".Driver", "must be set; accepted: %s", quoteAll(KnownDrivers))
	case !contains(KnownDrivers, t.Driver):
		p.add(path+".Driver", "unknown driver %q; accepted: %s", t.Driver, quoteAll(KnownDrivers))
	}
	if t.Driver == "containerd" {
		switch {
		case t.Config == nil:
			p.add(path+".Config", "the containerd driver needs a config with an image")
		case strings.TrimSpace(t.Config.Image) == "":
			p.add(path+".Config.image", "must be set to an image reference, e.g. \"docker.io/library/busybox:1.36\"")
		}
	}
	if t.Resources == nil {
		p.add(path+".Resources", "must be set")
	} else {
		if t.Resources.CPU <= 0 {
			p.add(path+".Resources.CPU", "%d MHz is not allowed; cpu must be greater than 0", t.Resources.CPU)
		} else if int64(t.Resources.CPU) > l.MaxTaskCPU {
			l.over(p, path+".Resources.CPU", fmt.Sprintf("%d MHz", t.Resources.CPU), fmt.Sprintf("%d MHz", l.MaxTaskCPU), "max_task_cpu", l.cpuFrom)
		}
		if t.Resources.MemoryMB <= 0 {
			p.add(path+".Resources.MemoryMB", "%d MB is not allowed; memory must be greater than 0", t.Resources.MemoryMB)
		} else if int64(t.Resources.MemoryMB) > l.MaxTaskMemoryMB {
			l.over(p, path+".Resources.MemoryMB", fmt.Sprintf("%d MB", t.Resources.MemoryMB), fmt.Sprintf("%d MB", l.MaxTaskMemoryMB), "max_task_memory_mb", l.memoryFrom)
		}
	}
	if t.KillTimeout < 0 {
		p.add(path+".KillTimeout", "must not be negative")
	}
	t.LogConfig.validate(p, path+".LogConfig")
	validatePlacement(p, path+".", t.Constraints, t.Affinities, nil)
	for i, c := range t.Constraints {
		if c != nil && (c.Operand == ConstraintDistinctHosts || c.Operand == ConstraintDistinctProperty) {
			p.add(fmt.Sprintf("%s.Constraints[%d].Operand", path, i), "%s applies to a job or a group, not a task", c.Operand)
		}
	}
	if len(t.Env) > MaxEnvPerTask {
		p.add(path+".Env", "has %d variables; the limit is %d", len(t.Env), MaxEnvPerTask)
	}
	for _, k := range sortedKeys(t.Env) {
		if !envPattern.MatchString(k) {
			p.add(path+".Env", "%q is not a valid environment variable name", k)
		}
	}
	validateMeta(p, path+".Meta", t.Meta)
	validateTemplates(p, path, t.Templates)
}

// validateMeta bounds a meta block's entries.
func validateMeta(p *problems, path string, meta map[string]string) {
	if len(meta) > MaxMetaEntries {
		p.add(path, "has %d entries; the limit is %d", len(meta), MaxMetaEntries)
	}
}

// sortedKeys returns m's keys in order, so that problems come out in
// the same order every time.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// printableName reports whether s is valid UTF-8 without control
// characters.
func printableName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func validateName(p *problems, path, name, what string) {
	switch {
	case name == "":
		p.add(path, "every %s needs a name", what)
	case len(name) > maxNameLength:
		p.add(path, "%s name %q is %d characters long; the limit is %d", what, name, len(name), maxNameLength)
	case !namePattern.MatchString(name):
		p.add(path, "%s name %q has characters that are not allowed; use letters, digits, '_', '-' and '.', starting and ending with a letter or digit", what, name)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// validatePlacement checks constraints, affinities and spreads under
// prefix ("" for the job, "TaskGroups[0]." for a group).
func validatePlacement(p *problems, prefix string, cs []*Constraint, as []*Affinity, ss []*Spread) {
	// The scheduler checks every rule against every node it considers,
	// for every allocation it places.
	for _, b := range []struct {
		what string
		n    int
	}{{"Constraints", len(cs)}, {"Affinities", len(as)}, {"Spreads", len(ss)}} {
		if b.n > MaxPlacementRules {
			p.add(prefix+b.what, "has %d entries; the limit is %d", b.n, MaxPlacementRules)
		}
	}
	for i, c := range cs {
		path := fmt.Sprintf("%sConstraints[%d]", prefix, i)
		if c == nil {
			p.add(path, "must not be null")
			continue
		}
		c.validate(p, path)
	}
	for i, a := range as {
		path := fmt.Sprintf("%sAffinities[%d]", prefix, i)
		if a == nil {
			p.add(path, "must not be null")
			continue
		}
		a.validate(p, path)
	}
	for i, s := range ss {
		path := fmt.Sprintf("%sSpreads[%d]", prefix, i)
		if s == nil {
			p.add(path, "must not be null")
			continue
		}
		s.validate(p, path)
	}
}

// validPoolName reports whether name can name a node pool.
func validPoolName(name string) bool {
	if len(name) > 128 {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
