package fsm

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func TestBoundChecks_KeepsOnlyWellFormedResults(t *testing.T) {
	ok := func(svc, check, status string) *structs.CheckStatus {
		return &structs.CheckStatus{Service: svc, Check: check, Status: status, Output: "HTTP 200", Timestamp: 7}
	}
	many := make(map[string]*structs.CheckStatus)
	for i := 0; i < maxAllocChecks+5; i++ {
		c := ok("web", fmt.Sprintf("c%04d", i), structs.ServiceStatusPassing)
		many[structs.CheckKey(c.Service, c.Check)] = c
	}
	cases := []struct {
		name     string
		in       map[string]*structs.CheckStatus
		wantKeys []string
	}{
		{"nil stays nil", nil, nil},
		{"good entries", map[string]*structs.CheckStatus{
			"web/a": ok("web", "a", "passing"), "web/b": ok("web", "b", "warning"), "web/c": ok("web", "c", "critical"),
		}, []string{"web/a", "web/b", "web/c"}},
		{"bad status dropped", map[string]*structs.CheckStatus{
			"web/a": ok("web", "a", "passing"), "web/b": ok("web", "b", "terminating"), "web/c": ok("web", "c", ""),
		}, []string{"web/a"}},
		{"null or misnamed dropped", map[string]*structs.CheckStatus{
			"web/a": nil, "web/b": ok("web", "other", "passing"), "x": ok("web", "x", "passing"),
		}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := boundChecks(tc.in)
			if tc.wantKeys == nil {
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
				return
			}
			var keys []string
			for k := range got {
				keys = append(keys, k)
			}
			if len(keys) != len(tc.wantKeys) {
				t.Fatalf("kept %v, want %v", keys, tc.wantKeys)
			}
			for _, k := range tc.wantKeys {
				if got[k] == nil {
					t.Fatalf("dropped %s; kept %v", k, keys)
				}
			}
		})
	}
	t.Run("at most maxAllocChecks, the first in key order", func(t *testing.T) {
		got := boundChecks(many)
		if len(got) != maxAllocChecks || got["web/c0000"] == nil || got[fmt.Sprintf("web/c%04d", maxAllocChecks)] != nil {
			t.Fatalf("kept %d", len(got))
		}
	})
	t.Run("output cut on a rune boundary", func(t *testing.T) {
		c := ok("web", "a", "critical")
		c.Output = strings.Repeat("x", maxCheckOutput-1) + "é" + strings.Repeat("y", 100)
		got := boundChecks(map[string]*structs.CheckStatus{"web/a": c})["web/a"]
		if len(got.Output) != maxCheckOutput-1 || strings.ContainsRune(got.Output, 'é') {
			t.Fatalf("output of %d bytes", len(got.Output))
		}
	})
}

// TestFSM_ClientUpdateStoresBoundedChecks: a client's check results
// reach the stored allocation bounded, the service instance takes its
// status from them, and a snapshot restore derives the same instances.
func TestFSM_ClientUpdateStoresBoundedChecks(t *testing.T) {
	h := newHarness(t)
	node := mock.Node()
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: node, UpdatedAt: 5})
	job := mock.Job()
	job.TaskGroups[0].Services = []*structs.Service{{
		Name: "web", PortLabel: "http",
		Checks: []*structs.ServiceCheck{{Name: "alive", Type: structs.ServiceCheckHTTP, Interval: time.Second, Timeout: time.Second}},
	}}
	alloc := mock.Alloc(job, node, 0)
	h.mustApply(structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Job: job, AllocsPlaced: []*structs.Allocation{alloc}})

	update := &structs.Allocation{ID: alloc.ID, ClientStatus: structs.AllocClientStatusRunning, Checks: map[string]*structs.CheckStatus{
		"web/alive": {Service: "web", Check: "alive", Status: structs.ServiceStatusWarning, Output: strings.Repeat("z", 4096)},
		"web/bogus": {Service: "web", Check: "bogus", Status: "maybe"},
	}}
	h.mustApply(structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{Alloc: []*structs.Allocation{update}, UpdatedAt: 7})
	stored, _ := h.fsm.State().AllocByID(nil, alloc.ID)
	if len(stored.Checks) != 1 || len(stored.Checks["web/alive"].Output) != maxCheckOutput {
		t.Fatalf("stored checks: %+v", stored.Checks)
	}
	inst, _ := h.fsm.State().ServiceInstancesByName(nil, "", "web")
	if len(inst) != 1 || inst[0].Status != structs.ServiceStatusWarning {
		t.Fatalf("instances: %+v", inst)
	}

	snap, err := h.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	restored := New(Config{})
	if err := restored.Restore(ioNopCloser{&sink.Buffer}); err != nil {
		t.Fatal(err)
	}
	after, _ := restored.State().ServiceInstancesByName(nil, "", "web")
	if !reflect.DeepEqual(inst, after) {
		t.Fatalf("instances before\n%+v\nafter restore\n%+v", inst[0], after)
	}
}
