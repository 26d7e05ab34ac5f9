package structs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Diff compares j, the registered job (nil when the job is new), with
// other, the proposed version (nil when the job goes away), as `job plan`
// shows it. It follows Nomad's job diff:
//
//   - Every level (job, group, task, object, field) has a DiffType:
//     Added, Deleted, Edited, or None when nothing under it changed.
//   - Groups and tasks are matched by name, and every group and task of
//     either version gets a diff, None included, so the plan can list
//     what stays. Fields and nested objects that did not change are left
//     out, unless contextual is set: then an edited group, task or
//     object also lists its unchanged fields, with type None, so the
//     reader sees the change in its context.
//   - Sets (datacenters, constraints, affinities, spread targets,
//     service tags) show an added and a deleted entry rather than an
//     edit. Services, like groups and tasks, are matched by name, and
//     so are a service's checks.
//   - Values are rendered as strings: ints and bools with strconv,
//     durations with time.Duration.String, "" for a value that is unset
//     or absent on that side.
//
// Server-owned fields (status, version, stability, submit time, Raft
// indexes) are ignored. Tasks are annotated with what their change
// forces (see annotateTask), and the group Count field with whether it
// forces allocations to be created or destroyed. Every list is sorted,
// so equal inputs give equal diffs.
//
// Diff returns an error only when both jobs are given and their IDs
// differ.
func (j *Job) Diff(other *Job, contextual bool) (*JobDiff, error) {
	diff := &JobDiff{Type: DiffTypeNone}
	var oldJob, newJob Job // zero values stand in for a missing side
	switch {
	case j == nil && other == nil:
		return diff, nil
	case j == nil:
		diff.Type, diff.ID = DiffTypeAdded, other.ID
		newJob = *other
	case other == nil:
		diff.Type, diff.ID = DiffTypeDeleted, j.ID
		oldJob = *j
	default:
		if j.ID != other.ID {
			return nil, fmt.Errorf("cannot diff jobs with different IDs: %q and %q", j.ID, other.ID)
		}
		diff.ID = j.ID
		oldJob, newJob = *j, *other
	}

	diff.Fields = fieldDiffs(j.diffFields(), other.diffFields(), contextual)
	diff.Fields = append(diff.Fields, setFieldDiffs("Datacenters", oldJob.Datacenters, newJob.Datacenters, contextual)...)
	sortFields(diff.Fields)

	diff.Objects = append(diff.Objects, constraintDiffs(oldJob.Constraints, newJob.Constraints, contextual)...)
	diff.Objects = append(diff.Objects, affinityDiffs(oldJob.Affinities, newJob.Affinities, contextual)...)
	diff.Objects = append(diff.Objects, spreadDiffs(oldJob.Spreads, newJob.Spreads, contextual)...)
	diff.Objects = appendObject(diff.Objects, objectDiff("Update", updateFields(oldJob.Update), updateFields(newJob.Update), nil, contextual))
	sortObjects(diff.Objects)

	diff.TaskGroups = taskGroupDiffs(oldJob.TaskGroups, newJob.TaskGroups, contextual)

	if diff.Type == DiffTypeNone && (fieldsChanged(diff.Fields) || objectsChanged(diff.Objects) || groupsChanged(diff.TaskGroups)) {
		diff.Type = DiffTypeEdited
	}
	if diff.Type == DiffTypeNone {
		diff.Fields, diff.Objects = nil, nil
	}
	return diff, nil
}

// diffFields flattens the job's scalar fields; nil for no job.
func (j *Job) diffFields() map[string]string {
	if j == nil {
		return nil
	}
	m := map[string]string{
		"Name":     j.Name,
		"Type":     j.Type,
		"Priority": strconv.Itoa(j.Priority),
		"NodePool": j.NodePool,
		"Stop":     strconv.FormatBool(j.Stop),
	}
	addMap(m, "Meta", j.Meta)
	return m
}

// taskGroupDiffs matches groups by name and diffs each, sorted by name.
func taskGroupDiffs(old, new []*TaskGroup, contextual bool) []*TaskGroupDiff {
	return diffByName(old, new, func(tg *TaskGroup) string { return tg.Name }, taskGroupDiff, contextual)
}

