package structs

// DiffType is the kind of a change in a job diff.
type DiffType string

// Diff types.
const (
	DiffTypeNone    DiffType = "None"
	DiffTypeAdded   DiffType = "Added"
	DiffTypeDeleted DiffType = "Deleted"
	DiffTypeEdited  DiffType = "Edited"
)

// Annotations on diffs: what a change forces.
const (
	AnnotationForcesCreate        = "forces create"
	AnnotationForcesDestroy       = "forces destroy"
	AnnotationForcesInplaceUpdate = "forces in-place update"
	AnnotationForcesDestructive   = "forces create/destroy update"
)

// JobDiff compares two versions of a job (`job plan`).
type JobDiff struct {
	Type       DiffType
	ID         string
	Fields     []*FieldDiff
	Objects    []*ObjectDiff
	TaskGroups []*TaskGroupDiff
}

// TaskGroupDiff compares one group.
type TaskGroupDiff struct {
	Type    DiffType
	Name    string
	Fields  []*FieldDiff
	Objects []*ObjectDiff
	Tasks   []*TaskDiff
	// Updates counts what the scheduler would do to the group's
	// allocations ("create", "destroy", "in-place update",
	// "create/destroy update", "ignore", "canary", "migrate").
	Updates map[string]uint64
}

// TaskDiff compares one task.
type TaskDiff struct {
	Type        DiffType
	Name        string
	Fields      []*FieldDiff
	Objects     []*ObjectDiff
	Annotations []string
}

// FieldDiff is one scalar field's change.
type FieldDiff struct {
	Type        DiffType
	Name        string
	Old, New    string
	Annotations []string
}

// ObjectDiff is a nested object's change.
type ObjectDiff struct {
	Type    DiffType
	Name    string
	Fields  []*FieldDiff
	Objects []*ObjectDiff
}
