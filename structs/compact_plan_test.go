package structs

import (
	"math/rand"
	"reflect"
	"testing"
)

// filledPlan is a plan with every kind of content: allocations with
// every field set in all three maps, one of the plan's job and one with
// its own, a node with a nil list and a nil entry, a deployment, its
// updates and annotations.
func filledPlan(rnd *rand.Rand) *Plan {
	job := &Job{ID: "j", Name: "j", Namespace: "ns", Version: 3, TaskGroups: []*TaskGroup{{Name: "web", Count: 2}}}
	shared, own := filledAlloc(rnd), filledAlloc(rnd)
	shared.Job = job
	own.Job = &Job{ID: "j", Name: "j", Version: 2}
	return &Plan{
		EvalID: "e1", EvalToken: "tok", Priority: 70, Job: job,
		NodeUpdate:      map[string][]*Allocation{"n2": {filledAlloc(rnd)}, "n1": {filledAlloc(rnd), nil}},
		NodeAllocation:  map[string][]*Allocation{"n1": {shared, own, filledAlloc(rnd)}, "n3": nil},
		NodePreemptions: map[string][]*Allocation{"n4": {filledAlloc(rnd)}},
		Deployment:      &Deployment{ID: "d", JobID: "j", Status: "running", TaskGroups: map[string]*DeploymentState{"web": {DesiredTotal: 2}}},
		DeploymentUpdates: []*DeploymentStatusUpdate{
			{DeploymentID: "d0", Status: "cancelled", StatusDescription: "superseded"}, nil,
		},
		Annotations:   &PlanAnnotations{DesiredTGUpdates: map[string]*DesiredUpdates{"web": {Place: 2, Stop: 1}}},
		SnapshotIndex: 42,
	}
}

// TestCompactPlan_RoundTrip requires a plan and its result to decode from
// the compact form exactly as from msgpack (what the leader and the
// follower decoded before), with the plan's job shared by the
// allocations that pointed to it.
func TestCompactPlan_RoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewSource(7))
	for i := 0; i < 10; i++ {
		plan := filledPlan(rnd)
		buf, err := EncodeCompactPlan(plan)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCompactPlan(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, plan) {
			t.Fatalf("decoded plan differs from the input")
		}
		if !reflect.DeepEqual(got, msgpackRoundTrip(t, 0, plan)) {
			t.Fatalf("decoded plan differs from its msgpack decoding")
		}
		if got.NodeAllocation["n1"][0].Job != got.Job || got.NodeAllocation["n1"][1].Job == got.Job {
			t.Fatalf("the plan's job is not shared exactly by the allocations that pointed to it")
		}
		if old, err := Encode(0, plan); err == nil && len(buf) >= len(old) {
			t.Fatalf("compact plan %d bytes, msgpack %d: not smaller", len(buf), len(old))
		}

		res := &PlanResult{
			NodeUpdate: plan.NodeUpdate, NodeAllocation: plan.NodeAllocation, NodePreemptions: plan.NodePreemptions,
			Deployment: plan.Deployment, DeploymentUpdates: plan.DeploymentUpdates,
			RejectedNodes: []string{"n5"}, RefreshIndex: 9, AllocIndex: 10,
		}
		buf, err = EncodeCompactPlanResult(res, plan.Job)
		if err != nil {
			t.Fatal(err)
		}
		gotRes, err := DecodeCompactPlanResult(buf, plan.Job)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotRes, res) || !reflect.DeepEqual(gotRes, msgpackRoundTrip(t, 0, res)) {
			t.Fatalf("decoded plan result differs")
		}
		if gotRes.NodeAllocation["n1"][0].Job != plan.Job {
			t.Fatalf("a result allocation of the plan's job does not point to the plan's job")
		}
		// Without the plan's job, a reference to it is corrupt.
		if _, err := DecodeCompactPlanResult(buf, nil); err == nil {
			t.Fatalf("a result referring to the plan's job decoded without it")
		}
	}
	for _, empty := range []*Plan{{}, {NodeAllocation: map[string][]*Allocation{}}} {
		buf, err := EncodeCompactPlan(empty)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCompactPlan(buf)
		if err != nil || !reflect.DeepEqual(got, empty) {
			t.Fatalf("empty plan %+v: got %+v, %v", empty, got, err)
		}
	}
	if _, err := EncodeCompactPlan(nil); err == nil {
		t.Fatal("a nil plan encoded")
	}
	if _, err := EncodeCompactPlanResult(nil, nil); err == nil {
		t.Fatal("a nil result encoded")
	}
}

// TestCompactPlan_RefusesCorruptInput cuts and alters a plan's encoding:
// every prefix and every single-byte change either fails to decode or
// decodes to a plan that encodes back to the same bytes (never a panic).
func TestCompactPlan_RefusesCorruptInput(t *testing.T) {
	buf, err := EncodeCompactPlan(filledPlan(rand.New(rand.NewSource(8))))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(buf); n++ {
		if _, err := DecodeCompactPlan(buf[:n]); err == nil {
			t.Fatalf("a plan cut to %d of %d bytes decoded", n, len(buf))
		}
	}
	for i := 0; i < len(buf); i += 7 {
		bad := append([]byte(nil), buf...)
		bad[i] ^= 0x5a
		p, err := DecodeCompactPlan(bad)
		if err != nil {
			continue
		}
		again, err := EncodeCompactPlan(p)
		if err != nil {
			t.Fatalf("byte %d changed: decoded, but does not encode: %v", i, err)
		}
		if p2, err := DecodeCompactPlan(again); err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("byte %d changed: decoded plan does not survive a round trip: %v", i, err)
		}
	}
}
