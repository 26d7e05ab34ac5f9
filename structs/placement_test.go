package structs

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCanonicalize_GroupUpdateInheritsJobFields(t *testing.T) {
	j := validJob()
	j.Update = &UpdateStrategy{MaxParallel: 2, MinHealthyTime: 3 * time.Second, AutoRevert: true}
	j.TaskGroups[0].Update = &UpdateStrategy{Canary: 1}
	j.Canonicalize()
	u := j.TaskGroups[0].Update
	if u.MaxParallel != 2 || u.MinHealthyTime != 3*time.Second || !u.AutoRevert || u.Canary != 1 {
		t.Fatalf("group update did not merge with the job's: %+v", u)
	}
	if u.HealthyDeadline != DefaultUpdateHealthyDeadline {
		t.Fatalf("unset field not defaulted: %+v", u)
	}
	before := *u
	j.Canonicalize()
	if *j.TaskGroups[0].Update != before {
		t.Fatalf("canonicalize is not idempotent: %+v then %+v", before, *j.TaskGroups[0].Update)
	}
}

func TestCanonicalize_SpreadWeightDefaultsAtEveryLevel(t *testing.T) {
	j := validJob()
	j.Spreads = []*Spread{{Attribute: "${meta.rack}"}}
	j.TaskGroups[0].Spreads = []*Spread{{Attribute: "${node.datacenter}"}}
	j.Canonicalize()
	if j.Spreads[0].Weight != 50 || j.TaskGroups[0].Spreads[0].Weight != 50 {
		t.Fatalf("weights: job %d group %d, want 50", j.Spreads[0].Weight, j.TaskGroups[0].Spreads[0].Weight)
	}
}

func TestSpreadCopy_KeepsNilTargets(t *testing.T) {
	s := &Spread{Attribute: "${meta.rack}", Weight: 10}
	if c := s.Copy(); !reflect.DeepEqual(c, s) {
		t.Fatalf("copy %+v differs from %+v", c, s)
	}
	s.SpreadTarget = []*SpreadTarget{{Value: "r1", Percent: 50}}
	c := s.Copy()
	c.SpreadTarget[0].Percent = 10
	if s.SpreadTarget[0].Percent != 50 {
		t.Fatal("copy shares targets with the original")
	}
}

func TestValidate_PlacementValues(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(j *Job)
		wantErr string // "" means valid
	}{
		{"interpolated version", func(j *Job) {
			j.Constraints = []*Constraint{{LTarget: "${attr.kernel.version}", RTarget: ">= ${meta.min}", Operand: ConstraintVersion}}
		}, ""},
		{"bad version", func(j *Job) {
			j.Constraints = []*Constraint{{LTarget: "${attr.kernel.version}", RTarget: "banana", Operand: ConstraintVersion}}
		}, "Constraints[0].RTarget"},
		{"affinity bad version", func(j *Job) {
			j.Affinities = []*Affinity{{LTarget: "${attr.kernel.version}", RTarget: "??", Operand: ConstraintVersion, Weight: 10}}
		}, "Affinities[0].RTarget"},
		{"affinity bad regexp", func(j *Job) {
			j.Affinities = []*Affinity{{LTarget: "${node.name}", RTarget: "(", Operand: ConstraintRegex, Weight: 10}}
		}, "Affinities[0].RTarget"},
		{"group spread in system job", func(j *Job) {
			j.Type = JobTypeSystem
			j.TaskGroups[0].Spreads = []*Spread{{Attribute: "${meta.rack}", Weight: 50}}
		}, "TaskGroups[0].Spreads"},
		{"bad node pool", func(j *Job) { j.NodePool = "no spaces please" }, "NodePool"},
		{"good node pool", func(j *Job) { j.NodePool = "gpu-a.1" }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := validJob()
			tc.mutate(j)
			err := j.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one at %s", err, tc.wantErr)
			}
		})
	}
}
