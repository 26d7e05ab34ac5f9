package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/errdefs"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// liveAllocs returns the job's allocations that should run.
func liveAllocs(t *testing.T, a *agent, jobID string) []*api.Allocation {
	t.Helper()
	stubs, _, err := a.api.Jobs().Allocations(jobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.Allocation
	for _, s := range stubs {
		if s.DesiredStatus == "run" {
			out = append(out, s)
		}
	}
	return out
}

// TestDev_JobRunsContainers is the spine end to end: a count-3 job on a
// dev agent becomes three containerd tasks with the memory limit asked
// for, serving HTTP on their allocated ports, with their stdout in
// `alloc logs`; `job stop` removes every container.
func TestDev_JobRunsContainers(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	jobFile := writeFile(t, "web.hcl", webJob("web", c.image, 3, 48))

	res := a.cli("job", "run", jobFile)
	if res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	if !strings.Contains(res.stdout, "All 3 allocations") {
		t.Fatalf("job run did not report all allocations running:\n%s", res)
	}
	allocs := liveAllocs(t, a, "web")
	if len(allocs) != 3 {
		t.Fatalf("%d live allocations, want 3", len(allocs))
	}

	// containerd is the witness: three running tasks, with the memory
	// limit in their OCI spec.
	ctr, ctx := c.containerd()
	containers, err := ctr.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 3 {
		t.Fatalf("containerd has %d containers, want 3", len(containers))
	}
	for _, al := range allocs {
		cont, err := ctr.LoadContainer(ctx, al.ID+"-server")
		if err != nil {
			t.Fatalf("container of %s: %v", al.Name, err)
		}
		task, err := cont.Task(ctx, nil)
		if err != nil {
			t.Fatalf("task of %s: %v", al.Name, err)
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != "running" {
			t.Fatalf("task of %s is %v (%v)", al.Name, st.Status, err)
		}
		spec, err := cont.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lim := spec.Linux.Resources.Memory.Limit; lim == nil || *lim != 48*1024*1024 {
			t.Fatalf("memory limit of %s = %v, want %d", al.Name, lim, 48*1024*1024)
		}
		if spec.Linux.Resources.CPU == nil || spec.Linux.Resources.CPU.Shares == nil || *spec.Linux.Resources.CPU.Shares != 100 {
			t.Fatalf("cpu shares of %s: %+v", al.Name, spec.Linux.Resources.CPU)
		}
		if !envHas(spec.Process.Env, "DROVER_ALLOC_ID="+al.ID) || !envHas(spec.Process.Env, "DROVER_TASK_NAME=server") {
			t.Fatalf("env of %s lacks DROVER_ variables: %v", al.Name, spec.Process.Env)
		}

		// HTTP on the allocated port.
		ports := al.AllocatedResources.Shared.Ports
		if len(ports) != 1 || ports[0].Label != "http" || ports[0].Value < 20000 || ports[0].Value > 32000 {
			t.Fatalf("ports of %s: %+v", al.Name, ports)
		}
		url := fmt.Sprintf("http://%s:%d/", ports[0].HostIP, ports[0].Value)
		testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
			body, err := httpGet(url)
			return err == nil && strings.Contains(body, al.ID), err
		})

		// alloc logs shows the task's stdout, by unique ID prefix;
		// -stderr its stderr.
		logs := a.cli("alloc", "logs", al.ID[:8], "server")
		if logs.code != 0 || !strings.Contains(logs.stdout, fmt.Sprintf("serving on %d", ports[0].Value)) {
			t.Fatalf("alloc logs: %s", logs)
		}
		if errLogs := a.cli("alloc", "logs", "-stderr", al.ID[:8]); errLogs.code != 0 || !strings.Contains(errLogs.stdout, "to stderr") {
			t.Fatalf("alloc logs -stderr: %s", errLogs)
		}
	}

	// Status commands, plain and JSON.
	if st := a.cli("job", "status", "web"); st.code != 0 || strings.Count(st.stdout, "running") < 4 {
		t.Fatalf("job status: %s", st)
	}
	st := a.cli("alloc", "status", "-json", allocs[0].ID[:6])
	var alloc api.Allocation
	if st.code != 0 || json.Unmarshal([]byte(st.stdout), &alloc) != nil || alloc.ID != allocs[0].ID {
		t.Fatalf("alloc status -json: %s", st)
	}
	if ns := a.cli("node", "status"); ns.code != 0 || !strings.Contains(ns.stdout, "ready") {
		t.Fatalf("node status: %s", ns)
	}

	// job stop: every container is gone.
	if stop := a.cli("job", "stop", "web"); stop.code != 0 {
		t.Fatalf("job stop: %s", stop)
	}
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		containers, err := ctr.Containers(ctx)
		if err != nil {
			return false, err
		}
		return len(containers) == 0, fmt.Errorf("%d containers left", len(containers))
	})
	job, _, err := a.api.Jobs().Info("web", nil)
	if err != nil || job.Status != "dead" || !job.Stop {
		t.Fatalf("stopped job: %+v %v", job, err)
	}
}

