package structs

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// templateJob is validJob whose task has two templates.
func templateJob() *Job {
	j := validJob()
	j.TaskGroups[0].Tasks[0].Templates = []*Template{
		{EmbeddedTmpl: `{{ with var "app/config" }}{{ .greeting }}{{ end }}`, DestPath: "local/index.html", Splay: 5 * time.Second},
		{EmbeddedTmpl: `DB_PASSWORD={{ (var "db/creds").password }}`, DestPath: "secrets/db.env", Envvars: true,
			ChangeMode: TemplateChangeSignal, ChangeSignal: "hup", Perms: "0600", WaitMissing: 3 * time.Second},
	}
	j.Canonicalize()
	return j
}

func TestTemplate_Canonicalize(t *testing.T) {
	j := templateJob()
	got := j.TaskGroups[0].Tasks[0].Templates
	want := []*Template{
		{EmbeddedTmpl: `{{ with var "app/config" }}{{ .greeting }}{{ end }}`, DestPath: "local/index.html", Splay: 5 * time.Second,
			ChangeMode: TemplateChangeRestart, Perms: "0644", WaitMissing: 30 * time.Second},
		{EmbeddedTmpl: `DB_PASSWORD={{ (var "db/creds").password }}`, DestPath: "secrets/db.env", Envvars: true,
			ChangeMode: TemplateChangeSignal, ChangeSignal: "SIGHUP", Perms: "0600", WaitMissing: 3 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("canonicalized templates:\n got %+v %+v\nwant %+v %+v", *got[0], *got[1], *want[0], *want[1])
	}
	// Splay 0 stays 0: no splay.
	if j.TaskGroups[0].Tasks[0].Copy().Templates[1].Splay != 0 {
		t.Fatal("a zero splay was changed")
	}
	// Idempotent.
	again := j.Copy()
	again.Canonicalize()
	if !reflect.DeepEqual(again, j) {
		t.Fatal("Canonicalize is not idempotent on templates")
	}
	if err := j.Validate(); err != nil {
		t.Fatalf("valid template job refused: %v", err)
	}
}

func TestTemplate_CopyIsDeep(t *testing.T) {
	j := templateJob()
	c := j.Copy()
	c.TaskGroups[0].Tasks[0].Templates[0].EmbeddedTmpl = "changed"
	if j.TaskGroups[0].Tasks[0].Templates[0].EmbeddedTmpl == "changed" {
		t.Fatal("Copy shares templates")
	}
	if !j.SpecChanged(c) {
		t.Fatal("a changed template is not a spec change")
	}
}

func TestJob_ValidateTemplates(t *testing.T) {
	const tp = "TaskGroups[0].Tasks[0].Templates[0]"
	tm := func(j *Job) *Template { return j.TaskGroups[0].Tasks[0].Templates[0] }
	cases := []struct {
		name   string
		mutate func(j *Job)
		path   string
		phrase string
	}{
		{"valid", func(*Job) {}, "", ""},
		{"null", func(j *Job) { j.TaskGroups[0].Tasks[0].Templates[0] = nil }, tp, "must not be null"},
		{"no data", func(j *Job) { tm(j).EmbeddedTmpl = "" }, tp + ".EmbeddedTmpl", "must be set"},
		{"source not read", func(j *Job) { tm(j).EmbeddedTmpl, tm(j).SourcePath = "", "app.tpl" }, tp + ".EmbeddedTmpl", `the source "app.tpl" was not read`},
		{"huge", func(j *Job) { tm(j).EmbeddedTmpl = strings.Repeat("x", MaxTemplateSize+1) }, tp + ".EmbeddedTmpl", "the limit is 65536"},
		{"parse error", func(j *Job) { tm(j).EmbeddedTmpl = "{{ .greeting " }, tp + ".EmbeddedTmpl", "does not parse"},
		{"unknown function", func(j *Job) { tm(j).EmbeddedTmpl = `{{ vault "x" }}` }, tp + ".EmbeddedTmpl", `function "vault" not defined`},
		{"define", func(j *Job) { tm(j).EmbeddedTmpl = `{{ define "a" }}x{{ end }}{{ template "a" }}` }, tp + ".EmbeddedTmpl", "define and block actions are not supported"},
		{"block", func(j *Job) { tm(j).EmbeddedTmpl = `{{ block "a" . }}x{{ end }}` }, tp + ".EmbeddedTmpl", "not supported"},
		{"template of nothing", func(j *Job) { tm(j).EmbeddedTmpl = `{{ template "a" }}` }, tp + ".EmbeddedTmpl", "template actions are not supported"},
		{"deep range", func(j *Job) {
			tm(j).EmbeddedTmpl = `{{ $v := var "a" }}{{ range $v }}{{ range $v }}{{ range $v }}x{{ end }}{{ end }}{{ end }}`
		}, tp + ".EmbeddedTmpl", "nested more than 2 deep"},
		{"huge range", func(j *Job) { tm(j).EmbeddedTmpl = `{{ range 100000000 }}x{{ end }}` }, tp + ".EmbeddedTmpl", "the limit is 1000 iterations"},
		{"huge range with a variable", func(j *Job) { tm(j).EmbeddedTmpl = `{{ range $i := 1001 }}{{ $i }}{{ end }}` }, tp + ".EmbeddedTmpl", "range over 1001"},
		{"bad variable path", func(j *Job) { tm(j).EmbeddedTmpl = `{{ var "../etc" }}` }, tp + ".EmbeddedTmpl", `var "../etc"`},
		{"no destination", func(j *Job) { tm(j).DestPath = "" }, tp + ".DestPath", "must be set"},
		{"absolute destination", func(j *Job) { tm(j).DestPath = "/etc/passwd" }, tp + ".DestPath", "is absolute"},
		{"escaping destination", func(j *Job) { tm(j).DestPath = "../../etc/passwd" }, tp + ".DestPath", "leaves the task directory"},
		{"escaping inside", func(j *Job) { tm(j).DestPath = "local/../../x" }, tp + ".DestPath", "leaves the task directory"},
		{"other directory", func(j *Job) { tm(j).DestPath = "etc/app.conf" }, tp + ".DestPath", "not under local/, secrets/ or alloc/"},
		{"the directory itself", func(j *Job) { tm(j).DestPath = "local" }, tp + ".DestPath", "not under local/"},
		{"unclean", func(j *Job) { tm(j).DestPath = "local//a" }, tp + ".DestPath", `write "local/a"`},
		{"control character", func(j *Job) { tm(j).DestPath = "local/a\nb" }, tp + ".DestPath", "control characters"},
		{"alloc logs", func(j *Job) { tm(j).DestPath = "alloc/logs/server.stdout.0" }, tp + ".DestPath", "alloc/logs"},
		{"duplicate destination", func(j *Job) { j.TaskGroups[0].Tasks[0].Templates[1].DestPath = "local/index.html" },
			"TaskGroups[0].Tasks[0].Templates[1].DestPath", "already the destination of Templates[0]"},
		{"unknown change mode", func(j *Job) { tm(j).ChangeMode = "reload" }, tp + ".ChangeMode", `unknown change mode "reload"`},
		{"signal without a signal", func(j *Job) { tm(j).ChangeMode = TemplateChangeSignal }, tp + ".ChangeSignal", "must be set"},
		{"unknown signal", func(j *Job) { tm(j).ChangeMode, tm(j).ChangeSignal = TemplateChangeSignal, "SIGNOPE" }, tp + ".ChangeSignal", "SIGHUP"},
		{"uncatchable signal", func(j *Job) { tm(j).ChangeMode, tm(j).ChangeSignal = TemplateChangeSignal, "SIGKILL" }, tp + ".ChangeSignal", "not a signal"},
		{"signal with restart", func(j *Job) { tm(j).ChangeSignal = "SIGHUP" }, tp + ".ChangeSignal", "applies only with change_mode"},
		{"negative splay", func(j *Job) { tm(j).Splay = -time.Second }, tp + ".Splay", "out of range"},
		{"long wait", func(j *Job) { tm(j).WaitMissing = 2 * time.Hour }, tp + ".WaitMissing", "out of range"},
		{"perms not octal", func(j *Job) { tm(j).Perms = "rw-r--r--" }, tp + ".Perms", "not an octal file mode"},
		{"perms with 9", func(j *Job) { tm(j).Perms = "0690" }, tp + ".Perms", "not an octal file mode"},
		{"perms setuid", func(j *Job) { tm(j).Perms = "4755" }, tp + ".Perms", "over 0777"},
		{"too many", func(j *Job) {
			task := j.TaskGroups[0].Tasks[0]
			for i := len(task.Templates); i <= MaxTemplatesPerTask; i++ {
				c := *task.Templates[0]
				c.DestPath = fmt.Sprintf("local/%d", i)
				task.Templates = append(task.Templates, &c)
			}
		}, "TaskGroups[0].Tasks[0].Templates", "the limit is 32 per task"},
		{"shared alloc file", func(j *Job) {
			tg := j.TaskGroups[0]
			other := tg.Tasks[0].Copy()
			other.Name = "sidecar"
			tg.Tasks = append(tg.Tasks, other)
			tm(j).DestPath = "alloc/shared.conf"
			other.Templates[0].DestPath = "alloc/shared.conf"
		}, "TaskGroups[0].Tasks[1].Templates[0].DestPath", "tasks of a group share alloc/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := templateJob()
			tc.mutate(j)
			err := j.Validate()
			if tc.path == "" {
				if err != nil {
					t.Fatalf("valid job refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a problem at %s, got %v", tc.path, err)
			}
			for _, p := range verr.Problems {
				if p.Path == tc.path {
					if !strings.Contains(p.Message, tc.phrase) {
						t.Fatalf("%s: message %q lacks %q", p.Path, p.Message, tc.phrase)
					}
					return
				}
			}
			t.Fatalf("no problem at %s: %v", tc.path, err)
		})
	}
}

// TestTemplate_ValidateAllowsDistinctAllocFiles: tasks of a group may
// each write their own file of the shared alloc directory.
func TestTemplate_ValidateAllowsDistinctAllocFiles(t *testing.T) {
	j := templateJob()
	tg := j.TaskGroups[0]
	other := tg.Tasks[0].Copy()
	other.Name = "sidecar"
	tg.Tasks = append(tg.Tasks, other)
	tg.Tasks[0].Templates[0].DestPath = "alloc/a.conf"
	other.Templates[0].DestPath = "alloc/b.conf"
	if err := j.Validate(); err != nil {
		t.Fatalf("distinct alloc files refused: %v", err)
	}
}

func TestTemplate_VariablePaths(t *testing.T) {
	cases := []struct {
		text string
		want []string
	}{
		{`{{ with var "app/config" }}{{ .greeting }}{{ end }}`, []string{"app/config"}},
		{`{{ (var "db/creds").password }} {{ index (var "db/creds") "user" }}`, []string{"db/creds"}},
		{`{{ "piped/path" | var }}`, []string{"piped/path"}},
		{`{{ if true }}{{ range $k, $v := var "b" }}{{ $k }}{{ end }}{{ else }}{{ var "a" }}{{ end }}`, []string{"a", "b"}},
		{`{{ $x := var "set/in/decl" }}{{ $x.k }}`, []string{"set/in/decl"}},
		// Computed paths are not known before rendering.
		{`{{ var (printf "app/%s" (env "X")) }}`, nil},
		{`{{ service "web" }} {{ env "HOME" }} {{ (node).Name }}`, nil},
		{`no actions at all`, nil},
	}
	for _, tc := range cases {
		got, err := (&Template{EmbeddedTmpl: tc.text, DestPath: "local/x"}).VariablePaths()
		if err != nil {
			t.Errorf("%s: %v", tc.text, err)
			continue
		}
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: paths %v, want %v", tc.text, got, tc.want)
		}
	}
	if _, err := (&Template{EmbeddedTmpl: `{{ var "x" `}).VariablePaths(); err == nil {
		t.Error("a template that does not parse has variable paths")
	}
}

