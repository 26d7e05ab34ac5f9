package acl

import (
	"reflect"
	"testing"
)

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse("test.hcl", src)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestACL_AllowNamespaceMergeRules(t *testing.T) {
	type check struct {
		ns, capability string
		want           bool
	}
	cases := []struct {
		name     string
		policies []string
		checks   []check
	}{
		{
			name:     "read shorthand",
			policies: []string{`namespace "prod" { policy = "read" }`},
			checks: []check{
				{"prod", CapabilityReadJob, true},
				{"prod", CapabilityListJobs, true},
				{"prod", CapabilitySubmitJob, false},
				{"prod", CapabilityReadLogs, false},
				{"dev", CapabilityReadJob, false},
			},
		},
		{
			name:     "capabilities without policy",
			policies: []string{`namespace "prod" { capabilities = ["submit-job"] }`},
			checks: []check{
				{"prod", CapabilitySubmitJob, true},
				{"prod", CapabilityReadJob, false},
			},
		},
		{
			name: "grants from two policies unite",
			policies: []string{
				`namespace "prod" { policy = "read" }`,
				`namespace "prod" { capabilities = ["read-logs"] }`,
			},
			checks: []check{
				{"prod", CapabilityReadJob, true},
				{"prod", CapabilityReadLogs, true},
				{"prod", CapabilitySubmitJob, false},
			},
		},
		{
			name: "deny in one policy wins over write in another",
			policies: []string{
				`namespace "prod" { policy = "write" }`,
				`namespace "prod" { policy = "deny" }`,
			},
			checks: []check{
				{"prod", CapabilityReadJob, false},
				{"prod", CapabilitySubmitJob, false},
			},
		},
		{
			name: "deny capability in a list wins",
			policies: []string{
				"namespace \"prod\" {\n policy = \"write\"\n capabilities = [\"deny\"]\n}",
			},
			checks: []check{{"prod", CapabilityListJobs, false}},
		},
		{
			name: "exact name beats globs",
			policies: []string{
				`namespace "team-*" { policy = "write" }`,
				`namespace "team-secret" { policy = "deny" }`,
			},
			checks: []check{
				{"team-a", CapabilitySubmitJob, true},
				{"team-secret", CapabilityReadJob, false},
				{"other", CapabilityReadJob, false},
			},
		},
		{
			name: "longest glob prefix wins",
			policies: []string{
				`namespace "*" { policy = "read" }`,
				`namespace "team-*" { policy = "write" }`,
				`namespace "team-ops-*" { policy = "deny" }`,
			},
			checks: []check{
				{"default", CapabilityReadJob, true},
				{"default", CapabilitySubmitJob, false},
				{"team-a", CapabilitySubmitJob, true},
				{"team-ops-1", CapabilityReadJob, false},
				{"team-", CapabilitySubmitJob, true},
			},
		},
		{
			name: "a specific rule does not inherit from a glob",
			policies: []string{
				`namespace "*" { policy = "write" }`,
				`namespace "prod" { policy = "read" }`,
			},
			checks: []check{
				{"prod", CapabilitySubmitJob, false},
				{"prod", CapabilityReadJob, true},
				{"dev", CapabilitySubmitJob, true},
			},
		},
		{
			name:     "no policies allow nothing",
			policies: nil,
			checks:   []check{{"default", CapabilityListJobs, false}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ps []*Policy
			for _, src := range tc.policies {
				ps = append(ps, mustParse(t, src))
			}
			a := Compile(ps...)
			if a.IsManagement() {
				t.Fatal("a compiled ACL is management")
			}
			for _, c := range tc.checks {
				if got := a.AllowNamespace(c.ns, c.capability); got != c.want {
					t.Errorf("AllowNamespace(%q, %q) = %v, want %v", c.ns, c.capability, got, c.want)
				}
			}
		})
	}
}

func TestACL_RuleLevelsMerge(t *testing.T) {
	type allows struct{ read, write bool }
	cases := []struct {
		name     string
		policies []string
		want     allows // of the node rule
	}{
		{"none", []string{`agent { policy = "write" }`}, allows{false, false}},
		{"read", []string{`node { policy = "read" }`}, allows{true, false}},
		{"write implies read", []string{`node { policy = "write" }`}, allows{true, true}},
		{"read and write merge to write", []string{`node { policy = "read" }`, `node { policy = "write" }`}, allows{true, true}},
		{"deny wins over write", []string{`node { policy = "write" }`, `node { policy = "deny" }`}, allows{false, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ps []*Policy
			for _, src := range tc.policies {
				ps = append(ps, mustParse(t, src))
			}
			a := Compile(ps...)
			got := allows{a.AllowNodeRead(), a.AllowNodeWrite()}
			if got != tc.want {
				t.Fatalf("node read/write = %+v, want %+v", got, tc.want)
			}
		})
	}

	// Each rule reads its own block.
	a := Compile(mustParse(t, `agent { policy = "read" }
operator { policy = "write" }
quota { policy = "read" }`))
	got := []bool{a.AllowNodeRead(), a.AllowAgentRead(), a.AllowAgentWrite(), a.AllowOperatorRead(), a.AllowOperatorWrite(), a.AllowQuotaRead(), a.AllowQuotaWrite()}
	want := []bool{false, true, false, true, true, true, false}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("node r, agent r/w, operator r/w, quota r/w = %v, want %v", got, want)
	}
}

