package scheduler

import (
	"sort"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// rollingJob returns a service job of count with a rolling update
// strategy.
func rollingJob(count, maxParallel, canary int) *structs.Job {
	job := smallJob(count)
	job.TaskGroups[0].Update = &structs.UpdateStrategy{MaxParallel: maxParallel, Canary: canary}
	job.Canonicalize()
	return job
}

// destructive returns the next version of job with a changed task env.
func destructive(job *structs.Job, value string) *structs.Job {
	v := job.Copy()
	v.TaskGroups[0].Tasks[0].Env = map[string]string{"VERSION": value}
	return v
}

// settle marks every live allocation of the job running and healthy and
// its deployment successful, as the deployment watcher would.
func (h *Harness) settle(jobID string) {
	h.t.Helper()
	h.setRunning(true, h.live(jobID)...)
	d, _ := h.State.LatestDeploymentByJobID(nil, "", jobID)
	if d != nil && d.Active() {
		err := h.State.UpdateDeploymentStatus(h.NextIndex(), &structs.DeploymentStatusUpdateRequest{
			DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: d.ID, Status: structs.DeploymentStatusSuccessful, StatusDescription: structs.DeploymentDescSuccessful},
			UpdatedAt:        h.Now.UnixNano(),
		})
		if err != nil {
			h.t.Fatal(err)
		}
	}
}

// versions counts the job's live allocations per job version.
func (h *Harness) versions(jobID string) map[uint64]int {
	out := map[uint64]int{}
	for _, a := range h.live(jobID) {
		out[a.JobVersion]++
	}
	return out
}

func TestDeployment_RollingUpdateMaxParallel(t *testing.T) {
	h := NewHarness(t)
	nodes := []*structs.Node{namedNode("n1"), namedNode("n2"), namedNode("n3")}
	job := rollingJob(5, 2, 0)
	h.Process(register(t, h, job, nodes...))

	// The first version is placed at once, in a deployment of its own.
	if n := len(Placed(h.LastPlan())); n != 5 {
		t.Fatalf("initial placements %d, want all 5", n)
	}
	d0 := h.deployment(job.ID)
	if d0.JobVersion != 0 || d0.Status != structs.DeploymentStatusRunning || d0.TaskGroups["web"].DesiredTotal != 5 || d0.TaskGroups["web"].PlacedAllocs != 5 {
		t.Fatalf("initial deployment %+v %+v", d0, d0.TaskGroups["web"])
	}
	h.settle(job.ID)

	v1 := destructive(job, "1")
	h.Process(register(t, h, v1))
	plan := h.LastPlan()
	if len(Stopped(plan)) != 2 || len(newAllocs(plan)) != 2 {
		t.Fatalf("first batch: stopped %d placed %d, want max_parallel=2 of each", len(Stopped(plan)), len(newAllocs(plan)))
	}
	for _, s := range Stopped(plan) {
		if s.DesiredDescription != descUpdated {
			t.Fatalf("stop description %q", s.DesiredDescription)
		}
	}
	d := plan.Deployment
	if d == nil || d.JobVersion != 1 || d.Status != structs.DeploymentStatusRunning {
		t.Fatalf("plan deployment %+v, want a running one for version 1", d)
	}
	if st := d.TaskGroups["web"]; st == nil || st.DesiredTotal != 5 || st.DesiredCanaries != 0 || st.Promoted {
		t.Fatalf("deployment state %+v, want desired total 5 and no canaries", st)
	}
	if len(plan.DeploymentUpdates) != 0 {
		t.Fatalf("the successful deployment of version 0 must not be touched: %+v", plan.DeploymentUpdates)
	}
	for _, a := range newAllocs(plan) {
		if a.DeploymentID != d.ID || a.JobVersion != 1 {
			t.Fatalf("%s: deployment %q version %d", a.Name, a.DeploymentID, a.JobVersion)
		}
	}
	u := plan.Annotations.DesiredTGUpdates["web"]
	if u.DestructiveUpdate != 2 || u.Ignore != 3 || u.Place != 0 {
		t.Fatalf("annotations %+v, want 2 destructive and 3 ignored", u)
	}

	// Until the new allocations are healthy, nothing else is replaced.
	h.setRunning(false, newAllocs(plan)...)
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("replaced more before the first batch was healthy: %+v", Placed(h.LastPlan()))
	}
	if got := h.versions(job.ID); got[0] != 3 || got[1] != 2 {
		t.Fatalf("versions %v", got)
	}

	// One healthy: one more slot.
	first := newAllocs(plan)
	h.setRunning(true, first[0])
	h.Process(reeval(t, h, job.ID))
	if p := newAllocs(h.LastPlan()); len(p) != 1 || len(Stopped(h.LastPlan())) != 1 || p[0].DeploymentID != d.ID {
		t.Fatalf("after one healthy: placed %d stopped %d, want 1 and 1", len(p), len(Stopped(h.LastPlan())))
	}

	// Then batches until done.
	for i := 0; i < 5 && h.versions(job.ID)[0] > 0; i++ {
		h.setRunning(true, h.live(job.ID)...)
		before := len(h.Plans)
		h.Process(reeval(t, h, job.ID))
		if len(h.Plans) == before {
			t.Fatalf("rollout stalled with all allocations healthy: %v", h.versions(job.ID))
		}
		if n := len(newAllocs(h.LastPlan())); n > 2 {
			t.Fatalf("batch of %d exceeds max_parallel 2", n)
		}
	}
	if got := h.versions(job.ID); got[1] != 5 || len(got) != 1 {
		t.Fatalf("final versions %v, want 5 of version 1", got)
	}
	dep := h.deployment(job.ID)
	if dep.ID != d.ID || dep.TaskGroups["web"].PlacedAllocs != 5 {
		t.Fatalf("deployment placed %d, want 5", dep.TaskGroups["web"].PlacedAllocs)
	}
}

