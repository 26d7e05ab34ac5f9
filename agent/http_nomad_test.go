package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/structs"
)

// TestNomadShapes_TimesDecodeInBothClients: the times Drover encodes as
// Nomad does (RFC 3339 strings) decode in Nomad's client to the same
// instant, and in Drover's own client back to Unix nanoseconds; an unset
// time (0) is Go's zero time for Nomad and 0 for Drover.
func TestNomadShapes_TimesDecodeInBothClients(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 11, 12, 123456789, time.UTC).UnixNano()
	decode := func(t *testing.T, v interface{}, nomadOut, droverOut interface{}) {
		t.Helper()
		buf, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(buf, nomadOut); err != nil {
			t.Fatalf("Nomad's client cannot decode %s: %v", buf, err)
		}
		if err := json.Unmarshal(buf, droverOut); err != nil {
			t.Fatalf("Drover's client cannot decode %s: %v", buf, err)
		}
	}
	for _, n := range []int64{at, 0} {
		want := time.Time{}
		if n != 0 {
			want = time.Unix(0, n)
		}
		t.Run("Evaluation", func(t *testing.T) {
			var ne nomad.Evaluation
			var de api.Evaluation
			decode(t, &structs.Evaluation{ID: "e", WaitUntil: n, CreateTime: at}, &ne, &de)
			if !ne.WaitUntil.Equal(want) || de.WaitUntil != n || ne.CreateTime != at || de.CreateTime != at || ne.ID != "e" {
				t.Fatalf("Nomad %v/%d, Drover %d/%d; want %v", ne.WaitUntil, ne.CreateTime, de.WaitUntil, de.CreateTime, want)
			}
		})
		t.Run("Node drivers and drain", func(t *testing.T) {
			var nn nomad.Node
			var dn api.Node
			decode(t, &structs.Node{ID: "n", Drivers: map[string]*structs.DriverInfo{"containerd": {Detected: true, UpdateTime: n}},
				DrainStrategy: &structs.DrainStrategy{Deadline: time.Minute, StartedAt: n, ForceDeadline: n}}, &nn, &dn)
			if !nn.Drivers["containerd"].UpdateTime.Equal(want) || dn.Drivers["containerd"].UpdateTime != n || !nn.Drivers["containerd"].Detected {
				t.Fatalf("driver UpdateTime: Nomad %v, Drover %d", nn.Drivers["containerd"].UpdateTime, dn.Drivers["containerd"].UpdateTime)
			}
			if !nn.DrainStrategy.StartedAt.Equal(want) || !nn.DrainStrategy.ForceDeadline.Equal(want) || nn.DrainStrategy.Deadline != time.Minute ||
				dn.DrainStrategy.StartedAt != n || dn.DrainStrategy.ForceDeadline != n {
				t.Fatalf("drain: Nomad %+v, Drover %+v", nn.DrainStrategy, dn.DrainStrategy)
			}
		})
		t.Run("Deployment", func(t *testing.T) {
			var nd nomad.Deployment
			var dd api.Deployment
			decode(t, &structs.Deployment{ID: "d", TaskGroups: map[string]*structs.DeploymentState{"g": {DesiredTotal: 2, RequireProgressBy: n}}}, &nd, &dd)
			if !nd.TaskGroups["g"].RequireProgressBy.Equal(want) || dd.TaskGroups["g"].RequireProgressBy != n || nd.TaskGroups["g"].DesiredTotal != 2 {
				t.Fatalf("RequireProgressBy: Nomad %v, Drover %d", nd.TaskGroups["g"].RequireProgressBy, dd.TaskGroups["g"].RequireProgressBy)
			}
		})
		t.Run("Allocation deployment status", func(t *testing.T) {
			healthy := true
			var na nomad.AllocationListStub
			var da api.Allocation
			decode(t, &structs.AllocListStub{ID: "a", DeploymentStatus: &structs.AllocDeploymentStatus{Healthy: &healthy, Timestamp: n}}, &na, &da)
			if !na.DeploymentStatus.Timestamp.Equal(want) || da.DeploymentStatus.Timestamp != n || !*na.DeploymentStatus.Healthy {
				t.Fatalf("Timestamp: Nomad %v, Drover %d", na.DeploymentStatus.Timestamp, da.DeploymentStatus.Timestamp)
			}
		})
	}
}

// TestNomadShapes_OldNumericTimesStillDecode: Drover's client reads an
// agent that still sends Unix nanoseconds (a rolling upgrade).
func TestNomadShapes_OldNumericTimesStillDecode(t *testing.T) {
	var e api.Evaluation
	if err := json.Unmarshal([]byte(`{"ID":"e","WaitUntil":42}`), &e); err != nil || e.WaitUntil != 42 {
		t.Fatalf("%+v %v", e, err)
	}
	if err := json.Unmarshal([]byte(`{"ID":"e","WaitUntil":{"x":1}}`), &e); err == nil {
		t.Fatal("an object for a time was accepted")
	}
}