// taskGroupDiff compares one group; old or new may be nil (not both).
func taskGroupDiff(old, new *TaskGroup, contextual bool) *TaskGroupDiff {
	diff := &TaskGroupDiff{}
	var o, n TaskGroup
	diff.Type, o, n = pairSides(old, new)
	diff.Name = pick(new, old).Name

	diff.Fields = fieldDiffs(old.diffFields(), new.diffFields(), contextual)
	sortFields(diff.Fields)

	objs := constraintDiffs(o.Constraints, n.Constraints, contextual)
	objs = append(objs, affinityDiffs(o.Affinities, n.Affinities, contextual)...)
	objs = append(objs, spreadDiffs(o.Spreads, n.Spreads, contextual)...)
	objs = append(objs, networkDiffs(o.Networks, n.Networks, contextual)...)
	objs = append(objs, serviceDiffs(o.Services, n.Services, contextual)...)
	objs = appendObject(objs, objectDiff("Update", updateFields(o.Update), updateFields(n.Update), nil, contextual))
	objs = appendObject(objs, objectDiff("Migrate", migrateFields(o.Migrate), migrateFields(n.Migrate), nil, contextual))
	objs = appendObject(objs, objectDiff("RestartPolicy", restartFields(o.RestartPolicy), restartFields(n.RestartPolicy), nil, contextual))
	objs = appendObject(objs, objectDiff("ReschedulePolicy", rescheduleFields(o.ReschedulePolicy), rescheduleFields(n.ReschedulePolicy), nil, contextual))
	sortObjects(objs)
	diff.Objects = objs

	diff.Tasks = taskDiffs(o.Tasks, n.Tasks, contextual)

	if diff.Type == DiffTypeNone && (fieldsChanged(diff.Fields) || objectsChanged(diff.Objects) || tasksChanged(diff.Tasks)) {
		diff.Type = DiffTypeEdited
	}
	if diff.Type == DiffTypeNone {
		diff.Fields, diff.Objects = nil, nil
	}
	annotateCount(diff)
	for _, t := range diff.Tasks {
		annotateTask(t, diff.Type)
	}
	return diff
}

func (tg *TaskGroup) diffFields() map[string]string {
	if tg == nil {
		return nil
	}
	m := map[string]string{"Count": strconv.Itoa(tg.Count)}
	addMap(m, "Meta", tg.Meta)
	return m
}

// annotateCount marks a Count change with whether it forces
// allocations to be created or destroyed.
func annotateCount(diff *TaskGroupDiff) {
	for _, f := range diff.Fields {
		if f.Name != "Count" || f.Type == DiffTypeNone {
			continue
		}
		// An absent side counts as zero allocations.
		oldN, _ := strconv.Atoi(f.Old)
		newN, _ := strconv.Atoi(f.New)
		switch {
		case newN > oldN:
			f.Annotations = append(f.Annotations, AnnotationForcesCreate)
		case newN < oldN:
			f.Annotations = append(f.Annotations, AnnotationForcesDestroy)
		}
	}
}

// annotateTask says what a task's change forces, as the scheduler's
// reconciler decides it (destructiveChange): a task of a group that is
// created or removed as a whole is created or destroyed with it; a task
// added to or removed from a kept group, or changed in anything but its
// kill timeout, replaces the allocations; a kill timeout alone is
// updated in place.
func annotateTask(diff *TaskDiff, groupType DiffType) {
	switch {
	case diff.Type == DiffTypeNone:
		return
	case diff.Type == DiffTypeAdded && groupType == DiffTypeAdded:
		diff.Annotations = append(diff.Annotations, AnnotationForcesCreate)
		return
	case diff.Type == DiffTypeDeleted && groupType == DiffTypeDeleted:
		diff.Annotations = append(diff.Annotations, AnnotationForcesDestroy)
		return
	case diff.Type != DiffTypeEdited:
		diff.Annotations = append(diff.Annotations, AnnotationForcesDestructive)
		return
	}
	destructive := objectsChanged(diff.Objects)
	for _, f := range diff.Fields {
		if f.Type != DiffTypeNone && f.Name != "KillTimeout" {
			destructive = true
		}
	}
	if destructive {
		diff.Annotations = append(diff.Annotations, AnnotationForcesDestructive)
	} else {
		diff.Annotations = append(diff.Annotations, AnnotationForcesInplaceUpdate)
	}
}

// taskDiffs matches tasks by name and diffs each, sorted by name.
func taskDiffs(old, new []*Task, contextual bool) []*TaskDiff {
	return diffByName(old, new, func(t *Task) string { return t.Name }, taskDiff, contextual)
}