func TestDeployment_NewVersionCancelsRunningDeployment(t *testing.T) {
	h := NewHarness(t)
	job := rollingJob(3, 1, 0)
	h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
	h.settle(job.ID)
	h.Process(register(t, h, destructive(job, "1")))
	d1 := h.deployment(job.ID)

	h.Process(register(t, h, destructive(job, "2")))
	plan := h.LastPlan()
	if len(plan.DeploymentUpdates) != 1 {
		t.Fatalf("deployment updates %+v, want version 1's cancelled", plan.DeploymentUpdates)
	}
	if u := plan.DeploymentUpdates[0]; u.DeploymentID != d1.ID || u.Status != structs.DeploymentStatusCancelled || u.StatusDescription != structs.DeploymentDescNewerJob {
		t.Fatalf("update %+v", u)
	}
	if plan.Deployment == nil || plan.Deployment.JobVersion != 2 {
		t.Fatalf("no deployment for version 2: %+v", plan.Deployment)
	}
	// Version 1's unhealthy allocation is in flight only for its own
	// deployment; the new one replaces max_parallel at once.
	if n := len(newAllocs(plan)); n != 1 {
		t.Fatalf("placed %d, want 1", n)
	}
}

func TestDeployment_FailedDeploymentReplacesNothingMore(t *testing.T) {
	h := NewHarness(t)
	job := rollingJob(3, 1, 0)
	h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
	h.settle(job.ID)
	h.Process(register(t, h, destructive(job, "1")))
	d := h.deployment(job.ID)
	h.setRunning(true, newAllocs(h.LastPlan())...)
	if err := h.State.UpdateDeploymentStatus(h.NextIndex(), &structs.DeploymentStatusUpdateRequest{
		DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: d.ID, Status: structs.DeploymentStatusFailed, StatusDescription: structs.DeploymentDescFailedByUser},
		UpdatedAt:        h.Now.UnixNano(),
	}); err != nil {
		t.Fatal(err)
	}
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("a failed rollout went on: %+v", Placed(h.LastPlan()))
	}
	if got := h.versions(job.ID); got[0] != 2 || got[1] != 1 {
		t.Fatalf("versions %v", got)
	}
}

