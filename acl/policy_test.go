package acl

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse_Accepts(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want *Policy
	}{
		{
			name: "namespace policy and capabilities",
			src: `namespace "team-a" {
  policy       = "write"
  capabilities = ["alloc-exec"]
}`,
			want: &Policy{Namespaces: []*NamespaceRule{{Name: "team-a", Policy: PolicyWrite, Capabilities: []string{CapabilityAllocExec}}}},
		},
		{
			name: "globs and every rule block",
			src: `
namespace "*" { policy = "read" }
namespace "team-*" { capabilities = ["submit-job", "read-logs"] }
node     { policy = "read" }
agent    { policy = "write" }
operator { policy = "deny" }
quota    { policy = "read" }
`,
			want: &Policy{
				Namespaces: []*NamespaceRule{
					{Name: "*", Policy: PolicyRead},
					{Name: "team-*", Capabilities: []string{CapabilitySubmitJob, CapabilityReadLogs}},
				},
				Node: PolicyRead, Agent: PolicyWrite, Operator: PolicyDeny, Quota: PolicyRead,
			},
		},
		{
			name: "scale and deny shorthands, reserved variables capabilities",
			src: `namespace "prod" { policy = "scale" }
namespace "ops" { policy = "deny" }
namespace "vars" { capabilities = ["list-variables", "read-variables", "write-variables", "destroy-variables"] }`,
			want: &Policy{Namespaces: []*NamespaceRule{
				{Name: "prod", Policy: PolicyScale},
				{Name: "ops", Policy: PolicyDeny},
				{Name: "vars", Capabilities: []string{CapabilityListVariables, CapabilityReadVariables, CapabilityWriteVariables, CapabilityDestroyVariables}},
			}},
		},
		{
			name: "only a node rule",
			src:  `node { policy = "write" }`,
			want: &Policy{Node: PolicyWrite},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("p.hcl", tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParse_RefusesWithPositions(t *testing.T) {
	cases := []struct {
		name string
		src  string
		// want is the first problem's full text: file:line:col: message.
		want string
	}{
		{"unknown capability", "namespace \"prod\" {\n  capabilities = [\"read-job\", \"sbumit-job\"]\n}",
			`p.hcl:2:31: unknown capability "sbumit-job" in namespace "prod"; accepted: deny, list-jobs, read-job, submit-job`},
		{"unknown namespace policy", "namespace \"prod\" {\n  policy = \"admin\"\n}",
			`p.hcl:2:12: unknown policy "admin" in namespace "prod"; accepted: deny, read, write, scale`},
		{"unknown node policy", `node { policy = "scale" }`,
			`p.hcl:1:17: unknown policy "scale" in node; accepted: deny, read, write`},
		{"unknown block", "\n\nsentinel { policy = \"read\" }",
			`p.hcl:3:1: unknown block "sentinel"; accepted blocks: namespace "NAME"`},
		{"top-level attribute", `policy = "read"`,
			`p.hcl:1:1: unexpected attribute "policy" at the top of the policy`},
		{"namespace without label", `namespace { policy = "read" }`,
			`p.hcl:1:1: a namespace block takes one label`},
		{"glob in the middle", `namespace "te*m" { policy = "read" }`,
			`p.hcl:1:11: namespace "te*m": a "*" may only end the name`},
		{"bad namespace name", `namespace "a b" { policy = "read" }`,
			`p.hcl:1:11: namespace "a b": a namespace name is 1-128 letters, digits and dashes`},
		{"namespace without policy or capabilities", `namespace "x" {}`,
			`p.hcl:1:1: namespace "x" sets neither policy nor capabilities`},
		{"unknown namespace attribute", `namespace "x" { polcy = "read" }`,
			`p.hcl:1:17: unknown attribute "polcy" in namespace "x"; accepted: policy, capabilities`},
		{"capabilities not a list", `namespace "x" { capabilities = "read-job" }`,
			`p.hcl:1:32: capabilities in namespace "x" must be a list of strings`},
		{"capability not a string", `namespace "x" { capabilities = [42] }`,
			`p.hcl:1:33: namespace "x" capabilities must be a string in quotes`},
		{"variables capability", `namespace "x" {
  variables {
    path "app/*" {
      capabilities = ["read", "submit-job"]
    }
  }
}`, `p.hcl:4:31: unknown capability "submit-job" in variables path "app/*"`},
		{"variables glob in the middle", `namespace "x" {
  variables {
    path "a*/b" { capabilities = ["read"] }
  }
}`, `p.hcl:3:10: variables path "a*/b": a "*" may only end the path`},
		{"duplicate namespace", "namespace \"x\" { policy = \"read\" }\nnamespace \"x\" { policy = \"write\" }",
			`p.hcl:2:11: namespace "x" appears twice in this policy`},
		{"duplicate node", "node { policy = \"read\" }\nnode { policy = \"write\" }",
			`p.hcl:2:1: node block appears twice in this policy`},
		{"node without policy", `node {}`,
			`p.hcl:1:1: node block without a policy`},
		{"node with label", `node "x" { policy = "read" }`,
			`p.hcl:1:6: a node block takes no label`},
		{"variable reference", `node { policy = var.x }`,
			`p.hcl:1:17: Variables not allowed`},
		{"empty policy", ``,
			`p.hcl:1:1: the policy has no rules and would grant nothing`},
		{"syntax error", `namespace "x" { policy = }`,
			`p.hcl:1:26: Invalid expression`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.hcl", tc.src)
			if err == nil {
				t.Fatal("parsed")
			}
			perr, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("error is %T, not *ParseError: %v", err, err)
			}
			if first := perr.Problems[0].String(); !strings.HasPrefix(first, tc.want) {
				t.Fatalf("first problem:\n  %s\nwant prefix:\n  %s", first, tc.want)
			}
		})
	}
}

func TestParse_ListsEveryProblemInSourceOrder(t *testing.T) {
	src := `node { policy = "nope" }
namespace "a" { capabilities = ["x", "read-job", "y"] }`
	_, err := Parse("p.hcl", src)
	if err == nil {
		t.Fatal("parsed")
	}
	perr := err.(*ParseError)
	var at []string
	for _, p := range perr.Problems {
		at = append(at, p.String()[:len("p.hcl:1:17")])
	}
	want := []string{"p.hcl:1:17", "p.hcl:2:33", "p.hcl:2:50"}
	if !reflect.DeepEqual(at, want) {
		t.Fatalf("problems at %v, want %v:\n%v", at, want, err)
	}
}

func TestNamespaceRule_ExpandedFollowsNomad(t *testing.T) {
	cases := []struct {
		policy string
		want   []string
	}{
		{PolicyDeny, []string{"deny"}},
		{PolicyRead, []string{"list-jobs", "read-job", "read-job-scaling"}},
		{PolicyWrite, []string{"alloc-exec", "alloc-lifecycle", "dispatch-job", "list-jobs", "read-fs", "read-job", "read-job-scaling", "read-logs", "scale-job", "submit-job"}},
		{PolicyScale, []string{"read-job-scaling", "scale-job"}},
	}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			got := (&NamespaceRule{Policy: tc.policy}).Expanded()
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	got := (&NamespaceRule{Policy: PolicyRead, Capabilities: []string{"read-job", "submit-job"}}).Expanded()
	want := []string{"list-jobs", "read-job", "read-job-scaling", "submit-job"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("policy plus capabilities: got %v, want %v", got, want)
	}
}