// taskDiff compares one task; old or new may be nil (not both).
func taskDiff(old, new *Task, contextual bool) *TaskDiff {
	diff := &TaskDiff{}
	var o, n Task
	diff.Type, o, n = pairSides(old, new)
	diff.Name = pick(new, old).Name

	diff.Fields = fieldDiffs(old.diffFields(), new.diffFields(), contextual)
	sortFields(diff.Fields)

	objs := appendObject(nil, objectDiff("Config", configFields(o.Config), configFields(n.Config), nil, contextual))
	objs = appendObject(objs, objectDiff("Resources", resourcesFields(o.Resources), resourcesFields(n.Resources), nil, contextual))
	objs = append(objs, constraintDiffs(o.Constraints, n.Constraints, contextual)...)
	objs = append(objs, affinityDiffs(o.Affinities, n.Affinities, contextual)...)
	objs = append(objs, serviceDiffs(o.Services, n.Services, contextual)...)
	objs = append(objs, templateDiffs(o.Templates, n.Templates, contextual)...)
	sortObjects(objs)
	diff.Objects = objs

	if diff.Type == DiffTypeNone && (fieldsChanged(diff.Fields) || objectsChanged(diff.Objects)) {
		diff.Type = DiffTypeEdited
	}
	if diff.Type == DiffTypeNone {
		diff.Fields, diff.Objects = nil, nil
	}
	return diff
}

// templateDiffs matches a task's templates by destination. A changed
// template is a changed task: it forces a destructive update (the
// running allocations rendered the old one).
func templateDiffs(old, new []*Template, contextual bool) []*ObjectDiff {
	oldBy, newBy, dests := matchByName(old, new, func(t *Template) string { return t.DestPath })
	var out []*ObjectDiff
	for _, d := range dests {
		out = appendObject(out, objectDiff("Template", templateFields(oldBy[d]), templateFields(newBy[d]), nil, contextual))
	}
	return out
}

func templateFields(t *Template) map[string]string {
	if t == nil {
		return nil
	}
	return map[string]string{
		"DestPath":     t.DestPath,
		"EmbeddedTmpl": t.EmbeddedTmpl,
		"SourcePath":   t.SourcePath,
		"Envvars":      strconv.FormatBool(t.Envvars),
		"ChangeMode":   t.ChangeMode,
		"ChangeSignal": t.ChangeSignal,
		"Splay":        durationString(t.Splay),
		"Perms":        t.Perms,
		"WaitMissing":  durationString(t.WaitMissing),
	}
}

func (t *Task) diffFields() map[string]string {
	if t == nil {
		return nil
	}
	m := map[string]string{
		"Driver":      t.Driver,
		"KillTimeout": durationString(t.KillTimeout),
	}
	addMap(m, "Env", t.Env)
	addMap(m, "Meta", t.Meta)
	return m
}

// Flatteners: each renders one kind of object as field name -> value,
// and returns nil for a missing object (so objectDiff sees it absent).

func configFields(c *TaskConfig) map[string]string {
	if c == nil {
		return nil
	}
	m := map[string]string{"image": c.Image, "command": c.Command}
	for i, a := range c.Args {
		m["args["+strconv.Itoa(i)+"]"] = a
	}
	return m
}

func resourcesFields(r *Resources) map[string]string {
	if r == nil {
		return nil
	}
	return map[string]string{"CPU": strconv.Itoa(r.CPU), "MemoryMB": strconv.Itoa(r.MemoryMB)}
}

func constraintFields(c *Constraint) map[string]string {
	return map[string]string{"LTarget": c.LTarget, "RTarget": c.RTarget, "Operand": c.Operand}
}

func affinityFields(a *Affinity) map[string]string {
	return map[string]string{
		"LTarget": a.LTarget, "RTarget": a.RTarget, "Operand": a.Operand,
		"Weight": strconv.Itoa(int(a.Weight)),
	}
}

func spreadFields(s *Spread) map[string]string {
	return map[string]string{"Attribute": s.Attribute, "Weight": strconv.Itoa(int(s.Weight))}
}

func spreadTargetFields(t *SpreadTarget) map[string]string {
	return map[string]string{"Value": t.Value, "Percent": strconv.Itoa(int(t.Percent))}
}

