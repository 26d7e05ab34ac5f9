package mock

import (
	"fmt"
	"time"

	"github.com/droverhq/drover/structs"
)

// Node returns a ready node with 4000 MHz and 8192 MB and a healthy
// containerd driver.
func Node() *structs.Node {
	id := structs.GenerateUUID()
	return &structs.Node{
		ID:         id,
		SecretID:   structs.GenerateUUID(),
		Name:       "node-" + id[:8],
		Datacenter: "dc1",
		HTTPAddr:   "127.0.0.1:4646",
		Attributes: map[string]string{
			"kernel.name":               "linux",
			"cpu.arch":                  "amd64",
			"unique.network.ip-address": "127.0.0.1",
		},
		NodeResources: &structs.NodeResources{
			Cpu:            structs.NodeCpuResources{CpuShares: 4000, TotalCpuCores: 2},
			Memory:         structs.NodeMemoryResources{MemoryMB: 8192},
			MinDynamicPort: structs.DefaultMinDynamicPort,
			MaxDynamicPort: structs.DefaultMaxDynamicPort,
		},
		Drivers: map[string]*structs.DriverInfo{
			"containerd": {Detected: true, Healthy: true},
		},
		Status:                structs.NodeStatusReady,
		SchedulingEligibility: structs.NodeSchedulingEligible,
	}
}

// Job returns a canonicalized service job "web-<id>" with one group of
// count 3, one task asking for 500 MHz and 256 MB, and a dynamic port
// "http".
func Job() *structs.Job {
	id := "web-" + structs.GenerateUUID()[:8]
	j := &structs.Job{
		ID:          id,
		Type:        structs.JobTypeService,
		Datacenters: []string{"dc1"},
		Meta:        map[string]string{"owner": "tests"},
		TaskGroups: []*structs.TaskGroup{{
			Name:  "web",
			Count: 3,
			Networks: []*structs.NetworkResource{{
				DynamicPorts: []structs.Port{{Label: "http"}},
			}},
			RestartPolicy: &structs.RestartPolicy{Attempts: 2, Interval: 10 * time.Minute, Delay: time.Second, Mode: structs.RestartPolicyModeFail},
			Tasks: []*structs.Task{{
				Name:   "server",
				Driver: "containerd",
				Config: &structs.TaskConfig{
					Image:   "localhost/drover/busybox:latest",
					Command: "/bin/sh",
					Args:    []string{"-c", "exec httpd -f -p $DROVER_PORT_http"},
				},
				Env:         map[string]string{"GREETING": "hello"},
				Resources:   &structs.Resources{CPU: 500, MemoryMB: 256},
				KillTimeout: 2 * time.Second,
			}},
		}},
	}
	j.Canonicalize()
	return j
}

// BatchJob returns a batch variant of Job with count 2.
func BatchJob() *structs.Job {
	j := Job()
	j.ID = "batch-" + structs.GenerateUUID()[:8]
	j.Name = j.ID
	j.Type = structs.JobTypeBatch
	j.TaskGroups[0].Count = 2
	j.TaskGroups[0].RestartPolicy = nil
	j.TaskGroups[0].ReschedulePolicy = nil
	j.Canonicalize()
	return j
}

// Eval returns a pending evaluation for job.
func Eval(job *structs.Job) *structs.Evaluation {
	return &structs.Evaluation{
		ID:             structs.GenerateUUID(),
		Priority:       job.Priority,
		Type:           job.Type,
		TriggeredBy:    structs.EvalTriggerJobRegister,
		JobID:          job.ID,
		JobModifyIndex: job.JobModifyIndex,
		Status:         structs.EvalStatusPending,
	}
}

// Alloc returns a running allocation of job's first group, instance
// index, on node.
func Alloc(job *structs.Job, node *structs.Node, index int) *structs.Allocation {
	tg := job.TaskGroups[0]
	tasks := make(map[string]*structs.AllocatedTaskResources)
	for _, t := range tg.Tasks {
		tasks[t.Name] = &structs.AllocatedTaskResources{
			Cpu:    structs.AllocatedCpuResources{CpuShares: int64(t.Resources.CPU)},
			Memory: structs.AllocatedMemoryResources{MemoryMB: int64(t.Resources.MemoryMB)},
		}
	}
	return &structs.Allocation{
		ID:         structs.GenerateUUID(),
		EvalID:     structs.GenerateUUID(),
		Name:       structs.AllocName(job.ID, tg.Name, index),
		NodeID:     node.ID,
		NodeName:   node.Name,
		JobID:      job.ID,
		Job:        job,
		JobVersion: job.Version,
		TaskGroup:  tg.Name,
		AllocatedResources: &structs.AllocatedResources{
			Tasks: tasks,
			Shared: structs.AllocatedSharedResources{Ports: []structs.AllocatedPortMapping{
				{Label: "http", Value: 20000 + index, HostIP: "127.0.0.1"},
			}},
		},
		DesiredStatus: structs.AllocDesiredStatusRun,
		ClientStatus:  structs.AllocClientStatusRunning,
		TaskStates: map[string]*structs.TaskState{
			"server": {State: structs.TaskStateRunning, StartedAt: time.Unix(1700000000, 0).UTC()},
		},
	}
}

// Name returns a short unique name with the given prefix.
func Name(prefix string) string {
	return fmt.Sprintf("%s-%s", prefix, structs.GenerateUUID()[:8])
}
