package command

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSystemCommand_Help(t *testing.T) {
	for _, args := range [][]string{{"system"}, {"system", "gc"}} {
		code, out, errOut := aclCLI(append(args, "-help")...)
		if code != ExitOK || !strings.Contains(out, "Usage:") {
			t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
		}
	}
	_, out, _ := aclCLI("system", "gc", "-help")
	for _, want := range []string{"-dry-run", "operator:write", "terminal evaluations 1h", "dead jobs 4h"} {
		if !strings.Contains(out, want) {
			t.Fatalf("help lacks %q:\n%s", want, out)
		}
	}
}

// gcAgentStub answers PUT /v1/system/gc as an agent would, recording
// the bodies it got.
func gcAgentStub(t *testing.T, bodies *[]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/system/gc" || r.Method != http.MethodPut {
			w.WriteHeader(404)
			w.Write([]byte(`{"Code":"not_found","Error":"no such endpoint"}`))
			return
		}
		b, _ := io.ReadAll(r.Body)
		*bodies = append(*bodies, string(b))
		var req struct{ DryRun bool }
		if len(b) > 0 {
			if err := json.Unmarshal(b, &req); err != nil {
				t.Errorf("body %q: %v", b, err)
			}
		}
		if req.DryRun {
			w.Write([]byte(`{"DryRun":true,"Chosen":{"Jobs":1,"JobVersions":2,"Evals":3,"Allocs":1},
				"Objects":{"Jobs":["default/web"],"JobVersions":["default/web@1","default/web@0"],"Evals":["e1","e2","e3"],"Allocs":["a1"]}}`))
			return
		}
		w.Write([]byte(`{"Chosen":{"Jobs":1,"Evals":3,"Allocs":1},"Deleted":{"Jobs":1,"JobVersions":2,"Evals":3},"Skipped":{"Allocs":1},"Entries":1,"Index":42}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSystemCommand_GC(t *testing.T) {
	var bodies []string
	srv := gcAgentStub(t, &bodies)
	code, out, errOut := aclCLI("-address", srv.URL, "system", "gc", "-dry-run")
	if code != ExitOK {
		t.Fatalf("dry run: exit %d %s", code, errOut)
	}
	for _, want := range []string{"Would delete 1 job, 2 job versions, 3 evaluations, 1 allocation:", "Jobs (1)\n  default/web",
		"Job versions (2)\n  default/web@1\n  default/web@0", "Evaluations (3)\n  e1\n  e2\n  e3", "Allocations (1)\n  a1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = aclCLI("-address", srv.URL, "system", "gc")
	if code != ExitOK {
		t.Fatalf("gc: exit %d %s", code, errOut)
	}
	for _, want := range []string{"Deleted 1 job, 2 job versions, 3 evaluations in 1 Raft entry", "Skipped 1 allocation: no longer collectable"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if len(bodies) != 2 || !strings.Contains(bodies[0], `"DryRun":true`) || bodies[1] != "" {
		t.Fatalf("bodies sent %q: want the dry run flag, then none", bodies)
	}
	code, out, _ = aclCLI("-address", srv.URL, "system", "gc", "-json")
	if code != ExitOK || !strings.Contains(out, `"Index": 42`) {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
}