func updateFields(u *UpdateStrategy) map[string]string {
	if u == nil {
		return nil
	}
	return map[string]string{
		"Stagger":          durationString(u.Stagger),
		"MaxParallel":      strconv.Itoa(u.MaxParallel),
		"HealthCheck":      u.HealthCheck,
		"MinHealthyTime":   durationString(u.MinHealthyTime),
		"HealthyDeadline":  durationString(u.HealthyDeadline),
		"ProgressDeadline": durationString(u.ProgressDeadline),
		"Canary":           strconv.Itoa(u.Canary),
		"AutoPromote":      strconv.FormatBool(u.AutoPromote),
		"AutoRevert":       strconv.FormatBool(u.AutoRevert),
	}
}

func migrateFields(m *MigrateStrategy) map[string]string {
	if m == nil {
		return nil
	}
	return map[string]string{"MaxParallel": strconv.Itoa(m.MaxParallel)}
}

func restartFields(r *RestartPolicy) map[string]string {
	if r == nil {
		return nil
	}
	return map[string]string{
		"Attempts": strconv.Itoa(r.Attempts),
		"Interval": durationString(r.Interval),
		"Delay":    durationString(r.Delay),
		"Mode":     r.Mode,
	}
}

func rescheduleFields(r *ReschedulePolicy) map[string]string {
	if r == nil {
		return nil
	}
	return map[string]string{
		"Attempts":      strconv.Itoa(r.Attempts),
		"Interval":      durationString(r.Interval),
		"Delay":         durationString(r.Delay),
		"DelayFunction": r.DelayFunction,
		"MaxDelay":      durationString(r.MaxDelay),
		"Unlimited":     strconv.FormatBool(r.Unlimited),
	}
}

func networkFields(n *NetworkResource) map[string]string {
	if n == nil {
		return nil
	}
	return map[string]string{"Mode": n.Mode}
}

// portFields renders a port; a dynamic port's Value is chosen by the
// scheduler, so it is not part of the spec.
func portFields(p *Port, dynamic bool) map[string]string {
	if p == nil {
		return nil
	}
	m := map[string]string{"Label": p.Label, "To": strconv.Itoa(p.To), "HostNetwork": p.HostNetwork}
	if !dynamic {
		m["Value"] = strconv.Itoa(p.Value)
	}
	return m
}

// serviceFields renders a service without its tags, VIP and checks,
// which are nested objects.
func serviceFields(s *Service) map[string]string {
	if s == nil {
		return nil
	}
	return map[string]string{
		"Name":          s.Name,
		"PortLabel":     s.PortLabel,
		"TaskName":      s.TaskName,
		"PublishedPort": strconv.Itoa(s.PublishedPort),
		"ShutdownDelay": durationString(s.ShutdownDelay),
	}
}

func vipFields(v *ServiceVIP) map[string]string {
	if v == nil {
		return nil
	}
	return map[string]string{"Port": strconv.Itoa(v.Port)}
}

func checkFields(c *ServiceCheck) map[string]string {
	if c == nil {
		return nil
	}
	m := map[string]string{
		"Name":     c.Name,
		"Type":     c.Type,
		"Path":     c.Path,
		"Interval": durationString(c.Interval),
		"Timeout":  durationString(c.Timeout),
	}
	if c.Command != "" {
		m["Command"] = c.Command
	}
	for i, a := range c.Args {
		m["Args["+strconv.Itoa(i)+"]"] = a
	}
	return m
}

func durationString(d time.Duration) string { return d.String() }

// addMap adds the entries of a map as "prefix[key]" fields.
func addMap(dst map[string]string, prefix string, src map[string]string) {
	for k, v := range src {
		dst[prefix+"["+k+"]"] = v
	}
}

// Set and keyed object diffs.

func constraintDiffs(old, new []*Constraint, contextual bool) []*ObjectDiff {
	return objectSetDiffs("Constraint", flattenAll(old, constraintFields), flattenAll(new, constraintFields), contextual)
}

func affinityDiffs(old, new []*Affinity, contextual bool) []*ObjectDiff {
	return objectSetDiffs("Affinity", flattenAll(old, affinityFields), flattenAll(new, affinityFields), contextual)
}

