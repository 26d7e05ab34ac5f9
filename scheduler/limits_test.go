package scheduler

import (
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// A job over the hard limits that is already in the state store (put
// there before admission checked them) fails its evaluation without
// planning, instead of allocating in proportion to its count on every
// leader.
func TestScheduler_RefusesJobsOverTheHardLimits(t *testing.T) {
	cases := []struct {
		name string
		job  func() *structs.Job
		want string
	}{
		{"service count of a billion", func() *structs.Job { return smallJob(1_000_000_000) }, "count 1000000000"},
		{"system job with too many tasks", func() *structs.Job {
			j := sysJob()
			for i := 0; i < structs.HardMaxTasksPerGroup; i++ {
				t := j.TaskGroups[0].Tasks[0].Copy()
				t.Name = mock.Name("t")
				j.TaskGroups[0].Tasks = append(j.TaskGroups[0].Tasks, t)
			}
			return j
		}, "tasks; the hard limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHarness(t)
			h.addNodes(mock.Node())
			job := tc.job()
			eval := mock.Eval(job)
			if err := h.State.UpsertJob(h.NextIndex(), job, 1, eval); err != nil {
				t.Fatal(err)
			}
			h.Process(eval)
			if len(h.Plans) != 0 {
				t.Fatalf("%d plans submitted for an oversized job", len(h.Plans))
			}
			e := h.LastEval()
			if e.Status != structs.EvalStatusFailed || !strings.Contains(e.StatusDescription, tc.want) {
				t.Fatalf("eval %s: %q, want failed saying %q", e.Status, e.StatusDescription, tc.want)
			}
		})
	}
}
