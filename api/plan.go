package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Plan asks what registering job would do, without registering it: the
// scheduler runs as a dry run and nothing is written. job is anything
// that encodes to the job JSON (an *api.Job, or the CLI's parsed job);
// its ID selects the path. With diff set, the response carries a diff
// of the registered job (if any) against job.
func (j *Jobs) Plan(job interface{}, diff bool) (*JobPlanResponse, error) {
	id, err := jobID(job)
	if err != nil {
		return nil, err
	}
	body := map[string]interface{}{"Job": job, "Diff": diff}
	var resp JobPlanResponse
	if _, err := j.c.write(http.MethodPut, "/v1/job/"+escape(id)+"/plan", nil, body, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// jobID reads the ID of a job given as any value that encodes to the
// job JSON.
func jobID(job interface{}) (string, error) {
	var id string
	switch v := job.(type) {
	case nil:
		return "", errors.New("plan: no job given")
	case *Job:
		if v == nil {
			return "", errors.New("plan: no job given")
		}
		id = v.ID
	default:
		buf, err := json.Marshal(job)
		if err != nil {
			return "", fmt.Errorf("encode job: %w", err)
		}
		var probe struct{ ID string }
		if err := json.Unmarshal(buf, &probe); err != nil {
			return "", fmt.Errorf("plan: the job does not encode to a JSON object: %w", err)
		}
		id = probe.ID
	}
	if id == "" {
		return "", errors.New("plan: the job has no ID")
	}
	return id, nil
}

// JobPlanResponse is the outcome of a plan (dry run).
type JobPlanResponse struct {
	// Annotations count, per group, what the scheduler would do.
	Annotations *PlanAnnotations
	// FailedTGAllocs explains, per group, placements that would fail.
	FailedTGAllocs map[string]*AllocMetric
	// JobModifyIndex is the registered job's, for `job run
	// -check-index` (0 when the job does not exist).
	JobModifyIndex uint64
	// Diff compares the registered job with the planned one; nil unless
	// asked for.
	Diff *JobDiff
	// CreatedEvals are follow-up evaluations the scheduler would create.
	CreatedEvals []*Evaluation
	// Warnings are problems that will likely stop the job from running
	// (templates reading variables that do not exist), one per line.
	Warnings string
}

// PlanAnnotations explain a plan per group.
type PlanAnnotations struct {
	DesiredTGUpdates map[string]*DesiredUpdates
	// PreemptedAllocs lists the allocations the plan would evict.
	PreemptedAllocs []*AllocationListStub
}

// DesiredUpdates counts what a plan does to one group's allocations.
type DesiredUpdates struct {
	Ignore            int
	Place             int
	Migrate           int
	Stop              int
	InPlaceUpdate     int
	DestructiveUpdate int
	Canary            int
	Preemptions       int
}

// Diff types, the values of the Type fields of the diff types.
const (
	DiffTypeNone    = "None"
	DiffTypeAdded   = "Added"
	DiffTypeDeleted = "Deleted"
	DiffTypeEdited  = "Edited"
)

// JobDiff compares two versions of a job.
type JobDiff struct {
	Type       string
	ID         string
	Fields     []*FieldDiff
	Objects    []*ObjectDiff
	TaskGroups []*TaskGroupDiff
}

// TaskGroupDiff compares one group.
type TaskGroupDiff struct {
	Type    string
	Name    string
	Fields  []*FieldDiff
	Objects []*ObjectDiff
	Tasks   []*TaskDiff
	// Updates counts what the scheduler would do to the group's
	// allocations, by kind ("create", "in-place update", ...).
	Updates map[string]uint64
}

// TaskDiff compares one task. Annotations say what the change forces,
// e.g. "forces create/destroy update".
type TaskDiff struct {
	Type        string
	Name        string
	Fields      []*FieldDiff
	Objects     []*ObjectDiff
	Annotations []string
}

// FieldDiff is one value's change.
type FieldDiff struct {
	Type        string
	Name        string
	Old, New    string
	Annotations []string
}

// ObjectDiff is a nested object's change.
type ObjectDiff struct {
	Type    string
	Name    string
	Fields  []*FieldDiff
	Objects []*ObjectDiff
}