// spreadDiffs matches spreads by attribute, so a changed weight or
// target is an edit of the spread; its targets are a set.
func spreadDiffs(old, new []*Spread, contextual bool) []*ObjectDiff {
	oldBy, newBy, attrs := matchByName(old, new, func(s *Spread) string { return s.Attribute })
	var out []*ObjectDiff
	for _, attr := range attrs {
		o, n := oldBy[attr], newBy[attr]
		var of, nf map[string]string
		var ot, nt []*SpreadTarget
		if o != nil {
			of, ot = spreadFields(o), o.SpreadTarget
		}
		if n != nil {
			nf, nt = spreadFields(n), n.SpreadTarget
		}
		targets := objectSetDiffs("SpreadTarget", flattenAll(ot, spreadTargetFields), flattenAll(nt, spreadTargetFields), contextual)
		out = appendObject(out, objectDiff("Spread", of, nf, targets, contextual))
	}
	return out
}

// networkDiffs matches networks by position (a group has at most a few,
// usually one); ports within a network are matched by label.
func networkDiffs(old, new []*NetworkResource, contextual bool) []*ObjectDiff {
	var out []*ObjectDiff
	for i := 0; i < len(old) || i < len(new); i++ {
		var o, n *NetworkResource
		if i < len(old) {
			o = old[i]
		}
		if i < len(new) {
			n = new[i]
		}
		var ports []*ObjectDiff
		var oStatic, nStatic, oDyn, nDyn []Port
		if o != nil {
			oStatic, oDyn = o.ReservedPorts, o.DynamicPorts
		}
		if n != nil {
			nStatic, nDyn = n.ReservedPorts, n.DynamicPorts
		}
		ports = append(ports, portDiffs("Static Port", oStatic, nStatic, false, contextual)...)
		ports = append(ports, portDiffs("Dynamic Port", oDyn, nDyn, true, contextual)...)
		out = appendObject(out, objectDiff("Network", networkFields(o), networkFields(n), ports, contextual))
	}
	return out
}

// serviceDiffs matches services by name, and a service's checks by
// name; its tags are a set, shown as a nested "Tags" object.
func serviceDiffs(old, new []*Service, contextual bool) []*ObjectDiff {
	oldBy, newBy, names := matchByName(old, new, func(s *Service) string { return s.Name })
	var out []*ObjectDiff
	for _, name := range names {
		o, n := oldBy[name], newBy[name]
		var os, ns Service
		if o != nil {
			os = *o
		}
		if n != nil {
			ns = *n
		}
		nested := appendObject(nil, tagsDiff(os.Tags, ns.Tags, contextual))
		nested = appendObject(nested, objectDiff("VIP", vipFields(os.VIP), vipFields(ns.VIP), nil, contextual))
		oc, nc, checks := matchByName(os.Checks, ns.Checks, func(c *ServiceCheck) string { return c.Name })
		for _, c := range checks {
			nested = appendObject(nested, objectDiff("Check", checkFields(oc[c]), checkFields(nc[c]), nil, contextual))
		}
		out = appendObject(out, objectDiff("Service", serviceFields(o), serviceFields(n), nested, contextual))
	}
	return out
}

// tagsDiff compares two sets of tags as an object named "Tags" whose
// fields are the added and deleted tags; nil when the sets are equal.
func tagsDiff(old, new []string, contextual bool) *ObjectDiff {
	fields := setFieldDiffs("Tags", old, new, contextual)
	if !fieldsChanged(fields) {
		return nil
	}
	diff := &ObjectDiff{Type: DiffTypeEdited, Name: "Tags", Fields: fields}
	switch {
	case len(old) == 0:
		diff.Type = DiffTypeAdded
	case len(new) == 0:
		diff.Type = DiffTypeDeleted
	}
	sortFields(diff.Fields)
	return diff
}

func portDiffs(name string, old, new []Port, dynamic, contextual bool) []*ObjectDiff {
	oldBy := make(map[string]*Port, len(old))
	newBy := make(map[string]*Port, len(new))
	labels := map[string]bool{}
	for i := range old {
		oldBy[old[i].Label] = &old[i]
		labels[old[i].Label] = true
	}
	for i := range new {
		newBy[new[i].Label] = &new[i]
		labels[new[i].Label] = true
	}
	var out []*ObjectDiff
	for _, l := range sortedSetKeys(labels) {
		out = appendObject(out, objectDiff(name, portFields(oldBy[l], dynamic), portFields(newBy[l], dynamic), nil, contextual))
	}
	return out
}

