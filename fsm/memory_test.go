package fsm

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// BenchmarkFSM_MemoryPerAllocation reports the live heap each allocation
// costs a server once placed and reported running, as the Raft log
// brings it: plans of 1,000 placements with the scheduler's metrics
// (three scored nodes), then the clients' "running" updates in batches.
// It is what the memory scenario of `drover bench` multiplies by
// 100,000. With DROVER_HEAP_PROFILE=file it writes a heap profile while
// the state is still held, to see where the bytes go. It runs with the
// entries in msgpack and in the compact encoding the leader writes now.
func BenchmarkFSM_MemoryPerAllocation(b *testing.B) {
	b.Run("msgpack", func(b *testing.B) {
		benchFSMMemory(b, structs.ApplyPlanResultsBatchRequestType, structs.AllocClientUpdateRequestType)
	})
	b.Run("compact", func(b *testing.B) {
		benchFSMMemory(b, structs.ApplyPlanResultsCompactRequestType, structs.AllocClientUpdateCompactRequestType)
	})
}

func benchFSMMemory(b *testing.B, planType, updateType structs.MessageType) {
	const (
		numNodes = 500
		numJobs  = 20
		count    = 1000
	)
	for b.Loop() {
		b.StopTimer()
		f := New(Config{})
		var index uint64
		apply := func(mt structs.MessageType, msg interface{}) {
			buf, err := structs.Encode(mt, msg)
			if err != nil {
				b.Fatal(err)
			}
			index++
			if resp := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: buf}); resp != nil {
				b.Fatalf("apply %s: %v", mt, resp)
			}
		}
		nodes := make([]*structs.Node, numNodes)
		for i := range nodes {
			nodes[i] = mock.Node()
			apply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: nodes[i], UpdatedAt: 1})
		}
		jobs := make([]*structs.Job, numJobs)
		for j := range jobs {
			jobs[j] = mock.Job()
			jobs[j].TaskGroups[0].Count = count
			apply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: jobs[j], Eval: mock.Eval(jobs[j]), SubmitTime: 1})
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()

		for j, job := range jobs {
			job.CreateIndex, job.ModifyIndex, job.JobModifyIndex = uint64(numNodes+j+1), uint64(numNodes+j+1), uint64(numNodes+j+1)
			evalID := structs.GenerateUUID()
			byDC := map[string]int{"dc1": numNodes / 2, "dc2": numNodes / 2}
			plan := &structs.ApplyPlanResultsRequest{Job: job, EvalID: evalID, UpdatedAt: time.Now().UnixNano()}
			for i := 0; i < count; i++ {
				node := nodes[(j*count+i)%numNodes]
				a := mock.Alloc(job, node, i)
				a.Job, a.EvalID, a.TaskStates = nil, evalID, nil
				a.ClientStatus = structs.AllocClientStatusPending
				a.CreateTime, a.ModifyTime = plan.UpdatedAt, plan.UpdatedAt
				a.Metrics = &structs.AllocMetric{NodesEvaluated: numNodes, NodesAvailable: byDC, AllocationTime: 40 * time.Microsecond}
				for k := 0; k < 3; k++ {
					a.Metrics.ScoreMetaData = append(a.Metrics.ScoreMetaData, &structs.NodeScoreMeta{
						NodeID:    nodes[(j*count+i+k)%numNodes].ID,
						Scores:    structs.ScoreComponents{{Name: structs.ScoreBinpack, Score: 0.61}, {Name: structs.ScoreJobAntiAffinity, Score: -0.2}},
						NormScore: 0.2,
					})
				}
				plan.AllocsPlaced = append(plan.AllocsPlaced, a)
			}
			apply(planType, &structs.ApplyPlanResultsBatchRequest{Plans: []*structs.ApplyPlanResultsRequest{plan}})

			for start := 0; start < count; start += 500 {
				upd := &structs.AllocUpdateRequest{UpdatedAt: time.Now().UnixNano()}
				for _, a := range plan.AllocsPlaced[start : start+500] {
					upd.Alloc = append(upd.Alloc, &structs.Allocation{
						ID: a.ID, NodeID: a.NodeID, JobID: a.JobID, TaskGroup: a.TaskGroup,
						ClientStatus: structs.AllocClientStatusRunning, ClientDescription: "Tasks are running",
						TaskStates: map[string]*structs.TaskState{"server": {
							State: structs.TaskStateRunning, StartedAt: time.Now(),
							Events: []*structs.TaskEvent{{Type: structs.TaskEventStarted, Time: time.Now().UnixNano()}},
						}},
					})
				}
				apply(updateType, upd)
			}
		}

		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(numJobs*count), "live-bytes/alloc")
		if p := os.Getenv("DROVER_HEAP_PROFILE"); p != "" {
			fh, _ := os.Create(p)
			pprof.WriteHeapProfile(fh)
			fh.Close()
		}
		runtime.KeepAlive(f)
		b.StartTimer()
	}
}
