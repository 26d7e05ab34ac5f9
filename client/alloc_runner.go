package client

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// allocRunner runs the tasks of one allocation and derives the
// allocation's client status from their states.
type allocRunner struct {
	client *Client
	logger hclog.Logger
	dir    string

	// mu guards alloc and tasks.
	mu    sync.Mutex
	alloc *structs.Allocation
	tasks map[string]*taskRunner

	// stopOnce guards stopping the tasks (desired stop, or a failed
	// task taking its siblings down).
	stopOnce sync.Once
	// doneCh is closed once every task runner has returned.
	doneCh chan struct{}
}

// newAllocRunner prepares a runner for alloc. restored carries persisted
// task handles and states after a client restart (nil for a new alloc).
func newAllocRunner(c *Client, alloc *structs.Allocation, restored map[string]*persistedTask) (*allocRunner, error) {
	ar := &allocRunner{
		client: c,
		logger: c.logger.With("alloc_id", alloc.ID),
		dir:    filepath.Join(c.allocRoot, alloc.ID),
		alloc:  alloc,
		tasks:  make(map[string]*taskRunner),
		doneCh: make(chan struct{}),
	}
	if alloc.Job == nil {
		return nil, fmt.Errorf("alloc %s has no job", alloc.ID)
	}
	tg := alloc.Job.LookupTaskGroup(alloc.TaskGroup)
	if tg == nil {
		return nil, fmt.Errorf("alloc %s: job %s has no group %q", alloc.ID, alloc.JobID, alloc.TaskGroup)
	}
	for _, sub := range []string{"alloc/logs", "alloc/data"} {
		if err := os.MkdirAll(filepath.Join(ar.dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create alloc dir: %w", err)
		}
	}
	for _, task := range tg.Tasks {
		drv, ok := c.config.Drivers[task.Driver]
		if !ok {
			return nil, fmt.Errorf("alloc %s: task %s needs driver %q, which this client does not have", alloc.ID, task.Name, task.Driver)
		}
		tr := &taskRunner{
			allocID:    alloc.ID,
			task:       task,
			cfg:        ar.taskConfig(tg, task),
			drv:        drv,
			restart:    newRestartTracker(tg.RestartPolicy, alloc.Job.Type),
			db:         c.db,
			logger:     ar.logger.With("task", task.Name),
			onChange:   ar.taskChanged,
			shutdownCh: c.shutdownCh,
			state:      &structs.TaskState{State: structs.TaskStatePending},
			killCh:     make(chan struct{}),
			doneCh:     make(chan struct{}),
		}
		if pt := restored[task.Name]; pt != nil {
			if pt.State != nil {
				tr.state = pt.State
			}
			tr.handle = pt.Handle
		}
		ar.tasks[task.Name] = tr
	}
	return ar, nil
}

// LogPath returns the base path of a task's stdout or stderr stream;
// the driver writes the stream to rotated files next to it (see
// containerd.LogFiles).
func (ar *allocRunner) LogPath(task, stream string) string {
	return filepath.Join(ar.dir, "alloc", "logs", task+"."+stream)
}

// taskConfig builds what the driver needs for one task: command, the
// environment with the DROVER_* variables, limits and log files.
func (ar *allocRunner) taskConfig(tg *structs.TaskGroup, task *structs.Task) *driver.TaskConfig {
	alloc := ar.alloc
	node := ar.client.Node()
	env := map[string]string{
		"DROVER_ALLOC_ID":     alloc.ID,
		"DROVER_ALLOC_NAME":   alloc.Name,
		"DROVER_ALLOC_INDEX":  strconv.Itoa(alloc.Index()),
		"DROVER_ALLOC_DIR":    "/alloc",
		"DROVER_JOB_ID":       alloc.JobID,
		"DROVER_JOB_NAME":     alloc.Job.Name,
		"DROVER_GROUP_NAME":   tg.Name,
		"DROVER_TASK_NAME":    task.Name,
		"DROVER_NODE_ID":      node.ID,
		"DROVER_NODE_NAME":    node.Name,
		"DROVER_DC":           node.Datacenter,
		"DROVER_CPU_LIMIT":    strconv.Itoa(task.Resources.CPU),
		"DROVER_MEMORY_LIMIT": strconv.Itoa(task.Resources.MemoryMB),
	}
	if alloc.AllocatedResources != nil {
		for _, p := range alloc.AllocatedResources.Shared.Ports {
			label := envLabel(p.Label)
			env["DROVER_PORT_"+label] = strconv.Itoa(p.Value)
			env["DROVER_HOST_PORT_"+label] = strconv.Itoa(p.Value)
			env["DROVER_IP_"+label] = p.HostIP
			env["DROVER_ADDR_"+label] = fmt.Sprintf("%s:%d", p.HostIP, p.Value)
		}
	}
	interp := newInterpolator(env, node)
	for k, v := range task.Env {
		env[k] = interp.replace(v)
	}
	cfg := &driver.TaskConfig{
		ID:         alloc.ID + "-" + task.Name,
		AllocID:    alloc.ID,
		TaskName:   task.Name,
		JobID:      alloc.JobID,
		Env:        env,
		MemoryMB:   int64(task.Resources.MemoryMB),
		CPUShares:  int64(task.Resources.CPU),
		StdoutPath: ar.LogPath(task.Name, "stdout"),
		StderrPath: ar.LogPath(task.Name, "stderr"),
		AllocDir:   filepath.Join(ar.dir, "alloc"),
	}
	logs := task.LogConfig.Effective()
	cfg.LogMaxFiles, cfg.LogMaxFileSizeMB = logs.MaxFiles, logs.MaxFileSizeMB
	if alloc.AllocatedResources != nil {
		if tr := alloc.AllocatedResources.Tasks[task.Name]; tr != nil {
			cfg.MemoryMB, cfg.CPUShares = tr.Memory.MemoryMB, tr.Cpu.CpuShares
		}
	}
	if task.Config != nil {
		cfg.Image = task.Config.Image
		cfg.Command = interp.replace(task.Config.Command)
		for _, a := range task.Config.Args {
			cfg.Args = append(cfg.Args, interp.replace(a))
		}
	}
	return cfg
}

// envLabel makes a port label safe as part of an environment variable.
func envLabel(label string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' {
			return '_'
		}
		return r
	}, label)
}

