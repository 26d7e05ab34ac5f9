package agent

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// webJSON is the body of a registration of job "web" with count, in
// namespace ns ("" names none).
func webJSON(t *testing.T, ns string, count int) string {
	t.Helper()
	j := mock.Job()
	j.ID, j.Name, j.Namespace = "web", "web", ns
	j.TaskGroups[0].Count = count
	j.TaskGroups[0].Networks = nil
	j.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64}
	buf, err := json.Marshal(map[string]interface{}{"Job": j})
	if err != nil {
		t.Fatal(err)
	}
	return string(buf)
}

func TestNamespaceHTTP_Routes(t *testing.T) {
	a := aclAgent(t, false)
	h := a.routes()
	mustCall := func(method, path, body string, want int) string {
		t.Helper()
		code, out := call(t, h, method, path, body, nil)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
		}
		return out
	}

	mustCall("PUT", "/v1/namespace/team-a", `{"Description":"Team A","Quota":"small","Meta":{"owner":"a"}}`, http.StatusOK)
	// Nomad's other form: the name in the body.
	mustCall("POST", "/v1/namespace", `{"Name":"team-b","Description":"Team B"}`, http.StatusOK)

	got := decodeAs[structs.Namespace](t, mustCall("GET", "/v1/namespace/team-a", "", http.StatusOK))
	if got.Name != "team-a" || got.Description != "Team A" || got.Quota != "small" || got.Meta["owner"] != "a" {
		t.Fatalf("team-a: %+v", got)
	}
	list := decodeAs[[]*structs.Namespace](t, mustCall("GET", "/v1/namespaces", "", http.StatusOK))
	if len(list) != 3 || list[0].Name != "default" || list[1].Name != "team-a" || list[2].Name != "team-b" {
		t.Fatalf("namespaces: %+v", list)
	}

	// "web" in both namespaces, different counts; the request's
	// namespace places a job that names none.
	mustCall("PUT", "/v1/jobs", webJSON(t, "team-a", 1), http.StatusOK)
	mustCall("PUT", "/v1/jobs?namespace=team-b", webJSON(t, "", 2), http.StatusOK)
	for ns, count := range map[string]int{"team-a": 1, "team-b": 2} {
		job := decodeAs[structs.Job](t, mustCall("GET", "/v1/job/web?namespace="+ns, "", http.StatusOK))
		if job.Namespace != ns || job.TaskGroups[0].Count != count {
			t.Fatalf("%s: namespace %q count %d", ns, job.Namespace, job.TaskGroups[0].Count)
		}
		evals := decodeAs[[]*structs.Evaluation](t, mustCall("GET", "/v1/job/web/evaluations?namespace="+ns, "", http.StatusOK))
		if len(evals) != 1 || evals[0].Namespace != ns {
			t.Fatalf("%s evaluations: %+v", ns, evals)
		}
	}
	if _, out := call(t, h, "GET", "/v1/job/web", "", nil); !strings.Contains(out, `job \"web\" not found in namespace \"default\"`) {
		t.Fatalf("web in the default namespace: %s", out)
	}
	stubs := decodeAs[[]*structs.JobListStub](t, mustCall("GET", "/v1/jobs?namespace=*", "", http.StatusOK))
	if len(stubs) != 2 || stubs[0].Namespace != "team-a" || stubs[1].Namespace != "team-b" {
		t.Fatalf("jobs of every namespace: %+v", stubs)
	}
	if stubs := decodeAs[[]*structs.JobListStub](t, mustCall("GET", "/v1/jobs?namespace=team-b", "", http.StatusOK)); len(stubs) != 1 {
		t.Fatalf("jobs of team-b: %+v", stubs)
	}
	if stubs := decodeAs[[]*structs.JobListStub](t, mustCall("GET", "/v1/jobs", "", http.StatusOK)); len(stubs) != 0 {
		t.Fatalf("jobs of the default namespace: %+v", stubs)
	}
	if evals := decodeAs[[]*structs.Evaluation](t, mustCall("GET", "/v1/evaluations?namespace=*", "", http.StatusOK)); len(evals) != 2 {
		t.Fatalf("evaluations of every namespace: %d", len(evals))
	}
	mustCall("GET", "/v1/allocations?namespace=*", "", http.StatusOK)
	mustCall("GET", "/v1/deployments?namespace=*", "", http.StatusOK)

	// A namespace with a job cannot be deleted: 409 with the count; the
	// default namespace never: 400.
	code, out := call(t, h, "DELETE", "/v1/namespace/team-a", "", nil)
	if code != http.StatusConflict || !strings.Contains(out, `"Code":"conflict"`) || !strings.Contains(out, `namespace \"team-a\" has 1 job (web)`) {
		t.Fatalf("delete team-a with a job: %d %s", code, out)
	}
	if code, out := call(t, h, "DELETE", "/v1/namespace/default", "", nil); code != http.StatusBadRequest || !strings.Contains(out, "cannot be deleted") {
		t.Fatalf("delete default: %d %s", code, out)
	}
	// Purged, team-a may go.
	mustCall("DELETE", "/v1/job/web?namespace=team-a&purge=true", "", http.StatusOK)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		code, _ := call(t, h, "DELETE", "/v1/namespace/team-a", "", nil)
		return code == http.StatusOK, nil
	})
	if code, _ := call(t, h, "GET", "/v1/namespace/team-a", "", nil); code != http.StatusNotFound {
		t.Fatalf("team-a after delete: %d", code)
	}
	if job := decodeAs[structs.Job](t, mustCall("GET", "/v1/job/web?namespace=team-b", "", http.StatusOK)); job.Stop {
		t.Fatal("team-b's web was stopped with team-a's")
	}
}