// objectSetDiffs compares two sets of flattened objects: an object in
// only one set is Added or Deleted; objects in both are unchanged and
// left out.
func objectSetDiffs(name string, old, new []map[string]string, contextual bool) []*ObjectDiff {
	oldSet, newSet := map[string]map[string]string{}, map[string]map[string]string{}
	for _, m := range old {
		oldSet[flatKey(m)] = m
	}
	for _, m := range new {
		newSet[flatKey(m)] = m
	}
	var out []*ObjectDiff
	for k, m := range oldSet {
		if _, ok := newSet[k]; !ok {
			out = appendObject(out, objectDiff(name, m, nil, nil, contextual))
		}
	}
	for k, m := range newSet {
		if _, ok := oldSet[k]; !ok {
			out = appendObject(out, objectDiff(name, nil, m, nil, contextual))
		}
	}
	sortObjects(out)
	return out
}

func flattenAll[T any](items []*T, flat func(*T) map[string]string) []map[string]string {
	out := make([]map[string]string, 0, len(items))
	for _, it := range items {
		if it != nil {
			out = append(out, flat(it))
		}
	}
	return out
}

// flatKey identifies a flattened object by its content.
func flatKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q;", k, m[k])
	}
	return b.String()
}

// objectDiff compares one object, flattened; a nil map is a missing
// object. nested are the diffs of its sub-objects. It returns nil when
// the object is missing on both sides or did not change.
func objectDiff(name string, old, new map[string]string, nested []*ObjectDiff, contextual bool) *ObjectDiff {
	if old == nil && new == nil {
		return nil
	}
	diff := &ObjectDiff{Name: name, Fields: fieldDiffs(old, new, contextual), Objects: nested}
	switch {
	case old == nil:
		diff.Type = DiffTypeAdded
	case new == nil:
		diff.Type = DiffTypeDeleted
	case fieldsChanged(diff.Fields) || objectsChanged(nested):
		diff.Type = DiffTypeEdited
	default:
		return nil
	}
	sortFields(diff.Fields)
	sortObjects(diff.Objects)
	return diff
}

func appendObject(objs []*ObjectDiff, o *ObjectDiff) []*ObjectDiff {
	if o == nil {
		return objs
	}
	return append(objs, o)
}

// Field diffs.

// fieldDiffs compares two flattened objects field by field (unsorted).
func fieldDiffs(old, new map[string]string, contextual bool) []*FieldDiff {
	names := map[string]bool{}
	for k := range old {
		names[k] = true
	}
	for k := range new {
		names[k] = true
	}
	var out []*FieldDiff
	for name := range names {
		if d := fieldDiff(name, old[name], new[name], contextual); d != nil {
			out = append(out, d)
		}
	}
	return out
}

// fieldDiff compares one value. It returns nil for an unchanged value
// unless contextual, and always for a value unset on both sides.
func fieldDiff(name, old, new string, contextual bool) *FieldDiff {
	switch {
	case old == new:
		if !contextual || old == "" {
			return nil
		}
		return &FieldDiff{Type: DiffTypeNone, Name: name, Old: old, New: new}
	case old == "":
		return &FieldDiff{Type: DiffTypeAdded, Name: name, New: new}
	case new == "":
		return &FieldDiff{Type: DiffTypeDeleted, Name: name, Old: old}
	}
	return &FieldDiff{Type: DiffTypeEdited, Name: name, Old: old, New: new}
}

// setFieldDiffs compares two sets of strings as fields named name: one
// Added or Deleted field per value in only one set.
func setFieldDiffs(name string, old, new []string, contextual bool) []*FieldDiff {
	oldSet, newSet := map[string]bool{}, map[string]bool{}
	for _, v := range old {
		oldSet[v] = true
	}
	for _, v := range new {
		newSet[v] = true
	}
	var out []*FieldDiff
	for v := range oldSet {
		if !newSet[v] {
			out = append(out, &FieldDiff{Type: DiffTypeDeleted, Name: name, Old: v})
		} else if contextual {
			out = append(out, &FieldDiff{Type: DiffTypeNone, Name: name, Old: v, New: v})
		}
	}
	for v := range newSet {
		if !oldSet[v] {
			out = append(out, &FieldDiff{Type: DiffTypeAdded, Name: name, New: v})
		}
	}
	return out
}

// Change detection.

func fieldsChanged(fs []*FieldDiff) bool {
	return anyChanged(fs, func(f *FieldDiff) DiffType { return f.Type })
}

