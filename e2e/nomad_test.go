package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/droverhq/drover/testutil"
)

// The conformance suite of issue 19: Nomad's own Go API client
// (github.com/hashicorp/nomad/api, MPL-2.0, a test-only dependency)
// drives a dev agent on real containerd, and every value it decodes is
// checked against what Drover's own API says. docs/nomad-compatibility.md
// lists which calls work; keep the two in agreement.

// nomadClient returns Nomad's API client pointed at the agent.
func nomadClient(t *testing.T, a *agent) *nomad.Client {
	t.Helper()
	cl, err := nomad.NewClient(&nomad.Config{Address: a.url()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// nomadSleepJob is a service job built with Nomad's constructors, as a
// new user of Nomad's client would write it.
func nomadSleepJob(id, image string, count int) *nomad.Job {
	task := nomad.NewTask("app", "containerd").
		SetConfig("image", image).
		SetConfig("command", "sleep").
		SetConfig("args", []string{"3600"})
	task.Require(&nomad.Resources{CPU: new(100), MemoryMB: new(32)})
	group := nomad.NewTaskGroup("g", count).AddTask(task)
	return nomad.NewServiceJob(id, id, "global", 50).AddTaskGroup(group)
}

// TestNomad_ServiceJobFromNomadConstructorsRuns: a job built with
// NewServiceJob/NewTaskGroup/NewTask and registered through Nomad's
// client runs as containers, and Jobs().Info returns what was sent.
func TestNomad_ServiceJobFromNomadConstructorsRuns(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	nc := nomadClient(t, a)

	sent := nomadSleepJob("nomad-web", c.image, 2)
	resp, wm, err := nc.Jobs().Register(sent, nil)
	if err != nil {
		t.Fatalf("Jobs().Register: %v", err)
	}
	if resp.EvalID == "" || wm.LastIndex == 0 {
		t.Fatalf("register response: %+v, index %d", resp, wm.LastIndex)
	}

	// containerd is the witness: two running tasks named after the
	// allocations Drover's own API lists.
	ctr, ctx := c.containerd()
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		allocs := liveAllocs(t, a, "nomad-web")
		running := 0
		for _, al := range allocs {
			cont, err := ctr.LoadContainer(ctx, al.ID+"-app")
			if err != nil {
				continue
			}
			task, err := cont.Task(ctx, nil)
			if err != nil {
				continue
			}
			if st, err := task.Status(ctx); err == nil && st.Status == "running" {
				running++
			}
		}
		return running == 2, fmt.Errorf("%d of %d allocations run a container, want 2", running, len(allocs))
	})

	got, qm, err := nc.Jobs().Info("nomad-web", nil)
	if err != nil {
		t.Fatalf("Jobs().Info: %v", err)
	}
	if qm.LastIndex == 0 {
		t.Fatalf("Jobs().Info returned no X-Nomad-Index")
	}
	// The fields Drover supports come back as sent.
	checks := []struct {
		name      string
		got, want interface{}
	}{
		{"ID", *got.ID, *sent.ID},
		{"Name", *got.Name, *sent.Name},
		{"Type", *got.Type, *sent.Type},
		{"Priority", *got.Priority, *sent.Priority},
		{"Namespace", *got.Namespace, "default"},
		{"TaskGroups", len(got.TaskGroups), 1},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("Jobs().Info %s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	gg, sg := got.TaskGroups[0], sent.TaskGroups[0]
	if *gg.Name != *sg.Name || *gg.Count != *sg.Count || len(gg.Tasks) != 1 {
		t.Fatalf("task group: got %s x%d with %d tasks, sent %s x%d", *gg.Name, *gg.Count, len(gg.Tasks), *sg.Name, *sg.Count)
	}
	gt, st := gg.Tasks[0], sg.Tasks[0]
	if gt.Name != st.Name || gt.Driver != st.Driver {
		t.Fatalf("task: got %s/%s, sent %s/%s", gt.Name, gt.Driver, st.Name, st.Driver)
	}
	if gt.Config["image"] != c.image || gt.Config["command"] != "sleep" || !reflect.DeepEqual(gt.Config["args"], []interface{}{"3600"}) {
		t.Fatalf("task config: got %v, sent %v", gt.Config, st.Config)
	}
	if gt.Resources == nil || *gt.Resources.CPU != 100 || *gt.Resources.MemoryMB != 32 {
		t.Fatalf("task resources: got %+v, sent CPU 100 MemoryMB 32", gt.Resources)
	}
}

// TestNomad_UnsupportedFieldRefused: a job that asks for what Drover
// cannot do (a host volume) is refused with a 400 naming the field,
// and nothing is stored; a field that is not Nomad's either stays an
// unknown-field error.
func TestNomad_UnsupportedFieldRefused(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	nc := nomadClient(t, a)

	job := nomadSleepJob("nomad-vol", c.image, 1)
	job.TaskGroups[0].Volumes = map[string]*nomad.VolumeRequest{
		"data": {Name: "data", Type: "host", Source: "data"},
	}
	_, _, err := nc.Jobs().Register(job, nil)
	if err == nil {
		t.Fatal("a job with a host volume was accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "400") || !strings.Contains(msg, "Job.TaskGroups[0].Volumes") || !strings.Contains(msg, "not supported") {
		t.Fatalf("refusal does not name the field and say it is not supported: %v", err)
	}
	if _, _, err := a.api.Jobs().Info("nomad-vol", nil); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("the refused job was stored (or the read failed otherwise): %v", err)
	}

	// Not a Nomad field either: still unknown.
	body := `{"Job":{"ID":"x","Regoin":"global","TaskGroups":[{"Name":"g","Tasks":[{"Name":"t","Driver":"containerd","Config":{"image":"i"}}]}]}}`
	req, err := http.NewRequest("PUT", a.url()+"/v1/jobs", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(out), "Job.Regoin") || !strings.Contains(string(out), "unknown field") {
		t.Fatalf("unknown field: %d %s", res.StatusCode, out)
	}
	if !a.alive() {
		t.Fatal("the agent died")
	}
}

// same fails the test when a value Nomad's client decoded differs from
// Drover's own API's.
func same(t *testing.T, what string, nomadVal, droverVal interface{}) {
	t.Helper()
	if !reflect.DeepEqual(nomadVal, droverVal) {
		t.Fatalf("%s: Nomad's client decoded %#v, Drover's API says %#v", what, nomadVal, droverVal)
	}
}

// waitContainers waits until n of the job's live allocations run a
// container of task "app" in containerd.
func waitContainers(t *testing.T, c *cluster, a *agent, jobID string, n int) {
	t.Helper()
	ctr, ctx := c.containerd()
	testutil.WaitFor(t, 60*time.Second, func() (bool, error) {
		allocs := liveAllocs(t, a, jobID)
		running := 0
		for _, al := range allocs {
			cont, err := ctr.LoadContainer(ctx, al.ID+"-app")
			if err != nil {
				continue
			}
			task, err := cont.Task(ctx, nil)
			if err != nil {
				continue
			}
			if st, err := task.Status(ctx); err == nil && st.Status == "running" {
				running++
			}
		}
		return running == n && len(allocs) == n, fmt.Errorf("%d of %d live allocations run a container, want %d", running, len(allocs), n)
	})
}

func unixNanoTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// TestNomad_ConformanceSuite drives one dev agent through Nomad's
// client: the calls of docs/nomad-compatibility.md marked "works", each
// decoded value checked against Drover's own API.
func TestNomad_ConformanceSuite(t *testing.T) {
	c := newCluster(t)
	a := c.startDevAgent()
	nc := nomadClient(t, a)
	const id = "conf"

	// Register a job canonicalized by Nomad's client, as `nomad job
	// run` sends it: every default filled in (Region, EphemeralDisk,
	// LogConfig, Update with HealthCheck "checks", ...).
	job := nomadSleepJob(id, c.image, 2)
	job.Update = &nomad.UpdateStrategy{MinHealthyTime: new(time.Second), HealthyDeadline: new(time.Minute), ProgressDeadline: new(2 * time.Minute)}
	job.Canonicalize()
	reg, wm, err := nc.Jobs().Register(job, nil)
	if err != nil {
		t.Fatalf("Jobs().Register of a canonicalized job: %v", err)
	}
	waitContainers(t, c, a, id, 2)

	t.Run("Jobs.List", func(t *testing.T) {
		stubs, qm, err := nc.Jobs().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		dstubs, _, err := a.api.Jobs().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(stubs) != 1 || len(dstubs) != 1 || qm.LastIndex == 0 || !qm.KnownLeader {
			t.Fatalf("Jobs().List: %d stubs (Drover %d), index %d, known leader %v", len(stubs), len(dstubs), qm.LastIndex, qm.KnownLeader)
		}
		s, d := stubs[0], dstubs[0]
		same(t, "ID", s.ID, d.ID)
		same(t, "Type", s.Type, d.Type)
		same(t, "Priority", s.Priority, d.Priority)
		same(t, "Status", s.Status, d.Status)
		same(t, "JobModifyIndex", s.JobModifyIndex, d.JobModifyIndex)
		same(t, "SubmitTime", s.SubmitTime, d.SubmitTime)
		same(t, "Namespace", s.Namespace, d.Namespace)
	})

	t.Run("Jobs.Info", func(t *testing.T) {
		got, _, err := nc.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Version", *got.Version, d.Version)
		same(t, "JobModifyIndex", *got.JobModifyIndex, d.JobModifyIndex)
		same(t, "JobModifyIndex (register)", *got.JobModifyIndex, reg.JobModifyIndex)
		same(t, "Status", *got.Status, d.Status)
		same(t, "Datacenters", got.Datacenters, d.Datacenters)
		same(t, "Count", *got.TaskGroups[0].Count, 2)
		same(t, "MinHealthyTime", *got.TaskGroups[0].Update.MinHealthyTime, time.Second)
		same(t, "KillTimeout", *got.TaskGroups[0].Tasks[0].KillTimeout, *job.TaskGroups[0].Tasks[0].KillTimeout)
		if wm.LastIndex < *got.CreateIndex {
			t.Fatalf("register index %d is before the job's CreateIndex %d", wm.LastIndex, *got.CreateIndex)
		}

		// EnforceRegister: a stale index is refused and changes nothing;
		// the current one is accepted.
		if _, _, err := nc.Jobs().EnforceRegister(job, d.JobModifyIndex+1000, nil); err == nil {
			t.Fatal("EnforceRegister with a stale index was accepted")
		}
		if _, _, err := nc.Jobs().EnforceRegister(job, d.JobModifyIndex, nil); err != nil {
			t.Fatalf("EnforceRegister with the current index: %v", err)
		}
		after, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "version after an unchanged EnforceRegister", after.Version, d.Version)
	})

	t.Run("Jobs.Summary", func(t *testing.T) {
		// containerd runs both tasks before the client's status
		// updates reach the servers: wait for the summary to count them.
		var sum *nomad.JobSummary
		testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
			var err error
			sum, _, err = nc.Jobs().Summary(id, nil)
			if err != nil {
				return false, err
			}
			return sum.Summary["g"].Running == 2, nil
		})
		allocs, _, err := a.api.Jobs().Allocations(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, al := range allocs {
			if al.ClientStatus == "running" {
				running++
			}
		}
		same(t, "JobID", sum.JobID, id)
		same(t, "Summary[g].Running", sum.Summary["g"].Running, running)
		same(t, "Summary[g].Running (containers)", sum.Summary["g"].Running, 2)
	})

	t.Run("Jobs.Allocations and Allocations", func(t *testing.T) {
		stubs, _, err := nc.Jobs().Allocations(id, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		dstubs, _, err := a.api.Jobs().Allocations(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for _, d := range dstubs {
			want[d.ID] = d.ClientStatus
		}
		got := map[string]string{}
		for _, s := range stubs {
			got[s.ID] = s.ClientStatus
		}
		same(t, "job allocations (ID: client status)", got, want)
		all, _, err := nc.Allocations().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Allocations().List count", len(all), len(dstubs))
		info, _, err := nc.Allocations().Info(dstubs[0].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, _, err := a.api.Allocations().Info(dstubs[0].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "alloc NodeID", info.NodeID, d.NodeID)
		same(t, "alloc CreateTime", info.CreateTime, d.CreateTime)
		same(t, "alloc task state", info.TaskStates["app"].State, d.TaskStates["app"].State)
		same(t, "alloc task StartedAt", info.TaskStates["app"].StartedAt.UnixNano(), d.TaskStates["app"].StartedAt.UnixNano())
	})

	t.Run("Evaluations", func(t *testing.T) {
		evals, _, err := nc.Jobs().Evaluations(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		devals, _, err := a.api.Jobs().Evaluations(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(evals) == 0 || len(evals) != len(devals) {
			t.Fatalf("%d evaluations, Drover %d", len(evals), len(devals))
		}
		byID := map[string]int{}
		for i, d := range devals {
			byID[d.ID] = i
		}
		for _, e := range evals {
			i, ok := byID[e.ID]
			if !ok {
				t.Fatalf("evaluation %s unknown to Drover's API", e.ID)
			}
			d := devals[i]
			same(t, "eval Status", e.Status, d.Status)
			same(t, "eval WaitUntil", e.WaitUntil.UnixNano(), unixNanoTime(d.WaitUntil).UnixNano())
			same(t, "eval CreateTime", e.CreateTime, d.CreateTime)
		}
		if _, ok := byID[reg.EvalID]; !ok {
			t.Fatalf("the registration's evaluation %s is not listed", reg.EvalID)
		}
		info, _, err := nc.Evaluations().Info(reg.EvalID, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Evaluations().Info JobID", info.JobID, id)
		list, _, err := nc.Evaluations().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		dlist, _, err := a.api.Evaluations().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Evaluations().List count", len(list), len(dlist))
	})

	t.Run("Deployments", func(t *testing.T) {
		deps, _, err := nc.Jobs().Deployments(id, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		ddeps, _, err := a.api.Jobs().Deployments(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(deps) == 0 || len(deps) != len(ddeps) {
			t.Fatalf("%d deployments, Drover %d", len(deps), len(ddeps))
		}
		latest, _, err := nc.Jobs().LatestDeployment(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		dlatest, _, err := a.api.Jobs().LatestDeployment(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "latest deployment ID", latest.ID, dlatest.ID)
		info, _, err := nc.Deployments().Info(latest.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		dinfo, _, err := a.api.Deployments().Info(latest.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "deployment JobVersion", info.JobVersion, dinfo.JobVersion)
		same(t, "deployment RequireProgressBy", info.TaskGroups["g"].RequireProgressBy.UnixNano(), unixNanoTime(dinfo.TaskGroups["g"].RequireProgressBy).UnixNano())
		list, _, err := nc.Deployments().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Deployments().List count", len(list), len(ddeps))
	})

	t.Run("Nodes", func(t *testing.T) {
		nodes, _, err := nc.Nodes().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		dnodes, _, err := a.api.Nodes().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 || len(dnodes) != 1 {
			t.Fatalf("%d nodes, Drover %d", len(nodes), len(dnodes))
		}
		same(t, "node ID", nodes[0].ID, dnodes[0].ID)
		same(t, "node Status", nodes[0].Status, dnodes[0].Status)
		same(t, "node driver UpdateTime", nodes[0].Drivers["containerd"].UpdateTime.UnixNano(), unixNanoTime(dnodes[0].Drivers["containerd"].UpdateTime).UnixNano())
		info, _, err := nc.Nodes().Info(nodes[0].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		dinfo, _, err := a.api.Nodes().Info(nodes[0].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "node Name", info.Name, dinfo.Name)
		same(t, "node Datacenter", info.Datacenter, dinfo.Datacenter)
		same(t, "node StatusUpdatedAt", info.StatusUpdatedAt, dinfo.StatusUpdatedAt)
		same(t, "node attribute cpu.numcores", info.Attributes["cpu.numcores"], dinfo.Attributes["cpu.numcores"])
	})

	t.Run("Status, Regions, Agent", func(t *testing.T) {
		peers, err := nc.Status().Peers()
		if err != nil {
			t.Fatal(err)
		}
		dpeers, err := a.api.Status().Peers()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Status().Peers", peers, dpeers)
		leader, err := nc.Status().Leader()
		if err != nil {
			t.Fatal(err)
		}
		dleader, err := a.api.Status().Leader()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Status().Leader", leader, dleader)
		servers, err := nc.Agent().Servers()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Agent().Servers", servers, dpeers)
		regions, err := nc.Regions().List()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Regions().List", regions, []string{"global"})
		members, err := nc.Agent().Members()
		if err != nil {
			t.Fatal(err)
		}
		dmembers, err := a.api.Agent().Members()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Agent().Members count", len(members.Members), len(dmembers))
		raft, err := nc.Operator().RaftGetConfiguration(nil)
		if err != nil {
			t.Fatal(err)
		}
		draft, err := a.api.Operator().RaftGetConfiguration(nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "raft server address", raft.Servers[0].Address, draft.Servers[0].Address)
		dc, err := nc.Agent().Datacenter()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Agent().Datacenter", dc, "dc1")
		self, err := nc.Agent().Self()
		if err != nil {
			t.Fatalf("Agent().Self: %v", err)
		}
		dself, err := a.api.Agent().Self()
		if err != nil {
			t.Fatal(err)
		}
		dmember, _ := dself["Member"].(map[string]interface{})
		if self.Member.Name == "" {
			t.Fatal("Agent().Self Member.Name is empty")
		}
		same(t, "Agent().Self Member.Name", self.Member.Name, dmember["Name"])
		same(t, "Agent().Self Member.Status", self.Member.Status, "alive")
		same(t, "Agent().Self Member.Tags[role]", self.Member.Tags["role"], "server,client")
		if self.Stats["raft"]["state"] != "Leader" {
			t.Fatalf("Agent().Self Stats[raft][state] = %q, want Leader", self.Stats["raft"]["state"])
		}
		name, err := nc.Agent().NodeName()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Agent().NodeName", name, self.Member.Name)
		region, err := nc.Agent().Region()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Agent().Region", region, "global")
		sched, _, err := nc.Operator().SchedulerGetConfiguration(nil)
		if err != nil {
			t.Fatal(err)
		}
		dsched, err := a.api.Operator().SchedulerGetConfiguration()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "scheduler SystemSchedulerEnabled", sched.SchedulerConfig.PreemptionConfig.SystemSchedulerEnabled, dsched.PreemptionConfig.SystemSchedulerEnabled)
		same(t, "scheduler ServiceSchedulerEnabled", sched.SchedulerConfig.PreemptionConfig.ServiceSchedulerEnabled, dsched.PreemptionConfig.ServiceSchedulerEnabled)
		// Nomad's get-modify-set: the configuration read back through
		// Nomad's client is accepted as it is, with one change.
		conf := sched.SchedulerConfig
		conf.PreemptionConfig.ServiceSchedulerEnabled = !dsched.PreemptionConfig.ServiceSchedulerEnabled
		if _, _, err := nc.Operator().SchedulerSetConfiguration(conf, nil); err != nil {
			t.Fatalf("Operator().SchedulerSetConfiguration: %v", err)
		}
		dafter, err := a.api.Operator().SchedulerGetConfiguration()
		if err != nil {
			t.Fatal(err)
		}
		same(t, "ServiceSchedulerEnabled after set", dafter.PreemptionConfig.ServiceSchedulerEnabled, conf.PreemptionConfig.ServiceSchedulerEnabled)
		conf.MemoryOversubscriptionEnabled = true
		if _, _, err := nc.Operator().SchedulerSetConfiguration(conf, nil); err == nil || !strings.Contains(err.Error(), "MemoryOversubscriptionEnabled") || !strings.Contains(err.Error(), "not supported") {
			t.Fatalf("memory oversubscription: %v", err)
		}
		conf.MemoryOversubscriptionEnabled = false
		conf.PreemptionConfig.ServiceSchedulerEnabled = dsched.PreemptionConfig.ServiceSchedulerEnabled
		if _, _, err := nc.Operator().SchedulerSetConfiguration(conf, nil); err != nil {
			t.Fatalf("Operator().SchedulerSetConfiguration back: %v", err)
		}
	})

	t.Run("Plan", func(t *testing.T) {
		more := nomadSleepJob(id, c.image, 3)
		more.Update = job.Update
		more.Canonicalize()
		plan, _, err := nc.Jobs().Plan(more, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "plan JobModifyIndex", plan.JobModifyIndex, d.JobModifyIndex)
		if plan.Annotations == nil || plan.Annotations.DesiredTGUpdates["g"] == nil {
			t.Fatalf("plan has no annotations for group g: %+v", plan.Annotations)
		}
		same(t, "plan places", plan.Annotations.DesiredTGUpdates["g"].Place, uint64(1))
		if plan.Diff == nil || plan.Diff.Type != "Edited" {
			t.Fatalf("plan diff: %+v", plan.Diff)
		}
		// A plan writes nothing.
		after, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "job version after plan", after.Version, d.Version)
	})

	t.Run("Scale and blocking query", func(t *testing.T) {
		_, qm, err := nc.Jobs().Allocations(id, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		type answer struct {
			n     int
			index uint64
			err   error
		}
		done := make(chan answer, 1)
		go func() {
			stubs, bqm, err := nc.Jobs().Allocations(id, false, &nomad.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: 30 * time.Second})
			if err != nil {
				done <- answer{err: err}
				return
			}
			done <- answer{n: len(stubs), index: bqm.LastIndex}
		}()
		resp, _, err := nc.Jobs().Scale(id, "g", new(3), "more", false, nil, nil)
		if err != nil {
			t.Fatalf("Jobs().Scale: %v", err)
		}
		if resp.EvalID == "" {
			t.Fatalf("scale response without an evaluation: %+v", resp)
		}
		ans := <-done
		if ans.err != nil || ans.index <= qm.LastIndex {
			t.Fatalf("blocking query at index %d: returned index %d, err %v", qm.LastIndex, ans.index, ans.err)
		}
		d, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "count after scale", d.TaskGroups[0].Count, 3)
		waitContainers(t, c, a, id, 3)
		st, _, err := nc.Jobs().ScaleStatus(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "ScaleStatus desired", st.TaskGroups["g"].Desired, 3)
		same(t, "ScaleStatus JobModifyIndex", st.JobModifyIndex, d.JobModifyIndex)

		// Refusals change nothing.
		if _, _, err := nc.Jobs().Scale(id, "nope", new(1), "", false, nil, nil); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("scaling an unknown group: %v", err)
		}
		if _, _, err := nc.Jobs().Scale(id, "g", new(-1), "", false, nil, nil); err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("scaling to -1: %v", err)
		}
		if _, _, err := nc.Jobs().Scale(id, "g", nil, "event only", false, nil, nil); err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("a scaling event without a count: %v", err)
		}
		after, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "JobModifyIndex after refused scales", after.JobModifyIndex, d.JobModifyIndex)

		// The CLI scales through the same endpoint and follows the
		// rollout.
		if res := a.cli("job", "scale", id, "nope", "1"); res.code == 0 || !strings.Contains(res.stdout+res.stderr, `"nope"`) {
			t.Fatalf("drover job scale of an unknown group: %s", res)
		}
		if res := a.cli("job", "scale", id, "g", "-1"); res.code == 0 {
			t.Fatalf("drover job scale to -1: %s", res)
		}
		if res := a.cli("job", "scale", id, "g", "4"); res.code != 0 {
			t.Fatalf("drover job scale: %s", res)
		}
		waitContainers(t, c, a, id, 4)
	})

	t.Run("Versions", func(t *testing.T) {
		versions, diffs, _, err := nc.Jobs().Versions(id, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		dversions, _, _, err := a.api.Jobs().VersionsWithDiffs(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(versions) != len(dversions) || len(versions) < 2 {
			t.Fatalf("%d versions, Drover %d, want at least 2 (register, scale)", len(versions), len(dversions))
		}
		for i := range versions {
			same(t, fmt.Sprintf("version %d", i), *versions[i].Version, dversions[i].Version)
			same(t, fmt.Sprintf("count of version %d", i), *versions[i].TaskGroups[0].Count, dversions[i].TaskGroups[0].Count)
		}
		if len(diffs) == 0 || diffs[0] == nil || diffs[0].Type != "Edited" {
			t.Fatalf("newest version's diff: %+v", diffs)
		}
	})

	t.Run("Revert and Stable", func(t *testing.T) {
		d, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := nc.Jobs().Revert(id, 0, nil, nil, "", ""); err != nil {
			t.Fatalf("Jobs().Revert: %v", err)
		}
		after, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "version after revert", after.Version, d.Version+1)
		same(t, "count after revert to version 0", after.TaskGroups[0].Count, 2)
		waitContainers(t, c, a, id, 2)
		if _, _, err := nc.Jobs().Stable(id, after.Version, true, nil); err != nil {
			t.Fatalf("Jobs().Stable: %v", err)
		}
		stable, _, err := a.api.Jobs().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "stable after Jobs().Stable", stable.Stable, true)
	})

	t.Run("Validate, prefix lists and nested lists", func(t *testing.T) {
		v, _, err := nc.Jobs().Validate(job, nil)
		if err != nil || len(v.ValidationErrors) != 0 || v.Error != "" {
			t.Fatalf("Jobs().Validate: %+v %v", v, err)
		}
		jobs, _, err := nc.Jobs().PrefixList(id[:2])
		if err != nil || len(jobs) != 1 || jobs[0].ID != id {
			t.Fatalf("Jobs().PrefixList: %+v %v", jobs, err)
		}
		dallocs, _, err := a.api.Jobs().Allocations(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		allocs, _, err := nc.Allocations().PrefixList(dallocs[0].ID[:8])
		if err != nil || len(allocs) != 1 || allocs[0].ID != dallocs[0].ID {
			t.Fatalf("Allocations().PrefixList: %+v %v", allocs, err)
		}
		nodes, _, err := nc.Nodes().PrefixList(dallocs[0].NodeID[:8])
		if err != nil || len(nodes) != 1 || nodes[0].ID != dallocs[0].NodeID {
			t.Fatalf("Nodes().PrefixList: %+v %v", nodes, err)
		}
		nallocs, _, err := nc.Nodes().Allocations(dallocs[0].NodeID, nil)
		if err != nil {
			t.Fatal(err)
		}
		dnallocs, _, err := a.api.Nodes().Allocations(dallocs[0].NodeID, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Nodes().Allocations count", len(nallocs), len(dnallocs))
		evals, _, err := nc.Evaluations().PrefixList(reg.EvalID[:8])
		if err != nil || len(evals) != 1 || evals[0].ID != reg.EvalID {
			t.Fatalf("Evaluations().PrefixList: %+v %v", evals, err)
		}
		ealloc, _, err := nc.Evaluations().Allocations(reg.EvalID, nil)
		if err != nil {
			t.Fatal(err)
		}
		dealloc, _, err := a.api.Evaluations().Allocations(reg.EvalID, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Evaluations().Allocations count", len(ealloc), len(dealloc))
		dep, _, err := a.api.Jobs().LatestDeployment(id, nil)
		if err != nil || dep == nil {
			t.Fatalf("latest deployment: %+v %v", dep, err)
		}
		deps, _, err := nc.Deployments().PrefixList(dep.ID[:8])
		if err != nil || len(deps) != 1 || deps[0].ID != dep.ID {
			t.Fatalf("Deployments().PrefixList: %+v %v", deps, err)
		}
		dalloc, _, err := nc.Deployments().Allocations(dep.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		ddalloc, _, err := a.api.Deployments().Allocations(dep.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "Deployments().Allocations count", len(dalloc), len(ddalloc))
		leader, err := nc.Status().RegionLeader("global")
		if err != nil || leader == "" {
			t.Fatalf("Status().RegionLeader: %q %v", leader, err)
		}
		if _, err := nc.Agent().Health(); err != nil {
			t.Fatalf("Agent().Health: %v", err)
		}
	})

	t.Run("Node eligibility and drain", func(t *testing.T) {
		nodes, _, err := a.api.Nodes().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		nid := nodes[0].ID
		if _, err := nc.Nodes().ToggleEligibility(nid, false, nil); err != nil {
			t.Fatalf("Nodes().ToggleEligibility(false): %v", err)
		}
		n, _, err := a.api.Nodes().Info(nid, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "eligibility", n.SchedulingEligibility, "ineligible")
		if _, err := nc.Nodes().ToggleEligibility(nid, true, nil); err != nil {
			t.Fatalf("Nodes().ToggleEligibility(true): %v", err)
		}
		// Turning a drain off on a node that does not drain: accepted,
		// nothing moves.
		if _, err := nc.Nodes().UpdateDrain(nid, nil, false, nil); err != nil {
			t.Fatalf("Nodes().UpdateDrain(nil): %v", err)
		}
		n, _, err = a.api.Nodes().Info(nid, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "eligibility after", n.SchedulingEligibility, "eligible")
		waitContainers(t, c, a, id, 2)
	})

	t.Run("Parse", func(t *testing.T) {
		src := fmt.Sprintf(`job "parsed" {
  group "g" {
    count = 1
    task "app" {
      driver = "containerd"
      config {
        image   = %q
        command = "sleep"
        args    = ["3600"]
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
`, c.image)
		parsed, err := nc.Jobs().ParseHCL(src, true)
		if err != nil {
			t.Fatalf("Jobs().ParseHCL: %v", err)
		}
		same(t, "parsed ID", *parsed.ID, "parsed")
		same(t, "parsed image", parsed.TaskGroups[0].Tasks[0].Config["image"], c.image)
		// What parse returns registers as it is.
		if _, _, err := nc.Jobs().Register(parsed, nil); err != nil {
			t.Fatalf("registering the parsed job: %v", err)
		}
		waitContainers(t, c, a, "parsed", 1)
		if _, err := nc.Jobs().ParseHCL(`job "x" { bogus = 1 }`, false); err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("parse of a broken job: %v", err)
		}
		if _, err := nc.Jobs().ParseHCLOpts(&nomad.JobsParseRequest{JobHCL: src, Variables: `x = 1`}); err == nil || !strings.Contains(err.Error(), "Variables") {
			t.Fatalf("parse with variables: %v", err)
		}
	})

	t.Run("Variables", func(t *testing.T) {
		v, _, err := nc.Variables().CheckedCreate(&nomad.Variable{Path: "nomad/conformance", Items: nomad.VariableItems{"k": "v1"}}, nil)
		if err != nil {
			t.Fatalf("CheckedCreate: %v", err)
		}
		mine, _, err := a.api.Variables().Read("nomad/conformance", nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "variable items", v.Items["k"], mine.Items["k"])
		same(t, "variable modify index", v.ModifyIndex, mine.ModifyIndex)
		same(t, "variable namespace", v.Namespace, mine.Namespace)
		// A second CheckedCreate conflicts, and Nomad's client decodes
		// the current variable from the 409.
		_, _, err = nc.Variables().CheckedCreate(&nomad.Variable{Path: "nomad/conformance", Items: nomad.VariableItems{"k": "v2"}}, nil)
		var conflict nomad.ErrCASConflict
		if !errors.As(err, &conflict) || conflict.Conflict == nil || conflict.Conflict.ModifyIndex != v.ModifyIndex {
			t.Fatalf("second CheckedCreate: %v (%+v)", err, conflict.Conflict)
		}
		v.Items = nomad.VariableItems{"k": "v3"}
		if _, _, err := nc.Variables().CheckedUpdate(v, nil); err != nil {
			t.Fatalf("CheckedUpdate: %v", err)
		}
		got, _, err := nc.Variables().Read("nomad/conformance", nil)
		if err != nil || got.Items["k"] != "v3" {
			t.Fatalf("Read: %+v %v", got, err)
		}
		list, _, err := nc.Variables().PrefixList("nomad/", nil)
		if err != nil || len(list) != 1 || list[0].Path != "nomad/conformance" {
			t.Fatalf("PrefixList: %+v %v", list, err)
		}
		if _, err := nc.Variables().CheckedDelete("nomad/conformance", v.ModifyIndex, nil); !errors.As(err, &conflict) {
			t.Fatalf("CheckedDelete with a stale index: %v", err)
		}
		if _, err := nc.Variables().Delete("nomad/conformance", nil); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if v, _, err := nc.Variables().Peek("nomad/conformance", nil); err != nil || v != nil {
			t.Fatalf("Peek after delete: %+v %v", v, err)
		}
	})

	t.Run("Deployments.Fail", func(t *testing.T) {
		// A new version with a deployment to fail: scale to 3.
		if _, _, err := nc.Jobs().Scale(id, "g", new(3), "", false, nil, nil); err != nil {
			t.Fatal(err)
		}
		var depID string
		testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
			d, _, err := a.api.Jobs().LatestDeployment(id, nil)
			if err != nil || d == nil {
				return false, fmt.Errorf("no deployment yet: %v", err)
			}
			j, _, err := a.api.Jobs().Info(id, nil)
			if err != nil {
				return false, err
			}
			depID = d.ID
			return d.JobVersion == j.Version, fmt.Errorf("latest deployment is of version %d, job at %d", d.JobVersion, j.Version)
		})
		if _, _, err := nc.Deployments().Fail(depID, nil); err != nil {
			d, _, _ := a.api.Deployments().Info(depID, nil)
			// A deployment that finished first cannot be failed any more.
			if d == nil || d.Status == "running" {
				t.Fatalf("Deployments().Fail: %v", err)
			}
			t.Logf("deployment finished before it could be failed (%s): %v", d.Status, err)
			return
		}
		d, _, err := a.api.Deployments().Info(depID, nil)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "deployment status after Fail", d.Status, "failed")
	})

	t.Run("Stop and purge", func(t *testing.T) {
		if _, _, err := nc.Jobs().Deregister(id, false, nil); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
			d, _, err := a.api.Jobs().Info(id, nil)
			if err != nil {
				return false, err
			}
			return d.Stop && len(liveAllocs(t, a, id)) == 0, fmt.Errorf("stop %v, status %s", d.Stop, d.Status)
		})
		got, _, err := nc.Jobs().Info(id, nil)
		if err != nil || !*got.Stop {
			t.Fatalf("stopped job through Nomad's client: %+v %v", got, err)
		}
		if _, _, err := nc.Jobs().Deregister(id, true, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.api.Jobs().Info(id, nil); err == nil {
			t.Fatal("purged job still readable through Drover's API")
		}
		if _, _, err := nc.Jobs().Info(id, nil); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("purged job through Nomad's client: %v", err)
		}
		if _, _, err := nc.Jobs().Summary(id, nil); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("summary of a purged job: %v", err)
		}
		if _, _, err := nc.Jobs().Scale(id, "g", new(1), "", false, nil, nil); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("scaling a purged job: %v", err)
		}
	})
}
