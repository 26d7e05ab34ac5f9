package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/jobspec"
)

// planFooter is the check-index hint every plan ends with.
func planFooter(index uint64, path string) string {
	return fmt.Sprintf(`Job Modify Index: %d
To submit the job with version verification run:

drover job run -check-index %d %s

When running the job with the check-index flag, the job will only be run if the
job modify index given matches the server-side version. If the index has
changed, another user has modified the job and the plan's results are
potentially invalid.
`, index, index, path)
}

const planAllocated = "Scheduler dry-run:\n- All tasks successfully allocated.\n\n"

func planWebJob() *api.Job {
	return &api.Job{ID: "web", Type: "service", TaskGroups: []*api.TaskGroup{{Name: "web", Count: 3, Tasks: []*api.Task{{Name: "server"}}}}}
}

func planUpdates(byGroup map[string]*api.DesiredUpdates) *api.PlanAnnotations {
	return &api.PlanAnnotations{DesiredTGUpdates: byGroup}
}

func planField(typ, name, old, new string, annotations ...string) *api.FieldDiff {
	return &api.FieldDiff{Type: typ, Name: name, Old: old, New: new, Annotations: annotations}
}

func TestFormatPlan(t *testing.T) {
	const (
		added   = api.DiffTypeAdded
		deleted = api.DiffTypeDeleted
		edited  = api.DiffTypeEdited
		none    = api.DiffTypeNone
	)
	// A new job's diff as the server sends it.
	newJobDiff := &api.JobDiff{Type: added, ID: "web",
		Fields: []*api.FieldDiff{planField(added, "Datacenters", "", "dc1"), planField(added, "Name", "", "web"), planField(added, "Type", "", "service")},
		TaskGroups: []*api.TaskGroupDiff{{Type: added, Name: "web",
			Fields: []*api.FieldDiff{planField(added, "Count", "", "3", "forces create")},
			Objects: []*api.ObjectDiff{{Type: added, Name: "RestartPolicy", Fields: []*api.FieldDiff{
				planField(added, "Attempts", "", "2"), planField(added, "Mode", "", "fail"),
			}}},
			Tasks: []*api.TaskDiff{{Type: added, Name: "server", Annotations: []string{"forces create"},
				Fields: []*api.FieldDiff{planField(added, "Driver", "", "containerd")},
				Objects: []*api.ObjectDiff{{Type: added, Name: "Config", Fields: []*api.FieldDiff{
					planField(added, "args[0]", "", "-c"), planField(added, "image", "", "busybox"),
				}}},
			}},
		}},
	}
	// A contextual edit: the unchanged fields come along with type None.
	contextualDiff := &api.JobDiff{Type: edited, ID: "web",
		Fields: []*api.FieldDiff{planField(none, "Datacenters", "dc1", "dc1"), planField(added, "Meta[team]", "", "web"), planField(none, "Priority", "50", "50")},
		TaskGroups: []*api.TaskGroupDiff{{Type: edited, Name: "web",
			Fields: []*api.FieldDiff{planField(edited, "Count", "3", "2", "forces destroy")},
			Tasks: []*api.TaskDiff{{Type: edited, Name: "server", Annotations: []string{"forces create/destroy update"},
				Fields: []*api.FieldDiff{planField(none, "Driver", "containerd", "containerd"), planField(edited, "Env[PORT]", "80", "8080"), planField(none, "KillTimeout", "5s", "5s")},
				Objects: []*api.ObjectDiff{{Type: edited, Name: "Config", Fields: []*api.FieldDiff{
					planField(none, "args[0]", "-c", "-c"), planField(edited, "image", "busybox:1.36", "busybox:1.37"),
				}}},
			}},
		}},
	}

	cases := []struct {
		name     string
		resp     *api.JobPlanResponse
		job      *api.Job
		opts     planOptions
		want     string
		wantExit int
	}{
		{
			name: "edit with count change",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 7,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"web": {Place: 1, InPlaceUpdate: 2}}),
				Diff: &api.JobDiff{Type: edited, ID: "web", TaskGroups: []*api.TaskGroupDiff{{
					Type: edited, Name: "web",
					Fields: []*api.FieldDiff{planField(edited, "Count", "2", "3", "forces create")},
					Tasks:  []*api.TaskDiff{{Type: none, Name: "server"}},
				}}},
			},
			want: `+/- Job: "web"
+/- Task Group: "web" (1 create, 2 in-place update)
  +/- Count: "2" => "3" (forces create)
      Task: "server"

` + planAllocated + planFooter(7, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "new job",
			resp: &api.JobPlanResponse{
				Annotations: planUpdates(map[string]*api.DesiredUpdates{"web": {Place: 3}}),
				Diff:        newJobDiff,
			},
			want: `+ Job: "web"
+ Task Group: "web" (3 create)
  + Task: "server" (forces create)

` + planAllocated + planFooter(0, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "new job, verbose",
			resp: &api.JobPlanResponse{
				Annotations: planUpdates(map[string]*api.DesiredUpdates{"web": {Place: 3}}),
				Diff:        newJobDiff,
			},
			opts: planOptions{verbose: true},
			want: `+ Job: "web"
+ Datacenters: "dc1"
+ Name:        "web"
+ Type:        "service"
+ Task Group: "web" (3 create)
  + Count: "3" (forces create)
  + RestartPolicy {
    + Attempts: "2"
    + Mode:     "fail"
  }
  + Task: "server" (forces create)
    + Driver: "containerd"
    + Config {
      + args[0]: "-c"
      + image:   "busybox"
    }

` + planAllocated + planFooter(0, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "new job, no diff from the server",
			resp: &api.JobPlanResponse{Annotations: planUpdates(map[string]*api.DesiredUpdates{"web": {Place: 3}})},
			want: `+ Job: "web"
+ Task Group: "web" (3 create)
  + Task: "server" (forces create)

` + planAllocated + planFooter(0, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "destructive task change",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 12,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"web": {DestructiveUpdate: 3}}),
				Diff: &api.JobDiff{Type: edited, ID: "web", TaskGroups: []*api.TaskGroupDiff{{
					Type: edited, Name: "web",
					Tasks: []*api.TaskDiff{{Type: edited, Name: "server", Annotations: []string{"forces create/destroy update"},
						Fields: []*api.FieldDiff{planField(added, "Env[DEBUG]", "", "1"), planField(edited, "Env[PORT]", "80", "8080")},
						Objects: []*api.ObjectDiff{{Type: edited, Name: "Config", Fields: []*api.FieldDiff{
							planField(edited, "image", "busybox:1.36", "busybox:1.37"),
						}}},
					}},
				}}},
			},
			want: `+/- Job: "web"
+/- Task Group: "web" (3 create/destroy update)
  +/- Task: "server" (forces create/destroy update)
    +   Env[DEBUG]: "1"
    +/- Env[PORT]:  "80" => "8080"
    +/- Config {
      +/- image: "busybox:1.36" => "busybox:1.37"
    }

` + planAllocated + planFooter(12, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "in-place update only",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 12,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"web": {InPlaceUpdate: 3}}),
				Diff: &api.JobDiff{Type: edited, ID: "web", TaskGroups: []*api.TaskGroupDiff{{
					Type: edited, Name: "web",
					Tasks: []*api.TaskDiff{{Type: edited, Name: "server", Annotations: []string{"forces in-place update"},
						Fields: []*api.FieldDiff{planField(edited, "KillTimeout", "5s", "30s")},
					}},
				}}},
			},
			want: `+/- Job: "web"
+/- Task Group: "web" (3 in-place update)
  +/- Task: "server" (forces in-place update)
    +/- KillTimeout: "5s" => "30s"

` + planAllocated + planFooter(12, "web.hcl"),
			wantExit: ExitOK,
		},
		{
			name: "no change",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 12,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"web": {Ignore: 3}}),
				Diff: &api.JobDiff{Type: none, ID: "web", TaskGroups: []*api.TaskGroupDiff{{
					Type: none, Name: "web", Tasks: []*api.TaskDiff{{Type: none, Name: "server"}},
				}}},
			},
			want: `Job: "web"
Task Group: "web" (3 ignore)
  Task: "server"

` + planAllocated + planFooter(12, "web.hcl"),
			wantExit: ExitOK,
		},
		{
			name: "two groups, job fields, a deleted and an added task",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 30,
				Annotations: planUpdates(map[string]*api.DesiredUpdates{
					"api": {Ignore: 2},
					"web": {Stop: 1, DestructiveUpdate: 2},
				}),
				Diff: &api.JobDiff{Type: edited, ID: "web",
					Fields: []*api.FieldDiff{planField(added, "Datacenters", "", "dc2"), planField(edited, "Priority", "50", "70")},
					Objects: []*api.ObjectDiff{{Type: deleted, Name: "Constraint", Fields: []*api.FieldDiff{
						planField(deleted, "LTarget", "${meta.rack}", ""), planField(deleted, "Operand", "=", ""), planField(deleted, "RTarget", "r1", ""),
					}}},
					TaskGroups: []*api.TaskGroupDiff{
						{Type: none, Name: "api", Tasks: []*api.TaskDiff{{Type: none, Name: "app"}}},
						{Type: edited, Name: "web",
							Fields: []*api.FieldDiff{planField(edited, "Count", "3", "2", "forces destroy")},
							Tasks: []*api.TaskDiff{
								{Type: deleted, Name: "init", Annotations: []string{"forces create/destroy update"},
									Fields: []*api.FieldDiff{planField(deleted, "Driver", "containerd", "")}},
								{Type: none, Name: "server"},
								{Type: added, Name: "sidecar", Annotations: []string{"forces create/destroy update"},
									Fields: []*api.FieldDiff{planField(added, "Driver", "", "containerd")}},
							},
						},
					},
				},
			},
			want: `+/- Job: "web"
+   Datacenters: "dc2"
+/- Priority:    "50" => "70"
-   Constraint {
    - LTarget: "${meta.rack}"
    - Operand: "="
    - RTarget: "r1"
}
    Task Group: "api" (2 ignore)
      Task: "app"

+/- Task Group: "web" (1 destroy, 2 create/destroy update)
  +/- Count: "3" => "2" (forces destroy)
  -   Task: "init" (forces create/destroy update)
      Task: "server"
  +   Task: "sidecar" (forces create/destroy update)

` + planAllocated + planFooter(30, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "nested objects",
			resp: &api.JobPlanResponse{
				Annotations: planUpdates(map[string]*api.DesiredUpdates{"web": {DestructiveUpdate: 3}}),
				Diff: &api.JobDiff{Type: edited, ID: "web", TaskGroups: []*api.TaskGroupDiff{{
					Type: edited, Name: "web",
					Objects: []*api.ObjectDiff{{Type: edited, Name: "Network", Objects: []*api.ObjectDiff{
						{Type: added, Name: "Static Port", Fields: []*api.FieldDiff{planField(added, "Label", "", "admin"), planField(added, "Value", "", "9000")}},
						{Type: deleted, Name: "Dynamic Port", Fields: []*api.FieldDiff{planField(deleted, "Label", "metrics", "")}},
					}}},
					Tasks: []*api.TaskDiff{{Type: none, Name: "server"}},
				}}},
			},
			want: `+/- Job: "web"
+/- Task Group: "web" (3 create/destroy update)
  +/- Network {
    + Static Port {
      + Label: "admin"
      + Value: "9000"
    }
    - Dynamic Port {
      - Label: "metrics"
    }
  }
      Task: "server"

` + planAllocated + planFooter(0, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "verbose shows context",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 9,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"web": {Stop: 1, DestructiveUpdate: 2}}),
				Diff:           contextualDiff,
			},
			opts: planOptions{verbose: true},
			want: `+/- Job: "web"
    Datacenters: "dc1"
+   Meta[team]:  "web"
    Priority:    "50"
+/- Task Group: "web" (1 destroy, 2 create/destroy update)
  +/- Count: "3" => "2" (forces destroy)
  +/- Task: "server" (forces create/destroy update)
        Driver:      "containerd"
    +/- Env[PORT]:   "80" => "8080"
        KillTimeout: "5s"
    +/- Config {
          args[0]: "-c"
      +/- image:   "busybox:1.36" => "busybox:1.37"
    }

` + planAllocated + planFooter(9, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "without verbose the context is hidden",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 9,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"web": {Stop: 1, DestructiveUpdate: 2}}),
				Diff:           contextualDiff,
			},
			want: `+/- Job: "web"
+   Meta[team]: "web"
+/- Task Group: "web" (1 destroy, 2 create/destroy update)
  +/- Count: "3" => "2" (forces destroy)
  +/- Task: "server" (forces create/destroy update)
    +/- Env[PORT]: "80" => "8080"
    +/- Config {
      +/- image: "busybox:1.36" => "busybox:1.37"
    }

` + planAllocated + planFooter(9, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "placement failures",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 7,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"web": {Place: 3}}),
				FailedTGAllocs: map[string]*api.AllocMetric{"web": {
					NodesEvaluated:     3,
					ConstraintFiltered: map[string]int{"${attr.kernel.name} = windows": 1},
					NodesExhausted:     2,
					DimensionExhausted: map[string]int{"memory": 2},
					CoalescedFailures:  2,
				}},
				Diff: &api.JobDiff{Type: edited, ID: "web", TaskGroups: []*api.TaskGroupDiff{{
					Type: edited, Name: "web",
					Fields: []*api.FieldDiff{planField(edited, "Count", "3", "6", "forces create")},
					Tasks:  []*api.TaskDiff{{Type: none, Name: "server"}},
				}}},
			},
			want: `+/- Job: "web"
+/- Task Group: "web" (3 create)
  +/- Count: "3" => "6" (forces create)
      Task: "server"

Scheduler dry-run:
- WARNING: Failed to place all allocations.
    Task Group "web" (failed to place 3 allocation(s)):
      * Constraint "${attr.kernel.name} = windows" filtered 1 nodes
      * Resources exhausted on 2 nodes
      * Dimension "memory" exhausted on 2 nodes

` + planFooter(7, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "system job placement failures, diff off",
			job:  &api.Job{ID: "agent", Type: "system"},
			resp: &api.JobPlanResponse{
				JobModifyIndex: 4,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"agent": {Ignore: 2}}),
				FailedTGAllocs: map[string]*api.AllocMetric{"agent": {NodesEvaluated: 0}},
			},
			opts: planOptions{path: "agent.hcl", diff: false},
			want: `Scheduler dry-run:
- WARNING: Failed to place allocations on all nodes.
    Task Group "agent" (failed to place 1 allocation(s)):
      * No nodes were eligible for evaluation: no ready node in the job's datacenters

` + planFooter(4, "agent.hcl"),
			wantExit: ExitOK,
		},
		{
			name: "preemptions",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 5,
				Annotations: &api.PlanAnnotations{
					DesiredTGUpdates: map[string]*api.DesiredUpdates{"web": {Place: 1, Preemptions: 2}},
					PreemptedAllocs: []*api.AllocationListStub{
						{ID: "0a1b2c3d-4e5f-6789-abcd-ef0123456789", JobID: "batch-report", TaskGroup: "work", NodeID: "9f8e7d6c-0000-0000-0000-000000000000"},
						{ID: "11111111-2222-3333-4444-555555555555", JobID: "etl", TaskGroup: "extract", NodeID: "9f8e7d6c-0000-0000-0000-000000000000"},
					},
				},
				Diff: &api.JobDiff{Type: edited, ID: "web", TaskGroups: []*api.TaskGroupDiff{{
					Type: edited, Name: "web",
					Fields: []*api.FieldDiff{planField(edited, "Count", "3", "4", "forces create")},
				}}},
			},
			want: `+/- Job: "web"
+/- Task Group: "web" (1 create, 2 preempt)
  +/- Count: "3" => "4" (forces create)

` + planAllocated + `Preemptions:

Alloc ID  Job ID        Task Group  Node ID
0a1b2c3d  batch-report  work        9f8e7d6c
11111111  etl           extract     9f8e7d6c

` + planFooter(5, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "group counts from the diff when annotations lack the group",
			resp: &api.JobPlanResponse{
				Diff: &api.JobDiff{Type: edited, ID: "web", TaskGroups: []*api.TaskGroupDiff{{
					Type: edited, Name: "web",
					Fields:  []*api.FieldDiff{planField(edited, "Count", "3", "4", "forces create")},
					Updates: map[string]uint64{"ignore": 3, "create": 1, "in-place update": 0},
				}}},
			},
			want: `+/- Job: "web"
+/- Task Group: "web" (1 create, 3 ignore)
  +/- Count: "3" => "4" (forces create)

` + planAllocated + planFooter(0, "web.hcl"),
			wantExit: ExitPlanChanges,
		},
		{
			name: "path that needs quoting",
			resp: &api.JobPlanResponse{
				JobModifyIndex: 3,
				Annotations:    planUpdates(map[string]*api.DesiredUpdates{"web": {Ignore: 3}}),
			},
			opts:     planOptions{path: "jobs/my web.hcl"},
			want:     planAllocated + planFooter(3, "'jobs/my web.hcl'"),
			wantExit: ExitOK,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := tc.job
			if job == nil {
				job = planWebJob()
			}
			opts := tc.opts
			if opts.path == "" {
				opts.path = "web.hcl"
				opts.diff = true
			}
			got := formatPlan(tc.resp, job, opts)
			if got != tc.want {
				t.Errorf("output mismatch\n--- got:\n%s--- want:\n%s", got, tc.want)
			}
			if strings.Contains(got, "\x1b[") {
				t.Errorf("colors without a terminal")
			}
			if code := planExitCode(tc.resp); code != tc.wantExit {
				t.Errorf("exit code %d, want %d", code, tc.wantExit)
			}
		})
	}
}

