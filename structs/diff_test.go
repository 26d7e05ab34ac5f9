package structs

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// diffTestJob is a registered service job as the state store holds it:
// canonicalized, with server-owned fields set.
func diffTestJob() *Job {
	j := &Job{
		ID:          "web",
		Type:        JobTypeService,
		Datacenters: []string{"dc1"},
		Meta:        map[string]string{"owner": "ops"},
		Update:      &UpdateStrategy{MaxParallel: 1},
		TaskGroups: []*TaskGroup{{
			Name:  "web",
			Count: 2,
			Networks: []*NetworkResource{{
				DynamicPorts: []Port{{Label: "http", To: 8080}},
			}},
			Tasks: []*Task{{
				Name:   "server",
				Driver: "containerd",
				Config: &TaskConfig{Image: "nginx:1.25", Args: []string{"-g", "daemon off;"}},
				Env:    map[string]string{"PORT": "8080"},
			}},
		}},
		Status:         JobStatusRunning,
		Version:        3,
		Stable:         true,
		SubmitTime:     1700000000,
		CreateIndex:    10,
		ModifyIndex:    20,
		JobModifyIndex: 20,
	}
	j.Canonicalize()
	return j
}

// smallJob is a minimal job, not canonicalized, for the added and
// deleted cases.
func smallJob() *Job {
	return &Job{
		ID:          "batch1",
		Name:        "batch1",
		Type:        JobTypeBatch,
		Priority:    50,
		Datacenters: []string{"dc1"},
		TaskGroups: []*TaskGroup{{
			Name:  "work",
			Count: 1,
			Tasks: []*Task{{Name: "run", Driver: "containerd", Config: &TaskConfig{Image: "busybox"}}},
		}},
	}
}

// dumpDiff renders a diff one item per line, for golden comparisons.
func dumpDiff(d *JobDiff) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s Job %q\n", d.Type, d.ID)
	dumpFields(&b, "  ", d.Fields)
	dumpObjects(&b, "  ", d.Objects)
	for _, tg := range d.TaskGroups {
		fmt.Fprintf(&b, "  %s Group %q\n", tg.Type, tg.Name)
		dumpFields(&b, "    ", tg.Fields)
		dumpObjects(&b, "    ", tg.Objects)
		for _, t := range tg.Tasks {
			fmt.Fprintf(&b, "    %s Task %q%s\n", t.Type, t.Name, dumpAnnotations(t.Annotations))
			dumpFields(&b, "      ", t.Fields)
			dumpObjects(&b, "      ", t.Objects)
		}
	}
	return b.String()
}

func dumpFields(b *strings.Builder, indent string, fs []*FieldDiff) {
	for _, f := range fs {
		fmt.Fprintf(b, "%s%s %s: %q => %q%s\n", indent, f.Type, f.Name, f.Old, f.New, dumpAnnotations(f.Annotations))
	}
}

func dumpObjects(b *strings.Builder, indent string, os []*ObjectDiff) {
	for _, o := range os {
		fmt.Fprintf(b, "%s%s %s {\n", indent, o.Type, o.Name)
		dumpFields(b, indent+"  ", o.Fields)
		dumpObjects(b, indent+"  ", o.Objects)
		fmt.Fprintf(b, "%s}\n", indent)
	}
}

func dumpAnnotations(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return " (" + strings.Join(a, ", ") + ")"
}