func TestDeployment_CanaryThenPromote(t *testing.T) {
	h := NewHarness(t)
	job := rollingJob(3, 1, 1)
	h.Process(register(t, h, job, namedNode("n1"), namedNode("n2"), namedNode("n3")))
	// The first version has nothing to canary against.
	if p := Placed(h.LastPlan()); len(p) != 3 || p[0].DeploymentStatus.IsCanary() {
		t.Fatalf("initial placement %+v", p)
	}
	if st := h.deployment(job.ID).TaskGroups["web"]; st.DesiredCanaries != 0 {
		t.Fatalf("initial deployment wants %d canaries", st.DesiredCanaries)
	}
	h.settle(job.ID)
	old := h.live(job.ID)

	h.Process(register(t, h, destructive(job, "1")))
	plan := h.LastPlan()
	if len(Stopped(plan)) != 0 {
		t.Fatalf("canaries stop nothing, stopped %d", len(Stopped(plan)))
	}
	canaries := newAllocs(plan)
	if len(canaries) != 1 || !canaries[0].DeploymentStatus.IsCanary() || canaries[0].JobVersion != 1 {
		t.Fatalf("placed %+v, want one canary of version 1", canaries)
	}
	canary := canaries[0]
	d := plan.Deployment
	st := d.TaskGroups["web"]
	if st.DesiredCanaries != 1 || st.DesiredTotal != 3 || st.Promoted || d.StatusDescription != structs.DeploymentDescRunningNeedsPromote {
		t.Fatalf("deployment %q state %+v", d.StatusDescription, st)
	}
	if u := plan.Annotations.DesiredTGUpdates["web"]; u.Canary != 1 || u.DestructiveUpdate != 0 || u.Ignore != 3 {
		t.Fatalf("annotations %+v", u)
	}
	if stored := h.deployment(job.ID); len(stored.TaskGroups["web"].PlacedCanaries) != 1 || stored.TaskGroups["web"].PlacedCanaries[0] != canary.ID {
		t.Fatalf("deployment's placed canaries %v", stored.TaskGroups["web"].PlacedCanaries)
	}

	// Healthy but not promoted: nothing more happens, and no second
	// canary is placed.
	h.setRunning(true, canary)
	plans := len(h.Plans)
	h.Process(reeval(t, h, job.ID))
	if len(h.Plans) != plans {
		t.Fatalf("unpromoted canary deployment changed: %+v", Placed(h.LastPlan()))
	}

	// Promote: the canary takes over its instance's slot (the old
	// allocation stops), and the rollout continues max_parallel at a time.
	if err := h.State.PromoteDeployment(h.NextIndex(), &structs.DeploymentPromoteRequest{DeploymentID: d.ID, All: true, UpdatedAt: h.Now.UnixNano()}); err != nil {
		t.Fatal(err)
	}
	if !h.deployment(job.ID).TaskGroups["web"].Promoted {
		t.Fatalf("promotion not stored")
	}
	h.Process(reeval(t, h, job.ID))
	plan = h.LastPlan()
	stops := stopsByID(plan)
	var replacedByCanary *structs.Allocation
	for _, a := range old {
		if a.Name == canary.Name {
			replacedByCanary = a
		}
	}
	if s := stops[replacedByCanary.ID]; s == nil || s.DesiredDescription != descCanary {
		t.Fatalf("the old alloc %s the canary replaces: stop %+v", replacedByCanary.Name, s)
	}
	if len(stops) != 2 || len(newAllocs(plan)) != 1 {
		t.Fatalf("after promotion: stopped %d placed %d, want 2 (canary's twin + 1 destructive) and 1", len(stops), len(newAllocs(plan)))
	}
	if p := newAllocs(plan)[0]; p.DeploymentStatus.IsCanary() || p.DeploymentID != d.ID {
		t.Fatalf("post-promotion placement %+v", p)
	}
	if _, stopped := stops[canary.ID]; stopped {
		t.Fatalf("the promoted canary was stopped")
	}

	for i := 0; i < 3 && h.versions(job.ID)[0] > 0; i++ {
		h.setRunning(true, h.live(job.ID)...)
		h.Process(reeval(t, h, job.ID))
	}
	if got := h.versions(job.ID); got[1] != 3 || len(got) != 1 {
		t.Fatalf("final versions %v", got)
	}
	names := map[string]bool{}
	for _, a := range h.live(job.ID) {
		if names[a.Name] {
			t.Fatalf("two live allocs named %s", a.Name)
		}
		names[a.Name] = true
	}
	if h.alloc(canary.ID).TerminalStatus() {
		t.Fatalf("the canary did not survive the rollout")
	}
}

