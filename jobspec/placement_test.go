package jobspec

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// placedJob is what testdata/placement.hcl must parse into.
func placedJob() *structs.Job {
	image := &structs.TaskConfig{Image: "localhost/busybox:latest"}
	return &structs.Job{
		ID:          "placed",
		Name:        "placed",
		Type:        "service",
		NodePool:    "gpu",
		Datacenters: []string{"dc1"},
		Constraints: []*structs.Constraint{
			{LTarget: "${attr.kernel.name}", RTarget: "linux", Operand: "="},
			{RTarget: "true", Operand: "distinct_hosts"},
			{LTarget: "${attr.kernel.version}", RTarget: ">= 3.10", Operand: "version"},
		},
		Affinities: []*structs.Affinity{
			{LTarget: "${node.datacenter}", RTarget: "dc1", Operand: "=", Weight: 50},
			{LTarget: "${meta.ssd}", RTarget: "true", Operand: "=", Weight: -30},
		},
		Spreads: []*structs.Spread{{Attribute: "${node.datacenter}"}},
		Update: &structs.UpdateStrategy{
			MaxParallel:      2,
			HealthCheck:      "task_states",
			MinHealthyTime:   15 * time.Second,
			HealthyDeadline:  4 * time.Minute,
			ProgressDeadline: 8 * time.Minute,
			Stagger:          45 * time.Second,
			Canary:           1,
			AutoPromote:      true,
			AutoRevert:       true,
		},
		TaskGroups: []*structs.TaskGroup{
			{
				Name:  "web",
				Count: 4,
				Constraints: []*structs.Constraint{
					{Operand: "distinct_hosts"},
					{LTarget: "${meta.rack}", RTarget: "2", Operand: "distinct_property"},
					{LTarget: "${meta.zone}", Operand: "distinct_property"},
					{LTarget: "${node.class}", RTarget: "^web", Operand: "regexp"},
					{LTarget: "${meta.roles}", RTarget: "a,b", Operand: "set_contains"},
					{LTarget: "${meta.tier}", RTarget: "front", Operand: "="},
					{LTarget: "${meta.env}", RTarget: "dev", Operand: "!="},
					{LTarget: "${attr.cpu.numcores}", RTarget: "4", Operand: ">="},
				},
				Affinities: []*structs.Affinity{
					{LTarget: "${meta.rack}", RTarget: "r1,r2", Operand: "set_contains_any", Weight: 100},
					{LTarget: "${attr.kernel.version}", RTarget: ">= 5.0", Operand: "version", Weight: 10},
				},
				Spreads: []*structs.Spread{{
					Attribute: "${meta.rack}",
					Weight:    100,
					SpreadTarget: []*structs.SpreadTarget{
						{Value: "r1", Percent: 60},
						{Value: "r2", Percent: 40},
					},
				}},
				Update:  &structs.UpdateStrategy{MaxParallel: 1, Canary: 2},
				Migrate: &structs.MigrateStrategy{MaxParallel: 2},
				Tasks: []*structs.Task{{
					Name:   "server",
					Driver: "containerd",
					Config: image,
					Constraints: []*structs.Constraint{
						{LTarget: "${attr.cpu.arch}", RTarget: "amd64", Operand: "="},
					},
					Affinities: []*structs.Affinity{
						{LTarget: "${meta.disk}", RTarget: "^(ssd|nvme)$", Operand: "regexp", Weight: -50},
					},
				}},
			},
			{
				Name:  "api",
				Count: 1,
				Tasks: []*structs.Task{{Name: "api", Driver: "containerd", Config: image}},
			},
		},
	}
}

func TestParseFile_PlacementExample(t *testing.T) {
	got, err := ParseFile(filepath.Join("testdata", "placement.hcl"))
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	if want := placedJob(); !reflect.DeepEqual(got, want) {
		t.Fatalf("job mismatch:\n got: %s\nwant: %s", dump(got), dump(want))
	}
}

