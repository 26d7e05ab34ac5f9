package jobspec

import (
	"errors"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
)

func namespacedJob(attr string) string {
	return `job "web" {
` + attr + `
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
    }
  }
}
`
}

func TestParse_Namespace(t *testing.T) {
	cases := []struct {
		name      string
		attr      string
		parsed    string // after Parse: what the file says
		validated string // after ParseAndValidate
	}{
		{"named", `  namespace = "team-a"`, "team-a", "team-a"},
		{"absent", ``, "", structs.DefaultNamespace},
		{"default", `  namespace = "default"`, structs.DefaultNamespace, structs.DefaultNamespace},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte(namespacedJob(tc.attr))
			raw, err := Parse("web.hcl", src)
			if err != nil {
				t.Fatal(err)
			}
			if raw.Namespace != tc.parsed {
				t.Fatalf("Parse: namespace %q, want %q", raw.Namespace, tc.parsed)
			}
			job, err := ParseAndValidate("web.hcl", src)
			if err != nil {
				t.Fatal(err)
			}
			if job.Namespace != tc.validated {
				t.Fatalf("ParseAndValidate: namespace %q, want %q", job.Namespace, tc.validated)
			}
		})
	}
}

// TestParseAndValidate_BadNamespaceIsPositioned: a namespace that cannot
// be one is reported at the attribute, saying what is accepted.
func TestParseAndValidate_BadNamespaceIsPositioned(t *testing.T) {
	cases := []struct {
		name, value, phrase string
	}{
		{"spaces", `"team a"`, "use 1-128 letters, digits and dashes"},
		{"all", `"*"`, "accepted only by list requests"},
		{"not a string", `["a"]`, "string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAndValidate("web.hcl", []byte(namespacedJob(`  namespace = `+tc.value)))
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Diagnostics) != 1 {
				t.Fatalf("error %v", err)
			}
			d := perr.Diagnostics[0]
			if d.Line != 2 || d.Column < 3 || !strings.Contains(d.String(), tc.phrase) {
				t.Fatalf("diagnostic %+v (%s); want line 2 with %q", d, d, tc.phrase)
			}
		})
	}
}