func objectsChanged(os []*ObjectDiff) bool {
	return anyChanged(os, func(o *ObjectDiff) DiffType { return o.Type })
}

func tasksChanged(ts []*TaskDiff) bool {
	return anyChanged(ts, func(t *TaskDiff) DiffType { return t.Type })
}

func groupsChanged(gs []*TaskGroupDiff) bool {
	return anyChanged(gs, func(g *TaskGroupDiff) DiffType { return g.Type })
}

// anyChanged reports whether any diff in the list is not DiffTypeNone.
func anyChanged[T any](list []T, typ func(T) DiffType) bool {
	for _, d := range list {
		if typ(d) != DiffTypeNone {
			return true
		}
	}
	return false
}

// Ordering.

// diffByName matches two lists by name and diffs each pair with diff,
// sorted by name.
func diffByName[T, D any](old, new []*T, name func(*T) string, diff func(o, n *T, contextual bool) D, contextual bool) []D {
	oldBy, newBy, names := matchByName(old, new, name)
	var out []D
	for _, nm := range names {
		out = append(out, diff(oldBy[nm], newBy[nm], contextual))
	}
	return out
}

// pairSides classifies a pair where old or new may be nil (not both) and
// returns the values to compare, the zero value standing for a missing
// side.
func pairSides[T any](old, new *T) (DiffType, T, T) {
	var o, n T
	switch {
	case old == nil:
		return DiffTypeAdded, o, *new
	case new == nil:
		return DiffTypeDeleted, *old, n
	}
	return DiffTypeNone, *old, *new
}

// pick returns a if it is not nil, else b.
func pick[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// matchByName indexes two lists by a name and returns the union of the
// names, sorted. Items without a name key collide like any other.
func matchByName[T any](old, new []*T, name func(*T) string) (map[string]*T, map[string]*T, []string) {
	oldBy, newBy := map[string]*T{}, map[string]*T{}
	all := map[string]bool{}
	for _, it := range old {
		if it != nil {
			oldBy[name(it)] = it
			all[name(it)] = true
		}
	}
	for _, it := range new {
		if it != nil {
			newBy[name(it)] = it
			all[name(it)] = true
		}
	}
	return oldBy, newBy, sortedSetKeys(all)
}

func sortedSetKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortFields orders fields by name, list indexes numerically
// ("args[2]" before "args[10]"), then (entries of a set) by value.
func sortFields(fs []*FieldDiff) {
	value := func(f *FieldDiff) string {
		if f.New != "" {
			return f.New
		}
		return f.Old
	}
	sort.Slice(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if c := compareFieldNames(a.Name, b.Name); c != 0 {
			return c < 0
		}
		if va, vb := value(a), value(b); va != vb {
			return va < vb
		}
		return a.Old < b.Old
	})
}

// compareFieldNames orders names by (prefix, index): "args[2]" is
// ("args", 2); a name without a numeric index is (name, -1).
func compareFieldNames(a, b string) int {
	ap, ai := splitIndex(a)
	bp, bi := splitIndex(b)
	if ap != bp {
		return strings.Compare(ap, bp)
	}
	switch {
	case ai < bi:
		return -1
	case ai > bi:
		return 1
	}
	return 0
}

func splitIndex(name string) (string, int) {
	open := strings.LastIndexByte(name, '[')
	if open < 0 || !strings.HasSuffix(name, "]") {
		return name, -1
	}
	n, err := strconv.Atoi(name[open+1 : len(name)-1])
	if err != nil || n < 0 || strconv.Itoa(n) != name[open+1:len(name)-1] {
		return name, -1
	}
	return name[:open], n
}

// sortObjects orders objects by name, then by content.
func sortObjects(os []*ObjectDiff) {
	sort.Slice(os, func(i, j int) bool {
		if os[i].Name != os[j].Name {
			return os[i].Name < os[j].Name
		}
		return objectKey(os[i]) < objectKey(os[j])
	})
}

func objectKey(o *ObjectDiff) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s{", o.Type)
	for _, f := range o.Fields {
		fmt.Fprintf(&b, "%q:%q>%q;", f.Name, f.Old, f.New)
	}
	for _, sub := range o.Objects {
		fmt.Fprintf(&b, "%q%s;", sub.Name, objectKey(sub))
	}
	b.WriteString("}")
	return b.String()
}