// run starts every task runner and waits for them.
func (ar *allocRunner) run() {
	ar.mu.Lock()
	tasks := make([]*taskRunner, 0, len(ar.tasks))
	for _, tr := range ar.tasks {
		tasks = append(tasks, tr)
	}
	stopped := ar.alloc.ServerTerminalStatus()
	ar.mu.Unlock()
	if stopped {
		ar.stop()
	}
	var wg sync.WaitGroup
	for _, tr := range tasks {
		wg.Add(1)
		go func(tr *taskRunner) {
			defer wg.Done()
			tr.run()
		}(tr)
	}
	// Report once at start, so "pending" reaches the server.
	ar.taskChanged()
	go ar.watchHealth()
	wg.Wait()
	close(ar.doneCh)
	ar.taskChanged()
}

// update takes a newer version of the allocation from the server. A
// desired stop stops the tasks; other changes (in-place updates) only
// replace the stored allocation.
func (ar *allocRunner) update(alloc *structs.Allocation) {
	ar.mu.Lock()
	moved := alloc.DeploymentID != ar.alloc.DeploymentID
	if !moved && alloc.DeploymentStatus == nil {
		// Keep the health this client decided until the server has it.
		alloc.DeploymentStatus = ar.alloc.DeploymentStatus
	}
	ar.alloc = alloc
	ar.mu.Unlock()
	if moved {
		go ar.watchHealth()
	}
	if err := ar.client.db.putAlloc(alloc); err != nil {
		ar.logger.Error("failed to persist allocation", "error", err)
	}
	if alloc.ServerTerminalStatus() {
		ar.stop()
	}
}

// stop kills every task (they remove their containers).
func (ar *allocRunner) stop() {
	ar.stopOnce.Do(func() {
		ar.logger.Info("stopping allocation")
		ar.mu.Lock()
		defer ar.mu.Unlock()
		for _, tr := range ar.tasks {
			tr.kill()
		}
	})
}

// destroy stops the tasks, waits for them and removes their containers
// (the task runners already did; this catches containers of tasks that
// never ran here).
func (ar *allocRunner) destroy() {
	ar.stop()
	<-ar.doneCh
	ar.mu.Lock()
	defer ar.mu.Unlock()
	for _, tr := range ar.tasks {
		_ = tr.drv.DestroyTask(context.Background(), tr.cfg.ID, true)
	}
}

// Alloc returns the allocation with the client's current view: status
// and task states.
func (ar *allocRunner) Alloc() *structs.Allocation {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	a := ar.alloc.Copy()
	a.TaskStates = make(map[string]*structs.TaskState, len(ar.tasks))
	names := make([]string, 0, len(ar.tasks))
	for name, tr := range ar.tasks {
		a.TaskStates[name] = tr.TaskState()
		names = append(names, name)
	}
	sort.Strings(names)
	a.ClientStatus, a.ClientDescription = clientStatus(a.TaskStates, names)
	return a
}

// clientStatus derives an allocation's client status from its tasks:
// failed if any task failed, running if any runs, pending while any is
// yet to run, complete when all finished successfully.
func clientStatus(states map[string]*structs.TaskState, names []string) (string, string) {
	var pending, running, dead, failed []string
	for _, n := range names {
		s := states[n]
		switch {
		case s.State == structs.TaskStateDead && s.Failed:
			failed = append(failed, n)
		case s.State == structs.TaskStateDead:
			dead = append(dead, n)
		case s.State == structs.TaskStateRunning:
			running = append(running, n)
		default:
			pending = append(pending, n)
		}
	}
	switch {
	case len(failed) > 0:
		return structs.AllocClientStatusFailed, fmt.Sprintf("failed tasks: %s", strings.Join(failed, ", "))
	case len(running) > 0:
		return structs.AllocClientStatusRunning, "tasks are running"
	case len(pending) > 0:
		return structs.AllocClientStatusPending, "no tasks have started"
	default:
		return structs.AllocClientStatusComplete, "all tasks have completed"
	}
}

// taskChanged queues a status update for the server. When a task has
// failed for good, the allocation is failed: the server treats its
// resources as free and may reschedule it, so its other tasks must not
// keep running. They are stopped here, as with a desired stop.
func (ar *allocRunner) taskChanged() {
	alloc := ar.Alloc()
	for _, ts := range alloc.TaskStates {
		if ts.State == structs.TaskStateDead && ts.Failed {
			ar.logger.Warn("a task failed; stopping the allocation's other tasks")
			ar.stop()
			break
		}
	}
	ar.client.queueAllocUpdate(alloc)
}