func TestACL_ManagementAllowsEverything(t *testing.T) {
	m := ManagementACL()
	if !m.IsManagement() {
		t.Fatal("not management")
	}
	for _, c := range NamespaceCapabilities[1:] {
		if !m.AllowNamespace("any", c) {
			t.Errorf("management denied %s", c)
		}
	}
	if !(m.AllowNodeWrite() && m.AllowAgentWrite() && m.AllowOperatorWrite() && m.AllowQuotaWrite() && m.AllowNodeRead()) {
		t.Fatal("management denied a rule")
	}
}

func TestACL_NilAllowsNothing(t *testing.T) {
	var a *ACL
	if a.IsManagement() || a.AllowNamespace("default", CapabilityReadJob) || a.AllowNodeRead() || a.AllowAgentRead() || a.AllowOperatorRead() || a.AllowQuotaRead() {
		t.Fatal("a nil ACL allowed something")
	}
	if caps := a.NamespaceCapabilities("default"); len(caps) != 0 {
		t.Fatalf("nil ACL capabilities: %v", caps)
	}
}

func TestACL_NamespaceCapabilities(t *testing.T) {
	a := Compile(mustParse(t, `namespace "prod" {
  policy       = "read"
  capabilities = ["read-logs"]
}
namespace "gone" { policy = "deny" }`))
	if got, want := a.NamespaceCapabilities("prod"), []string{"list-jobs", "read-job", "read-job-scaling", "read-logs"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("prod: %v, want %v", got, want)
	}
	if got := a.NamespaceCapabilities("gone"); len(got) != 0 {
		t.Fatalf("denied namespace: %v", got)
	}
}

func TestACL_AllowVariable(t *testing.T) {
	p, err := Parse("p.hcl", (`
namespace "team-a" {
  variables {
    path "*" { capabilities = ["list"] }
    path "app/*" { capabilities = ["read", "list"] }
    path "app/secret" { capabilities = ["deny"] }
    path "app/rw/*" { capabilities = ["read", "write", "destroy"] }
  }
}
namespace "team-b" {
  capabilities = ["read-variables"]
  variables {
    path "locked/*" { capabilities = ["deny"] }
  }
}
namespace "team-*" {
  variables {
    path "*" { capabilities = ["read", "write"] }
  }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := Compile(p)
	cases := []struct {
		ns, path, cap string
		want          bool
	}{
		{"team-a", "app/config", "read", true},
		{"team-a", "app/config", "write", false},
		{"team-a", "app/secret", "read", false},
		{"team-a", "app/secret", "list", false},
		{"team-a", "app/rw/x", "write", true},
		{"team-a", "app/rw/x", "destroy", true},
		{"team-a", "other", "read", false},
		{"team-a", "other", "list", true},
		{"team-b", "anything", "read", true},
		{"team-b", "anything", "write", false},
		{"team-b", "locked/k", "read", false},
		// team-c is governed by the glob; the exact rules of team-a do
		// not leak into it.
		{"team-c", "x", "write", true},
		{"team-c", "x", "destroy", false},
		{"prod", "x", "read", false},
	}
	for _, c := range cases {
		if got := a.AllowVariable(c.ns, c.path, c.cap); got != c.want {
			t.Errorf("AllowVariable(%s, %s, %s) = %v, want %v", c.ns, c.path, c.cap, got, c.want)
		}
	}
	if !a.AllowAnyVariables("team-a") || a.AllowAnyVariables("prod") || a.AllowAnyVariables("team-b") {
		t.Errorf("AllowAnyVariables: team-a %v (want true), prod %v, team-b %v (want false: read-variables without list)",
			a.AllowAnyVariables("team-a"), a.AllowAnyVariables("prod"), a.AllowAnyVariables("team-b"))
	}
	if !ManagementACL().AllowVariable("x", "y", "destroy") {
		t.Error("management may not destroy a variable")
	}
	var none *ACL
	if none.AllowVariable("team-a", "app/config", "read") {
		t.Error("a nil ACL allows a read")
	}
}
