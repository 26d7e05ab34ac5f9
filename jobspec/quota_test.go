package jobspec

import (
	"errors"
	"strings"
	"testing"

	"github.com/droverhq/drover/structs"
)

func TestParseQuota_Shapes(t *testing.T) {
	want := &structs.QuotaSpec{Name: "team-a", Description: "team A's share", Namespace: "team-a",
		Limits: structs.QuotaLimits{CPU: 4000, MemoryMB: 1024, Allocations: 20}}
	cases := []struct {
		name string
		src  string
		want *structs.QuotaSpec
	}{
		{"drover", `
name        = "team-a"
description = "team A's share"
namespace   = "team-a"
limit {
  cpu         = 4000 # MHz
  memory      = 1024 # MB
  allocations = 20
}
`, want},
		{"nomad", `
name        = "team-a"
description = "team A's share"
namespace   = "team-a"
limit {
  region = "global"
  region_limit {
    cpu         = 4000
    memory      = 1024
    allocations = 20
  }
}
`, want},
		{"unlimited dimensions", "name = \"open\"\nlimit {\n  memory = 512\n}\n", &structs.QuotaSpec{Name: "open", Limits: structs.QuotaLimits{MemoryMB: 512}}},
		{"the example", ExampleQuotaFile, want},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseQuota("quota.hcl", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseQuota_Errors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		// want is each diagnostic's prefix: file:line:col: summary.
		want []string
	}{
		{"syntax", "name = \"a\"\nlimit {\n", []string{"quota.hcl:2:7: Unclosed configuration block"}},
		{"no name", "limit {\n  cpu = 1\n}\n", []string{`quota.hcl:1:1: Missing required argument`}},
		{"no limit", "name = \"a\"\n", []string{"quota.hcl:1:1: missing limit block"}},
		{"two limits", "name = \"a\"\nlimit {}\nlimit {}\n", []string{"quota.hcl:3:1: more than one limit block: the first is at quota.hcl:2:1"}},
		{"negative", "name = \"a\"\nlimit {\n  memory = -5\n}\n", []string{"quota.hcl:3:12: memory = -5 is out of range: use a whole number"}},
		{"fraction", "name = \"a\"\nlimit {\n  cpu = 1.5\n}\n", []string{"quota.hcl:3:9: cpu = 1.5 is out of range"}},
		{"string amount", "name = \"a\"\nlimit {\n  allocations = \"ten\"\n}\n", []string{"quota.hcl:3:17: allocations must be a number"}},
		{"unknown attribute", "name = \"a\"\nlimit {\n  disk = 5\n}\n", []string{"quota.hcl:3:3: Unsupported argument"}},
		{"both shapes", "name = \"a\"\nlimit {\n  memory = 5\n  region_limit {\n    memory = 6\n  }\n}\n", []string{"quota.hcl:3:3: limit set twice: memory is set here and in the region_limit block at quota.hcl:4:3"}},
		{"bad name", "name = \"a b\"\nlimit {}\n", []string{`quota.hcl:1:8: invalid name: quota name "a b" is invalid`}},
		{"bad namespace", "name = \"a\"\nnamespace = \"*\"\nlimit {}\n", []string{`quota.hcl:2:13: invalid namespace`}},
		{"name not a string", "name = 5\nlimit {}\n", []string{"quota.hcl:1:8: name must be a string"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := ParseQuota("quota.hcl", []byte(tc.src))
			if spec != nil {
				t.Fatalf("got a spec %+v for a bad file", spec)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("got %v (%T), want *jobspec.Error", err, err)
			}
			if len(perr.Diagnostics) != len(tc.want) {
				t.Fatalf("got %d diagnostics:\n%v\nwant %d", len(perr.Diagnostics), err, len(tc.want))
			}
			for i, d := range perr.Diagnostics {
				if !strings.HasPrefix(d.String(), tc.want[i]) {
					t.Fatalf("diagnostic %d:\n got %s\nwant prefix %s", i, d, tc.want[i])
				}
			}
		})
	}
}

// FuzzParseQuota: any input gives a valid spec or an *Error, never a
// panic.
func FuzzParseQuota(f *testing.F) {
	f.Add([]byte(ExampleQuotaFile))
	f.Add([]byte("name = \"a\"\nlimit {\n  region = \"global\"\n  region_limit {\n    cpu = 1\n  }\n}\n"))
	f.Add([]byte("name = \"a\"\nlimit { memory = 1e300 }\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		spec, err := ParseQuota("f.hcl", src)
		if err != nil {
			var perr *Error
			if spec != nil || !errors.As(err, &perr) {
				t.Fatalf("spec %+v with error %v (%T)", spec, err, err)
			}
			return
		}
		if verr := spec.Validate(); verr != nil {
			t.Fatalf("parsed an invalid spec %+v: %v", spec, verr)
		}
	})
}