func envHas(env []string, kv string) bool {
	for _, e := range env {
		if e == kv {
			return true
		}
	}
	return false
}

// TestDev_KillRestartKeepsContainers kills the dev agent with SIGKILL and
// starts it again on the same data dir: the job, its allocations and
// their containers (same PIDs) are all still there.
func TestDev_KillRestartKeepsContainers(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	jobFile := writeFile(t, "web.hcl", webJob("keep", c.image, 3, 32))
	if res := a.cli("job", "run", jobFile); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	before := liveAllocs(t, a, "keep")
	ctr, ctx := c.containerd()
	pids := map[string]uint32{}
	for _, al := range before {
		cont, err := ctr.LoadContainer(ctx, al.ID+"-server")
		if err != nil {
			t.Fatal(err)
		}
		task, err := cont.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		pids[al.ID] = task.Pid()
	}

	a.kill()
	// The containers outlive the agent.
	for id, pid := range pids {
		cont, err := ctr.LoadContainer(ctx, id+"-server")
		if err != nil {
			t.Fatalf("container of %s gone after the agent died: %v", id, err)
		}
		task, err := cont.Task(ctx, nil)
		if err != nil || task.Pid() != pid {
			t.Fatalf("task of %s changed while the agent was dead", id)
		}
	}

	a.start()
	a.waitReady()
	after := liveAllocs(t, a, "keep")
	if len(after) != 3 {
		t.Fatalf("%d live allocations after restart, want 3", len(after))
	}
	for _, al := range after {
		if _, ok := pids[al.ID]; !ok {
			t.Fatalf("allocation %s is new after the restart; the old ones must be kept", al.ID)
		}
	}
	// Wait for the restarted client to report again, then compare PIDs.
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		for _, al := range liveAllocs(t, a, "keep") {
			if al.ClientStatus != "running" {
				return false, fmt.Errorf("%s is %s", al.Name, al.ClientStatus)
			}
		}
		return true, nil
	})
	for id, pid := range pids {
		cont, err := ctr.LoadContainer(ctx, id+"-server")
		if err != nil {
			t.Fatal(err)
		}
		task, err := cont.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if task.Pid() != pid {
			t.Fatalf("task of %s has PID %d after restart, was %d: it was restarted", id, task.Pid(), pid)
		}
	}
	containers, _ := ctr.Containers(ctx)
	if len(containers) != 3 {
		t.Fatalf("%d containers after restart, want 3 (no duplicates)", len(containers))
	}
	// The re-attached client still follows its tasks: stopping the job
	// stops them.
	if stop := a.cli("job", "stop", "-purge", "keep"); stop.code != 0 {
		t.Fatalf("job stop: %s", stop)
	}
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		for id := range pids {
			if _, err := ctr.LoadContainer(ctx, id+"-server"); !errdefs.IsNotFound(err) {
				return false, fmt.Errorf("container %s still there", id)
			}
		}
		return true, nil
	})
}

// TestDev_OverCapacity submits more work than the node holds: job run
// exits 2 naming the exhausted resource, and nothing committed exceeds
// the node.
func TestDev_OverCapacity(t *testing.T) {
	c := newCluster(t)
	cfg := writeFile(t, "agent.hcl", `client {
  memory_total_mb = 1000
  cpu_total_compute = 4000
}
`)
	a := c.startDevAgent("-config", cfg)
	jobFile := writeFile(t, "big.hcl", webJob("big", c.image, 5, 300))
	res := a.cli("job", "run", jobFile)
	if res.code != 2 {
		t.Fatalf("job run over capacity: want exit 2, got %s", res)
	}
	out := res.stdout + res.stderr
	for _, want := range []string{`Dimension "memory" exhausted on 1 nodes`, "memory exhausted"} {
		if !strings.Contains(out, want) {
			t.Fatalf("job run output lacks %q:\n%s", want, res)
		}
	}

	nodes, _, err := a.api.Nodes().List(nil)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	capacity := nodes[0].NodeResources.Memory.MemoryMB
	var used int64
	live := liveAllocs(t, a, "big")
	for _, al := range live {
		for _, tr := range al.AllocatedResources.Tasks {
			used += tr.Memory.MemoryMB
		}
	}
	if used > capacity || len(live) != 3 {
		t.Fatalf("%d allocations use %d MB on a %d MB node; want 3 within capacity", len(live), used, capacity)
	}
	// job status explains the queued allocations.
	st := a.cli("job", "status", "big")
	if !strings.Contains(st.stdout, "Placement Failure") || !strings.Contains(st.stdout, `Dimension "memory" exhausted`) {
		t.Fatalf("job status does not explain the placement failure:\n%s", st)
	}
}

