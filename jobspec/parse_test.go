package jobspec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// webJob is what testdata/web.hcl must parse into.
func webJob() *structs.Job {
	return &structs.Job{
		ID:          "web",
		Name:        "web",
		Type:        "service",
		Priority:    70,
		Datacenters: []string{"dc1", "dc2"},
		Meta:        map[string]string{"owner": "ops"},
		TaskGroups: []*structs.TaskGroup{
			{
				Name:  "web",
				Count: 3,
				Meta:  map[string]string{"tier": "frontend"},
				Networks: []*structs.NetworkResource{{
					Mode: "host",
					ReservedPorts: []structs.Port{
						{Label: "admin", Value: 8080},
						{Label: "dns", Value: 53, To: 5353},
					},
					DynamicPorts: []structs.Port{
						{Label: "http"},
						{Label: "metrics", To: 9100},
					},
				}},
				RestartPolicy: &structs.RestartPolicy{
					Attempts: 2, Interval: 30 * time.Minute, Delay: 15 * time.Second, Mode: "fail",
				},
				ReschedulePolicy: &structs.ReschedulePolicy{
					Attempts: 1, Interval: 24 * time.Hour, Delay: 5 * time.Second,
					DelayFunction: "constant", MaxDelay: time.Hour, Unlimited: false,
				},
				Tasks: []*structs.Task{
					{
						Name:   "server",
						Driver: "containerd",
						Config: &structs.TaskConfig{
							Image:   "localhost/busybox:latest",
							Command: "/bin/sh",
							Args:    []string{"-c", "echo hi; exec httpd -f -p $DROVER_PORT_http"},
						},
						Env:         map[string]string{"GREETING": "hello"},
						Resources:   &structs.Resources{CPU: 100, MemoryMB: 64},
						KillTimeout: 10 * time.Second,
						Meta:        map[string]string{"role": "server"},
					},
					{
						Name:   "sidecar",
						Driver: "containerd",
						Config: &structs.TaskConfig{Image: "localhost/busybox:latest"},
						Env:    map[string]string{"RACK": "${meta.rack}", "LOG.LEVEL": "debug"},
					},
				},
			},
			{
				Name:  "batchy",
				Count: 1,
				Tasks: []*structs.Task{{
					Name:   "once",
					Driver: "containerd",
					Config: &structs.TaskConfig{Image: "localhost/busybox:latest"},
				}},
			},
		},
	}
}

func TestParseFile_FullExample(t *testing.T) {
	got, err := ParseFile(filepath.Join("testdata", "web.hcl"))
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	if want := webJob(); !reflect.DeepEqual(got, want) {
		t.Fatalf("job mismatch:\n got: %s\nwant: %s", dump(got), dump(want))
	}
}

