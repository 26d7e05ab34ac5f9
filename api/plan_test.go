package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// planServer answers /v1/job/<id>/plan with reply and records the
// request.
type planServer struct {
	method, path string
	body         map[string]json.RawMessage
}

func (p *planServer) start(t *testing.T, status int, reply string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.method, p.path = r.Method, r.URL.EscapedPath()
		raw, _ := io.ReadAll(r.Body)
		p.body = nil
		if err := json.Unmarshal(raw, &p.body); err != nil {
			t.Errorf("request body is not a JSON object: %v: %s", err, raw)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(&Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const planReply = `{
  "Annotations": {
    "DesiredTGUpdates": {"web": {"Place": 1, "InPlaceUpdate": 2, "Ignore": 0}},
    "PreemptedAllocs": [{"ID": "a1b2c3d4-0000", "JobID": "batch", "TaskGroup": "work", "NodeID": "n1"}]
  },
  "FailedTGAllocs": {"cache": {"NodesEvaluated": 3, "NodesExhausted": 3, "DimensionExhausted": {"memory": 3}, "CoalescedFailures": 1}},
  "JobModifyIndex": 7,
  "Diff": {
    "Type": "Edited", "ID": "web",
    "Fields": null,
    "Objects": null,
    "TaskGroups": [{
      "Type": "Edited", "Name": "web",
      "Fields": [{"Type": "Edited", "Name": "Count", "Old": "2", "New": "3", "Annotations": ["forces create"]}],
      "Objects": [{"Type": "Added", "Name": "Network", "Fields": [{"Type": "Added", "Name": "Mode", "Old": "", "New": "host", "Annotations": null}],
                   "Objects": [{"Type": "Added", "Name": "Dynamic Port", "Fields": [], "Objects": null}]}],
      "Tasks": [{"Type": "None", "Name": "server", "Fields": null, "Objects": null, "Annotations": null}],
      "Updates": {"create": 1}
    }]
  },
  "CreatedEvals": [{"ID": "e1", "TriggeredBy": "rolling-update"}],
  "Index": 12
}`

func TestJobsPlan_RequestAndResponse(t *testing.T) {
	var ps planServer
	c := ps.start(t, http.StatusOK, planReply)

	job := &Job{ID: "web.v1", Name: "web", TaskGroups: []*TaskGroup{{Name: "web", Count: 3}}}
	resp, err := c.Jobs().Plan(job, true)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}

	if ps.method != http.MethodPut || ps.path != "/v1/job/web.v1/plan" {
		t.Errorf("request %s %s, want PUT /v1/job/web.v1/plan", ps.method, ps.path)
	}
	if string(ps.body["Diff"]) != "true" {
		t.Errorf("Diff = %s, want true", ps.body["Diff"])
	}
	var sent Job
	if err := json.Unmarshal(ps.body["Job"], &sent); err != nil || sent.ID != "web.v1" || len(sent.TaskGroups) != 1 || sent.TaskGroups[0].Count != 3 {
		t.Errorf("Job = %s (%v)", ps.body["Job"], err)
	}

	want := &JobPlanResponse{
		Annotations: &PlanAnnotations{
			DesiredTGUpdates: map[string]*DesiredUpdates{"web": {Place: 1, InPlaceUpdate: 2}},
			PreemptedAllocs:  []*AllocationListStub{{ID: "a1b2c3d4-0000", JobID: "batch", TaskGroup: "work", NodeID: "n1"}},
		},
		FailedTGAllocs: map[string]*AllocMetric{"cache": {NodesEvaluated: 3, NodesExhausted: 3, DimensionExhausted: map[string]int{"memory": 3}, CoalescedFailures: 1}},
		JobModifyIndex: 7,
		Diff: &JobDiff{
			Type: DiffTypeEdited, ID: "web",
			TaskGroups: []*TaskGroupDiff{{
				Type: DiffTypeEdited, Name: "web",
				Fields: []*FieldDiff{{Type: DiffTypeEdited, Name: "Count", Old: "2", New: "3", Annotations: []string{"forces create"}}},
				Objects: []*ObjectDiff{{
					Type: DiffTypeAdded, Name: "Network",
					Fields:  []*FieldDiff{{Type: DiffTypeAdded, Name: "Mode", New: "host"}},
					Objects: []*ObjectDiff{{Type: DiffTypeAdded, Name: "Dynamic Port", Fields: []*FieldDiff{}}},
				}},
				Tasks:   []*TaskDiff{{Type: DiffTypeNone, Name: "server"}},
				Updates: map[string]uint64{"create": 1},
			}},
		},
		CreatedEvals: []*Evaluation{{ID: "e1", TriggeredBy: "rolling-update"}},
	}
	if !reflect.DeepEqual(resp, want) {
		got, _ := json.MarshalIndent(resp, "", " ")
		exp, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("response mismatch\ngot:  %s\nwant: %s", got, exp)
	}
}

func TestJobsPlan_JobIDFromAnyValue(t *testing.T) {
	// The CLI passes its parsed job, a type this package does not know.
	type otherJob struct {
		ID   string
		Type string
	}
	cases := []struct {
		name     string
		job      interface{}
		diff     bool
		wantPath string
		wantErr  string
	}{
		{name: "struct", job: &otherJob{ID: "batch", Type: "batch"}, wantPath: "/v1/job/batch/plan"},
		{name: "map", job: map[string]interface{}{"ID": "svc", "Priority": 50}, diff: true, wantPath: "/v1/job/svc/plan"},
		{name: "no ID", job: &otherJob{Type: "batch"}, wantErr: "no ID"},
		{name: "nil", job: nil, wantErr: "no job"},
		{name: "nil api job", job: (*Job)(nil), wantErr: "no job"},
		{name: "not an object", job: []string{"x"}, wantErr: "JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ps planServer
			c := ps.start(t, http.StatusOK, `{"JobModifyIndex": 0}`)
			resp, err := c.Jobs().Plan(tc.job, tc.diff)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if ps.path != "" {
					t.Fatalf("sent a request to %s", ps.path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ps.path != tc.wantPath {
				t.Errorf("path %s, want %s", ps.path, tc.wantPath)
			}
			if got := string(ps.body["Diff"]); got != map[bool]string{true: "true", false: "false"}[tc.diff] {
				t.Errorf("Diff = %s", got)
			}
			if resp.Diff != nil || resp.Annotations != nil {
				t.Errorf("unexpected response %+v", resp)
			}
		})
	}
}

func TestJobsPlan_Error(t *testing.T) {
	var ps planServer
	c := ps.start(t, http.StatusBadRequest, `{"Code": "invalid_request", "Error": "job is invalid", "Problems": [{"Path": "TaskGroups[0].Count", "Message": "negative"}]}`)
	_, err := c.Jobs().Plan(&Job{ID: "web"}, false)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || len(apiErr.Problems) != 1 {
		t.Fatalf("err = %#v, want an *Error with the problems", err)
	}
}
