package jobspec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary job files to Parse and ParseAndValidate.
// Invariants:
//
//   - neither panics, and a failure is an *Error with at least one
//     diagnostic, each with a summary and a position inside the file
//     (a line the file has, or none);
//   - ParseAndValidate accepts a file only if Parse does, and what it
//     returns passes Job.Validate;
//   - when Parse accepts a file, ParseAndValidate's verdict is
//     Validate's verdict on the canonicalized job.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata", filepath.Join("..", "examples")} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
		for _, p := range paths {
			src, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Add([]byte(`job "x" { group "g" { count = 1000000000 task "t" { driver = "containerd" config { image = "i" } resources { cpu = 9223372036854775807 } } } }`))
	f.Add([]byte(`job "x" { group "g" { count = 1e400 } }`))
	f.Add([]byte(`job "x" { group "g" { task "t" { env = { "${a}" = 1 } } } }`))
	f.Add([]byte(`job "x" { meta { a = "${1/0}" } }`))
	f.Add([]byte(`job "x" { group "g" { network { port "p" { static = -1 to = 70000 } } } }`))
	f.Add([]byte(`job "x" { group "g" { service { name = "a" port = "p" check { type = "http" } check {} vip {} published_port = -1 shutdown_delay = "1y" } task "t" { service { name = "a" tags = ["", "a", "a"] } } } }`))
	f.Add([]byte(`job "x" { group "g" { network { port "p" {} } service { name = "Web" port = "p" check { type = "tcp" interval = "0s" timeout = "2h" path = "x" } vip { port = 70000 } } } }`))
	f.Add([]byte(`job {`))
	f.Add([]byte("job \"x\" {\n  group \"g\" {\n    count = \"three\"\n  }\n}\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, src []byte) {
		lines := bytes.Count(src, []byte("\n")) + 1
		checkErr := func(what string, err error) {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("%s: error %v is a %T, want *Error", what, err, err)
			}
			if len(perr.Diagnostics) == 0 {
				t.Fatalf("%s: an error without diagnostics", what)
			}
			for _, d := range perr.Diagnostics {
				if d.Summary == "" {
					t.Fatalf("%s: diagnostic without a summary: %+v", what, d)
				}
				if d.Line < 0 || d.Line > lines || d.Column < 0 {
					t.Fatalf("%s: diagnostic at %d:%d of a %d-line file: %+v", what, d.Line, d.Column, lines, d)
				}
			}
		}

		parsed, perr := Parse("fuzz.hcl", src)
		valid, verr := ParseAndValidate("fuzz.hcl", src)
		if perr != nil {
			checkErr("Parse", perr)
			if verr == nil {
				t.Fatalf("ParseAndValidate accepted what Parse refused: %v", perr)
			}
			checkErr("ParseAndValidate", verr)
			return
		}
		if parsed == nil {
			t.Fatal("Parse returned neither a job nor an error")
		}
		parsed.Canonicalize()
		want := parsed.Validate()
		if verr != nil {
			checkErr("ParseAndValidate", verr)
			if want == nil {
				t.Fatalf("ParseAndValidate refused a job that validates: %v", verr)
			}
			return
		}
		if want != nil {
			t.Fatalf("ParseAndValidate accepted a job that does not validate: %v", want)
		}
		if err := valid.Validate(); err != nil {
			t.Fatalf("ParseAndValidate returned an invalid job: %v", err)
		}
	})
}