// TestDev_RejectsBadInput checks the errors a person meets: malformed
// HCL with file:line:col, invalid fields with their path, unknown JSON
// fields, and an oversized body.
func TestDev_RejectsBadInput(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	pos := regexp.MustCompile(`\.hcl:\d+:\d+: `)

	cases := []struct {
		name  string
		hcl   string
		wants []string
	}{
		{"unclosed block", "job \"x\" {\n  group \"g\" {\n", []string{"bad.hcl:2:13", "no closing brace"}},
		{"unknown attribute", "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n      colour = \"red\"\n      config { image = \"i\" }\n    }\n  }\n}\n",
			[]string{"bad.hcl:5:7", `An argument named "colour" is not expected here`}},
		{"negative memory", "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n      config { image = \"i\" }\n      resources { memory = -5 }\n    }\n  }\n}\n",
			[]string{"bad.hcl:6:28", "TaskGroups[0].Tasks[0].Resources.MemoryMB", "memory must be greater than 0"}},
		{"zero memory and negative count", "job \"x\" {\n  group \"g\" {\n    count = -1\n    task \"t\" {\n      driver = \"containerd\"\n      config { image = \"i\" }\n      resources { memory = 0 }\n    }\n  }\n}\n",
			[]string{"TaskGroups[0].Count", "-1 is negative", "TaskGroups[0].Tasks[0].Resources.MemoryMB"}},
		{"missing driver", "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"i\" }\n    }\n  }\n}\n",
			[]string{"bad.hcl:3:5", "TaskGroups[0].Tasks[0].Driver", "must be set"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "bad.hcl", tc.hcl)
			for _, cmd := range [][]string{{"job", "run", file}, {"job", "validate", file}} {
				res := a.cli(cmd...)
				if res.code == 0 {
					t.Fatalf("%v accepted a bad file: %s", cmd, res)
				}
				if !pos.MatchString(res.stderr) {
					t.Fatalf("%v: no file:line:col in %q", cmd, res.stderr)
				}
				for _, w := range tc.wants {
					if !strings.Contains(res.stderr, w) {
						t.Fatalf("%v: stderr lacks %q:\n%s", cmd, w, res.stderr)
					}
				}
			}
		})
	}

	put := func(body []byte) (int, map[string]interface{}) {
		req, _ := http.NewRequest(http.MethodPut, "http://"+a.host+":4646/v1/jobs", bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]interface{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	t.Run("unknown JSON field", func(t *testing.T) {
		status, body := put([]byte(`{"Job":{"ID":"j","TaskGroups":[{"Name":"g","Tasks":[{"Name":"t","Driver":"containerd","Config":{"image":"i"},"Colour":"red"}]}]}}`))
		if status != 400 || !strings.Contains(fmt.Sprint(body), "Job.TaskGroups[0].Tasks[0].Colour") {
			t.Fatalf("status %d body %v", status, body)
		}
	})
	t.Run("invalid fields with paths", func(t *testing.T) {
		status, body := put([]byte(`{"Job":{"ID":"j","TaskGroups":[{"Name":"g","Count":-1,"Tasks":[{"Name":"t","Config":{"image":"i"},"Resources":{"CPU":100,"MemoryMB":-1}}]}]}}`))
		s := fmt.Sprint(body)
		if status != 400 || body["Code"] != "invalid_request" {
			t.Fatalf("status %d body %v", status, body)
		}
		for _, w := range []string{"Job.TaskGroups[0].Count", "Job.TaskGroups[0].Tasks[0].Driver", "Job.TaskGroups[0].Tasks[0].Resources.MemoryMB"} {
			if !strings.Contains(s, w) {
				t.Fatalf("response lacks %s: %v", w, body)
			}
		}
	})
	t.Run("body over the limit", func(t *testing.T) {
		big := append([]byte(`{"Job":{"ID":"`), bytes.Repeat([]byte("x"), 2<<20)...)
		big = append(big, []byte(`"}}`)...)
		status, body := put(big)
		if status != 413 || body["Code"] != "request_too_large" {
			t.Fatalf("status %d body %v", status, body)
		}
	})
	t.Run("unknown job is 404", func(t *testing.T) {
		_, _, err := a.api.Jobs().Info("nope", nil)
		if !api.IsNotFound(err) {
			t.Fatalf("err = %v, want 404", err)
		}
	})
}
