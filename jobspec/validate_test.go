package jobspec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

func TestParseAndValidate_MapsProblemsToSource(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		path      string // structs field path of the problem
		line, col int
		summary   string // HCL-ish location
		phrase    string // from the validation message
	}{
		{
			name: "memory zero",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
      resources {
        memory = 0
      }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Resources.MemoryMB", line: 7, col: 18,
			summary: `group "web" task "server": resources.memory`,
			phrase:  "memory must be greater than 0",
		},
		{
			name: "memory negative",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
      resources {
        cpu    = 100
        memory = -5
      }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Resources.MemoryMB", line: 8, col: 18,
			summary: `group "web" task "server": resources.memory`,
			phrase:  "-5 MB is not allowed",
		},
		{
			name: "count negative",
			src: `job "web" {
  group "web" {
    count = -1
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[0].Count", line: 3, col: 13,
			summary: `group "web": count`,
			phrase:  "-1 is negative",
		},
		{
			name: "missing driver points at the task block",
			src: `job "web" {
  group "web" {
    task "server" {
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Driver", line: 3, col: 5,
			summary: `group "web" task "server": driver`,
			phrase:  `must be set; accepted: "containerd"`,
		},
		{
			name: "unknown driver",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "docker"
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Driver", line: 4, col: 16,
			summary: `group "web" task "server": driver`,
			phrase:  `unknown driver "docker"`,
		},
		{
			name: "missing image points at the config block",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config {
        command = "/bin/sh"
      }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Config.image", line: 5, col: 7,
			summary: `group "web" task "server": config.image`,
			phrase:  "must be set to an image reference",
		},
		{
			name: "missing config points at the task block",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Config", line: 3, col: 5,
			summary: `group "web" task "server": config`,
			phrase:  "needs a config with an image",
		},
		{
			name: "duplicate task names",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[1].Name", line: 7, col: 10,
			summary: `group "web" task "server": name`,
			phrase:  `task "server" is defined twice`,
		},
		{
			name: "duplicate group names",
			src: `job "web" {
  group "web" {
    task "a" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
  group "web" {
    task "b" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[1].Name", line: 8, col: 9,
			summary: `group "web": name`,
			phrase:  `group "web" is defined twice`,
		},
		{
			name: "bad job id",
			src: `job "-web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "ID", line: 1, col: 5,
			summary: `job "-web": name`,
			phrase:  "characters that are not allowed",
		},
		{
			name: "unknown job type",
			src: `job "web" {
  type = "cron"
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "Type", line: 2, col: 10,
			summary: `job "web": type`,
			phrase:  `unknown job type "cron"`,
		},
		{
			name: "group without tasks",
			src: `job "web" {
  group "empty" {
    count = 2
  }
}
`,
			path: "TaskGroups[0].Tasks", line: 2, col: 3,
			summary: `group "empty": task`,
			phrase:  "has no tasks",
		},
		{
			name: "bad port label",
			src: `job "web" {
  group "web" {
    network {
      port "http-alt" {}
    }
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[0].Networks[0].DynamicPorts[0].Label", line: 4, col: 12,
			summary: `group "web" network port "http-alt": label`,
			phrase:  "not a valid port label",
		},
		{
			name: "static port out of range",
			src: `job "web" {
  group "web" {
    network {
      port "http" { static = 70000 }
    }
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[0].Networks[0].ReservedPorts[0].Value", line: 4, col: 30,
			summary: `group "web" network port "http": static`,
			phrase:  "static port 70000 is out of range",
		},
		{
			name: "second network block",
			src: `job "web" {
  group "web" {
    network {}
    network {}
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[0].Networks", line: 4, col: 5,
			summary: `group "web": network`,
			phrase:  "only one network block",
		},
		{
			name: "unknown restart mode",
			src: `job "web" {
  group "web" {
    restart {
      mode = "sometimes"
    }
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[0].RestartPolicy.Mode", line: 4, col: 14,
			summary: `group "web": restart.mode`,
			phrase:  `unknown mode "sometimes"; accepted: "fail", "delay"`,
		},
		{
			name: "unknown delay function",
			src: `job "web" {
  group "web" {
    reschedule {
      delay_function = "linear"
    }
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`,
			path: "TaskGroups[0].ReschedulePolicy.DelayFunction", line: 4, col: 24,
			summary: `group "web": reschedule.delay_function`,
			phrase:  `unknown delay function "linear"`,
		},
		{
			name: "bad env name",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
      env = { "1BAD" = "x" }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Env", line: 6, col: 13,
			summary: `group "web" task "server": env`,
			phrase:  `"1BAD" is not a valid environment variable name`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkValidationDiag(t, tc.src, tc.path, tc.line, tc.col, tc.summary, tc.phrase)
		})
	}
}

// checkValidationDiag runs ParseAndValidate on src and checks that the
// problem at the structs field path is reported at line:col with the
// given summary and a detail mentioning phrase.
func checkValidationDiag(t *testing.T, src, path string, line, col int, summary, phrase string) {
	t.Helper()
	job, err := ParseAndValidate("case.hcl", []byte(src))
	if err == nil {
		t.Fatalf("ParseAndValidate succeeded, want a validation error; job: %s", dump(job))
	}
	if job != nil {
		t.Errorf("ParseAndValidate returned a job along with its error")
	}
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("err is %T, want *jobspec.Error: %v", err, err)
	}
	var d *Diagnostic
	for i := range perr.Diagnostics {
		if perr.Diagnostics[i].Path == path {
			d = &perr.Diagnostics[i]
			break
		}
	}
	if d == nil {
		t.Fatalf("no diagnostic for path %s; got:\n%v", path, err)
	}
	if d.Filename != "case.hcl" || d.Line != line || d.Column != col {
		t.Errorf("position = %s:%d:%d, want case.hcl:%d:%d", d.Filename, d.Line, d.Column, line, col)
	}
	if d.Summary != summary {
		t.Errorf("Summary = %q, want %q", d.Summary, summary)
	}
	if !strings.Contains(d.Detail, phrase) {
		t.Errorf("Detail = %q, want it to mention %q", d.Detail, phrase)
	}
	want := fmt.Sprintf("case.hcl:%d:%d: %s: %s (%s)", line, col, summary, d.Detail, path)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Error() lacks line %q:\n%s", want, err.Error())
	}
}

func TestParseAndValidate_ReportsAllProblems(t *testing.T) {
	src := readFixture(t, "invalid.hcl")
	_, err := ParseAndValidate("invalid.hcl", src)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("err = %v, want *jobspec.Error", err)
	}
	want := []string{
		"3:14 Type",
		"4:14 Priority",
		"7:13 TaskGroups[0].Count",
		"10:12 TaskGroups[0].Networks[0].DynamicPorts[0].Label",
		"11:30 TaskGroups[0].Networks[0].ReservedPorts[0].Value",
		"16:7 TaskGroups[0].Tasks[0].Config.image",
		"21:18 TaskGroups[0].Tasks[0].Resources.MemoryMB",
		"25:5 TaskGroups[0].Tasks[1].Driver",
		"25:10 TaskGroups[0].Tasks[1].Name",
	}
	var got []string
	for _, d := range perr.Diagnostics {
		got = append(got, fmt.Sprintf("%d:%d %s", d.Line, d.Column, d.Path))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diagnostics:\n%s\nwant:\n%s\nfull error:\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"), err)
	}
}

func TestParseAndValidate_ValidJobIsCanonicalized(t *testing.T) {
	job, err := ParseAndValidate("web.hcl", readFixture(t, "web.hcl"))
	if err != nil {
		t.Fatalf("ParseAndValidate: %v", err)
	}
	want := webJob()
	want.Canonicalize()
	if !reflect.DeepEqual(job, want) {
		t.Fatalf("job mismatch:\n got: %s\nwant: %s", dump(job), dump(want))
	}
	// The sidecar wrote no resources or kill_timeout and the batchy
	// group no policies; Canonicalize filled them in.
	side := job.TaskGroups[0].Tasks[1]
	if side.Resources == nil || side.Resources.MemoryMB != structs.DefaultTaskMemoryMB || side.KillTimeout != structs.DefaultKillTimeout {
		t.Errorf("sidecar defaults = %+v, %v", side.Resources, side.KillTimeout)
	}
	if rp := job.TaskGroups[1].RestartPolicy; rp == nil || rp.Interval != 30*time.Minute {
		t.Errorf("batchy restart policy = %+v, want the service default", rp)
	}
}

func TestParseAndValidate_ParseErrorsComeFirst(t *testing.T) {
	// A file that does not parse is not validated: the parse problems
	// are reported alone, without a job.
	src := `job "web" {
  group "web" {
    count = "three"
  }
}
`
	job, err := ParseAndValidate("case.hcl", []byte(src))
	if job != nil || err == nil {
		t.Fatalf("got job %v, err %v; want nil job and an error", job, err)
	}
	var perr *Error
	if !errors.As(err, &perr) || len(perr.Diagnostics) != 1 || perr.Diagnostics[0].Path != "" {
		t.Fatalf("want exactly one parse diagnostic, got:\n%v", err)
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return src
}
