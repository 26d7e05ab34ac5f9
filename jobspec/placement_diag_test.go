package jobspec

import (
	"fmt"
	"strings"
	"testing"
)

func TestParse_PlacementDiagnostics(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		line, col int
		phrases   []string // each must appear in the diagnostic's line
	}{
		{
			name: "unknown attribute in constraint",
			src: `job "web" {
  constraint {
    atribute = "${meta.rack}"
  }
}
`,
			line: 3, col: 5,
			phrases: []string{"Unsupported argument", `"atribute" is not expected here`, `Did you mean "attribute"?`},
		},
		{
			name: "unknown attribute in affinity",
			src: `job "web" {
  group "web" {
    affinity {
      attribute = "${meta.rack}"
      wieght    = 50
    }
  }
}
`,
			line: 5, col: 7,
			phrases: []string{"Unsupported argument", `Did you mean "weight"?`},
		},
		{
			name: "constraint shorthand not allowed in affinity",
			src: `job "web" {
  affinity {
    distinct_hosts = true
  }
}
`,
			line: 3, col: 5,
			phrases: []string{"Unsupported argument", `"distinct_hosts" is not expected here`},
		},
		{
			name: "unknown attribute in spread",
			src: `job "web" {
  spread {
    attribute = "${meta.rack}"
    percent   = 50
  }
}
`,
			line: 4, col: 5,
			phrases: []string{"Unsupported argument", `"percent" is not expected here`},
		},
		{
			name: "unknown attribute in spread target",
			src: `job "web" {
  group "web" {
    spread {
      attribute = "${meta.rack}"
      target "r1" { percnt = 50 }
    }
  }
}
`,
			line: 5, col: 21,
			phrases: []string{"Unsupported argument", `Did you mean "percent"?`},
		},
		{
			name: "spread target without a value label",
			src: `job "web" {
  spread {
    attribute = "${meta.rack}"
    target { percent = 50 }
  }
}
`,
			line: 4, col: 12,
			phrases: []string{"Missing value for target"},
		},
		{
			name: "unknown attribute in update",
			src: `job "web" {
  group "web" {
    update {
      max_paralel = 2
    }
  }
}
`,
			line: 4, col: 7,
			phrases: []string{"Unsupported argument", `Did you mean "max_parallel"?`},
		},
		{
			name: "unknown attribute in migrate",
			src: `job "web" {
  group "web" {
    migrate {
      health_check = "checks"
    }
  }
}
`,
			line: 4, col: 7,
			phrases: []string{"Unsupported argument", `"health_check" is not expected here`},
		},
		{
			name: "spread in a task",
			src: `job "web" {
  group "web" {
    task "server" {
      spread {
        attribute = "${meta.rack}"
      }
    }
  }
}
`,
			line: 4, col: 7,
			phrases: []string{"Unsupported block type", `"spread" are not expected here`},
		},
		{
			name: "migrate at job level",
			src: `job "web" {
  migrate {
    max_parallel = 2
  }
}
`,
			line: 2, col: 3,
			phrases: []string{"Unsupported block type", `"migrate" are not expected here`},
		},
		{
			name: "duplicate update block",
			src: `job "web" {
  group "web" {
    update { canary = 1 }
    update { canary = 2 }
  }
}
`,
			line: 4, col: 5,
			phrases: []string{"Duplicate update block", `group "web"`, "case.hcl:3:5"},
		},
		{
			name: "bad duration in update",
			src: `job "web" {
  update {
    min_healthy_time = "10 secs"
  }
}
`,
			line: 3, col: 24,
			phrases: []string{"Invalid duration", "min_healthy_time must be a duration string", `"10 secs"`},
		},
		{
			name: "number where update duration expected",
			src: `job "web" {
  group "web" {
    update {
      healthy_deadline = 300
    }
  }
}
`,
			line: 4, col: 26,
			phrases: []string{"Invalid duration", "the number 300"},
		},
		{
			name: "string where canary count expected",
			src: `job "web" {
  update {
    canary = "two"
  }
}
`,
			line: 3, col: 14,
			phrases: []string{"canary must be a whole number", `the string "two"`},
		},
		{
			name: "affinity weight too large",
			src: `job "web" {
  affinity {
    attribute = "${meta.rack}"
    value     = "r1"
    weight    = 150
  }
}
`,
			line: 5, col: 17,
			phrases: []string{"Number out of range", "weight = 150 is out of range; accepted: -100 to 100"},
		},
		{
			name: "affinity weight too small",
			src: `job "web" {
  group "web" {
    task "server" {
      affinity {
        attribute = "${meta.rack}"
        weight    = -101
      }
    }
  }
}
`,
			line: 6, col: 21,
			phrases: []string{"Number out of range", "weight = -101 is out of range; accepted: -100 to 100"},
		},
		{
			name: "spread weight negative",
			src: `job "web" {
  spread {
    attribute = "${meta.rack}"
    weight    = -1
  }
}
`,
			line: 4, col: 17,
			phrases: []string{"Number out of range", "weight = -1 is out of range; accepted: 0 to 100"},
		},
		{
			name: "percent over 100",
			src: `job "web" {
  group "web" {
    spread {
      attribute = "${meta.rack}"
      target "r1" { percent = 120 }
    }
  }
}
`,
			line: 5, col: 31,
			phrases: []string{"Number out of range", "percent = 120 is out of range; accepted: 0 to 100"},
		},
		{
			name: "percent beyond a byte",
			src: `job "web" {
  group "web" {
    spread {
      attribute = "${meta.rack}"
      target "r1" {
        percent = 300
      }
    }
  }
}
`,
			line: 6, col: 19,
			phrases: []string{"percent = 300 is out of range; accepted: 0 to 100"},
		},
		{
			name: "operator and shorthand disagree",
			src: `job "web" {
  constraint {
    attribute = "${attr.kernel.version}"
    operator  = "="
    version   = ">= 3.10"
  }
}
`,
			line: 5, col: 5,
			phrases: []string{"Conflicting constraint arguments",
				`version makes the constraint's operator "version", but operator (at case.hcl:4:5) makes it "="`},
		},
		{
			name: "value and shorthand both set",
			src: `job "web" {
  affinity {
    attribute = "${node.class}"
    regexp    = "^web"
    value     = "web"
  }
}
`,
			line: 5, col: 5,
			phrases: []string{"Conflicting affinity arguments", "value and regexp (at case.hcl:4:5) both set the affinity's value"},
		},
		{
			name: "attribute and distinct_property both set",
			src: `job "web" {
  group "web" {
    constraint {
      distinct_property = "${meta.rack}"
      attribute         = "${meta.zone}"
    }
  }
}
`,
			line: 5, col: 7,
			phrases: []string{"Conflicting constraint arguments", "attribute and distinct_property (at case.hcl:4:7) both set the constraint's attribute"},
		},
		{
			name: "distinct_hosts not a bool",
			src: `job "web" {
  constraint {
    distinct_hosts = "maybe"
  }
}
`,
			line: 3, col: 22,
			phrases: []string{"distinct_hosts must be true or false", `"maybe"`},
		},
		{
			name: "runtime reference outside a string in constraint",
			src: `job "web" {
  constraint {
    attribute = meta.rack
    value     = "r1"
  }
}
`,
			line: 3, col: 17,
			phrases: []string{"Runtime reference outside a string", `"${meta.rack}"`},
		},
		{
			name: "variable in constraint value",
			src: `job "web" {
  constraint {
    attribute = "${meta.rack}"
    value     = "${rack}"
  }
}
`,
			line: 4, col: 20,
			phrases: []string{"Variables are not supported", "rack is a variable reference"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := parseErr(t, tc.src)
			d := findDiag(t, err, tc.line, tc.col)
			line := d.String()
			if prefix := fmt.Sprintf("case.hcl:%d:%d: ", tc.line, tc.col); !strings.HasPrefix(line, prefix) {
				t.Errorf("diagnostic %q does not start with %q", line, prefix)
			}
			for _, p := range tc.phrases {
				if !strings.Contains(line, p) {
					t.Errorf("diagnostic %q does not mention %q", line, p)
				}
			}
		})
	}
}

func TestParse_PlacementReportsAllProblems(t *testing.T) {
	src := `job "web" {
  node_pool = "gpu"
  constraint {
    atribute = "${meta.rack}"
  }
  affinity {
    attribute = "${meta.rack}"
    weight    = 101
  }
  update {
    stagger = "soon"
  }
  group "web" {
    spread {
      attribute = "${meta.rack}"
      target "r1" { percent = 101 }
      target "r2" { share = 1 }
    }
    migrate {
      max_parallel = "all"
    }
  }
}
`
	err := parseErr(t, src)
	want := []string{"4:5", "8:17", "11:15", "16:31", "17:21", "20:22"}
	var got []string
	for _, d := range err.Diagnostics {
		got = append(got, fmt.Sprintf("%d:%d", d.Line, d.Column))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("diagnostic positions = %v, want %v (in source order); errors:\n%v", got, want, err)
	}
}
