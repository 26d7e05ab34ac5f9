package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

// The scheduling contracts end to end: rolling updates and automatic
// revert through deployments, `job plan` with -check-index, placement
// failures that name the constraint, node drain and eligibility, and
// system jobs. containerd is the witness of what runs; the deployment's
// history is the witness of the order things happened in.

// loopScript runs until SIGTERM, then exits 0.
const loopScript = "trap 'exit 0' TERM; while true; do sleep 1; done"

// failScript dies at once with a non-zero code.
const failScript = "echo broken; exit 3"

// schedJob describes a small job of busybox shell tasks.
type schedJob struct {
	id      string
	jobType string // "" is service
	count   int
	// group is extra HCL inside the group block: update, restart,
	// reschedule, constraint.
	group string
	// script is the task's `sh -c` argument; version its VERSION
	// variable. Changing either is a destructive update.
	script, version string
}

func (j schedJob) hcl() string {
	typ := ""
	if j.jobType != "" {
		typ = fmt.Sprintf("  type = %q\n", j.jobType)
	}
	return fmt.Sprintf(`job %q {
%s  datacenters = ["dc1"]
  group "app" {
    count = %d
%s
    task "t" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", %q]
      }
      env {
        VERSION = %q
      }
      resources {
        cpu    = 50
        memory = 16
      }
      kill_timeout = "1s"
    }
  }
}
`, j.id, typ, j.count, j.group, testutil.BusyboxRef, j.script, j.version)
}

// file writes the job to a new file and returns its path.
func (j schedJob) file(t *testing.T) string {
	t.Helper()
	return writeFile(t, j.id+".hcl", j.hcl())
}

// rollingUpdate is an update block: one allocation at a time, healthy
// after a second of running, within healthy (and the deployment's
// progress) deadlines.
func rollingUpdate(autoRevert bool, healthy, progress string) string {
	return fmt.Sprintf(`    update {
      max_parallel      = 1
      min_healthy_time  = "1s"
      healthy_deadline  = %q
      progress_deadline = %q
      auto_revert       = %t
    }`, healthy, progress, autoRevert)
}

// runningTask is a running containerd task as the witness sees it.
type runningTask struct {
	pid  uint32
	env  []string
	args []string
}

// version returns the task's VERSION variable.
func (r runningTask) version() string {
	for _, e := range r.env {
		if v, ok := strings.CutPrefix(e, "VERSION="); ok {
			return v
		}
	}
	return ""
}

// runningTasks returns the running tasks of a containerd namespace by
// container ID (<alloc ID>-<task>), with their OCI process spec.
func runningTasks(t *testing.T, c *cluster, ns string) map[string]runningTask {
	t.Helper()
	cl, err := c.ctrd.Client(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := nsContext(ns)
	containers, err := cl.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]runningTask{}
	for _, cont := range containers {
		task, err := cont.Task(ctx, nil)
		if err != nil {
			continue
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != "running" {
			continue
		}
		spec, err := cont.Spec(ctx)
		if err != nil || spec.Process == nil {
			continue
		}
		out[cont.ID()] = runningTask{pid: task.Pid(), env: spec.Process.Env, args: spec.Process.Args}
	}
	return out
}

// waitTasks waits until exactly n tasks run in ns, all of version v
// with script as their shell argument, and returns them.
func waitTasks(t *testing.T, c *cluster, ns string, n int, v, script string) map[string]runningTask {
	t.Helper()
	var tasks map[string]runningTask
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		tasks = runningTasks(t, c, ns)
		err := checkTasks(tasks, n, v, script)
		return err == nil, err
	})
	return tasks
}

// checkTasks says how tasks differ from exactly n of version v running
// script.
func checkTasks(tasks map[string]runningTask, n int, v, script string) error {
	if len(tasks) != n {
		return fmt.Errorf("%d tasks run, want %d: %v", len(tasks), n, tasks)
	}
	for id, task := range tasks {
		if task.version() != v || len(task.args) != 3 || task.args[2] != script {
			return fmt.Errorf("task %s runs VERSION=%q args %q, want VERSION=%q and script %q", id, task.version(), task.args, v, script)
		}
	}
	return nil
}