func TestDeployment_AutoRevertPlacesRevertedVersion(t *testing.T) {
	h := NewHarness(t)
	job := rollingJob(3, 1, 0)
	job.TaskGroups[0].Update.AutoRevert = true
	h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
	h.settle(job.ID) // version 0 is now stable
	if j, _ := h.State.JobByIDAndVersion(nil, "", job.ID, 0); j == nil || !j.Stable {
		t.Fatalf("version 0 not stable")
	}

	h.Process(register(t, h, destructive(job, "bad")))
	bad := newAllocs(h.LastPlan())
	if len(bad) != 1 {
		t.Fatalf("placed %d of version 1", len(bad))
	}
	d1 := h.deployment(job.ID)
	h.setRunning(false, bad...)
	h.clientUpdate(func(a *structs.Allocation) {
		unhealthy := false
		a.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: &unhealthy}
	}, bad...)

	// The deployment watcher fails the deployment and registers the
	// stable version 0 again, as version 2.
	stable, _ := h.State.JobByIDAndVersion(nil, "", job.ID, 0)
	revert := stable.Copy()
	revertEval := &structs.Evaluation{ID: structs.GenerateUUID(), Priority: job.Priority, Type: job.Type,
		TriggeredBy: structs.EvalTriggerJobRevert, JobID: job.ID, Status: structs.EvalStatusPending}
	if err := h.State.UpdateDeploymentStatus(h.NextIndex(), &structs.DeploymentStatusUpdateRequest{
		DeploymentUpdate: &structs.DeploymentStatusUpdate{DeploymentID: d1.ID, Status: structs.DeploymentStatusFailed,
			StatusDescription: structs.DeploymentDescFailedAllocations},
		Job: revert, Eval: revertEval, UpdatedAt: h.Now.UnixNano(), SubmitTime: h.Now.UnixNano(),
	}); err != nil {
		t.Fatal(err)
	}
	current, _ := h.State.JobByID(nil, "", job.ID)
	if current.Version != 2 {
		t.Fatalf("reverted job is version %d, want 2", current.Version)
	}
	stored, _ := h.State.EvalByID(nil, revertEval.ID)
	h.Process(stored)

	plan := h.LastPlan()
	// The bad allocation is replaced by version 2 (version 0's spec);
	// the version 0 allocations already run that spec and are updated
	// in place.
	r := byPrevious(plan)[bad[0].ID]
	if r == nil || r.JobVersion != 2 {
		t.Fatalf("replacement of the bad alloc %+v", r)
	}
	if s := stopsByID(plan)[bad[0].ID]; s == nil {
		t.Fatalf("bad alloc not stopped")
	}
	inplace := 0
	for _, a := range Placed(plan) {
		if a.CreateIndex != 0 {
			inplace++
			if a.JobVersion != 2 || a.DeploymentID != plan.Deployment.ID || !a.DeploymentStatus.IsHealthy() {
				t.Fatalf("in-place update %s: version %d deployment %q status %+v", a.Name, a.JobVersion, a.DeploymentID, a.DeploymentStatus)
			}
		}
	}
	if inplace != 2 || len(Stopped(plan)) != 1 {
		t.Fatalf("in-place %d stopped %d, want 2 and 1", inplace, len(Stopped(plan)))
	}
	if plan.Deployment == nil || plan.Deployment.JobVersion != 2 || len(plan.DeploymentUpdates) != 0 {
		t.Fatalf("deployment %+v updates %+v", plan.Deployment, plan.DeploymentUpdates)
	}
	if got := h.versions(job.ID); got[2] != 3 {
		t.Fatalf("versions after revert %v, want 3 of version 2", got)
	}
}

