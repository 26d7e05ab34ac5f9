package structs

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// benchPlanBatch builds a Raft entry as the plan applier writes it under
// load: plans of count-10 service jobs, each placement with its
// resources, ports and placement metrics (three scored nodes).
func benchPlanBatch(plans int) *ApplyPlanResultsBatchRequest {
	req := &ApplyPlanResultsBatchRequest{}
	for p := 0; p < plans; p++ {
		job := &Job{
			ID: fmt.Sprintf("bench-%d", p), Name: fmt.Sprintf("bench-%d", p), Type: JobTypeService,
			Priority: 50, Datacenters: []string{"dc1", "dc2"}, NodePool: "default",
			TaskGroups: []*TaskGroup{{
				Name: "web", Count: 10,
				Networks:      []*NetworkResource{{DynamicPorts: []Port{{Label: "http"}}}},
				RestartPolicy: &RestartPolicy{Attempts: 2, Interval: 30 * time.Minute, Delay: 15 * time.Second, Mode: "fail"},
				Tasks: []*Task{{
					Name: "server", Driver: "containerd",
					Config:    &TaskConfig{Image: "busybox", Command: "httpd", Args: []string{"-f", "-p", "8080"}},
					Env:       map[string]string{"A": "b"},
					Resources: &Resources{CPU: 500, MemoryMB: 256},
				}},
			}},
			Version: 1, SubmitTime: 1, CreateIndex: 10, ModifyIndex: 10, JobModifyIndex: 10,
		}
		plan := &ApplyPlanResultsRequest{Job: job, EvalID: GenerateUUID(), UpdatedAt: time.Now().UnixNano()}
		for i := 0; i < 10; i++ {
			a := &Allocation{
				ID: GenerateUUID(), EvalID: plan.EvalID, Name: fmt.Sprintf("%s.web[%d]", job.ID, i),
				NodeID: GenerateUUID(), NodeName: fmt.Sprintf("sim-%d", i), JobID: job.ID, JobVersion: 1, TaskGroup: "web",
				AllocatedResources: &AllocatedResources{
					Tasks:  map[string]*AllocatedTaskResources{"server": {Cpu: AllocatedCpuResources{CpuShares: 500}, Memory: AllocatedMemoryResources{MemoryMB: 256}}},
					Shared: AllocatedSharedResources{Ports: []AllocatedPortMapping{{Label: "http", Value: 20000 + i, To: 8080, HostIP: "10.0.0.1"}}},
				},
				DesiredStatus: AllocDesiredStatusRun, ClientStatus: AllocClientStatusPending,
				Metrics: &AllocMetric{
					NodesEvaluated: 5000, NodesFiltered: 3, NodesAvailable: map[string]int{"dc1": 2500, "dc2": 2500},
					ConstraintFiltered: map[string]int{"${meta.rack} = r1": 3},
					AllocationTime:     time.Millisecond,
				},
				CreateTime: 1, ModifyTime: 1,
			}
			for k := 0; k < 3; k++ {
				a.Metrics.ScoreMetaData = append(a.Metrics.ScoreMetaData, &NodeScoreMeta{
					NodeID:    GenerateUUID(),
					Scores:    ScoreComponents{{Name: ScoreBinpack, Score: 0.5}, {Name: ScoreJobAntiAffinity}, {Name: ScoreNodeAffinity}},
					NormScore: 0.5,
				})
			}
			plan.AllocsPlaced = append(plan.AllocsPlaced, a)
		}
		req.Plans = append(req.Plans, plan)
	}
	return req
}

// TestCodec_RoundTripsRaftEntry checks that what the FSM decodes from a
// Raft entry equals what the leader encoded.
func TestCodec_RoundTripsRaftEntry(t *testing.T) {
	in := benchPlanBatch(3)
	buf, err := Encode(ApplyPlanResultsBatchRequestType, in)
	if err != nil {
		t.Fatal(err)
	}
	if MessageType(buf[0]) != ApplyPlanResultsBatchRequestType {
		t.Fatalf("type byte %d", buf[0])
	}
	var out ApplyPlanResultsBatchRequest
	if err := Decode(buf[1:], &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, &out) {
		t.Fatalf("decoded entry differs from the encoded one")
	}
	again, err := Encode(ApplyPlanResultsBatchRequestType, &out)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(buf) {
		t.Fatalf("encoding is not canonical: %d bytes then %d", len(buf), len(again))
	}
}