func TestJobDiff_Golden(t *testing.T) {
	cases := []struct {
		name       string
		old, new   func() *Job
		contextual bool
		want       string
	}{
		{
			name: "new job",
			old:  func() *Job { return nil },
			new:  smallJob,
			want: `Added Job "batch1"
  Added Datacenters: "" => "dc1"
  Added Name: "" => "batch1"
  Added Priority: "" => "50"
  Added Stop: "" => "false"
  Added Type: "" => "batch"
  Added Group "work"
    Added Count: "" => "1" (forces create)
    Added Task "run" (forces create)
      Added Driver: "" => "containerd"
      Added KillTimeout: "" => "0s"
      Added Config {
        Added image: "" => "busybox"
      }
`,
		},
		{
			name: "deleted job",
			old:  smallJob,
			new:  func() *Job { return nil },
			want: `Deleted Job "batch1"
  Deleted Datacenters: "dc1" => ""
  Deleted Name: "batch1" => ""
  Deleted Priority: "50" => ""
  Deleted Stop: "false" => ""
  Deleted Type: "batch" => ""
  Deleted Group "work"
    Deleted Count: "1" => "" (forces destroy)
    Deleted Task "run" (forces destroy)
      Deleted Driver: "containerd" => ""
      Deleted KillTimeout: "0s" => ""
      Deleted Config {
        Deleted image: "busybox" => ""
      }
`,
		},
		{
			name: "no change, server-owned fields ignored",
			old:  diffTestJob,
			new: func() *Job {
				j := diffTestJob()
				j.Status, j.StatusDescription = JobStatusPending, "new"
				j.Version, j.Stable, j.SubmitTime = 0, false, 0
				j.CreateIndex, j.ModifyIndex, j.JobModifyIndex = 0, 0, 0
				return j
			},
			want: `None Job "web"
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "no change, contextual",
			old:  diffTestJob,
			new:  diffTestJob,
			want: `None Job "web"
  None Group "web"
    None Task "server"
`,
			contextual: true,
		},
		{
			name: "nil and empty maps are equal",
			old:  diffTestJob,
			new: func() *Job {
				j := diffTestJob()
				j.TaskGroups[0].Meta = map[string]string{}
				j.TaskGroups[0].Tasks[0].Meta = map[string]string{}
				j.Constraints = []*Constraint{}
				return j
			},
			want: `None Job "web"
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "count grows",
			old:  diffTestJob,
			new:  diffWithGroup(func(tg *TaskGroup) { tg.Count = 3 }),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Count: "2" => "3" (forces create)
    None Task "server"
`,
		},
		{
			name: "count shrinks",
			old:  diffTestJob,
			new:  diffWithGroup(func(tg *TaskGroup) { tg.Count = 0 }),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Count: "2" => "0" (forces destroy)
    None Task "server"
`,
		},
		{
			name: "env change is destructive",
			old:  diffTestJob,
			new:  diffWithTask(func(t *Task) { t.Env["PORT"] = "9090"; t.Env["DEBUG"] = "1" }),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Task "server" (forces create/destroy update)
      Added Env[DEBUG]: "" => "1"
      Edited Env[PORT]: "8080" => "9090"
`,
		},
		{
			name: "kill timeout updates in place",
			old:  diffTestJob,
			new:  diffWithTask(func(t *Task) { t.KillTimeout = 30 * time.Second }),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Task "server" (forces in-place update)
      Edited KillTimeout: "5s" => "30s"
`,
		},
		{
			name: "task meta is destructive",
			old:  diffTestJob,
			new:  diffWithTask(func(t *Task) { t.Meta = map[string]string{"v": "2"} }),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Task "server" (forces create/destroy update)
      Added Meta[v]: "" => "2"
`,
		},
		{
			name: "config image and args",
			old:  diffTestJob,
			new: diffWithTask(func(t *Task) {
				t.Config.Image = "nginx:1.27"
				t.Config.Args = []string{"-g", "daemon on;", "a", "b", "c", "d", "e", "f", "g", "h", "i"}
			}),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Task "server" (forces create/destroy update)
      Edited Config {
        Edited args[1]: "daemon off;" => "daemon on;"
        Added args[2]: "" => "a"
        Added args[3]: "" => "b"
        Added args[4]: "" => "c"
        Added args[5]: "" => "d"
        Added args[6]: "" => "e"
        Added args[7]: "" => "f"
        Added args[8]: "" => "g"
        Added args[9]: "" => "h"
        Added args[10]: "" => "i"
        Edited image: "nginx:1.25" => "nginx:1.27"
      }
`,
		},
		{
			name: "resources",
			old:  diffTestJob,
			new:  diffWithTask(func(t *Task) { t.Resources.MemoryMB = 512 }),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Task "server" (forces create/destroy update)
      Edited Resources {
        Edited MemoryMB: "300" => "512"
      }
`,
		},
		{
			name: "job constraint added",
			old:  diffTestJob,
			new: func() *Job {
				j := diffTestJob()
				j.Constraints = append(j.Constraints, &Constraint{LTarget: "${attr.kernel.name}", Operand: "=", RTarget: "linux"})
				return j
			},
			want: `Edited Job "web"
  Added Constraint {
    Added LTarget: "" => "${attr.kernel.name}"
    Added Operand: "" => "="
    Added RTarget: "" => "linux"
  }
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "group constraint replaced",
			old: diffWithGroup(func(tg *TaskGroup) {
				tg.Constraints = []*Constraint{{LTarget: "${meta.rack}", Operand: "=", RTarget: "r1"}, {Operand: ConstraintDistinctHosts}}
			}),
			new: diffWithGroup(func(tg *TaskGroup) {
				tg.Constraints = []*Constraint{{Operand: ConstraintDistinctHosts}, {LTarget: "${meta.rack}", Operand: "=", RTarget: "r2"}}
			}),
			want: `Edited Job "web"
  Edited Group "web"
    Added Constraint {
      Added LTarget: "" => "${meta.rack}"
      Added Operand: "" => "="
      Added RTarget: "" => "r2"
    }
    Deleted Constraint {
      Deleted LTarget: "${meta.rack}" => ""
      Deleted Operand: "=" => ""
      Deleted RTarget: "r1" => ""
    }
    None Task "server"
`,
		},
		{
			name: "task constraint removed is destructive",
			old: diffWithTask(func(t *Task) {
				t.Constraints = []*Constraint{{LTarget: "${attr.cpu.arch}", Operand: "=", RTarget: "amd64"}}
			}),
			new: diffTestJob,
			want: `Edited Job "web"
  Edited Group "web"
    Edited Task "server" (forces create/destroy update)
      Deleted Constraint {
        Deleted LTarget: "${attr.cpu.arch}" => ""
        Deleted Operand: "=" => ""
        Deleted RTarget: "amd64" => ""
      }
`,
		},
		{
			name: "affinity added",
			old:  diffTestJob,
			new: diffWithGroup(func(tg *TaskGroup) {
				tg.Affinities = []*Affinity{{LTarget: "${node.datacenter}", Operand: "=", RTarget: "dc2", Weight: -50}}
			}),
			want: `Edited Job "web"
  Edited Group "web"
    Added Affinity {
      Added LTarget: "" => "${node.datacenter}"
      Added Operand: "" => "="
      Added RTarget: "" => "dc2"
      Added Weight: "" => "-50"
    }
    None Task "server"
`,
		},
		{
			name: "spread edited",
			old: diffWithGroup(func(tg *TaskGroup) {
				tg.Spreads = []*Spread{{Attribute: "${meta.rack}", Weight: 50, SpreadTarget: []*SpreadTarget{{Value: "r1", Percent: 50}, {Value: "r2", Percent: 50}}}}
			}),
			new: diffWithGroup(func(tg *TaskGroup) {
				tg.Spreads = []*Spread{{Attribute: "${meta.rack}", Weight: 80, SpreadTarget: []*SpreadTarget{{Value: "r1", Percent: 50}, {Value: "r2", Percent: 25}}}}
			}),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Spread {
      Edited Weight: "50" => "80"
      Added SpreadTarget {
        Added Percent: "" => "25"
        Added Value: "" => "r2"
      }
      Deleted SpreadTarget {
        Deleted Percent: "50" => ""
        Deleted Value: "r2" => ""
      }
    }
    None Task "server"
`,
		},
		{
			name: "update block edited",
			old:  diffTestJob,
			new: func() *Job {
				j := diffTestJob()
				j.Update.MaxParallel = 2
				j.Update.MinHealthyTime = 30 * time.Second
				j.TaskGroups[0].Update.Canary = 1
				return j
			},
			want: `Edited Job "web"
  Edited Update {
    Edited MaxParallel: "1" => "2"
    Edited MinHealthyTime: "0s" => "30s"
  }
  Edited Group "web"
    Edited Update {
      Edited Canary: "0" => "1"
    }
    None Task "server"
`,
		},
		{
			name: "update block added",
			old: func() *Job {
				j := diffTestJob()
				j.Update = nil
				return j
			},
			new: diffTestJob,
			want: `Edited Job "web"
  Added Update {
    Added AutoPromote: "" => "false"
    Added AutoRevert: "" => "false"
    Added Canary: "" => "0"
    Added HealthyDeadline: "" => "0s"
    Added MaxParallel: "" => "1"
    Added MinHealthyTime: "" => "0s"
    Added ProgressDeadline: "" => "0s"
    Added Stagger: "" => "0s"
  }
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "group policies",
			old:  diffTestJob,
			new: diffWithGroup(func(tg *TaskGroup) {
				tg.RestartPolicy.Attempts = 5
				tg.ReschedulePolicy.Unlimited = false
				tg.Migrate = &MigrateStrategy{MaxParallel: 2}
			}),
			want: `Edited Job "web"
  Edited Group "web"
    Added Migrate {
      Added MaxParallel: "" => "2"
    }
    Edited ReschedulePolicy {
      Edited Unlimited: "true" => "false"
    }
    Edited RestartPolicy {
      Edited Attempts: "2" => "5"
    }
    None Task "server"
`,
		},
		{
			name: "port added",
			old:  diffTestJob,
			new: diffWithGroup(func(tg *TaskGroup) {
				tg.Networks[0].ReservedPorts = []Port{{Label: "admin", Value: 9000}}
				tg.Networks[0].DynamicPorts = append(tg.Networks[0].DynamicPorts, Port{Label: "metrics"})
			}),
			want: `Edited Job "web"
  Edited Group "web"
    Edited Network {
      Added Dynamic Port {
        Added Label: "" => "metrics"
        Added To: "" => "0"
      }
      Added Static Port {
        Added Label: "" => "admin"
        Added To: "" => "0"
        Added Value: "" => "9000"
      }
    }
    None Task "server"
`,
		},
		{
			name: "port edited and removed",
			old:  diffTestJob,
			new: diffWithGroup(func(tg *TaskGroup) {
				tg.Networks[0].DynamicPorts = nil
				tg.Networks = append(tg.Networks, &NetworkResource{Mode: "host", DynamicPorts: []Port{{Label: "http", To: 80}}})
			}),
			want: `Edited Job "web"
  Edited Group "web"
    Added Network {
      Added Mode: "" => "host"
      Added Dynamic Port {
        Added Label: "" => "http"
        Added To: "" => "80"
      }
    }
    Edited Network {
      Deleted Dynamic Port {
        Deleted Label: "http" => ""
        Deleted To: "8080" => ""
      }
    }
    None Task "server"
`,
		},
		{
			name: "datacenter added",
			old:  diffTestJob,
			new: func() *Job {
				j := diffTestJob()
				j.Datacenters = []string{"dc2", "dc1"}
				return j
			},
			want: `Edited Job "web"
  Added Datacenters: "" => "dc2"
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "datacenter replaced, contextual",
			old: func() *Job {
				j := diffTestJob()
				j.Datacenters = []string{"dc1", "dc3"}
				return j
			},
			new: func() *Job {
				j := diffTestJob()
				j.Datacenters = []string{"dc1", "dc2"}
				return j
			},
			contextual: true,
			want: `Edited Job "web"
  None Datacenters: "dc1" => "dc1"
  Added Datacenters: "" => "dc2"
  Deleted Datacenters: "dc3" => ""
  None Meta[owner]: "ops" => "ops"
  None Name: "web" => "web"
  None NodePool: "default" => "default"
  None Priority: "50" => "50"
  None Stop: "false" => "false"
  None Type: "service" => "service"
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "job scalar and meta changes",
			old:  diffTestJob,
			new: func() *Job {
				j := diffTestJob()
				j.Priority = 70
				j.Stop = true
				j.Meta = map[string]string{"owner": "web-team", "tier": "frontend"}
				return j
			},
			want: `Edited Job "web"
  Edited Meta[owner]: "ops" => "web-team"
  Added Meta[tier]: "" => "frontend"
  Edited Priority: "50" => "70"
  Edited Stop: "false" => "true"
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "group added",
			old:  diffTestJob,
			new: func() *Job {
				j := diffTestJob()
				j.TaskGroups = append(j.TaskGroups, &TaskGroup{
					Name: "cache", Count: 1,
					Tasks: []*Task{{Name: "redis", Driver: "containerd", Config: &TaskConfig{Image: "redis:7"}}},
				})
				return j
			},
			want: `Edited Job "web"
  Added Group "cache"
    Added Count: "" => "1" (forces create)
    Added Task "redis" (forces create)
      Added Driver: "" => "containerd"
      Added KillTimeout: "" => "0s"
      Added Config {
        Added image: "" => "redis:7"
      }
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "group removed",
			old: func() *Job {
				j := diffTestJob()
				j.TaskGroups = append(j.TaskGroups, &TaskGroup{
					Name: "cache", Count: 2, Meta: map[string]string{"k": "v"},
					Tasks: []*Task{{Name: "redis", Driver: "containerd"}},
				})
				return j
			},
			new: diffTestJob,
			want: `Edited Job "web"
  Deleted Group "cache"
    Deleted Count: "2" => "" (forces destroy)
    Deleted Meta[k]: "v" => ""
    Deleted Task "redis" (forces destroy)
      Deleted Driver: "containerd" => ""
      Deleted KillTimeout: "0s" => ""
  None Group "web"
    None Task "server"
`,
		},
		{
			name: "task added to a kept group",
			old:  diffTestJob,
			new: diffWithGroup(func(tg *TaskGroup) {
				tg.Tasks = append(tg.Tasks, &Task{Name: "sidecar", Driver: "containerd", Config: &TaskConfig{Image: "envoy", Command: "/envoy"}})
			}),
			want: `Edited Job "web"
  Edited Group "web"
    None Task "server"
    Added Task "sidecar" (forces create/destroy update)
      Added Driver: "" => "containerd"
      Added KillTimeout: "" => "0s"
      Added Config {
        Added command: "" => "/envoy"
        Added image: "" => "envoy"
      }
`,
		},
		{
			name: "task removed from a kept group",
			old: diffWithGroup(func(tg *TaskGroup) {
				tg.Tasks = append([]*Task{{Name: "init", Driver: "containerd"}}, tg.Tasks...)
			}),
			new: diffTestJob,
			want: `Edited Job "web"
  Edited Group "web"
    Deleted Task "init" (forces create/destroy update)
      Deleted Driver: "containerd" => ""
      Deleted KillTimeout: "0s" => ""
    None Task "server"
`,
		},
		{
			name:       "contextual edit",
			old:        diffTestJob,
			new:        diffWithGroup(func(tg *TaskGroup) { tg.Count = 3; tg.Tasks[0].Env["PORT"] = "9090"; tg.RestartPolicy.Attempts = 4 }),
			contextual: true,
			want: `Edited Job "web"
  None Datacenters: "dc1" => "dc1"
  None Meta[owner]: "ops" => "ops"
  None Name: "web" => "web"
  None NodePool: "default" => "default"
  None Priority: "50" => "50"
  None Stop: "false" => "false"
  None Type: "service" => "service"
  Edited Group "web"
    Edited Count: "2" => "3" (forces create)
    Edited RestartPolicy {
      Edited Attempts: "2" => "4"
      None Delay: "15s" => "15s"
      None Interval: "30m0s" => "30m0s"
      None Mode: "fail" => "fail"
    }
    Edited Task "server" (forces create/destroy update)
      None Driver: "containerd" => "containerd"
      Edited Env[PORT]: "8080" => "9090"
      None KillTimeout: "5s" => "5s"
`,
		},
		{
			name: "two groups, one edited",
			old: func() *Job {
				j := diffTestJob()
				j.TaskGroups = append(j.TaskGroups, &TaskGroup{Name: "api", Count: 1, Tasks: []*Task{{Name: "a"}, {Name: "b"}}})
				return j
			},
			new: func() *Job {
				j := diffTestJob()
				j.TaskGroups = append(j.TaskGroups, &TaskGroup{Name: "api", Count: 1, Tasks: []*Task{{Name: "b", KillTimeout: time.Second}, {Name: "a"}}})
				return j
			},
			want: `Edited Job "web"
  Edited Group "api"
    None Task "a"
    Edited Task "b" (forces in-place update)
      Edited KillTimeout: "0s" => "1s"
  None Group "web"
    None Task "server"
`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.old().Diff(tc.new(), tc.contextual)
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			if got := dumpDiff(d); got != tc.want {
				t.Errorf("diff mismatch\n--- got:\n%s--- want:\n%s", got, tc.want)
			}
		})
	}
}

