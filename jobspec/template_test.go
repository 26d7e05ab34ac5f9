package jobspec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// templateJob wraps a task's template blocks in a job that is otherwise
// valid.
func templateJob(blocks string) string {
	return `job "j" {
  datacenters = ["dc1"]
  group "g" {
    task "t" {
      driver = "containerd"
      config { image = "busybox" }
` + blocks + `
    }
  }
}
`
}

func TestParse_Templates(t *testing.T) {
	src := templateJob(`      template {
        data = <<-EOT
        {{ with var "app/config" }}{{ .greeting }}{{ end }}
        EOT
        destination = "local/index.html"
      }
      template {
        data          = "DB_PASSWORD={{ (var \"db/creds\").password }}"
        destination   = "secrets/db.env"
        env           = true
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "0s"
        perms         = "0600"
        wait_missing  = "3s"
      }`)
	job, err := ParseAndValidate("case.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []*structs.Template{
		{EmbeddedTmpl: "{{ with var \"app/config\" }}{{ .greeting }}{{ end }}\n", DestPath: "local/index.html",
			ChangeMode: "restart", Splay: 5 * time.Second, Perms: "0644", WaitMissing: 30 * time.Second},
		{EmbeddedTmpl: `DB_PASSWORD={{ (var "db/creds").password }}`, DestPath: "secrets/db.env", Envvars: true,
			ChangeMode: "signal", ChangeSignal: "SIGHUP", Splay: 0, Perms: "0600", WaitMissing: 3 * time.Second},
	}
	if got := job.TaskGroups[0].Tasks[0].Templates; !reflect.DeepEqual(got, want) {
		t.Fatalf("templates:\n got %s\nwant %s", dumpJSON(got), dumpJSON(want))
	}
	paths, err := job.TaskGroups[0].Tasks[0].Templates[1].VariablePaths()
	if err != nil || len(paths) != 1 || paths[0] != "db/creds" {
		t.Fatalf("VariablePaths = %v, %v", paths, err)
	}
}

