package jobspec

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

func TestParse_Services(t *testing.T) {
	job, err := ParseFile("testdata/services.hcl")
	if err != nil {
		t.Fatal(err)
	}
	tg := job.TaskGroups[0]
	wantGroup := []*structs.Service{{
		Name:      "web",
		PortLabel: "http",
		Tags:      []string{"v1", "public"},
		Checks: []*structs.ServiceCheck{
			{Name: "web-alive", Type: "http", Path: "/", Interval: 5 * time.Second, Timeout: time.Second},
			{Name: "web-http-1", Type: "http", Path: "/ready", Interval: 10 * time.Second, Timeout: 2 * time.Second},
			{Name: "web-tcp", Type: "tcp", Interval: 10 * time.Second, Timeout: 2 * time.Second},
			// The default timeout is no longer than the interval.
			{Name: "web-http-2", Type: "http", Path: "/", Interval: time.Second, Timeout: time.Second},
		},
		VIP:           &structs.ServiceVIP{Port: 80},
		PublishedPort: 8080,
		ShutdownDelay: 5 * time.Second,
	}}
	if !reflect.DeepEqual(tg.Services, wantGroup) {
		t.Errorf("group services:\n got %s\nwant %s", dumpJSON(tg.Services), dumpJSON(wantGroup))
	}
	wantTask := []*structs.Service{{Name: "web-admin", PortLabel: "admin", TaskName: "server"}}
	if got := tg.Tasks[0].Services; !reflect.DeepEqual(got, wantTask) {
		t.Errorf("task services:\n got %s\nwant %s", dumpJSON(got), dumpJSON(wantTask))
	}
	if _, err := ParseAndValidate("services.hcl", mustRead(t, "testdata/services.hcl")); err != nil {
		t.Errorf("ParseAndValidate: %v", err)
	}
}