func TestUpdate_InPlaceVersusDestructive(t *testing.T) {
	cases := []struct {
		name        string
		change      func(*structs.Job)
		destructive bool
	}{
		{name: "count", change: func(j *structs.Job) { j.TaskGroups[0].Count = 2 }},
		{name: "kill timeout", change: func(j *structs.Job) { j.TaskGroups[0].Tasks[0].KillTimeout = time.Minute }},
		{name: "group meta", change: func(j *structs.Job) { j.TaskGroups[0].Meta = map[string]string{"team": "b"} }},
		{name: "job meta", change: func(j *structs.Job) { j.Meta = map[string]string{"owner": "someone else"} }},
		{name: "restart policy", change: func(j *structs.Job) { j.TaskGroups[0].RestartPolicy.Attempts = 9 }},
		{name: "reschedule policy", change: func(j *structs.Job) { j.TaskGroups[0].ReschedulePolicy.Delay = time.Minute }},
		{name: "affinity", change: func(j *structs.Job) {
			j.TaskGroups[0].Affinities = []*structs.Affinity{{LTarget: "${meta.rack}", Operand: "=", RTarget: "r1", Weight: 50}}
		}},
		{name: "env", destructive: true, change: func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Env["X"] = "y" }},
		{name: "image", destructive: true, change: func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Config.Image = "other:1" }},
		{name: "resources", destructive: true, change: func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.MemoryMB = 300 }},
		{name: "task meta", destructive: true, change: func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Meta = map[string]string{"a": "b"} }},
		{name: "ports", destructive: true, change: func(j *structs.Job) {
			j.TaskGroups[0].Networks = []*structs.NetworkResource{{Mode: "host", DynamicPorts: []structs.Port{{Label: "http"}}}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHarness(t)
			job := smallJob(3)
			h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
			before := map[string]bool{}
			for _, a := range h.live(job.ID) {
				before[a.ID] = true
			}
			v1 := job.Copy()
			tc.change(v1)
			h.Process(register(t, h, v1))
			plan := h.LastPlan()
			u := plan.Annotations.DesiredTGUpdates["web"]
			count := v1.TaskGroups[0].Count
			if tc.destructive {
				if u.DestructiveUpdate != 3 || u.InPlaceUpdate != 0 || len(newAllocs(plan)) != 3 {
					t.Fatalf("annotations %+v, placed %d new; want 3 destructive", u, len(newAllocs(plan)))
				}
				return
			}
			if u.InPlaceUpdate != count || u.DestructiveUpdate != 0 || len(newAllocs(plan)) != 0 {
				t.Fatalf("annotations %+v, placed %d new; want %d in place", u, len(newAllocs(plan)), count)
			}
			for _, a := range Placed(plan) {
				if !before[a.ID] || a.JobVersion != 1 || a.EvalID != plan.EvalID {
					t.Fatalf("in-place update %s: known %t version %d", a.Name, before[a.ID], a.JobVersion)
				}
			}
			live := h.live(job.ID)
			if len(live) != count {
				t.Fatalf("%d live, want %d", len(live), count)
			}
			for _, a := range live {
				if !before[a.ID] || a.JobVersion != 1 || a.Job.Version != 1 || a.ClientStatus != structs.AllocClientStatusPending {
					t.Fatalf("stored in-place alloc %s: version %d job v%d client %s", a.Name, a.JobVersion, a.Job.Version, a.ClientStatus)
				}
			}
		})
	}
}