func TestPlanExitCode(t *testing.T) {
	one := func(u api.DesiredUpdates) *api.JobPlanResponse {
		return &api.JobPlanResponse{Annotations: planUpdates(map[string]*api.DesiredUpdates{"a": {Ignore: 1}, "b": &u})}
	}
	cases := []struct {
		name string
		resp *api.JobPlanResponse
		want int
	}{
		{"ignore only", one(api.DesiredUpdates{Ignore: 3}), ExitOK},
		{"in-place only", one(api.DesiredUpdates{InPlaceUpdate: 3}), ExitOK},
		{"empty group", one(api.DesiredUpdates{}), ExitOK},
		{"place", one(api.DesiredUpdates{Place: 1}), ExitPlanChanges},
		{"stop", one(api.DesiredUpdates{Stop: 1}), ExitPlanChanges},
		{"migrate", one(api.DesiredUpdates{Migrate: 1}), ExitPlanChanges},
		{"destructive", one(api.DesiredUpdates{DestructiveUpdate: 1, InPlaceUpdate: 2}), ExitPlanChanges},
		{"canary", one(api.DesiredUpdates{Canary: 1}), ExitPlanChanges},
		{"preemptions", one(api.DesiredUpdates{Preemptions: 1}), ExitPlanChanges},
		{"preempted allocs", &api.JobPlanResponse{Annotations: &api.PlanAnnotations{PreemptedAllocs: []*api.AllocationListStub{{ID: "x"}}}}, ExitPlanChanges},
		{"nil group entry", &api.JobPlanResponse{Annotations: planUpdates(map[string]*api.DesiredUpdates{"a": nil})}, ExitOK},
		{"no annotations, no diff", &api.JobPlanResponse{}, ExitOK},
		{"no annotations, unchanged diff", &api.JobPlanResponse{Diff: &api.JobDiff{Type: api.DiffTypeNone}}, ExitOK},
		{"no annotations, changed diff", &api.JobPlanResponse{Diff: &api.JobDiff{Type: api.DiffTypeEdited}}, ExitPlanChanges},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := planExitCode(tc.resp); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestFormatPlan_Colors(t *testing.T) {
	resp := &api.JobPlanResponse{
		Annotations: planUpdates(map[string]*api.DesiredUpdates{"web": {Place: 1, Stop: 1}}),
		Diff: &api.JobDiff{Type: api.DiffTypeEdited, ID: "web", TaskGroups: []*api.TaskGroupDiff{
			{Type: api.DiffTypeEdited, Name: "web", Tasks: []*api.TaskDiff{
				{Type: api.DiffTypeAdded, Name: "a"}, {Type: api.DiffTypeDeleted, Name: "b"},
			}},
		}},
	}
	got := formatPlan(resp, planWebJob(), planOptions{path: "web.hcl", diff: true, color: true})
	for _, want := range []string{
		"\x1b[33m+/-\x1b[0m Job: \"web\"",
		"\n  \x1b[32m+\x1b[0m Task: \"a\"\n",
		"\n  \x1b[31m-\x1b[0m Task: \"b\"\n",
		"(\x1b[32m1 create\x1b[0m, \x1b[31m1 destroy\x1b[0m)",
		"\x1b[32m- All tasks successfully allocated.\x1b[0m",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestPlan_FromJobFiles runs the whole client side: two versions of a
// job file are parsed, diffed by the diff engine as the server does,
// sent through JSON, and rendered.
func TestPlan_FromJobFiles(t *testing.T) {
	const v1 = `job "web" {
  datacenters = ["dc1"]
  group "web" {
    count = 2
    network {
      port "http" {}
    }
    task "server" {
      driver = "containerd"
      config {
        image = "busybox:1.36"
        args  = ["httpd", "-f"]
      }
      env {
        PORT = "80"
      }
    }
  }
}
`
	v2 := strings.NewReplacer(
		`count = 2`, `count = 3`,
		`port "http" {}`, "port \"http\" {}\n      port \"admin\" {\n        static = 9000\n      }",
		`PORT = "80"`, `PORT = "8080"`,
	).Replace(v1)
	old, err := jobspec.ParseAndValidate("web.hcl", []byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	planned, err := jobspec.ParseAndValidate("web.hcl", []byte(v2))
	if err != nil {
		t.Fatal(err)
	}
	for _, verbose := range []bool{false, true} {
		d, err := old.Diff(planned, verbose)
		if err != nil {
			t.Fatal(err)
		}
		var resp api.JobPlanResponse
		buf, _ := json.Marshal(map[string]interface{}{
			"Diff":           d,
			"JobModifyIndex": 11,
			"Annotations":    map[string]interface{}{"DesiredTGUpdates": map[string]interface{}{"web": map[string]int{"Place": 1, "DestructiveUpdate": 2}}},
		})
		if err := json.Unmarshal(buf, &resp); err != nil {
			t.Fatal(err)
		}
		job, err := toAPIJob(planned)
		if err != nil {
			t.Fatal(err)
		}
		got := formatPlan(&resp, job, planOptions{path: "web.hcl", diff: true, verbose: verbose})
		want := `+/- Job: "web"
+/- Task Group: "web" (1 create, 2 create/destroy update)
  +/- Count: "2" => "3" (forces create)
  +/- Network {
    + Static Port {
      + Label: "admin"
      + To:    "0"
      + Value: "9000"
    }
  }
  +/- Task: "server" (forces create/destroy update)
    +/- Env[PORT]: "80" => "8080"

` + planAllocated + planFooter(11, "web.hcl")
		if verbose {
			want = `+/- Job: "web"
    Datacenters: "dc1"
    Name:        "web"
    NodePool:    "default"
    Priority:    "50"
    Stop:        "false"
    Type:        "service"
+/- Task Group: "web" (1 create, 2 create/destroy update)
  +/- Count: "2" => "3" (forces create)
  +/- Network {
      Mode: "host"
    + Static Port {
      + Label: "admin"
      + To:    "0"
      + Value: "9000"
    }
  }
  +/- Task: "server" (forces create/destroy update)
        Driver:      "containerd"
    +/- Env[PORT]:   "80" => "8080"
        KillTimeout: "5s"

` + planAllocated + planFooter(11, "web.hcl")
		}
		if got != want {
			t.Errorf("verbose=%v: output mismatch\n--- got:\n%s--- want:\n%s", verbose, got, want)
		}
	}
}

// fakePlanAgent answers the plan endpoint with reply and records the
// last request.
type fakePlanAgent struct {
	status int
	reply  string
	path   string
	body   map[string]json.RawMessage
}

func (f *fakePlanAgent) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.path = r.Method + " " + r.URL.Path
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &f.body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		io.WriteString(w, f.reply)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

const planJobFile = `job "web" {
  group "web" {
    count = 3
    task "server" {
      driver = "containerd"
      config {
        image = "busybox"
      }
    }
  }
}
`

func TestJobPlanCommand(t *testing.T) {
	dir := t.TempDir()
	jobFile := filepath.Join(dir, "web.hcl")
	if err := os.WriteFile(jobFile, []byte(planJobFile), 0o644); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(badFile, []byte("job \"web\" {\n  group \"web\" {\n    count = -1\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	changes := `{"JobModifyIndex": 7,
	  "Annotations": {"DesiredTGUpdates": {"web": {"Place": 1, "InPlaceUpdate": 2}}},
	  "Diff": {"Type": "Edited", "ID": "web", "TaskGroups": [{"Type": "Edited", "Name": "web",
	    "Fields": [{"Type": "Edited", "Name": "Count", "Old": "2", "New": "3", "Annotations": ["forces create"]}],
	    "Tasks": [{"Type": "None", "Name": "server"}]}]}}`
	inPlace := `{"JobModifyIndex": 8,
	  "Annotations": {"DesiredTGUpdates": {"web": {"InPlaceUpdate": 3}}},
	  "Diff": {"Type": "None", "ID": "web", "TaskGroups": [{"Type": "None", "Name": "web", "Tasks": [{"Type": "None", "Name": "server"}]}]}}`

	cases := []struct {
		name       string
		args       []string // the job file is appended unless noFile
		noFile     bool
		status     int
		reply      string
		wantExit   int
		wantStdout []string
		wantStderr []string
		wantDiff   string // the request's Diff, when a request is expected
	}{
		{
			name: "changes", status: 200, reply: changes, wantExit: 1, wantDiff: "true",
			wantStdout: []string{"+/- Task Group: \"web\" (1 create, 2 in-place update)\n  +/- Count: \"2\" => \"3\" (forces create)\n", "drover job run -check-index 7 " + jobFile},
			wantStderr: nil, // the exit code alone says the plan has changes
		},
		{
			name: "in-place only", status: 200, reply: inPlace, wantExit: 0, wantDiff: "true",
			wantStdout: []string{"Job: \"web\"\nTask Group: \"web\" (3 in-place update)\n", "Job Modify Index: 8"},
		},
		{
			name: "diff off", args: []string{"-diff=false"}, status: 200, reply: `{"JobModifyIndex": 8, "Annotations": {"DesiredTGUpdates": {"web": {"Ignore": 3}}}}`,
			wantExit: 0, wantDiff: "false", wantStdout: []string{"Scheduler dry-run:"},
		},
		{
			name: "json", args: []string{"-json"}, status: 200, reply: changes, wantExit: 1, wantDiff: "true",
			wantStdout: []string{`"JobModifyIndex": 7`, `"Place": 1`},
		},
		{
			name: "verbose", args: []string{"--verbose"}, status: 200, reply: changes, wantExit: 1, wantDiff: "true",
			wantStdout: []string{"Scheduler dry-run:"},
		},
		{
			name: "server error", status: 500, reply: `{"Code": "no_leader", "Error": "no cluster leader"}`, wantExit: 255, wantDiff: "true",
			wantStderr: []string{"no cluster leader"},
		},
		{
			name: "invalid job file", args: []string{badFile}, noFile: true, wantExit: 255,
			wantStderr: []string{badFile + ":3:"},
		},
		{
			name: "missing file", args: []string{filepath.Join(dir, "nope.hcl")}, noFile: true, wantExit: 255,
			wantStderr: []string{"nope.hcl"},
		},
		{
			name: "no file", noFile: true, wantExit: 255, wantStderr: []string{"one job file"},
		},
		{
			name: "unknown flag", args: []string{"-bogus"}, wantExit: 255, wantStderr: []string{"bogus"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := &fakePlanAgent{status: tc.status, reply: tc.reply}
			addr := agent.start(t)
			args := append([]string{"job", "plan", "-address", addr}, tc.args...)
			if !tc.noFile {
				args = append(args, jobFile)
			}
			var stdout, stderr bytes.Buffer
			code := Run(args, &stdout, &stderr)
			if code != tc.wantExit {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantExit, stdout.String(), stderr.String())
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tc.wantDiff == "" {
				if agent.path != "" {
					t.Errorf("unexpected request %s", agent.path)
				}
				return
			}
			if agent.path != "PUT /v1/job/web/plan" {
				t.Errorf("request %q, want PUT /v1/job/web/plan", agent.path)
			}
			if got := string(agent.body["Diff"]); got != tc.wantDiff {
				t.Errorf("request Diff = %s, want %s", got, tc.wantDiff)
			}
			var sent struct {
				ID         string
				TaskGroups []struct{ Count int }
			}
			if err := json.Unmarshal(agent.body["Job"], &sent); err != nil || sent.ID != "web" || len(sent.TaskGroups) != 1 || sent.TaskGroups[0].Count != 3 {
				t.Errorf("request Job = %s (%v)", agent.body["Job"], err)
			}
		})
	}
}

func TestJobPlanCommand_JSONOutputDecodes(t *testing.T) {
	dir := t.TempDir()
	jobFile := filepath.Join(dir, "web.hcl")
	if err := os.WriteFile(jobFile, []byte(planJobFile), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := &fakePlanAgent{status: 200, reply: `{"JobModifyIndex": 7, "Annotations": {"DesiredTGUpdates": {"web": {"Ignore": 3}}}}`}
	addr := agent.start(t)
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"job", "plan", "-json", "-address", addr, jobFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var resp api.JobPlanResponse
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		t.Fatalf("stdout is not the JSON response: %v\n%s", err, stdout.String())
	}
	if resp.JobModifyIndex != 7 || resp.Annotations.DesiredTGUpdates["web"].Ignore != 3 {
		t.Fatalf("got %+v", resp)
	}
}
