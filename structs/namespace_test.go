package structs

import (
	"strings"
	"testing"
)

func TestValidateNamespaceName(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		substr string // "" for valid
	}{
		{"simple", "team-a", ""},
		{"default", DefaultNamespace, ""},
		{"digits", "42", ""},
		{"longest", strings.Repeat("a", 128), ""},
		{"empty", "", "is invalid"},
		{"all", "*", "accepted only by list requests"},
		{"too long", strings.Repeat("a", 129), "129 bytes long; the limit is 128"},
		{"slash", "a/b", "is invalid: use 1-128 letters, digits and dashes"},
		{"space", "a b", "is invalid"},
		{"dot", "a.b", "is invalid"},
		{"unicode", "tëam", "is invalid"},
		{"nul", "a\x00b", "is invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateNamespaceName(tc.in)
			if tc.substr == "" && err != nil || tc.substr != "" && (err == nil || !strings.Contains(err.Error(), tc.substr)) {
				t.Fatalf("ValidateNamespaceName(%q) = %v; want %q", tc.in, err, tc.substr)
			}
		})
	}
}

func TestNamespace_Validate(t *testing.T) {
	cases := []struct {
		name   string
		ns     *Namespace
		substr string
	}{
		{"full", &Namespace{Name: "a", Description: "Team A", Quota: "small", Meta: map[string]string{"k": "v"}}, ""},
		{"nil", nil, "missing"},
		{"long description", &Namespace{Name: "a", Description: strings.Repeat("d", 257)}, "the limit is 256"},
		{"control characters", &Namespace{Name: "a", Description: "\x07"}, "control characters"},
		{"bad quota", &Namespace{Name: "a", Quota: "a b"}, `quota name "a b" is invalid`},
		{"too much meta", &Namespace{Name: "a", Meta: func() map[string]string {
			m := map[string]string{}
			for i := 0; i <= MaxNamespaceMetaEntries; i++ {
				m[strings.Repeat("k", i+1)] = "v"
			}
			return m
		}()}, "the limit is 64"},
		{"empty meta key", &Namespace{Name: "a", Meta: map[string]string{"": "v"}}, "keys must be 1-512 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ns.Validate()
			if tc.substr == "" && err != nil || tc.substr != "" && (err == nil || !strings.Contains(err.Error(), tc.substr)) {
				t.Fatalf("Validate = %v; want %q", err, tc.substr)
			}
		})
	}
}

func TestJobNamespace(t *testing.T) {
	cases := []struct {
		name, job, req, want, substr string
	}{
		{"neither", "", "", DefaultNamespace, ""},
		{"job's", "team-a", "", "team-a", ""},
		{"request's", "", "team-b", "team-b", ""},
		{"agree", "team-a", "team-a", "team-a", ""},
		{"differ", "team-a", "team-b", "", `the job names namespace "team-a" but the request is for namespace "team-b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := JobNamespace(tc.job, tc.req)
			if tc.substr != "" {
				ce := ParseCodedError(err)
				if ce == nil || ce.Code != CodeInvalid || !strings.Contains(ce.Message, tc.substr) {
					t.Fatalf("JobNamespace(%q, %q) = %v", tc.job, tc.req, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("JobNamespace(%q, %q) = %q, %v; want %q", tc.job, tc.req, got, err, tc.want)
			}
		})
	}
}

func TestJob_CanonicalizeAndValidateNamespace(t *testing.T) {
	j := &Job{ID: "web"}
	j.Canonicalize()
	if j.Namespace != DefaultNamespace {
		t.Fatalf("Canonicalize left namespace %q", j.Namespace)
	}
	j.Namespace = "bad name"
	err := j.Validate()
	if err == nil || !strings.Contains(err.Error(), "Namespace: namespace name \"bad name\" is invalid") {
		t.Fatalf("Validate: %v", err)
	}
	if key := (&Job{ID: "web"}).Key(); key != (NamespacedID{DefaultNamespace, "web"}) || key.String() != "default/web" {
		t.Fatalf("key of a job without namespace: %v", key)
	}
}

// TestNamespace_TravelsInRequestsAndLogEntries: the request namespace
// survives the RPC codec and the Raft encoding (which drops the token).
func TestNamespace_TravelsInRequestsAndLogEntries(t *testing.T) {
	req := &JobDeregisterRequest{JobID: "web", WriteRequest: WriteRequest{Namespace: "team-a", AuthToken: "secret"}}
	buf, err := Encode(JobDeregisterRequestType, req)
	if err != nil {
		t.Fatal(err)
	}
	var out JobDeregisterRequest
	if err := Decode(buf[1:], &out); err != nil {
		t.Fatal(err)
	}
	if out.Namespace != "team-a" || out.AuthToken != "" || out.RequestNamespace() != "team-a" {
		t.Fatalf("decoded %+v", out)
	}
	q := &QueryOptions{Namespace: AllNamespaces}
	if q.ListNamespace() != AllNamespaces || (&QueryOptions{}).ListNamespace() != DefaultNamespace {
		t.Fatalf("ListNamespace")
	}
}