func diffWithGroup(f func(tg *TaskGroup)) func() *Job {
	return func() *Job {
		j := diffTestJob()
		f(j.TaskGroups[0])
		return j
	}
}

func diffWithTask(f func(t *Task)) func() *Job {
	return func() *Job {
		j := diffTestJob()
		f(j.TaskGroups[0].Tasks[0])
		return j
	}
}

func TestJobDiff_NoChangeIsEmpty(t *testing.T) {
	for _, contextual := range []bool{false, true} {
		d, err := diffTestJob().Diff(diffTestJob(), contextual)
		if err != nil {
			t.Fatal(err)
		}
		if d.Type != DiffTypeNone || d.Fields != nil || d.Objects != nil {
			t.Fatalf("contextual=%v: want an empty None diff, got %s", contextual, dumpDiff(d))
		}
		for _, tg := range d.TaskGroups {
			if tg.Type != DiffTypeNone || tg.Fields != nil || tg.Objects != nil {
				t.Fatalf("contextual=%v: group %q not empty", contextual, tg.Name)
			}
			for _, task := range tg.Tasks {
				if task.Type != DiffTypeNone || task.Fields != nil || task.Objects != nil || task.Annotations != nil {
					t.Fatalf("contextual=%v: task %q not empty", contextual, task.Name)
				}
			}
		}
	}
}

