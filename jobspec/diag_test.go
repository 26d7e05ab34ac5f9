package jobspec

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// parseErr parses src as case.hcl and returns its *Error, failing the
// test when there is none.
func parseErr(t *testing.T, src string) *Error {
	t.Helper()
	job, err := Parse("case.hcl", []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded, want an error; job: %s", dump(job))
	}
	if job != nil {
		t.Errorf("Parse returned a job along with its error")
	}
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("err is %T, want *jobspec.Error: %v", err, err)
	}
	return perr
}

// findDiag returns the diagnostic at line:col, failing the test with
// every diagnostic when there is none.
func findDiag(t *testing.T, err *Error, line, col int) Diagnostic {
	t.Helper()
	for _, d := range err.Diagnostics {
		if d.Line == line && d.Column == col {
			return d
		}
	}
	t.Fatalf("no diagnostic at %d:%d; got:\n%v", line, col, err)
	return Diagnostic{}
}

func TestParse_Diagnostics(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		line, col int
		phrases   []string // each must appear in the diagnostic's line
	}{
		{
			name: "missing closing brace",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
    }
}
`,
			line: 1, col: 11,
			phrases: []string{"Unclosed configuration block", "no closing brace"},
		},
		{
			name: "unknown attribute in task",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      kill_timout = "5s"
    }
  }
}
`,
			line: 5, col: 7,
			phrases: []string{"Unsupported argument", `"kill_timout" is not expected here`, `Did you mean "kill_timeout"?`},
		},
		{
			name: "unknown block in group",
			src: `job "web" {
  group "web" {
    networks {}
  }
}
`,
			line: 3, col: 5,
			phrases: []string{"Unsupported block type", `"networks" are not expected here`, `Did you mean "network"?`},
		},
		{
			name: "unknown key in config",
			src: `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config {
        image      = "busybox"
        entrypoint = "/bin/sh"
      }
    }
  }
}
`,
			line: 7, col: 9,
			phrases: []string{"Unsupported argument", `"entrypoint" is not expected here`},
		},
		{
			name: "unknown key in resources",
			src: `job "web" {
  group "web" {
    task "server" {
      resources {
        memroy = 64
      }
    }
  }
}
`,
			line: 5, col: 9,
			phrases: []string{"Unsupported argument", `Did you mean "memory"?`},
		},
		{
			name: "unknown key in port",
			src: `job "web" {
  group "web" {
    network {
      port "http" { statik = 80 }
    }
  }
}
`,
			line: 4, col: 21,
			phrases: []string{"Unsupported argument", `Did you mean "static"?`},
		},
		{
			name: "bad duration",
			src: `job "web" {
  group "web" {
    restart {
      delay = "15 seconds"
    }
  }
}
`,
			line: 4, col: 15,
			phrases: []string{"Invalid duration", `"15 seconds"`, "ns, us, ms, s, m, h", `"15s"`},
		},
		{
			name: "number where duration expected",
			src: `job "web" {
  group "web" {
    task "server" {
      kill_timeout = 10
    }
  }
}
`,
			line: 4, col: 22,
			phrases: []string{"Invalid duration", "the number 10", `"15s"`},
		},
		{
			name: "string where number expected",
			src: `job "web" {
  group "web" {
    count = "three"
  }
}
`,
			line: 3, col: 13,
			phrases: []string{"Incorrect attribute value type", "count must be a whole number", `the string "three"`},
		},
		{
			name: "fraction where whole number expected",
			src: `job "web" {
  group "web" {
    task "server" {
      resources {
        cpu = 1.5
      }
    }
  }
}
`,
			line: 5, col: 15,
			phrases: []string{"cpu must be a whole number", "1.5"},
		},
		{
			name: "string where list expected",
			src: `job "web" {
  datacenters = "dc1"
}
`,
			line: 2, col: 17,
			phrases: []string{"datacenters must be a list of strings", `["a", "b"]`},
		},
		{
			name: "string where bool expected",
			src: `job "web" {
  group "web" {
    reschedule {
      unlimited = "maybe"
    }
  }
}
`,
			line: 4, col: 19,
			phrases: []string{"unlimited must be true or false", `"maybe"`},
		},
		{
			name: "non-map meta",
			src: `job "web" {
  meta = "ops"
}
`,
			line: 2, col: 10,
			phrases: []string{"meta must be a map of strings", `meta = { key = "value" }`},
		},
		{
			name: "two job blocks",
			src: `job "a" {
}

job "b" {
}
`,
			line: 4, col: 1,
			phrases: []string{"Duplicate job block", "exactly one job block", "case.hcl:1:1"},
		},
		{
			name: "no job block",
			src: `# just a comment
`,
			line: 1, col: 1,
			phrases: []string{"No job block", "exactly one job block"},
		},
		{
			name: "job without a name",
			src: `job {
}
`,
			line: 1, col: 5,
			phrases: []string{"Missing name for job"},
		},
		{
			name: "unknown top-level block",
			src: `variable "x" {}
job "web" {}
`,
			line: 1, col: 1,
			phrases: []string{"Unsupported block type", `"variable"`},
		},
		{
			name: "variable reference",
			src: `job "web" {
  group "web" {
    task "server" {
      config {
        image = "busybox:${foo}"
      }
    }
  }
}
`,
			line: 5, col: 28,
			phrases: []string{"Variables are not supported", "foo is a variable reference", `"${meta.rack}"`, `"$${"`},
		},
		{
			name: "function call",
			src: `job "web" {
  group "web" {
    task "server" {
      env {
        NAME = "${upper("x")}"
      }
    }
  }
}
`,
			line: 5, col: 19,
			phrases: []string{"Functions are not supported", "upper(...)"},
		},
		{
			name: "runtime reference outside a string",
			src: `job "web" {
  group "web" {
    task "server" {
      config {
        image = meta.image
      }
    }
  }
}
`,
			line: 5, col: 17,
			phrases: []string{"Runtime reference outside a string", `"${meta.image}"`},
		},
		{
			name: "runtime reference where a number is needed",
			src: `job "web" {
  group "web" {
    count = "${meta.count}"
  }
}
`,
			line: 3, col: 16,
			phrases: []string{"Runtime reference not allowed here", "count needs a value known when the job is parsed"},
		},
		{
			name: "duplicate config block",
			src: `job "web" {
  group "web" {
    task "server" {
      config { image = "a" }
      config { image = "b" }
    }
  }
}
`,
			line: 5, col: 7,
			phrases: []string{"Duplicate config block", "case.hcl:4:7"},
		},
		{
			name: "meta as attribute and block",
			src: `job "web" {
  meta = { a = "1" }
  meta { b = "2" }
}
`,
			line: 3, col: 3,
			phrases: []string{"Duplicate meta", "either meta = { ... } or a meta { ... } block"},
		},
		{
			name: "duplicate key in env attribute",
			src: `job "web" {
  group "web" {
    task "server" {
      env = { A = "1", A = "2" }
    }
  }
}
`,
			line: 4, col: 24,
			phrases: []string{"Duplicate key", `env key "A" is already set at case.hcl:4:15`},
		},
		{
			name: "block inside env block",
			src: `job "web" {
  group "web" {
    task "server" {
      env {
        nested {}
      }
    }
  }
}
`,
			line: 5, col: 9,
			phrases: []string{`Unexpected "nested" block`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := parseErr(t, tc.src)
			d := findDiag(t, err, tc.line, tc.col)
			if d.Filename != "case.hcl" {
				t.Errorf("Filename = %q, want case.hcl", d.Filename)
			}
			line := d.String()
			if prefix := fmt.Sprintf("case.hcl:%d:%d: ", tc.line, tc.col); !strings.HasPrefix(line, prefix) {
				t.Errorf("diagnostic %q does not start with %q", line, prefix)
			}
			for _, p := range tc.phrases {
				if !strings.Contains(line, p) {
					t.Errorf("diagnostic %q does not mention %q", line, p)
				}
			}
			if !strings.Contains(err.Error(), line) {
				t.Errorf("Error() does not include %q:\n%s", line, err.Error())
			}
		})
	}
}