func TestParseAndValidate_PlacementExampleIsValid(t *testing.T) {
	job, err := ParseAndValidate("placement.hcl", readFixture(t, "placement.hcl"))
	if err != nil {
		t.Fatalf("ParseAndValidate: %v", err)
	}
	want := placedJob()
	want.Canonicalize()
	if !reflect.DeepEqual(job, want) {
		t.Fatalf("job mismatch:\n got: %s\nwant: %s", dump(job), dump(want))
	}
	// The api group wrote no update block and runs with the job's.
	if got := job.TaskGroups[1].Update; !reflect.DeepEqual(got, job.Update) {
		t.Errorf("api group update = %+v, want the job's %+v", got, job.Update)
	}
}

func TestParse_ConstraintForms(t *testing.T) {
	cases := []struct {
		name string
		body string // the constraint block's body, one argument per line
		want *structs.Constraint
	}{
		{"operator defaults to =", `attribute = "${meta.rack}"
value = "r9"`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "r9", Operand: "="}},
		{"alias ==", `attribute = "${meta.rack}"
operator = "=="
value = "r9"`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "r9", Operand: "="}},
		{"alias is", `attribute = "${meta.rack}"
operator = "is"
value = "r9"`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "r9", Operand: "="}},
		{"alias not", `attribute = "${meta.rack}"
operator = "not"
value = "r9"`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "r9", Operand: "!="}},
		{"is_set needs no value", `attribute = "${meta.gpu}"
operator = "is_set"`, &structs.Constraint{LTarget: "${meta.gpu}", Operand: "is_set"}},
		{"unknown operator kept for validation", `attribute = "${meta.rack}"
operator = "like"
value = "r9"`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "r9", Operand: "like"}},
		{"distinct_hosts operator", `operator = "distinct_hosts"
value = "true"`, &structs.Constraint{RTarget: "true", Operand: "distinct_hosts"}},
		{"distinct_hosts shorthand", `distinct_hosts = true`, &structs.Constraint{Operand: "distinct_hosts"}},
		{"distinct_hosts shorthand as string", `distinct_hosts = "true"`, &structs.Constraint{Operand: "distinct_hosts"}},
		{"distinct_hosts shorthand agreeing with operator", `operator = "distinct_hosts"
distinct_hosts = true`, &structs.Constraint{Operand: "distinct_hosts"}},
		{"distinct_property long form", `attribute = "${meta.rack}"
operator = "distinct_property"
value = "2"`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "2", Operand: "distinct_property"}},
		{"distinct_property shorthand", `distinct_property = "${meta.rack}"`,
			&structs.Constraint{LTarget: "${meta.rack}", Operand: "distinct_property"}},
		{"distinct_property shorthand with a limit", `distinct_property = "${meta.rack}"
value = 3`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "3", Operand: "distinct_property"}},
		{"version shorthand", `attribute = "${attr.kernel.version}"
version = ">= 3.10"`, &structs.Constraint{LTarget: "${attr.kernel.version}", RTarget: ">= 3.10", Operand: "version"}},
		{"regexp shorthand", `attribute = "${node.class}"
regexp = "^web"`, &structs.Constraint{LTarget: "${node.class}", RTarget: "^web", Operand: "regexp"}},
		{"set_contains shorthand", `attribute = "${meta.roles}"
set_contains = "a,b"`, &structs.Constraint{LTarget: "${meta.roles}", RTarget: "a,b", Operand: "set_contains"}},
		{"null means unset", `attribute = "${meta.rack}"
operator = null
version = null
value = "r9"`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "r9", Operand: "="}},
		{"value interpolation kept", `attribute = "${meta.rack}"
value = "${node.datacenter}-a"`, &structs.Constraint{LTarget: "${meta.rack}", RTarget: "${node.datacenter}-a", Operand: "="}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "job \"j\" {\n  constraint {\n" + tc.body + "\n  }\n  group \"g\" {\n    constraint {\n" +
				tc.body + "\n    }\n    task \"t\" {\n      constraint {\n" + tc.body + "\n      }\n    }\n  }\n}\n"
			job, err := Parse("forms.hcl", []byte(src))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, src)
			}
			levels := map[string][]*structs.Constraint{
				"job":   job.Constraints,
				"group": job.TaskGroups[0].Constraints,
				"task":  job.TaskGroups[0].Tasks[0].Constraints,
			}
			for level, got := range levels {
				if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
					t.Errorf("%s constraints = %s, want [%+v]", level, constraintsString(got), *tc.want)
				}
			}
		})
	}
}