func TestUpdate_InPlaceJoinsNewDeploymentHealthy(t *testing.T) {
	h := NewHarness(t)
	job := rollingJob(2, 1, 0)
	h.Process(register(t, h, job, namedNode("n1")))
	h.settle(job.ID)
	v1 := job.Copy()
	v1.TaskGroups[0].Meta = map[string]string{"changed": "yes"}
	h.Process(register(t, h, v1))
	plan := h.LastPlan()
	if plan.Deployment == nil || plan.Deployment.JobVersion != 1 {
		t.Fatalf("deployment %+v", plan.Deployment)
	}
	placed := Placed(plan)
	sort.Slice(placed, func(i, j int) bool { return placed[i].Name < placed[j].Name })
	if len(placed) != 2 || len(Stopped(plan)) != 0 {
		t.Fatalf("placed %d stopped %d", len(placed), len(Stopped(plan)))
	}
	for _, a := range placed {
		if a.DeploymentID != plan.Deployment.ID || !a.DeploymentStatus.IsHealthy() {
			t.Fatalf("%s: deployment %q status %+v; a running alloc updated in place is healthy in the new deployment", a.Name, a.DeploymentID, a.DeploymentStatus)
		}
	}
	if st := h.deployment(job.ID).TaskGroups["web"]; st.HealthyAllocs != 2 || st.PlacedAllocs != 2 {
		t.Fatalf("stored deployment state %+v", st)
	}
}

func TestUpdate_DestructiveWithoutRoomKeepsOldAllocs(t *testing.T) {
	// The new version asks for more than any node has: the old
	// allocations keep running instead of being stopped for nothing.
	h := NewHarness(t)
	job := smallJob(2)
	h.Process(register(t, h, job, namedNode("n1"), namedNode("n2")))
	old := h.live(job.ID)
	v1 := job.Copy()
	v1.TaskGroups[0].Tasks[0].Resources.MemoryMB = 100_000
	h.Process(register(t, h, v1))
	if n := len(Stopped(h.LastPlan())); n != 0 {
		t.Fatalf("stopped %d allocs whose replacement could not be placed", n)
	}
	live := h.live(job.ID)
	if len(live) != 2 || live[0].ID != old[0].ID || live[1].ID != old[1].ID {
		t.Fatalf("live allocs changed: %+v", live)
	}
	e := h.LastEval()
	if e.QueuedAllocations["web"] != 2 || e.FailedTGAllocs["web"] == nil || e.FailedTGAllocs["web"].DimensionExhausted["memory"] != 2 {
		t.Fatalf("queued %v failures %+v", e.QueuedAllocations, e.FailedTGAllocs["web"])
	}
}

func TestUpdate_DestructiveRoomGivenAwayStillStops(t *testing.T) {
	// One node with room for exactly one new-version allocation, freed by
	// stopping both old ones: the first replacement takes that room, so
	// the second old allocation must stay stopped even though its own
	// replacement fails (un-stopping it would over-commit the node; the
	// harness checks).
	h := NewHarness(t)
	n := namedNode("n1", withResources(1000, 8192))
	job := smallJob(2) // 500 MHz each: the node is full
	h.Process(register(t, h, job, n))
	v1 := job.Copy()
	v1.TaskGroups[0].Tasks[0].Resources.CPU = 600
	h.Process(register(t, h, v1))
	plan := h.LastPlan()
	if len(Stopped(plan)) != 2 || len(newAllocs(plan)) != 1 {
		t.Fatalf("stopped %d placed %d, want 2 and 1", len(Stopped(plan)), len(newAllocs(plan)))
	}
}