func TestJobDiff_BothNil(t *testing.T) {
	var j *Job
	d, err := j.Diff(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != DiffTypeNone || len(d.TaskGroups) != 0 {
		t.Fatalf("got %s", dumpDiff(d))
	}
}

func TestJobDiff_DifferentIDs(t *testing.T) {
	other := diffTestJob()
	other.ID = "api"
	if _, err := diffTestJob().Diff(other, false); err == nil || !strings.Contains(err.Error(), `"web"`) {
		t.Fatalf("want an error naming both IDs, got %v", err)
	}
}

func TestJobDiff_DoesNotModifyJobs(t *testing.T) {
	old, new := diffTestJob(), diffTestJob()
	new.TaskGroups[0].Count = 5
	new.TaskGroups[0].Tasks[0].Env["X"] = "y"
	oldCopy, newCopy := old.Copy(), new.Copy()
	if _, err := old.Diff(new, true); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(old, oldCopy) || !reflect.DeepEqual(new, newCopy) {
		t.Fatal("Diff modified its inputs")
	}
}

// TestJobDiff_Deterministic diffs jobs full of maps and sets many times:
// map iteration order must not show in the result.
func TestJobDiff_Deterministic(t *testing.T) {
	old := diffTestJob()
	old.Datacenters = []string{"dc1", "dc2", "dc3"}
	old.Constraints = []*Constraint{{LTarget: "a", Operand: "=", RTarget: "1"}, {LTarget: "b", Operand: "=", RTarget: "2"}}
	new := diffTestJob()
	new.Datacenters = []string{"dc4", "dc5", "dc6"}
	new.Constraints = []*Constraint{{LTarget: "c", Operand: "=", RTarget: "3"}, {LTarget: "d", Operand: "=", RTarget: "4"}}
	new.Meta = map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
	for i := 0; i < 5; i++ {
		new.TaskGroups = append(new.TaskGroups, &TaskGroup{Name: fmt.Sprintf("g%d", i), Count: i, Tasks: []*Task{{Name: "t", Env: map[string]string{"A": "1", "B": "2", "C": "3"}}}})
	}
	first, err := old.Diff(new, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		again, _ := old.Diff(new, true)
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("diff %d differs:\n%s\nvs\n%s", i, dumpDiff(first), dumpDiff(again))
		}
	}
}