// TestNamespaceHTTP_RefusesBadRequests: malformed and hostile requests
// get a 400/404 with a JSON error saying what is accepted, nothing is
// stored, and the agent goes on serving.
func TestNamespaceHTTP_RefusesBadRequests(t *testing.T) {
	a := aclAgent(t, false)
	h := a.routes()
	cases := []struct {
		name, method, path, body string
		status                   int
		substr                   string
	}{
		{"bad name in path", "PUT", "/v1/namespace/a%20b", `{}`, 400, "letters, digits and dashes"},
		{"all as a name", "PUT", "/v1/namespace/*", `{}`, 400, "accepted only by list requests"},
		{"names disagree", "PUT", "/v1/namespace/a", `{"Name":"b"}`, 400, `the body names namespace \"b\" but the path names \"a\"`},
		{"no name", "PUT", "/v1/namespace", `{"Description":"x"}`, 400, "the namespace has no name"},
		{"unknown field", "PUT", "/v1/namespace/a", `{"Quotas":"x"}`, 400, "unknown field"},
		{"not JSON", "PUT", "/v1/namespace/a", `{`, 400, "not valid JSON"},
		{"huge meta", "PUT", "/v1/namespace/a", `{"Meta":{"k":"` + strings.Repeat("v", 1000) + `"}}`, 400, "at most 512"},
		{"get unknown", "GET", "/v1/namespace/nope", "", 404, `namespace \"nope\" not found`},
		{"delete unknown", "DELETE", "/v1/namespace/nope", "", 404, `namespace \"nope\" not found`},
		{"bad query namespace", "GET", "/v1/jobs?namespace=../x", "", 400, "namespace="},
		{"all on one job", "GET", "/v1/job/web?namespace=*", "", 400, "accepted by lists only"},
		{"all on a write", "DELETE", "/v1/job/web?namespace=*", "", 400, "accepted by lists only"},
		{"register in unknown", "PUT", "/v1/jobs?namespace=team-z", webJSON(t, "", 1), 400, "drover namespace apply team-z"},
		{"job and request disagree", "PUT", "/v1/jobs?namespace=default", webJSON(t, "team-a", 1), 400, `the job names namespace \"team-a\" but the request is for namespace \"default\"`},
		{"plan in unknown", "PUT", "/v1/job/web/plan", webJSON(t, "team-z", 1), 400, "drover namespace apply team-z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := call(t, h, tc.method, tc.path, tc.body, nil)
			if code != tc.status || !strings.Contains(out, tc.substr) {
				t.Fatalf("%s %s: %d %s; want %d with %q", tc.method, tc.path, code, out, tc.status, tc.substr)
			}
		})
	}
	list := decodeAs[[]*structs.Namespace](t, func() string { _, out := call(t, h, "GET", "/v1/namespaces", "", nil); return out }())
	if len(list) != 1 {
		t.Fatalf("namespaces after refused requests: %+v", list)
	}
	if jobs, _ := a.server.State().Jobs(nil); len(jobs) != 0 {
		t.Fatalf("jobs after refused requests: %d", len(jobs))
	}
}