func TestNomadSummary_CountsAllocationsPerGroup(t *testing.T) {
	job := &structs.Job{ID: "web", Namespace: "default", TaskGroups: []*structs.TaskGroup{{Name: "a"}, {Name: "b"}}, CreateIndex: 3, ModifyIndex: 9}
	allocs := []*structs.AllocListStub{
		{TaskGroup: "a", ClientStatus: structs.AllocClientStatusRunning},
		{TaskGroup: "a", ClientStatus: structs.AllocClientStatusRunning},
		{TaskGroup: "a", ClientStatus: structs.AllocClientStatusFailed},
		{TaskGroup: "a", ClientStatus: structs.AllocClientStatusPending},
		{TaskGroup: "a", ClientStatus: structs.AllocClientStatusComplete},
		{TaskGroup: "a", ClientStatus: structs.AllocClientStatusLost},
	}
	evals := []*structs.Evaluation{
		{CreateIndex: 4, QueuedAllocations: map[string]int{"a": 5, "b": 5}},
		{CreateIndex: 8, QueuedAllocations: map[string]int{"b": 2, "gone": 1}},
	}
	sum := buildJobSummary(job, allocs, evals)
	want := map[string]NomadTaskGroupSummary{
		"a": {Running: 2, Failed: 1, Starting: 1, Complete: 1, Lost: 1},
		"b": {Queued: 2},
	}
	if len(sum.Summary) != 2 || sum.Summary["a"] != want["a"] || sum.Summary["b"] != want["b"] || sum.CreateIndex != 3 || sum.Children == nil {
		t.Fatalf("summary %+v, want %+v", sum, want)
	}
}

// TestNomadScale_RefusesMalformedRequests: every malformed scale body is
// a 400 naming the field, decided before any RPC (this agent has no
// server: a request that got as far as an RPC would fail otherwise).
func TestNomadScale_RefusesMalformedRequests(t *testing.T) {
	a := httpAgent(nil)
	h := a.routes()
	cases := []struct{ name, body, want string }{
		{"no count", `{"Target":{"Group":"g"}}`, `"Path":"Count"`},
		{"negative", `{"Count":-1,"Target":{"Group":"g"}}`, "out of range"},
		{"huge", `{"Count":9223372036854775807,"Target":{"Group":"g"}}`, "out of range"},
		{"no group", `{"Count":1}`, `Target[\"Group\"]`},
		{"other job", `{"Count":1,"Target":{"Group":"g","Job":"other"}}`, "does not match job"},
		{"unknown target", `{"Count":1,"Target":{"Group":"g","Task":"t"}}`, "unknown scaling target"},
		{"error event", `{"Count":1,"Error":true,"Target":{"Group":"g"}}`, "scaling events"},
		{"unknown field", `{"Count":1,"Target":{"Group":"g"},"Bogus":1}`, "unknown field"},
		{"not json", `{"Count":`, "not valid JSON"},
		{"other region", `{"Count":1,"Target":{"Group":"g"},"Region":"eu"}`, "regions other than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("PUT", "/v1/job/web/scale", strings.NewReader(tc.body)))
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("status %d body %s; want 400 with %q", rec.Code, rec.Body.String(), tc.want)
			}
		})
	}
}

func TestNomadParse_RefusesBadRequests(t *testing.T) {
	a := httpAgent(nil)
	h := a.routes()
	cases := []struct{ name, body, want string }{
		{"empty", `{}`, "JobHCL"},
		{"hcl1", `{"JobHCL":"job \"x\" {}","hclv1":true}`, "HCL1"},
		{"variables", `{"JobHCL":"job \"x\" {}","Variables":"a = 1"}`, "variables are not supported"},
		{"broken hcl", `{"JobHCL":"job \"x\" { bogus = 1 }"}`, "job.hcl:1"},
		// The agent never reads a file a job names: a template's
		// source is the CLI's to read.
		{"template source", `{"JobHCL":"job \"x\" {\n group \"g\" {\n task \"t\" {\n template {\n source = \"/etc/hostname\"\n destination = \"local/x\"\n }\n }\n }\n }\n"}`, "Template source not read here"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("PUT", "/v1/jobs/parse", strings.NewReader(tc.body)))
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("status %d body %s; want 400 with %q", rec.Code, rec.Body.String(), tc.want)
			}
		})
	}
}

func TestNomadRegions_OneRegion(t *testing.T) {
	rec := httptest.NewRecorder()
	httpAgent(nil).routes().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/regions", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `["global"]` {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}
