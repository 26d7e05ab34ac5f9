package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// httpAgent is an agent with only its HTTP routes and srv as its server.
func httpAgent(srv *server.Server) *Agent {
	cfg := DefaultConfig()
	a := &Agent{config: cfg, logger: hclog.NewNullLogger(), server: srv}
	if srv != nil {
		a.rpc = srv
	}
	return a
}

func doJSON(t *testing.T, h http.Handler, method, path string, body interface{}) (int, errorBody) {
	t.Helper()
	buf, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(buf)))
	var out errorBody
	if rec.Code != http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: %d with a body that is not an error: %s", method, path, rec.Code, rec.Body)
		}
	}
	return rec.Code, out
}

// The attacks of the security issue, over HTTP: each is a 400 naming
// the field, nothing is stored, and the agent keeps serving.
func TestJobHTTP_RefusesJobsOverTheLimits(t *testing.T) {
	srv := testServer(t)
	var nresp structs.NodeUpdateResponse
	if err := srv.RPC("Node.Register", &structs.NodeRegisterRequest{Node: mock.Node()}, &nresp); err != nil { // 4000 MHz
		t.Fatal(err)
	}
	h := httpAgent(srv).routes()
	cases := []struct {
		name    string
		mutate  func(*structs.Job)
		path    string
		message string
	}{
		{"count of a billion", func(j *structs.Job) { j.TaskGroups[0].Count = 1_000_000_000 },
			"Job.TaskGroups[0].Count", "1000000000 is over the limit of 10000 (limits.max_count_per_group)"},
		{"cpu of MaxInt64", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = math.MaxInt64 },
			"Job.TaskGroups[0].Tasks[0].Resources.CPU", "9223372036854775807 MHz is over the limit of 4000 MHz (the largest node's cpu; limits.max_task_cpu overrides it)"},
		{"200 task groups", func(j *structs.Job) {
			tg := j.TaskGroups[0]
			j.TaskGroups = nil
			for i := 0; i < 200; i++ {
				c := tg.Copy()
				c.Name = fmt.Sprintf("g%d", i)
				j.TaskGroups = append(j.TaskGroups, c)
			}
		}, "Job.TaskGroups", "200 groups is over the limit of 100 (limits.max_groups_per_job)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := mock.Job()
			tc.mutate(job)
			for _, req := range []struct{ method, path string }{
				{"PUT", "/v1/jobs"},
				{"POST", "/v1/job/" + job.ID},
			} {
				status, body := doJSON(t, h, req.method, req.path, JobRegisterBody{Job: job})
				if status != http.StatusBadRequest || body.Code != structs.CodeInvalid {
					t.Fatalf("%s %s: %d %+v, want 400 invalid_request", req.method, req.path, status, body)
				}
				found := false
				for _, p := range body.Problems {
					found = found || (p.Path == tc.path && p.Message == tc.message)
				}
				if !found {
					t.Fatalf("%s %s: problems %+v do not include %s: %s", req.method, req.path, body.Problems, tc.path, tc.message)
				}
			}
			// job plan answers 400 too, before it schedules anything.
			status, body := doJSON(t, h, "PUT", "/v1/job/"+job.ID+"/plan", map[string]interface{}{"Job": job})
			if status != http.StatusBadRequest || !strings.Contains(body.Error, tc.message) {
				t.Fatalf("plan: %d %+v, want 400 saying %q", status, body, tc.message)
			}
			planFound := false
			for _, p := range body.Problems {
				planFound = planFound || (p.Path == tc.path && p.Message == tc.message)
			}
			if !planFound {
				t.Fatalf("plan: problems %+v do not include %s", body.Problems, tc.path)
			}
			if j, _ := srv.State().JobByID(nil, "", job.ID); j != nil {
				t.Fatal("a refused job was stored")
			}
			if evals, _ := srv.State().EvalsByJob(nil, "", job.ID); len(evals) > 0 {
				t.Fatal("a refused job was scheduled")
			}
		})
	}
	// Still serving.
	if status, body := doJSON(t, h, "PUT", "/v1/jobs", JobRegisterBody{Job: mock.Job()}); status != http.StatusOK {
		t.Fatalf("a valid job after the refused ones: %d %+v", status, body)
	}
}

func TestConfig_LimitsBlockReachesTheServer(t *testing.T) {
	cases := []struct {
		name   string
		limits Limits
		want   structs.JobLimits
		bad    string
	}{
		{"unset", Limits{}, structs.JobLimits{}, ""},
		{"set", Limits{MaxCountPerGroup: 50, MaxGroupsPerJob: 3, MaxTasksPerGroup: 4, MaxTaskCPU: 2000, MaxTaskMemoryMB: 1024},
			structs.JobLimits{MaxCountPerGroup: 50, MaxGroupsPerJob: 3, MaxTasksPerGroup: 4, MaxTaskCPU: 2000, MaxTaskMemoryMB: 1024}, ""},
		{"negative", Limits{MaxCountPerGroup: -1}, structs.JobLimits{}, "limits.max_count_per_group"},
		{"over the hard limit", Limits{MaxTaskCPU: structs.HardMaxTaskCPU + 1}, structs.JobLimits{}, "limits.max_task_cpu"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			l := tc.limits
			c.Limits = &l
			sc, err := c.serverConfig()
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("serverConfig = %v, want an error naming %s", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sc.JobLimits != tc.want {
				t.Fatalf("server limits %+v, want %+v", sc.JobLimits, tc.want)
			}
		})
	}
}