// latestDeployment returns the job's newest deployment, failing the test
// when it has none.
func latestDeployment(t *testing.T, a *agent, jobID string) *api.Deployment {
	t.Helper()
	d, _, err := a.api.Jobs().LatestDeployment(jobID, nil)
	if err != nil || d == nil {
		t.Fatalf("latest deployment of %s: %v %v", jobID, d, err)
	}
	return d
}

// isHealthy reports whether an allocation was judged healthy in its
// deployment.
func isHealthy(s *api.AllocDeploymentStatus) bool {
	return s != nil && s.Healthy != nil && *s.Healthy
}

// Deployment history lines, as the deployment watcher writes them.
var (
	placedRe  = regexp.MustCompile(`^placed allocation ([0-9a-f]{8}) \(([^)]+)\): (\d+)/(\d+) placed in group "([^"]+)"(?:, replacing ([0-9a-f]{8}))?$`)
	healthyRe = regexp.MustCompile(`^allocation ([0-9a-f]{8}) \(([^)]+)\) healthy: (\d+)/(\d+) in group "([^"]+)"$`)
)

// historyText is a deployment's history, one message a line, for
// failure messages.
func historyText(d *api.Deployment) string {
	var b strings.Builder
	for _, e := range d.History {
		fmt.Fprintf(&b, "  %s\n", e.Message)
	}
	return b.String()
}

// TestSched_RollingUpdateOneAtATime: a destructive change to a count-4
// job with max_parallel = 1 replaces its allocations one at a time. The
// deployment's history shows each placement after the first only once
// the one before it is healthy, all four replaced; `deployment status`
// prints that history; four tasks of the new version run at the end.
func TestSched_RollingUpdateOneAtATime(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	job := schedJob{id: "roll", count: 4, group: rollingUpdate(false, "20s", "1m"), script: loopScript, version: "v1"}
	if res := a.cli("job", "run", job.file(t)); res.code != 0 {
		t.Fatalf("job run v1: %s", res)
	}
	waitTasks(t, c, c.ns, 4, "v1", loopScript)
	v1 := liveAllocs(t, a, "roll")
	oldShort := map[string]bool{}
	for _, al := range v1 {
		oldShort[al.ID[:8]] = true
	}

	job.version = "v2"
	res := a.cli("job", "run", job.file(t))
	if res.code != 0 || !strings.Contains(res.stdout, "successful: Deployment completed successfully") {
		t.Fatalf("job run v2: want exit 0 and a successful deployment, got %s", res)
	}
	d := latestDeployment(t, a, "roll")
	if d.JobVersion != 1 || d.Status != "successful" {
		t.Fatalf("deployment of v2: version %d status %q (%s)", d.JobVersion, d.Status, d.StatusDescription)
	}
	st := d.TaskGroups["app"]
	if st == nil || st.DesiredTotal != 4 || st.PlacedAllocs != 4 || st.HealthyAllocs != 4 || st.UnhealthyAllocs != 0 {
		t.Fatalf("deployment state of group app: %+v", st)
	}

	// Replay the history: never more than max_parallel (1) placed and
	// not yet healthy; each one replaces a different v1 allocation.
	inFlight := map[string]bool{}
	replaced := map[string]bool{}
	indexes := map[string]bool{}
	placed, healthy := 0, 0
	for i, e := range d.History {
		if m := placedRe.FindStringSubmatch(e.Message); m != nil {
			placed++
			if m[3] != strconv.Itoa(placed) || m[4] != "4" || m[5] != "app" {
				t.Fatalf("history line %d %q: want %d/4 placed in group app\n%s", i, e.Message, placed, historyText(d))
			}
			if !oldShort[m[6]] || replaced[m[6]] {
				t.Fatalf("history line %d %q replaces %q: not a v1 allocation, or replaced twice\n%s", i, e.Message, m[6], historyText(d))
			}
			replaced[m[6]] = true
			indexes[m[2]] = true
			inFlight[m[1]] = true
			if len(inFlight) > 1 {
				t.Fatalf("history line %d %q: %d replacements in flight, max_parallel is 1\n%s", i, e.Message, len(inFlight), historyText(d))
			}
		} else if m := healthyRe.FindStringSubmatch(e.Message); m != nil {
			healthy++
			if !inFlight[m[1]] || m[3] != strconv.Itoa(healthy) {
				t.Fatalf("history line %d %q: healthy allocation that was not in flight, or count not %d\n%s", i, e.Message, healthy, historyText(d))
			}
			delete(inFlight, m[1])
		}
	}
	if placed != 4 || healthy != 4 || len(indexes) != 4 {
		t.Fatalf("history has %d placements (%d indexes) and %d healthy, want 4, 4 and 4\n%s", placed, len(indexes), healthy, historyText(d))
	}
	if last := d.History[len(d.History)-1].Message; last != "deployment successful: Deployment completed successfully" {
		t.Fatalf("last history line %q\n%s", last, historyText(d))
	}

	// The CLI prints the same history.
	ds := a.cli("deployment", "status", d.ID[:8])
	if ds.code != 0 || !strings.Contains(ds.stdout, "successful") {
		t.Fatalf("deployment status: %s", ds)
	}
	for _, e := range d.History {
		if !strings.Contains(ds.stdout, e.Message) {
			t.Fatalf("deployment status lacks history line %q:\n%s", e.Message, ds.stdout)
		}
	}

	// The new allocations, and only they, run the new version.
	live := liveAllocs(t, a, "roll")
	if len(live) != 4 {
		t.Fatalf("%d live allocations, want 4", len(live))
	}
	for _, al := range live {
		if al.JobVersion != 1 || oldShort[al.ID[:8]] || !isHealthy(al.DeploymentStatus) {
			t.Fatalf("live allocation %s: version %d, deployment status %+v; want new, version 1, healthy", al.Name, al.JobVersion, al.DeploymentStatus)
		}
	}
	tasks := waitTasks(t, c, c.ns, 4, "v2", loopScript)
	for _, al := range live {
		if _, ok := tasks[al.ID+"-t"]; !ok {
			t.Fatalf("allocation %s has no running task; tasks: %v", al.Name, tasks)
		}
	}
}