func TestUpdate_ConstraintChangeMovesAllocsOffNodesThatNoLongerQualify(t *testing.T) {
	h := NewHarness(t)
	r1 := namedNode("r1", withMeta("rack", "r1"))
	r2 := namedNode("r2", withMeta("rack", "r2"))
	job := smallJob(2)
	job.TaskGroups[0].Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts}}
	h.Process(register(t, h, job, r1, r2))
	if got := placedOn(h.live(job.ID)); got[r1.ID] != 1 || got[r2.ID] != 1 {
		t.Fatalf("initial %v", got)
	}
	var onR1 *structs.Allocation
	for _, a := range h.live(job.ID) {
		if a.NodeID == r1.ID {
			onR1 = a
		}
	}
	v1 := job.Copy()
	v1.TaskGroups[0].Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: "=", RTarget: "r2"}}
	h.Process(register(t, h, v1))
	plan := h.LastPlan()
	if s := stopsByID(plan)[onR1.ID]; s == nil || s.DesiredDescription != descUpdated {
		t.Fatalf("the alloc on r1 must be replaced, stop %+v", s)
	}
	if u := plan.Annotations.DesiredTGUpdates["web"]; u.InPlaceUpdate != 1 || u.DestructiveUpdate != 1 {
		t.Fatalf("annotations %+v, want the r2 alloc in place and the r1 one replaced", u)
	}
	if got := placedOn(h.live(job.ID)); got[r2.ID] != 2 {
		t.Fatalf("live per node %v, want both on r2", got)
	}
}

func TestDeployment_StoppingTheJobCancelsItsDeployment(t *testing.T) {
	h := NewHarness(t)
	job := rollingJob(2, 1, 0)
	h.Process(register(t, h, job, namedNode("n1")))
	d := h.deployment(job.ID)
	stopped := job.Copy()
	stopped.Stop = true
	h.Process(register(t, h, stopped))
	plan := h.LastPlan()
	if len(plan.DeploymentUpdates) != 1 || plan.DeploymentUpdates[0].DeploymentID != d.ID ||
		plan.DeploymentUpdates[0].Status != structs.DeploymentStatusCancelled || plan.DeploymentUpdates[0].StatusDescription != structs.DeploymentDescStopped {
		t.Fatalf("deployment updates %+v", plan.DeploymentUpdates)
	}
	if plan.Deployment != nil || len(Stopped(plan)) != 2 {
		t.Fatalf("deployment %+v, stopped %d", plan.Deployment, len(Stopped(plan)))
	}
	if got := h.deployment(job.ID); got.Status != structs.DeploymentStatusCancelled {
		t.Fatalf("stored deployment %s", got.Status)
	}
}

// Dropping a datacenter from a job replaces the allocations placed there
// (they no longer qualify) and leaves the others in place.
func TestUpdate_DatacenterRemovedMovesAllocs(t *testing.T) {
	h := NewHarness(t)
	inDC := func(dc string) func(*structs.Node) { return func(n *structs.Node) { n.Datacenter = dc } }
	d1 := namedNode("d1", inDC("dc1"))
	d2 := namedNode("d2", inDC("dc2"))
	job := smallJob(2)
	job.Datacenters = []string{"dc1", "dc2"}
	job.TaskGroups[0].Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts}}
	h.Process(register(t, h, job, d1, d2))
	if got := placedOn(h.live(job.ID)); got[d1.ID] != 1 || got[d2.ID] != 1 {
		t.Fatalf("initial %v", got)
	}
	v1 := job.Copy()
	v1.Datacenters = []string{"dc1"}
	v1.TaskGroups[0].Constraints = nil
	h.Process(register(t, h, v1))
	if u := h.LastPlan().Annotations.DesiredTGUpdates["web"]; u.InPlaceUpdate != 1 || u.DestructiveUpdate != 1 {
		t.Fatalf("annotations %+v, want the dc1 alloc in place and the dc2 one replaced", u)
	}
	if got := placedOn(h.live(job.ID)); got[d1.ID] != 2 || got[d2.ID] != 0 {
		t.Fatalf("live per node %v, want both in dc1", got)
	}
}