func TestParse_ReportsAllProblems(t *testing.T) {
	src := `job "web" {
  priority = "high"
  group "web" {
    count = "three"
    networx {}
    task "server" {
      drivr = "containerd"
      config {
        image = "${foo}"
      }
      resources {
        memory = "lots"
      }
      kill_timeout = "5 secs"
    }
  }
}
`
	err := parseErr(t, src)
	want := []string{"2:14", "4:13", "5:5", "7:7", "9:20", "12:18", "14:22"}
	var got []string
	for _, d := range err.Diagnostics {
		got = append(got, fmt.Sprintf("%d:%d", d.Line, d.Column))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("diagnostic positions = %v, want %v (in source order); errors:\n%v", got, want, err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want one per diagnostic (%d):\n%s", n, len(want), err.Error())
	}
}

func TestDiagnostic_String(t *testing.T) {
	cases := []struct {
		name string
		d    Diagnostic
		want string
	}{
		{
			name: "parse problem",
			d:    Diagnostic{Filename: "web.hcl", Line: 12, Column: 7, Summary: "Unsupported argument", Detail: `An argument named "x" is not expected here.`},
			want: `web.hcl:12:7: Unsupported argument: An argument named "x" is not expected here.`,
		},
		{
			name: "no detail",
			d:    Diagnostic{Filename: "web.hcl", Line: 1, Column: 5, Summary: "Missing name for job"},
			want: "web.hcl:1:5: Missing name for job",
		},
		{
			name: "validation problem",
			d: Diagnostic{Filename: "web.hcl", Line: 14, Column: 18, Summary: `group "web" task "server": resources.memory`,
				Detail: "0 MB is not allowed; memory must be greater than 0", Path: "TaskGroups[0].Tasks[0].Resources.MemoryMB"},
			want: `web.hcl:14:18: group "web" task "server": resources.memory: 0 MB is not allowed; memory must be greater than 0 (TaskGroups[0].Tasks[0].Resources.MemoryMB)`,
		},
		{
			name: "no position",
			d:    Diagnostic{Filename: "web.hcl", Summary: "invalid job", Detail: "boom"},
			want: "web.hcl: invalid job: boom",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}