// TestSched_FailedDeploymentAutoReverts: a new version whose task exits
// non-zero at once fails its deployment; with auto_revert the job is
// registered again as a copy of its last stable version, `job run`
// exits 1 saying so, `job history` lists the versions, and in the end
// the old spec runs again.
func TestSched_FailedDeploymentAutoReverts(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	// No restarts: the broken task fails its allocation at once. Failed
	// allocations are rescheduled after a second, so those of the broken
	// version are soon replaced by the reverted one.
	group := rollingUpdate(true, "10s", "15s") + `
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      delay          = "1s"
      delay_function = "constant"
      unlimited      = true
    }`
	good := schedJob{id: "revert", count: 3, group: group, script: loopScript, version: "v1"}
	if res := a.cli("job", "run", good.file(t)); res.code != 0 {
		t.Fatalf("job run v1: %s", res)
	}
	waitTasks(t, c, c.ns, 3, "v1", loopScript)

	bad := good
	bad.script, bad.version = failScript, "v2"
	res := a.cli("job", "run", bad.file(t))
	// The deployment fails for its unhealthy allocations, or at its
	// progress deadline when no health verdict arrives (see
	// TestSched_FailingRolloutStopsAtMaxParallel); either way it rolls
	// back.
	const rollback = " - rolling back to job version 0"
	if res.code != 1 || !strings.Contains(res.stdout, rollback) || !strings.Contains(res.stderr, rollback) {
		t.Fatalf("job run of the broken version: want exit 1 and %q, got %s", rollback, res)
	}
	deps, _, err := a.api.Jobs().Deployments("revert", nil)
	if err != nil {
		t.Fatal(err)
	}
	var failed *api.Deployment
	for _, d := range deps {
		if d.JobVersion == 1 {
			failed = d
		}
	}
	if failed == nil || failed.Status != "failed" || !strings.HasPrefix(failed.StatusDescription, "Failed due to ") || !strings.HasSuffix(failed.StatusDescription, rollback) {
		t.Fatalf("deployment of version 1: %+v, want failed, rolling back to version 0", failed)
	}

	// Version 2 is a copy of version 0, the last stable one.
	var versions []*api.Job
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		versions, _, err = a.api.Jobs().Versions("revert", nil)
		if err != nil {
			return false, err
		}
		return len(versions) == 3 && versions[0].Version == 2, fmt.Errorf("%d versions, newest %d", len(versions), versions[0].Version)
	})
	byVersion := map[uint64]*api.Job{}
	for _, v := range versions {
		byVersion[v.Version] = v
	}
	taskOf := func(v uint64) *api.Task { return byVersion[v].TaskGroups[0].Tasks[0] }
	if !byVersion[0].Stable || byVersion[1].Stable {
		t.Fatalf("stable: v0 %v, v1 %v; want v0 stable, v1 not", byVersion[0].Stable, byVersion[1].Stable)
	}
	if taskOf(2).Env["VERSION"] != "v1" || fmt.Sprint(taskOf(2).Config["args"]) != fmt.Sprint(taskOf(0).Config["args"]) {
		t.Fatalf("version 2 is not a copy of version 0: env %v config %v", taskOf(2).Env, taskOf(2).Config)
	}
	if taskOf(1).Env["VERSION"] != "v2" {
		t.Fatalf("version 1 env %v, want the broken v2", taskOf(1).Env)
	}
	hist := a.cli("job", "history", "revert")
	if hist.code != 0 {
		t.Fatalf("job history: %s", hist)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Version +Stable +Submit Date +Deployment$`),
		regexp.MustCompile(`(?m)^2 +(true|false) +\S+ +\S+`),
		regexp.MustCompile(`(?m)^1 +false +\S+ +` + failed.ID[:8] + ` failed$`),
		regexp.MustCompile(`(?m)^0 +true +\S+ +[0-9a-f]{8} successful$`),
	} {
		if !want.MatchString(hist.stdout) {
			t.Fatalf("job history lacks a line matching %s:\n%s", want, hist.stdout)
		}
	}

	// The old spec runs again, in allocations of version 2.
	var tasks map[string]runningTask
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		tasks = runningTasks(t, c, c.ns)
		if err := checkTasks(tasks, 3, "v1", loopScript); err != nil {
			return false, err
		}
		live := liveAllocs(t, a, "revert")
		if len(live) != 3 {
			return false, fmt.Errorf("%d live allocations, want 3", len(live))
		}
		for _, al := range live {
			if _, ok := tasks[al.ID+"-t"]; al.JobVersion != 2 || !ok {
				return false, fmt.Errorf("live allocation %s: version %d, task running %v", al.Name, al.JobVersion, ok)
			}
		}
		return true, nil
	})
}

// TestSched_FailingRolloutStopsAtMaxParallel: with max_parallel = 1, a
// new version whose task dies at once replaces one allocation, not more.
// The failed allocation is unhealthy: it fails the deployment at once
// (not at its progress deadline) and, until then, it holds the rollout's
// one slot, so the other old allocations keep running, untouched.
func TestSched_FailingRolloutStopsAtMaxParallel(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	// No restarts and no reschedules: only the rollout places anything.
	group := rollingUpdate(false, "10s", "15s") + `
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }`
	good := schedJob{id: "brake", count: 4, group: group, script: loopScript, version: "v1"}
	if res := a.cli("job", "run", good.file(t)); res.code != 0 {
		t.Fatalf("job run v1: %s", res)
	}
	before := waitTasks(t, c, c.ns, 4, "v1", loopScript)

	bad := good
	bad.script, bad.version = failScript, "v2"
	res := a.cli("job", "run", bad.file(t))
	if res.code != 1 {
		t.Fatalf("job run of the broken version: want exit 1, got %s", res)
	}
	d := latestDeployment(t, a, "brake")
	if d.JobVersion != 1 || d.Status != "failed" {
		t.Fatalf("deployment of version 1: %s (%s)", d.Status, d.StatusDescription)
	}
	if d.StatusDescription != "Failed due to unhealthy allocations" {
		t.Errorf("deployment failed with %q, want %q: the failed allocation was never judged unhealthy\n%s", d.StatusDescription, "Failed due to unhealthy allocations", historyText(d))
	}
	placed := 0
	for _, e := range d.History {
		if placedRe.MatchString(e.Message) {
			placed++
		}
	}
	if placed != 1 {
		t.Errorf("the failing rollout placed %d allocations, max_parallel is 1:\n%s", placed, historyText(d))
	}
	// Three of the four v1 tasks run on, with the PIDs they had (the
	// replaced one may take a moment to stop).
	err := testutil.Poll(20*time.Second, func() (bool, error) {
		after := runningTasks(t, c, c.ns)
		kept := 0
		for id, task := range after {
			if b, ok := before[id]; ok && b.pid == task.pid {
				kept++
			}
		}
		return kept == 3 && len(after) == 3, fmt.Errorf("%d tasks run after the failed rollout, %d of them untouched v1 tasks; want 3 and 3", len(after), kept)
	})
	if err != nil {
		t.Error(err)
	}
}

// TestSched_JobPlan: `job plan` shows the diff against the registered
// version with what each change forces, the scheduler's dry run per
// group, and the modify index to submit with. -check-index registers
// only if the job did not change since the plan; an unchanged file
// plans with exit 0.
func TestSched_JobPlan(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	v1 := schedJob{id: "planned", count: 2, script: loopScript, version: "v1"}
	v1File := v1.file(t)

	// A new job: everything is added.
	res := a.cli("job", "plan", v1File)
	if res.code != 1 {
		t.Fatalf("plan of a new job: want exit 1, got %s", res)
	}
	for _, want := range []string{"+ Job: \"planned\"\n", "+ Task Group: \"app\" (2 create)\n", "Job Modify Index: 0\n", "drover job run -check-index 0 " + v1File + "\n"} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("plan of a new job lacks %q:\n%s", want, res.stdout)
		}
	}
	if res := a.cli("job", "run", v1File); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	job, _, err := a.api.Jobs().Info("planned", nil)
	if err != nil {
		t.Fatal(err)
	}
	index := job.JobModifyIndex

	// The same file again: nothing to do.
	res = a.cli("job", "plan", v1File)
	if res.code != 0 {
		t.Fatalf("plan of the unchanged job: want exit 0, got %s", res)
	}
	for _, want := range []string{"Job: \"planned\"\n", "Task Group: \"app\" (2 ignore)\n", "- All tasks successfully allocated.\n", fmt.Sprintf("Job Modify Index: %d\n", index)} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("plan of the unchanged job lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, "+") {
		t.Fatalf("plan of the unchanged job shows a change:\n%s", res.stdout)
	}

	// Count 2 -> 3 and a new argument: one more allocation, and the two
	// there are replaced.
	v2 := v1
	v2.count, v2.script = 3, strings.Replace(loopScript, "sleep 1", "sleep 2", 1)
	v2File := v2.file(t)
	res = a.cli("job", "plan", v2File)
	if res.code != 1 {
		t.Fatalf("plan of the changed job: want exit 1, got %s", res)
	}
	for _, want := range []string{
		"+/- Job: \"planned\"\n",
		"+/- Task Group: \"app\" (1 create, 2 create/destroy update)\n",
		"  +/- Count: \"2\" => \"3\" (forces create)\n",
		"  +/- Task: \"t\" (forces create/destroy update)\n",
		fmt.Sprintf("      +/- args[1]: %q => %q\n", loopScript, v2.script),
		"- All tasks successfully allocated.\n",
		fmt.Sprintf("Job Modify Index: %d\n", index),
		fmt.Sprintf("drover job run -check-index %d %s\n", index, v2File),
	} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("plan of the changed job lacks %q:\n%s", want, res.stdout)
		}
	}

	// Submitting with the planned index works once.
	res = a.cli("job", "run", "-check-index", fmt.Sprint(index), v2File)
	if res.code != 0 || !strings.Contains(res.stdout, `All 3 allocations of job "planned" are running`) {
		t.Fatalf("job run -check-index %d: %s", index, res)
	}
	waitTasks(t, c, c.ns, 3, "v1", v2.script)
	job, _, err = a.api.Jobs().Info("planned", nil)
	if err != nil || job.Version != 1 || job.JobModifyIndex == index {
		t.Fatalf("job after the checked run: %+v, %v; want version 1 with a new modify index (was %d)", job, err, index)
	}

	// The index is stale now.
	res = a.cli("job", "run", "-check-index", fmt.Sprint(index), v2File)
	want := fmt.Sprintf(`job "planned" changed since it was planned: expected job modify index %d, found %d`, index, job.JobModifyIndex)
	if res.code == 0 || !strings.Contains(res.stderr, want) {
		t.Fatalf("job run with a stale -check-index: want a failure saying %q, got %s", want, res)
	}
	if after, _, err := a.api.Jobs().Info("planned", nil); err != nil || after.Version != 1 || after.JobModifyIndex != job.JobModifyIndex {
		t.Fatalf("the refused run changed the job: %+v %v", after, err)
	}
}

// rackCluster is one server and n clients c1..cn, client i with meta
// rack=ri.
func rackCluster(t *testing.T, n int) (*haCluster, []*agent) {
	t.Helper()
	h := startServers(t, 1, nil, nil)
	var clients []*agent
	for i := 1; i <= n; i++ {
		clients = append(clients, h.addClient(fmt.Sprintf("c%d", i), "-meta", fmt.Sprintf("rack=r%d", i)))
	}
	// Each client is ready in its own eyes; wait until the server sees
	// all of them ready.
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		nodes, _, err := h.servers[0].api.Nodes().List(nil)
		if err != nil {
			return false, err
		}
		ready := 0
		for _, nd := range nodes {
			if nd.Status == "ready" {
				ready++
			}
		}
		return ready == n, fmt.Errorf("%d of %d nodes ready", ready, n)
	})
	return h, clients
}

// nodeIDOf returns the ID of a client's node.
func nodeIDOf(t *testing.T, via *agent, name string) string {
	t.Helper()
	nodes, _, err := via.api.Nodes().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == name {
			return n.ID
		}
	}
	t.Fatalf("no node named %s", name)
	return ""
}

// rackConstraint is a group constraint to meta rack r.
func rackConstraint(r string) string {
	return fmt.Sprintf(`    constraint {
      attribute = "${meta.rack}"
      value     = %q
    }`, r)
}

// TestSched_ConstraintNoNodeMeets: a constraint no node meets makes `job
// run` exit 2 naming the constraint and how many nodes it filtered, and
// nothing runs; one that a node meets puts everything there.
func TestSched_ConstraintNoNodeMeets(t *testing.T) {
	h, clients := rackCluster(t, 2)
	s := h.servers[0]

	nowhere := schedJob{id: "nowhere", count: 2, group: rackConstraint("r9"), script: loopScript, version: "v1"}
	res := s.cli("job", "run", nowhere.file(t))
	const why = `Constraint "${meta.rack} = r9" filtered 2 nodes`
	if res.code != 2 || !strings.Contains(res.stdout+res.stderr, why) {
		t.Fatalf("job run with an unmet constraint: want exit 2 and %q, got %s", why, res)
	}
	if !strings.Contains(res.stderr, `group "app": 2 allocation(s) not placed: ${meta.rack} = r9 on 2 node(s)`) {
		t.Fatalf("job run's error does not sum up the failure:\n%s", res)
	}
	st := s.cli("job", "status", "nowhere")
	queued := regexp.MustCompile(`(?m)^app +2 +0 +0 +0 +0 +0$`)
	if st.code != 0 || !strings.Contains(st.stdout, why) || !queued.MatchString(st.stdout) {
		t.Fatalf("job status does not show 2 queued allocations and why:\n%s", st)
	}
	if live := liveAllocs(t, s, "nowhere"); len(live) != 0 {
		t.Fatalf("%d allocations placed despite the constraint", len(live))
	}

	// Pinned to rack r2: both allocations on c2, none on c1.
	pinned := schedJob{id: "pinned", count: 2, group: rackConstraint("r2"), script: loopScript, version: "v1"}
	if res := s.cli("job", "run", pinned.file(t)); res.code != 0 {
		t.Fatalf("job run pinned to r2: %s", res)
	}
	waitTasks(t, h.ctrd, h.clientNamespace(clients[1]), 2, "v1", loopScript)
	if n := len(runningTasks(t, h.ctrd, h.clientNamespace(clients[0]))); n != 0 {
		t.Fatalf("%d tasks on c1 (rack r1)", n)
	}
}