func TestParse_ServiceDefaultCheckNames(t *testing.T) {
	job, err := Parse("case.hcl", []byte(`job "j" {
  group "g" {
    service {
      name = "api"
      check { type = "tcp" }
      check { type = "tcp" }
      check { type = "http" }
      check { type = "tcp" }
    }
  }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range job.TaskGroups[0].Services[0].Checks {
		names = append(names, c.Name)
	}
	want := []string{"api-tcp", "api-tcp-1", "api-http", "api-tcp-2"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("check names %v, want %v", names, want)
	}
}

func TestParse_ServiceDiagnostics(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		line, col int
		phrases   []string
	}{
		{
			name: "unknown attribute in service",
			src: `job "j" {
  group "g" {
    service {
      name = "web"
      prot = "http"
    }
  }
}
`,
			line: 5, col: 7,
			phrases: []string{"Unsupported argument", `"prot" is not expected here`, `Did you mean "port"?`},
		},
		{
			name: "unknown attribute in check",
			src: `job "j" {
  group "g" {
    task "t" {
      service {
        check {
          type   = "http"
          method = "GET"
        }
      }
    }
  }
}
`,
			line: 7, col: 11,
			phrases: []string{"Unsupported argument", `"method" is not expected here`},
		},
		{
			name: "unknown block in service",
			src: `job "j" {
  group "g" {
    service {
      connect {}
    }
  }
}
`,
			line: 4, col: 7,
			phrases: []string{"Unsupported block type", `"connect"`},
		},
		{
			name: "service with a label",
			src: `job "j" {
  group "g" {
    service "web" {}
  }
}
`,
			line: 3, col: 13,
			phrases: []string{"Extraneous label"},
		},
		{
			name: "second vip block",
			src: `job "j" {
  group "g" {
    service {
      vip { port = 80 }
      vip { port = 81 }
    }
  }
}
`,
			line: 5, col: 7,
			phrases: []string{"Duplicate vip block", "case.hcl:4:7"},
		},
		{
			name: "bad interval",
			src: `job "j" {
  group "g" {
    service {
      check {
        type     = "tcp"
        interval = 5
      }
    }
  }
}
`,
			line: 6, col: 20,
			phrases: []string{"Invalid duration", `interval = "15s"`},
		},
		{
			name: "published port not a number",
			src: `job "j" {
  group "g" {
    service {
      published_port = "http"
    }
  }
}
`,
			line: 4, col: 24,
			phrases: []string{"Incorrect attribute value type", "published_port must be a whole number"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := findDiag(t, parseErr(t, tc.src), tc.line, tc.col)
			for _, p := range tc.phrases {
				if !strings.Contains(d.String(), p) {
					t.Errorf("diagnostic %q lacks %q", d.String(), p)
				}
			}
		})
	}
}

// serviceJob wraps a group body (its network and service blocks) in a
// job that is otherwise valid.
func serviceJob(group string) string {
	return `job "j" {
  datacenters = ["dc1"]
  group "g" {
` + group + `
    task "t" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`
}

func TestParseAndValidate_ServiceProblems(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		path      string
		line, col int
		summary   string
		phrase    string
	}{
		{
			name: "unknown port label",
			src: serviceJob(`    network {
      port "http" {}
      port "admin" {}
    }
    service {
      name = "web"
      port = "htp"
    }`),
			path: "TaskGroups[0].Services[0].PortLabel", line: 10, col: 14,
			summary: `group "g" service "web": port`,
			phrase:  `unknown port label "htp"; the group's ports are: admin, http`,
		},
		{
			name: "missing name",
			src: serviceJob(`    network {
      port "http" {}
    }
    service {
      port = "http"
    }`),
			path: "TaskGroups[0].Services[0].Name", line: 7, col: 5,
			summary: `group "g" service #1: name`,
			phrase:  "must be set to a DNS label",
		},
		{
			name: "timeout over interval",
			src: serviceJob(`    network {
      port "http" {}
    }
    service {
      name = "web"
      port = "http"
      check {
        type     = "tcp"
        interval = "2s"
        timeout  = "3s"
      }
    }`),
			path: "TaskGroups[0].Services[0].Checks[0].Timeout", line: 13, col: 20,
			summary: `group "g" service "web" check "web-tcp": timeout`,
			phrase:  "longer than the check's interval",
		},
		{
			name: "tcp check with a path",
			src: serviceJob(`    network {
      port "http" {}
    }
    service {
      name = "web"
      port = "http"
      check {
        type = "tcp"
        path = "/"
      }
    }`),
			path: "TaskGroups[0].Services[0].Checks[0].Path", line: 12, col: 16,
			summary: `group "g" service "web" check "web-tcp": path`,
			phrase:  "a tcp check has no path",
		},
		{
			name: "vip without port",
			src: serviceJob(`    network {
      port "http" {}
    }
    service {
      name = "web"
      port = "http"
      vip {}
    }`),
			path: "TaskGroups[0].Services[0].VIP.Port", line: 10, col: 7,
			summary: `group "g" service "web": vip.port`,
			phrase:  "0 is out of range; accepted: 1 to 65535",
		},
		{
			name: "duplicate name in a task",
			src: `job "j" {
  datacenters = ["dc1"]
  group "g" {
    network {
      port "http" {}
    }
    service {
      name = "web"
      port = "http"
    }
    task "t" {
      driver = "containerd"
      config { image = "busybox" }
      service {
        name = "web"
        port = "http"
      }
    }
  }
}
`,
			path: "TaskGroups[0].Tasks[0].Services[0].Name", line: 15, col: 16,
			summary: `group "g" task "t" service "web": name`,
			phrase:  `service "web" is already declared at TaskGroups[0].Services[0]`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job, err := ParseAndValidate("case.hcl", []byte(tc.src))
			if err == nil {
				t.Fatalf("accepted: %s", dump(job))
			}
			perr, ok := err.(*Error)
			if !ok {
				t.Fatalf("err is %T: %v", err, err)
			}
			for _, d := range perr.Diagnostics {
				if d.Path != tc.path {
					continue
				}
				if d.Line != tc.line || d.Column != tc.col {
					t.Errorf("at %d:%d, want %d:%d: %v", d.Line, d.Column, tc.line, tc.col, d)
				}
				if d.Summary != tc.summary {
					t.Errorf("summary %q, want %q", d.Summary, tc.summary)
				}
				if !strings.Contains(d.Detail, tc.phrase) {
					t.Errorf("detail %q lacks %q", d.Detail, tc.phrase)
				}
				return
			}
			t.Fatalf("no diagnostic for %s; got:\n%v", tc.path, err)
		})
	}
}

func dumpJSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse_ScriptCheck(t *testing.T) {
	src := `job "j" {
  group "g" {
    network {
      port "http" {}
    }
    task "t" {
      driver = "containerd"
      config {
        image = "busybox"
      }
      service {
        name = "api"
        port = "http"
        check {
          type     = "script"
          command  = "/bin/sh"
          args     = ["-c", "test -f /tmp/ready"]
          interval = "10s"
          timeout  = "3s"
        }
      }
    }
  }
}
`
	job, err := ParseAndValidate("script.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := job.TaskGroups[0].Tasks[0].Services[0].Checks[0]
	want := &structs.ServiceCheck{Name: "api-script", Type: "script", Command: "/bin/sh", Args: []string{"-c", "test -f /tmp/ready"}, Interval: 10 * time.Second, Timeout: 3 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("check:\n got %s\nwant %s", dumpJSON(got), dumpJSON(want))
	}

	// A script check of a group service, and one without a command,
	// are refused with their paths.
	bad := strings.Replace(src, `          command  = "/bin/sh"
`, "", 1)
	if _, err := ParseAndValidate("script.hcl", []byte(bad)); err == nil || !strings.Contains(err.Error(), "Command") || !strings.Contains(err.Error(), "must be set for a script check") {
		t.Fatalf("script check without a command: %v", err)
	}
	group := `job "j" {
  group "g" {
    network {
      port "http" {}
    }
    service {
      name = "api"
      port = "http"
      check {
        type    = "script"
        command = "true"
      }
    }
    task "t" {
      driver = "containerd"
      config {
        image = "busybox"
      }
    }
  }
}
`
	if _, err := ParseAndValidate("group.hcl", []byte(group)); err == nil || !strings.Contains(err.Error(), "a group service has none") {
		t.Fatalf("script check of a group service: %v", err)
	}
}