func TestParseFile_MissingFile(t *testing.T) {
	_, err := ParseFile(filepath.Join("testdata", "does-not-exist.hcl"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestParse_LeavesOmittedFieldsZero(t *testing.T) {
	src := `
job "min" {
  group "g" {
    task "t" {
      driver = "containerd"
    }
  }
}
`
	got, err := Parse("min.hcl", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &structs.Job{
		ID:   "min",
		Name: "min",
		TaskGroups: []*structs.TaskGroup{{
			Name:  "g",
			Count: 1, // the one default the parser applies
			Tasks: []*structs.Task{{Name: "t", Driver: "containerd"}},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("job mismatch:\n got: %s\nwant: %s", dump(got), dump(want))
	}
}

func TestParse_KeepsExplicitZero(t *testing.T) {
	src := `
job "zero" {
  group "g" {
    count = 0
    task "t" {
      driver = "containerd"
      resources {
        memory = 0
      }
      kill_timeout = "0s"
    }
  }
}
`
	got, err := Parse("zero.hcl", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tg := got.TaskGroups[0]
	if tg.Count != 0 {
		t.Errorf("Count = %d, want explicit 0", tg.Count)
	}
	// memory was written as 0 and stays 0; cpu was left out and gets
	// its default.
	want := structs.Resources{CPU: structs.DefaultTaskCPU, MemoryMB: 0}
	if res := tg.Tasks[0].Resources; res == nil || *res != want {
		t.Errorf("Resources = %+v, want %+v", res, want)
	}
}

func TestParse_MapForms(t *testing.T) {
	cases := []struct {
		name     string
		jobMeta  string
		taskEnv  string
		taskMeta string
	}{
		{"blocks", `meta { owner = "ops" }`, `env { GREETING = "hello" }`, `meta { role = "server" }`},
		{"attributes", `meta = { owner = "ops" }`, `env = { GREETING = "hello" }`, `meta = { "role" = "server" }`},
		{"multi-line attributes", "meta = {\n    owner = \"ops\"\n  }", "env = {\n GREETING = \"hello\"\n }", "meta = {\n role = \"server\",\n }"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "job \"j\" {\n  " + tc.jobMeta + "\n  group \"g\" {\n    task \"t\" {\n      " +
				tc.taskEnv + "\n      " + tc.taskMeta + "\n    }\n  }\n}\n"
			job, err := Parse("maps.hcl", []byte(src))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, src)
			}
			task := job.TaskGroups[0].Tasks[0]
			if want := map[string]string{"owner": "ops"}; !reflect.DeepEqual(job.Meta, want) {
				t.Errorf("job meta = %v, want %v", job.Meta, want)
			}
			if want := map[string]string{"GREETING": "hello"}; !reflect.DeepEqual(task.Env, want) {
				t.Errorf("task env = %v, want %v", task.Env, want)
			}
			if want := map[string]string{"role": "server"}; !reflect.DeepEqual(task.Meta, want) {
				t.Errorf("task meta = %v, want %v", task.Meta, want)
			}
		})
	}
}

func TestParse_RuntimeInterpolationVerbatim(t *testing.T) {
	cases := []struct {
		name  string
		value string // HCL expression, as written in the file
		want  string
	}{
		{"port variable", `"${DROVER_PORT_http}"`, "${DROVER_PORT_http}"},
		{"nomad variable", `"${NOMAD_ALLOC_ID}"`, "${NOMAD_ALLOC_ID}"},
		{"node meta", `"${meta.rack}"`, "${meta.rack}"},
		{"attribute", `"${attr.kernel.name}"`, "${attr.kernel.name}"},
		{"node", `"${node.unique.name}"`, "${node.unique.name}"},
		{"env index", `"${env["HOME"]}"`, `${env["HOME"]}`},
		{"unique", `"${unique.id}"`, "${unique.id}"},
		{"inner spaces kept", `"${ meta.rack }"`, "${ meta.rack }"},
		{"mixed with text", `"rack-${meta.rack}:${DROVER_PORT_http}/x"`, "rack-${meta.rack}:${DROVER_PORT_http}/x"},
		{"shell variable", `"exec httpd -p $DROVER_PORT_http"`, "exec httpd -p $DROVER_PORT_http"},
		{"shell braces escaped", `"echo $${HOME}"`, "echo ${HOME}"},
		{"constant expression", `"${1 + 2}"`, "3"},
		{"strip markers applied", `"a ${~meta.rack~} b"`, "a${meta.rack}b"},
		{"heredoc", "<<EOT\nport ${DROVER_PORT_http} $HOME\nEOT\n", "port ${DROVER_PORT_http} $HOME\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config {\n        image = " +
				tc.value + "\n        args = [" + tc.value + "]\n      }\n      env = { X = " + tc.value + " }\n    }\n  }\n}\n"
			job, err := Parse("interp.hcl", []byte(src))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, src)
			}
			task := job.TaskGroups[0].Tasks[0]
			if task.Config.Image != tc.want {
				t.Errorf("image = %q, want %q", task.Config.Image, tc.want)
			}
			if len(task.Config.Args) != 1 || task.Config.Args[0] != tc.want {
				t.Errorf("args = %q, want [%q]", task.Config.Args, tc.want)
			}
			if task.Env["X"] != tc.want {
				t.Errorf("env X = %q, want %q", task.Env["X"], tc.want)
			}
		})
	}
}

func TestParse_NullMeansUnset(t *testing.T) {
	src := `
job "j" {
  priority = null
  group "g" {
    count = null
    task "t" {
      driver = null
      kill_timeout = null
    }
  }
}
`
	job, err := Parse("null.hcl", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tg := job.TaskGroups[0]
	if job.Priority != 0 || tg.Count != 1 || tg.Tasks[0].Driver != "" || tg.Tasks[0].KillTimeout != 0 {
		t.Fatalf("null should leave fields unset, got %s", dump(job))
	}
}

// dump shows a job in failure messages.
func dump(j *structs.Job) string {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// A restart or reschedule block overrides only what it sets: the rest
// keeps the job type's defaults.
func TestParse_PartialPoliciesKeepDefaults(t *testing.T) {
	src := `
job "p" {
  type = "batch"
  group "g" {
    restart {
      attempts = 5
    }
    reschedule {
      delay = "10s"
    }
    task "t" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}`
	job, err := Parse("p.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tg := job.TaskGroups[0]
	wantRestart := structs.DefaultRestartPolicy(structs.JobTypeBatch)
	wantRestart.Attempts = 5
	if *tg.RestartPolicy != *wantRestart {
		t.Errorf("restart policy %+v, want %+v", *tg.RestartPolicy, *wantRestart)
	}
	wantResched := structs.DefaultReschedulePolicy(structs.JobTypeBatch)
	wantResched.Delay = 10 * time.Second
	if *tg.ReschedulePolicy != *wantResched {
		t.Errorf("reschedule policy %+v, want %+v", *tg.ReschedulePolicy, *wantResched)
	}
}