// TestSched_DrainMigrates: draining a node moves its allocations to the
// other client and leaves it ineligible, so nothing new lands on it
// until `node eligibility -enable`.
func TestSched_DrainMigrates(t *testing.T) {
	h, clients := rackCluster(t, 2)
	s := h.servers[0]
	job := schedJob{id: "mover", count: 2, script: loopScript, version: "v1"}
	if res := s.cli("job", "run", job.file(t)); res.code != 0 {
		t.Fatalf("job run: %s", res)
	}
	// Drain the node of the first allocation.
	live := liveAllocs(t, s, "mover")
	victim, other := clients[0], clients[1]
	victimID := live[0].NodeID
	if nodeIDOf(t, s, "c2") == victimID {
		victim, other = other, victim
	}
	onVictim := 0
	for _, al := range live {
		if al.NodeID == victimID {
			onVictim++
		}
	}
	victimNS, otherNS := h.clientNamespace(victim), h.clientNamespace(other)
	waitTasks(t, h.ctrd, victimNS, onVictim, "v1", loopScript)
	waitTasks(t, h.ctrd, otherNS, 2-onVictim, "v1", loopScript)

	res := s.cli("node", "drain", "-enable", "-deadline", "1m", victimID[:8])
	if res.code != 0 || !strings.Contains(res.stdout, fmt.Sprintf("Node %s drain complete; it stays ineligible", victimID[:8])) {
		t.Fatalf("node drain: %s", res)
	}
	waitTasks(t, h.ctrd, victimNS, 0, "v1", loopScript)
	waitTasks(t, h.ctrd, otherNS, 2, "v1", loopScript)
	live = liveAllocs(t, s, "mover")
	if len(live) != 2 {
		t.Fatalf("%d live allocations after the drain, want 2", len(live))
	}
	for _, al := range live {
		if al.NodeID == victimID {
			t.Fatalf("allocation %s still on the drained node", al.Name)
		}
	}
	row := regexp.MustCompile(`(?m)^` + victimID[:8] + ` +dc1 +` + victim.name + ` +<none> +\S+ +(\S+) +ready$`)
	eligibility := func() string {
		st := s.cli("node", "status")
		m := row.FindStringSubmatch(st.stdout)
		if st.code != 0 || m == nil {
			t.Fatalf("node status has no row for %s:\n%s", victim.name, st)
		}
		return m[1]
	}
	if e := eligibility(); e != "ineligible" {
		t.Fatalf("drained node is %s, want ineligible", e)
	}

	// Ineligible: a job that fits only there waits.
	rack := "r" + strings.TrimPrefix(victim.name, "c")
	back := schedJob{id: "back", count: 1, group: rackConstraint(rack), script: loopScript, version: "v1"}
	if res := s.cli("job", "run", back.file(t)); res.code != 2 {
		t.Fatalf("job run pinned to the ineligible node: want exit 2, got %s", res)
	}
	if res := s.cli("node", "eligibility", "-enable", victimID[:8]); res.code != 0 || !strings.Contains(res.stdout, "is eligible") {
		t.Fatalf("node eligibility -enable: %s", res)
	}
	if e := eligibility(); e != "eligible" {
		t.Fatalf("node is %s after eligibility -enable", e)
	}
	// The waiting allocation lands on it now.
	waitTasks(t, h.ctrd, victimNS, 1, "v1", loopScript)
}