func TestParse_TemplateSource(t *testing.T) {
	dir := t.TempDir()
	text := "GREETING={{ (var \"app/config\").greeting }}\n"
	if err := os.WriteFile(filepath.Join(dir, "app.env.tpl"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	src := templateJob(`      template {
        source      = "app.env.tpl"
        destination = "secrets/app.env"
        env         = true
      }`)
	jobFile := filepath.Join(dir, "job.hcl")
	if err := os.WriteFile(jobFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}

	// The CLI's way: relative to the job file's directory.
	job, err := ParseAndValidate(jobFile, []byte(src), SourceDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	tm := job.TaskGroups[0].Tasks[0].Templates[0]
	if tm.EmbeddedTmpl != text || tm.SourcePath != "app.env.tpl" {
		t.Fatalf("template from source: %+v", tm)
	}
	// ParseFile reads next to the file by itself.
	if job, err := ParseFile(jobFile); err != nil || job.TaskGroups[0].Tasks[0].Templates[0].EmbeddedTmpl != text {
		t.Fatalf("ParseFile: %v", err)
	}

	// Without SourceDir (a server parsing for an HTTP client), a source
	// is refused, and nothing is read.
	perr := parseErr(t, src)
	d := findDiag(t, perr, 8, 23)
	if !strings.Contains(d.String(), "Template source not read here") {
		t.Fatalf("diagnostic %q", d.String())
	}
}

func TestParse_TemplateSourceProblems(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("x"), structs.MaxTemplateSize+1)
	if err := os.WriteFile(filepath.Join(dir, "big.tpl"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.tpl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		block   string
		phrases []string
	}{
		{"missing", `source = "nope.tpl"`, []string{"Template source not found", `"nope.tpl" does not exist`, filepath.Join(dir, "nope.tpl")}},
		{"too large", `source = "big.tpl"`, []string{"Template source too large", "65536"}},
		{"empty", `source = "empty.tpl"`, []string{"Template source empty"}},
		{"a directory", `source = "adir"`, []string{"not a regular file"}},
		{"both", `source = "big.tpl"
        data = "x"`, []string{"Both data and source", "case.hcl:9:16"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := templateJob(`      template {
        ` + tc.block + `
        destination = "local/x"
      }`)
			_, err := Parse("case.hcl", []byte(src), SourceDir(dir))
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("want an *Error, got %v", err)
			}
			d := findDiag(t, perr, 8, 18)
			for _, p := range tc.phrases {
				if !strings.Contains(d.String(), p) {
					t.Errorf("diagnostic %q lacks %q", d.String(), p)
				}
			}
		})
	}
}

// TestParseAndValidate_TemplateProblems: problems Validate finds are
// reported at the attribute, with the block named by its destination.
func TestParseAndValidate_TemplateProblems(t *testing.T) {
	cases := []struct {
		name      string
		block     string
		path      string
		line, col int
		summary   string
		phrase    string
	}{
		{
			name: "template does not parse",
			block: `      template {
        data        = "{{ with var \"a\" }}"
        destination = "local/a"
      }`,
			path: "TaskGroups[0].Tasks[0].Templates[0].EmbeddedTmpl", line: 8, col: 23,
			summary: `group "g" task "t" template "local/a": data`,
			phrase:  "does not parse",
		},
		{
			name: "escaping destination",
			block: `      template {
        data        = "x"
        destination = "../../etc/passwd"
      }`,
			path: "TaskGroups[0].Tasks[0].Templates[0].DestPath", line: 9, col: 23,
			summary: `group "g" task "t" template "../../etc/passwd": destination`,
			phrase:  "leaves the task directory",
		},
		{
			name: "signal without a signal",
			block: `      template {
        data        = "x"
        destination = "local/a"
        change_mode = "signal"
      }`,
			path: "TaskGroups[0].Tasks[0].Templates[0].ChangeSignal", line: 7, col: 7,
			summary: `group "g" task "t" template "local/a": change_signal`,
			phrase:  "must be set with change_mode",
		},
		{
			name: "bad perms",
			block: `      template {
        data        = "x"
        destination = "local/a"
        perms       = "rwx"
      }`,
			path: "TaskGroups[0].Tasks[0].Templates[0].Perms", line: 10, col: 23,
			summary: `group "g" task "t" template "local/a": perms`,
			phrase:  "not an octal file mode",
		},
		{
			name: "no text",
			block: `      template {
        destination = "local/a"
      }`,
			path: "TaskGroups[0].Tasks[0].Templates[0].EmbeddedTmpl", line: 7, col: 7,
			summary: `group "g" task "t" template "local/a": data`,
			phrase:  "must be set",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job, err := ParseAndValidate("case.hcl", []byte(templateJob(tc.block)))
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

func TestParse_TemplateUnknownAttribute(t *testing.T) {
	d := findDiag(t, parseErr(t, templateJob(`      template {
        data = "x"
        destination = "local/a"
        left_delimiter = "[["
      }`)), 10, 9)
	if !strings.Contains(d.String(), `"left_delimiter" is not expected here`) {
		t.Fatalf("diagnostic %q", d.String())
	}
}

// FuzzParseTemplateBlock feeds arbitrary template block bodies (and a
// source file's content) through the decoder. Invariants: no panic; a
// failure is an *Error whose diagnostics all have a summary; an
// accepted job's templates validate, have a destination under local/,
// secrets/ or alloc/ that stays there, and text within the size bound.
func FuzzParseTemplateBlock(f *testing.F) {
	f.Add(`data = "x"
destination = "local/a"`, "")
	f.Add(`source = "s.tpl"
destination = "secrets/a.env"
env = true`, "A={{ var \"a\" }}")
	f.Add(`data = "{{ range 99999999 }}{{ end }}"
destination = "alloc/../../x"
change_mode = "signal"
change_signal = "KILL"
perms = "7777"
splay = "-1s"`, "")
	f.Add(`data = <<EOT
{{ with var "app/config" }}{{ .greeting }}{{ end }}
EOT
destination = "local/index.html"
wait_missing = "3s"`, "")
	f.Add(`source = "../../../../etc/shadow"
destination = "local/x"`, "")
	f.Add(`source = "s.tpl"
data = "x"`, "{{")
	f.Fuzz(func(t *testing.T, body, source string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "s.tpl"), []byte(source), 0o644); err != nil {
			t.Fatal(err)
		}
		src := templateJob("      template {\n" + body + "\n      }")
		job, err := ParseAndValidate("fuzz.hcl", []byte(src), SourceDir(dir))
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Diagnostics) == 0 {
				t.Fatalf("error %v is not an *Error with diagnostics", err)
			}
			for _, d := range perr.Diagnostics {
				if d.Summary == "" {
					t.Fatalf("diagnostic without a summary: %+v", d)
				}
			}
			return
		}
		if err := job.Validate(); err != nil {
			t.Fatalf("accepted job does not validate: %v", err)
		}
		for _, tm := range job.TaskGroups[0].Tasks[0].Templates {
			dir, rel, err := structs.TemplateDest(tm.DestPath)
			if err != nil || rel == "" || strings.Contains(tm.DestPath, "..") || filepath.IsAbs(tm.DestPath) {
				t.Fatalf("accepted destination %q (%s %q %v)", tm.DestPath, dir, rel, err)
			}
			if len(tm.EmbeddedTmpl) == 0 || len(tm.EmbeddedTmpl) > structs.MaxTemplateSize {
				t.Fatalf("accepted a template of %d bytes", len(tm.EmbeddedTmpl))
			}
			if _, err := tm.VariablePaths(); err != nil {
				t.Fatalf("accepted a template that does not parse: %v", err)
			}
		}
	})
}