func TestCompareFieldNames(t *testing.T) {
	names := []string{"args[10]", "Meta[b]", "args[2]", "args", "Env[x]", "args[1]]", "Meta[a]"}
	fs := make([]*FieldDiff, len(names))
	for i, n := range names {
		fs[i] = &FieldDiff{Name: n}
	}
	sortFields(fs)
	var got []string
	for _, f := range fs {
		got = append(got, f.Name)
	}
	want := []string{"Env[x]", "Meta[a]", "Meta[b]", "args", "args[2]", "args[10]", "args[1]]"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestJobDiff_Services: services are matched by name, their checks by
// name, and their tags are a set; a group's services show in the
// group's objects, a task's in the task's (where they force a
// destructive update, as any task change but the kill timeout does).
func TestJobDiff_Services(t *testing.T) {
	withServices := func() *Job {
		j := diffTestJob()
		tg := j.TaskGroups[0]
		tg.Services = []*Service{
			{Name: "web", PortLabel: "http", Tags: []string{"v1", "blue"},
				Checks: []*ServiceCheck{{Name: "web-http", Type: "http", Path: "/", Interval: 10 * time.Second, Timeout: 2 * time.Second}}},
			{Name: "old", PortLabel: "http"},
		}
		tg.Tasks[0].Services = []*Service{{Name: "admin", PortLabel: "http", TaskName: "server"}}
		return j
	}
	old := withServices()
	new := withServices()
	tg := new.TaskGroups[0]
	web := tg.Services[0]
	web.Tags = []string{"v2", "blue"}
	web.Checks[0].Interval = 5 * time.Second
	web.Checks = append(web.Checks, &ServiceCheck{Name: "web-tcp", Type: "tcp", Interval: 10 * time.Second, Timeout: 2 * time.Second})
	web.VIP = &ServiceVIP{Port: 80}
	tg.Services[1] = &Service{Name: "new", PortLabel: "http", PublishedPort: 8080}
	tg.Tasks[0].Services[0].ShutdownDelay = 5 * time.Second

	d, err := old.Diff(new, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `Edited Job "web"
  Edited Group "web"
    Added Service {
      Added Name: "" => "new"
      Added PortLabel: "" => "http"
      Added PublishedPort: "" => "8080"
      Added ShutdownDelay: "" => "0s"
    }
    Deleted Service {
      Deleted Name: "old" => ""
      Deleted PortLabel: "http" => ""
      Deleted PublishedPort: "0" => ""
      Deleted ShutdownDelay: "0s" => ""
    }
    Edited Service {
      Added Check {
        Added Interval: "" => "10s"
        Added Name: "" => "web-tcp"
        Added Timeout: "" => "2s"
        Added Type: "" => "tcp"
      }
      Edited Check {
        Edited Interval: "10s" => "5s"
      }
      Edited Tags {
        Deleted Tags: "v1" => ""
        Added Tags: "" => "v2"
      }
      Added VIP {
        Added Port: "" => "80"
      }
    }
    Edited Task "server" (forces create/destroy update)
      Edited Service {
        Edited ShutdownDelay: "0s" => "5s"
      }
`
	if got := dumpDiff(d); got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}

	same, err := withServices().Diff(withServices(), false)
	if err != nil {
		t.Fatal(err)
	}
	if same.Type != DiffTypeNone {
		t.Errorf("equal services diff as %s:\n%s", same.Type, dumpDiff(same))
	}
}

// TestJobDiff_ScriptCheck: a script check's command and arguments are
// in the diff, so `job plan` shows an edited script.
func TestJobDiff_ScriptCheck(t *testing.T) {
	withCheck := func(arg string) *Job {
		j := diffTestJob()
		j.TaskGroups[0].Tasks[0].Services = []*Service{{Name: "admin", PortLabel: "http", TaskName: "server",
			Checks: []*ServiceCheck{{Name: "admin-script", Type: "script", Command: "/bin/sh", Args: []string{"-c", arg}, Interval: 10 * time.Second, Timeout: 2 * time.Second}}}}
		return j
	}
	d, err := withCheck("test -f /a").Diff(withCheck("test -f /b"), false)
	if err != nil {
		t.Fatal(err)
	}
	want := `Edited Job "web"
  Edited Group "web"
    Edited Task "server" (forces create/destroy update)
      Edited Service {
        Edited Check {
          Edited Args[1]: "test -f /a" => "test -f /b"
        }
      }
`
	if got := dumpDiff(d); got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
}
