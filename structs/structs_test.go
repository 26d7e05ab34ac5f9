package structs

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func validJob() *Job {
	j := &Job{
		ID: "web",
		TaskGroups: []*TaskGroup{{
			Name:  "web",
			Count: 2,
			Networks: []*NetworkResource{{
				DynamicPorts:  []Port{{Label: "http"}},
				ReservedPorts: []Port{{Label: "admin", Value: 8080}},
			}},
			Tasks: []*Task{{
				Name:      "server",
				Driver:    "containerd",
				Config:    &TaskConfig{Image: "busybox"},
				Resources: &Resources{CPU: 100, MemoryMB: 64},
			}},
		}},
	}
	j.Canonicalize()
	return j
}

func TestJob_ValidateReportsEveryProblemWithItsPath(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(j *Job)
		paths  []string
	}{
		{"valid", func(*Job) {}, nil},
		{"no ID", func(j *Job) { j.ID = "" }, []string{"ID"}},
		{"bad ID chars", func(j *Job) { j.ID = "a/b" }, []string{"ID"}},
		{"unknown type", func(j *Job) { j.Type = "daemon" }, []string{"Type"}},
		{"priority out of range", func(j *Job) { j.Priority = 101 }, []string{"Priority"}},
		{"negative count", func(j *Job) { j.TaskGroups[0].Count = -1 }, []string{"TaskGroups[0].Count"}},
		{"zero memory", func(j *Job) { j.TaskGroups[0].Tasks[0].Resources.MemoryMB = 0 }, []string{"TaskGroups[0].Tasks[0].Resources.MemoryMB"}},
		{"negative memory and cpu", func(j *Job) {
			j.TaskGroups[0].Tasks[0].Resources.MemoryMB = -5
			j.TaskGroups[0].Tasks[0].Resources.CPU = -1
		}, []string{"TaskGroups[0].Tasks[0].Resources.CPU", "TaskGroups[0].Tasks[0].Resources.MemoryMB"}},
		{"missing driver", func(j *Job) { j.TaskGroups[0].Tasks[0].Driver = "" }, []string{"TaskGroups[0].Tasks[0].Driver"}},
		{"unknown driver", func(j *Job) { j.TaskGroups[0].Tasks[0].Driver = "docker" }, []string{"TaskGroups[0].Tasks[0].Driver"}},
		{"missing image", func(j *Job) { j.TaskGroups[0].Tasks[0].Config.Image = " " }, []string{"TaskGroups[0].Tasks[0].Config.image"}},
		{"duplicate port label", func(j *Job) { j.TaskGroups[0].Networks[0].ReservedPorts[0].Label = "http" }, []string{"TaskGroups[0].Networks[0].DynamicPorts[0].Label"}},
		{"dynamic port with value", func(j *Job) { j.TaskGroups[0].Networks[0].DynamicPorts[0].Value = 9 }, []string{"TaskGroups[0].Networks[0].DynamicPorts[0].Value"}},
		{"static port out of range", func(j *Job) { j.TaskGroups[0].Networks[0].ReservedPorts[0].Value = 70000 }, []string{"TaskGroups[0].Networks[0].ReservedPorts[0].Value"}},
		{"duplicate task", func(j *Job) {
			j.TaskGroups[0].Tasks = append(j.TaskGroups[0].Tasks, j.TaskGroups[0].Tasks[0].Copy())
		}, []string{"TaskGroups[0].Tasks[1].Name"}},
		{"no groups", func(j *Job) { j.TaskGroups = nil }, []string{"TaskGroups"}},
		{"bad restart mode", func(j *Job) { j.TaskGroups[0].RestartPolicy.Mode = "sometimes" }, []string{"TaskGroups[0].RestartPolicy.Mode"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := validJob()
			tc.mutate(j)
			err := j.Validate()
			if len(tc.paths) == 0 {
				if err != nil {
					t.Fatalf("valid job rejected: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			var got []string
			for _, p := range verr.Problems {
				got = append(got, p.Path)
			}
			if strings.Join(got, ",") != strings.Join(tc.paths, ",") {
				t.Fatalf("problem paths %v, want %v (%v)", got, tc.paths, err)
			}
		})
	}
}

func TestJob_CanonicalizeIsIdempotentAndFillsDefaults(t *testing.T) {
	j := &Job{ID: "x", TaskGroups: []*TaskGroup{{Name: "g", Tasks: []*Task{{Name: "t", Driver: "containerd"}}}}}
	j.Canonicalize()
	once := j.Copy()
	j.Canonicalize()
	if j.SpecChanged(once) {
		t.Fatal("a second Canonicalize changed the job")
	}
	tg := j.TaskGroups[0]
	if j.Type != JobTypeService || j.Priority != DefaultJobPriority || j.Datacenters[0] != DefaultDatacenter ||
		tg.RestartPolicy == nil || tg.ReschedulePolicy == nil ||
		tg.Tasks[0].Resources.MemoryMB != DefaultTaskMemoryMB || tg.Tasks[0].KillTimeout != DefaultKillTimeout {
		t.Fatalf("defaults not filled: %+v %+v", j, tg.Tasks[0])
	}
}

func TestJob_SpecChanged(t *testing.T) {
	a := validJob()
	b := a.Copy()
	b.Status, b.Version, b.ModifyIndex, b.SubmitTime = JobStatusRunning, 7, 99, 12345
	if a.SpecChanged(b) {
		t.Fatal("status and indexes are not spec")
	}
	b.TaskGroups[0].Tasks[0].Env = map[string]string{"A": "1"}
	if !a.SpecChanged(b) {
		t.Fatal("an env change is a spec change")
	}
}

func TestAllocsFit(t *testing.T) {
	node := &Node{
		NodeResources:     &NodeResources{Cpu: NodeCpuResources{CpuShares: 1000}, Memory: NodeMemoryResources{MemoryMB: 1000}},
		ReservedResources: &NodeReservedResources{Memory: NodeMemoryResources{MemoryMB: 100}, ReservedPorts: []int{4646}},
	}
	alloc := func(cpu, mem int64, ports ...int) *Allocation {
		a := &Allocation{AllocatedResources: &AllocatedResources{Tasks: map[string]*AllocatedTaskResources{
			"t": {Cpu: AllocatedCpuResources{CpuShares: cpu}, Memory: AllocatedMemoryResources{MemoryMB: mem}},
		}}}
		for _, p := range ports {
			a.AllocatedResources.Shared.Ports = append(a.AllocatedResources.Shared.Ports, AllocatedPortMapping{Value: p})
		}
		return a
	}
	cases := []struct {
		name   string
		allocs []*Allocation
		fit    bool
		dim    string
	}{
		{"fits exactly", []*Allocation{alloc(500, 450), alloc(500, 450)}, true, ""},
		{"reserved memory counts", []*Allocation{alloc(100, 901)}, false, "memory"},
		{"cpu", []*Allocation{alloc(600, 10), alloc(500, 10)}, false, "cpu"},
		{"port clash", []*Allocation{alloc(1, 1, 20000), alloc(1, 1, 20000)}, false, "ports"},
		{"reserved port", []*Allocation{alloc(1, 1, 4646)}, false, "ports"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fit, dim, _ := AllocsFit(node, tc.allocs)
			if fit != tc.fit || dim != tc.dim {
				t.Fatalf("fit %v %q, want %v %q", fit, dim, tc.fit, tc.dim)
			}
		})
	}
}

func TestProposedAllocs(t *testing.T) {
	a := &Allocation{ID: "a", DesiredStatus: AllocDesiredStatusRun}
	b := &Allocation{ID: "b", DesiredStatus: AllocDesiredStatusRun}
	bUpdated := &Allocation{ID: "b", DesiredStatus: AllocDesiredStatusRun, JobVersion: 2}
	c := &Allocation{ID: "c", DesiredStatus: AllocDesiredStatusRun}
	done := &Allocation{ID: "d", DesiredStatus: AllocDesiredStatusRun, ClientStatus: AllocClientStatusComplete}
	got := ProposedAllocs([]*Allocation{a, b, done}, []*Allocation{{ID: "a"}}, []*Allocation{bUpdated, c})
	var ids []string
	for _, x := range got {
		ids = append(ids, x.ID)
		if x.ID == "b" && x.JobVersion != 2 {
			t.Fatal("an updated allocation must replace its old version")
		}
	}
	if strings.Join(ids, ",") != "b,c" {
		t.Fatalf("proposed %v, want b,c (a stopped, d terminal)", ids)
	}
}

func TestCodedError_SurvivesTheWire(t *testing.T) {
	orig := NewError(CodeNotFound, `job "x" not found`)
	if orig.Status != 404 {
		t.Fatalf("status %d", orig.Status)
	}
	// net/rpc carries only the string.
	back := ParseCodedError(errors.New(orig.Error()))
	if back == nil || back.Code != CodeNotFound || back.Status != 404 || back.Message != `job "x" not found` {
		t.Fatalf("parsed %+v", back)
	}
	if !errors.Is(NewError(CodeNoLeader, "other text"), ErrNoLeader) {
		t.Fatal("errors.Is must match coded errors by code")
	}
	if errors.Is(back, ErrNoLeader) {
		t.Fatal("errors with different codes must not match")
	}
	if ParseCodedError(errors.New("some_unknown: text")) != nil {
		t.Fatal("an unregistered code must not parse")
	}
}

func TestNode_SecretIDInLogNotInJSON(t *testing.T) {
	n := &Node{ID: "n1", SecretID: "s3cret", Name: "node"}
	buf, err := Encode(NodeRegisterRequestType, &NodeRegisterRequest{Node: n})
	if err != nil {
		t.Fatal(err)
	}
	var req NodeRegisterRequest
	if err := Decode(buf[1:], &req); err != nil {
		t.Fatal(err)
	}
	if req.Node.SecretID != "s3cret" {
		t.Fatal("the secret must survive the Raft log encoding")
	}
	js, _ := json.Marshal(n)
	if strings.Contains(string(js), "s3cret") {
		t.Fatalf("the secret leaks into the API JSON: %s", js)
	}
}

func TestRescheduleTypes_DurationsEncode(t *testing.T) {
	p := &ReschedulePolicy{Delay: 5 * time.Second, MaxDelay: time.Hour}
	buf, err := Encode(0, p)
	if err != nil {
		t.Fatal(err)
	}
	var back ReschedulePolicy
	if err := Decode(buf[1:], &back); err != nil || back != *p {
		t.Fatalf("round trip %+v %v", back, err)
	}
}