// BenchmarkCodec_PlanBatch measures encoding (leader) and decoding
// (every server's FSM) of a Raft entry of 32 plans × 10 placements, in
// msgpack and in the compact encoding.
func BenchmarkCodec_PlanBatch(b *testing.B) {
	in := benchPlanBatch(32)
	benchCodec(b, in, ApplyPlanResultsBatchRequestType, ApplyPlanResultsCompactRequestType,
		func(buf []byte) error {
			var out ApplyPlanResultsBatchRequest
			return Decode(buf, &out)
		},
		func(buf []byte) error {
			_, err := DecodeCompactPlanBatch(buf)
			return err
		})
}

// benchClientUpdate builds a Raft entry of client updates as
// Node.UpdateAlloc writes them: 512 allocations (maxAllocUpdatesPerEntry)
// of one node reporting running, each with two task states of three events and a
// passing check.
func benchClientUpdate() *AllocUpdateRequest {
	req := &AllocUpdateRequest{UpdatedAt: time.Now().UnixNano()}
	started := time.Unix(1_700_000_000, 0).UTC()
	// One RPC, one node: Node.UpdateAlloc takes updates of one node's
	// allocations.
	node := GenerateUUID()
	for i := 0; i < 512; i++ {
		a := &Allocation{ID: GenerateUUID(), NodeID: node, ClientStatus: AllocClientStatusRunning,
			TaskStates: map[string]*TaskState{},
			Checks: map[string]*CheckStatus{CheckKey("web", "http"): {Service: "web", Check: "http", Status: ServiceStatusPassing,
				Output: "HTTP GET: 200 OK", Timestamp: started.UnixNano()}},
		}
		for _, task := range []string{"server", "sidecar"} {
			a.TaskStates[task] = &TaskState{State: TaskStateRunning, StartedAt: started, Events: []*TaskEvent{
				{Type: TaskEventReceived, Time: started.UnixNano(), Message: "Task received by client"},
				{Type: TaskEventDriverStart, Time: started.UnixNano(), Message: "Downloading image"},
				{Type: TaskEventStarted, Time: started.UnixNano(), Message: "Task started by client"},
			}}
		}
		req.Alloc = append(req.Alloc, a)
	}
	return req
}

// BenchmarkCodec_ClientUpdate measures a Raft entry of client updates,
// in msgpack and in the compact encoding.
func BenchmarkCodec_ClientUpdate(b *testing.B) {
	benchCodec(b, benchClientUpdate(), AllocClientUpdateRequestType, AllocClientUpdateCompactRequestType,
		func(buf []byte) error {
			var out AllocUpdateRequest
			return Decode(buf, &out)
		},
		func(buf []byte) error {
			_, err := DecodeCompactAllocUpdate(buf)
			return err
		})
}

// benchCodec runs encode and decode of in as a msgpack entry (oldType)
// and a compact one (newType). SetBytes is the msgpack entry's size in
// both, so MB/s compares work per entry, not per byte written.
func benchCodec(b *testing.B, in interface{}, oldType, newType MessageType, decodeOld, decodeNew func([]byte) error) {
	old, err := Encode(oldType, in)
	if err != nil {
		b.Fatal(err)
	}
	compact, err := Encode(newType, in)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("entry: msgpack %d bytes, compact %d bytes", len(old), len(compact))
	for _, c := range []struct {
		name   string
		typ    MessageType
		buf    []byte
		decode func([]byte) error
	}{{"msgpack", oldType, old, decodeOld}, {"compact", newType, compact, decodeNew}} {
		b.Run(c.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(old)))
			for b.Loop() {
				if _, err := Encode(c.typ, in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(old)))
			for b.Loop() {
				if err := c.decode(c.buf[1:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
