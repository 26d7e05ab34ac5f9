package server

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// assertNothingFor checks that a refused job left no trace: no job, no
// evaluation, no allocation.
func assertNothingFor(t *testing.T, s *Server, jobID string) {
	t.Helper()
	if j, _ := s.State().JobByID(nil, "", jobID); j != nil {
		t.Fatalf("refused job %s was stored", jobID)
	}
	if evals, _ := s.State().EvalsByJob(nil, "", jobID); len(evals) > 0 {
		t.Fatalf("refused job %s got %d evaluations", jobID, len(evals))
	}
	if allocs, _ := s.State().AllocsByJob(nil, "", jobID); len(allocs) > 0 {
		t.Fatalf("refused job %s got %d allocations", jobID, len(allocs))
	}
}

func assertInvalid(t *testing.T, err error, wants ...string) {
	t.Helper()
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Code != structs.CodeInvalid || ce.Status != 400 {
		t.Fatalf("err = %v, want a 400 invalid_request", err)
	}
	for _, w := range wants {
		if !strings.Contains(ce.Message, w) {
			t.Fatalf("error %q does not say %q", ce.Message, w)
		}
	}
}

func hostileJobs() []struct {
	name   string
	mutate func(*structs.Job)
	wants  []string
} {
	return []struct {
		name   string
		mutate func(*structs.Job)
		wants  []string
	}{
		{"count of a billion", func(j *structs.Job) { j.TaskGroups[0].Count = 1_000_000_000 },
			[]string{"TaskGroups[0].Count: 1000000000 is over the limit of 10000 (limits.max_count_per_group)"}},
		{"cpu of MaxInt64", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = math.MaxInt64 },
			[]string{"TaskGroups[0].Tasks[0].Resources.CPU: 9223372036854775807 MHz is over the limit of 4000 MHz"}},
		{"memory over every node", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.MemoryMB = 8193 },
			[]string{"TaskGroups[0].Tasks[0].Resources.MemoryMB: 8193 MB is over the limit of 8192 MB"}},
		{"200 task groups", func(j *structs.Job) {
			tg := j.TaskGroups[0]
			j.TaskGroups = nil
			for i := 0; i < 200; i++ {
				c := tg.Copy()
				c.Name = fmt.Sprintf("g%d", i)
				j.TaskGroups = append(j.TaskGroups, c)
			}
		}, []string{"TaskGroups: 200 groups is over the limit of 100 (limits.max_groups_per_job)"}},
	}
}

func TestJob_RegisterRefusesJobsOverTheLimits(t *testing.T) {
	s := testServer(t, nil)
	registerNode(t, s, mock.Node()) // 4000 MHz, 8192 MB
	for _, tc := range hostileJobs() {
		t.Run(tc.name, func(t *testing.T) {
			job := mock.Job()
			tc.mutate(job)
			var resp structs.JobRegisterResponse
			err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp)
			assertInvalid(t, err, tc.wants...)
			assertNothingFor(t, s, job.ID)
		})
	}
	// The server is fine and still takes jobs within the limits.
	resp := registerJob(t, s, mock.Job())
	if eval := waitForEval(t, s, resp.EvalID); eval.Status != structs.EvalStatusComplete {
		t.Fatalf("a valid job after the refused ones: %+v", eval)
	}
}

func TestJob_PlanRefusesJobsOverTheLimits(t *testing.T) {
	s := testServer(t, nil)
	registerNode(t, s, mock.Node())
	for _, tc := range hostileJobs() {
		t.Run(tc.name, func(t *testing.T) {
			job := mock.Job()
			tc.mutate(job)
			var resp structs.JobPlanResponse
			err := s.RPC("Job.Plan", &structs.JobPlanRequest{Job: job, Diff: true}, &resp)
			assertInvalid(t, err, tc.wants...)
			if resp.Annotations != nil || resp.Diff != nil {
				t.Fatalf("a refused plan was computed: %+v", resp)
			}
			assertNothingFor(t, s, job.ID)
		})
	}
}

func TestJob_ConfiguredLimitsApply(t *testing.T) {
	s := testServer(t, func(c *Config) {
		c.JobLimits = structs.JobLimits{MaxCountPerGroup: 2, MaxTaskCPU: 300, MaxTasksPerGroup: 1}
	})
	registerNode(t, s, mock.Node())
	cases := []struct {
		name   string
		mutate func(*structs.Job)
		want   string
	}{
		{"count", func(j *structs.Job) { j.TaskGroups[0].Count = 3 }, "3 is over the limit of 2 (limits.max_count_per_group)"},
		{"cpu below the node's", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = 301 }, "301 MHz is over the limit of 300 MHz (limits.max_task_cpu)"},
		{"tasks", func(j *structs.Job) {
			second := j.TaskGroups[0].Tasks[0].Copy()
			second.Name = "second"
			j.TaskGroups[0].Tasks = append(j.TaskGroups[0].Tasks, second)
		}, "2 tasks is over the limit of 1 (limits.max_tasks_per_group)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := mock.Job()
			job.TaskGroups[0].Count = 1
			job.TaskGroups[0].Tasks[0].Resources.CPU = 300
			tc.mutate(job)
			var resp structs.JobRegisterResponse
			assertInvalid(t, s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp), tc.want)
			assertNothingFor(t, s, job.ID)
		})
	}
}

// Without a configured cpu limit, the largest node sets it, and a
// bigger node raises it as soon as it registers.
func TestJob_TaskLimitsFollowTheLargestNode(t *testing.T) {
	s := testServer(t, nil)
	job := mock.Job()
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].Tasks[0].Resources.CPU = 6000
	// No node yet: the hard limit applies, and the job is taken (its
	// evaluation blocks until a node can run it).
	registerJob(t, s, job)

	registerNode(t, s, mock.Node()) // 4000 MHz
	other := job.Copy()
	other.ID, other.Name = "other", "other"
	var resp structs.JobRegisterResponse
	assertInvalid(t, s.RPC("Job.Register", &structs.JobRegisterRequest{Job: other}, &resp), "6000 MHz is over the limit of 4000 MHz (the largest node's cpu")

	big := mock.Node()
	big.NodeResources.Cpu.CpuShares = 8000
	registerNode(t, s, big)
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: other}, &resp); err != nil {
		t.Fatalf("after an 8000 MHz node joined: %v", err)
	}
}

func TestJob_RevertRefusesAVersionOverTheLimits(t *testing.T) {
	s := testServer(t, nil)
	job := mock.Job()
	job.TaskGroups[0].Tasks[0].Resources.CPU = 5000 // v0, taken before any node registers
	registerJob(t, s, job)
	v1 := job.Copy()
	v1.TaskGroups[0].Tasks[0].Resources.CPU = 500
	registerJob(t, s, v1)
	registerNode(t, s, mock.Node()) // 4000 MHz: v0 is now over the limit

	var resp structs.JobRegisterResponse
	err := s.RPC("Job.Revert", &structs.JobRevertRequest{JobID: job.ID, JobVersion: 0}, &resp)
	assertInvalid(t, err, fmt.Sprintf("cannot revert job %q to version 0", job.ID), "5000 MHz is over the limit of 4000 MHz")
	stored, _ := s.State().JobByID(nil, "", job.ID)
	if stored == nil || stored.Version != 1 || stored.TaskGroups[0].Tasks[0].Resources.CPU != 500 {
		t.Fatalf("the refused revert changed the job: %+v", stored)
	}
}