func TestParse_DistinctHostsFalseDropsConstraint(t *testing.T) {
	src := `job "j" {
  group "g" {
    constraint { distinct_hosts = false }
    constraint {
      attribute = "${meta.rack}"
      value     = "r9"
    }
    task "t" {}
  }
}
`
	job, err := Parse("drop.hcl", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []*structs.Constraint{{LTarget: "${meta.rack}", RTarget: "r9", Operand: "="}}
	if got := job.TaskGroups[0].Constraints; !reflect.DeepEqual(got, want) {
		t.Fatalf("constraints = %s, want %s", constraintsString(got), constraintsString(want))
	}
}

func TestParse_AffinityForms(t *testing.T) {
	cases := []struct {
		name string
		body string
		want *structs.Affinity
	}{
		{"defaults", `attribute = "${node.datacenter}"
value = "dc1"`, &structs.Affinity{LTarget: "${node.datacenter}", RTarget: "dc1", Operand: "=", Weight: 50}},
		{"alias and negative weight", `attribute = "${meta.ssd}"
operator = "not"
value = "true"
weight = -100`, &structs.Affinity{LTarget: "${meta.ssd}", RTarget: "true", Operand: "!=", Weight: -100}},
		{"explicit zero kept for validation", `attribute = "${meta.ssd}"
value = "true"
weight = 0`, &structs.Affinity{LTarget: "${meta.ssd}", RTarget: "true", Operand: "=", Weight: 0}},
		{"version shorthand", `attribute = "${attr.kernel.version}"
version = "~> 5.10"
weight = 100`, &structs.Affinity{LTarget: "${attr.kernel.version}", RTarget: "~> 5.10", Operand: "version", Weight: 100}},
		{"set_contains_any shorthand", `attribute = "${meta.roles}"
set_contains_any = "a,b"`, &structs.Affinity{LTarget: "${meta.roles}", RTarget: "a,b", Operand: "set_contains_any", Weight: 50}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      affinity {\n" + tc.body + "\n      }\n    }\n  }\n}\n"
			job, err := Parse("forms.hcl", []byte(src))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, src)
			}
			got := job.TaskGroups[0].Tasks[0].Affinities
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Fatalf("affinities = %v, want [%+v]", got, *tc.want)
			}
		})
	}
}

func TestParse_SystemJobWithNodePool(t *testing.T) {
	src := `job "agent" {
  type      = "system"
  node_pool = "all"
  group "agent" {
    task "agent" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`
	job, err := ParseAndValidate("system.hcl", []byte(src))
	if err != nil {
		t.Fatalf("ParseAndValidate: %v", err)
	}
	if job.Type != structs.JobTypeSystem || job.NodePool != "all" {
		t.Fatalf("Type, NodePool = %q, %q; want %q, %q", job.Type, job.NodePool, structs.JobTypeSystem, "all")
	}
}

// constraintsString shows constraints in failure messages.
func constraintsString(cs []*structs.Constraint) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = "{LTarget:" + c.LTarget + " RTarget:" + c.RTarget + " Operand:" + c.Operand + "}"
	}
	return "[" + strings.Join(parts, " ") + "]"
}