func TestTemplate_FileModeAndDest(t *testing.T) {
	for perms, want := range map[string]uint32{"": 0o644, "0600": 0o600, "755": 0o755, "0777": 0o777, "000": 0} {
		got, err := (&Template{Perms: perms}).FileMode()
		if err != nil || got != want {
			t.Errorf("FileMode(%q) = %o, %v; want %o", perms, got, err, want)
		}
	}
	dir, rel, err := TemplateDest("secrets/sub/db.env")
	if err != nil || dir != "secrets" || rel != "sub/db.env" {
		t.Fatalf("TemplateDest = %q %q %v", dir, rel, err)
	}
	if _, _, err := TemplateDest("local/../../etc/passwd"); err == nil {
		t.Fatal("TemplateDest accepted an escaping path")
	}
}

func TestTemplate_NormalizeSignalName(t *testing.T) {
	for in, want := range map[string]string{"hup": "SIGHUP", "SIGUSR1": "SIGUSR1", " sigterm ": "SIGTERM", "": ""} {
		if got := NormalizeSignalName(in); got != want {
			t.Errorf("NormalizeSignalName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestJobDiff_Templates: templates are matched by destination; a change
// forces a destructive update, as any task change but the kill timeout.
func TestJobDiff_Templates(t *testing.T) {
	old := diffTestJob()
	old.TaskGroups[0].Tasks[0].Templates = []*Template{
		{EmbeddedTmpl: "a", DestPath: "local/a", ChangeMode: "restart", Perms: "0644", WaitMissing: 30 * time.Second},
		{EmbeddedTmpl: "b", DestPath: "local/b", ChangeMode: "restart", Perms: "0644", WaitMissing: 30 * time.Second},
	}
	new := old.Copy()
	new.TaskGroups[0].Tasks[0].Templates[0].EmbeddedTmpl = "a2"
	new.TaskGroups[0].Tasks[0].Templates = new.TaskGroups[0].Tasks[0].Templates[:1]
	d, err := old.Diff(new, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `Edited Job "web"
  Edited Group "web"
    Edited Task "server" (forces create/destroy update)
      Deleted Template {
        Deleted ChangeMode: "restart" => ""
        Deleted DestPath: "local/b" => ""
        Deleted EmbeddedTmpl: "b" => ""
        Deleted Envvars: "false" => ""
        Deleted Perms: "0644" => ""
        Deleted Splay: "0s" => ""
        Deleted WaitMissing: "30s" => ""
      }
      Edited Template {
        Edited EmbeddedTmpl: "a" => "a2"
      }
`
	if got := dumpDiff(d); got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
}