// TestSched_SystemJobOnEveryClient: a system job runs one allocation on
// each client, `job run` returns once all of them run, and a client
// that joins later gets one too.
func TestSched_SystemJobOnEveryClient(t *testing.T) {
	h, clients := rackCluster(t, 2)
	s := h.servers[0]
	job := schedJob{id: "everywhere", jobType: "system", count: 1, script: loopScript, version: "v1"}
	res := s.cli("job", "run", "-timeout", "30s", job.file(t))
	if res.code != 0 || !strings.Contains(res.stdout, `All 2 allocations of job "everywhere" are running`) {
		t.Fatalf("job run of a system job: want exit 0 once both allocations run, got %s", res)
	}
	for _, al := range liveAllocs(t, s, "everywhere") {
		if al.ClientStatus != "running" {
			t.Fatalf("job run returned while allocation %s is %s", al.Name, al.ClientStatus)
		}
	}
	check := func(clients []*agent) {
		t.Helper()
		for _, cl := range clients {
			waitTasks(t, h.ctrd, h.clientNamespace(cl), 1, "v1", loopScript)
		}
		live := liveAllocs(t, s, "everywhere")
		nodes := map[string]bool{}
		for _, al := range live {
			nodes[al.NodeID] = true
		}
		if len(live) != len(clients) || len(nodes) != len(clients) {
			t.Fatalf("%d live allocations on %d nodes, want one on each of %d", len(live), len(nodes), len(clients))
		}
	}
	check(clients)

	c3 := h.addClient("c3")
	check(append(clients, c3))
}
