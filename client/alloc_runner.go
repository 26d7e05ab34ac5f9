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
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/client/checks"
	"github.com/droverhq/drover/client/template"
	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// allocRunner runs the tasks of one allocation and derives the
// allocation's client status from their states. It has no goroutine of
// its own: each task runner has one, and the last of them to return
// finishes the allocation (a node of the simulator holds hundreds of
// allocations, and the simulator a hundred thousand).
type allocRunner struct {
	client *Client
	log    runnerLog
	// id is the allocation's ID.
	id string
	// dir is the allocation directory; "" when the client keeps nothing
	// on disk.
	dir string
	// tasks are the task runners in the group's order, and names their
	// names sorted; both are fixed once the runner is built.
	tasks []*taskRunner
	names []string
	// checked are the group's services (its tasks' included) that have
	// checks, of the version the runner was built with; nil when this
	// client runs no checks (see Client.runsChecks). Fixed.
	checked []*structs.Service
	// restored is set when the runner was re-created after a client
	// restart. Fixed.
	restored bool

	// reportMu serializes taskChanged; taken before mu.
	reportMu sync.Mutex
	// mu guards alloc, reported, health, the check fields and stopTimer.
	mu    sync.Mutex
	alloc *structs.Allocation
	// reported is the client status last queued for the servers.
	reported string
	// health decides the allocation's health in its deployment; nil
	// when there is nothing to decide.
	health *healthWatch

	// checks runs the service checks while the allocation runs; nil
	// before it first runs and once checksStopped is set (for good).
	checks        *checks.Runner
	checksStopped bool
	// checkStatuses are the checks' latest statuses, reported with the
	// task states; checksSince is since when all of them pass (zero
	// while one does not).
	checkStatuses map[string]*structs.CheckStatus
	checksSince   time.Time
	// stopTimer waits out the services' shutdown_delay before the tasks
	// are stopped; set once the servers asked for the stop.
	stopTimer *time.Timer

	// running counts the task runners that have not returned.
	running atomic.Int32
	// stopOnce guards stopping the tasks (desired stop, or a failed
	// task taking its siblings down).
	stopOnce sync.Once
	// doneCh is closed once every task runner has returned.
	doneCh chan struct{}
}

// newAllocRunner prepares a runner for alloc. restored carries persisted
// task handles and states after a client restart (nil for a new alloc).
func newAllocRunner(c *Client, alloc *structs.Allocation, restored map[string]*PersistedTask) (*allocRunner, error) {
	ar := &allocRunner{
		client:   c,
		log:      runnerLog{l: c.logger, allocID: alloc.ID},
		id:       alloc.ID,
		alloc:    alloc,
		restored: restored != nil,
		doneCh:   make(chan struct{}),
	}
	if alloc.Job == nil {
		return nil, fmt.Errorf("alloc %s has no job", alloc.ID)
	}
	tg := alloc.Job.LookupTaskGroup(alloc.TaskGroup)
	if tg == nil {
		return nil, fmt.Errorf("alloc %s: job %s has no group %q", alloc.ID, alloc.JobID, alloc.TaskGroup)
	}
	for _, task := range tg.Tasks {
		if _, ok := c.config.Drivers[task.Driver]; !ok {
			return nil, fmt.Errorf("alloc %s: task %s needs driver %q, which this client does not have", alloc.ID, task.Name, task.Driver)
		}
	}
	if c.runsChecks() {
		ar.checked = servicesWithChecks(tg)
	}
	if c.allocRoot != "" {
		ar.dir = filepath.Join(c.allocRoot, alloc.ID)
		for _, sub := range []string{"alloc/logs", "alloc/data"} {
			if err := os.MkdirAll(filepath.Join(ar.dir, sub), 0o755); err != nil {
				return nil, fmt.Errorf("create alloc dir: %w", err)
			}
		}
	}
	for _, task := range tg.Tasks {
		tr := &taskRunner{
			allocID: alloc.ID,
			id:      alloc.ID + "-" + task.Name,
			task:    task,
			// Built when the task starts, not kept: the driver needs it
			// once per start, and its environment is most of what a
			// runner would otherwise hold.
			config:     func() *driver.TaskConfig { return ar.taskConfig(alloc, tg, task) },
			drv:        c.config.Drivers[task.Driver],
			restart:    newRestartTracker(tg.RestartPolicy, alloc.Job.Type),
			db:         c.db,
			log:        ar.log.forTask(task.Name),
			onChange:   ar.taskChanged,
			shutdownCh: c.shutdownCh,
			state:      &structs.TaskState{State: structs.TaskStatePending},
			killCh:     make(chan struct{}),
			doneCh:     make(chan struct{}),
			changeCh:   make(chan struct{}, 1),
		}
		if ar.dir != "" {
			tr.dirs = newTaskDirs(ar.dir, task.Name, !c.config.SecretsOnDisk)
			if len(task.Templates) > 0 {
				tr.newTemplates = ar.templatesOf(alloc, task, tr)
			}
		}
		if pt := restored[task.Name]; pt != nil {
			if pt.State != nil {
				tr.state = pt.State
			}
			tr.handle = pt.Handle
		}
		ar.tasks = append(ar.tasks, tr)
		ar.names = append(ar.names, task.Name)
	}
	sort.Strings(ar.names)
	return ar, nil
}

// templatesOf returns the constructor of a task's template manager:
// variables and services are read as this node for the allocation, in
// its namespace; events and changes go to the task's runner.
func (ar *allocRunner) templatesOf(alloc *structs.Allocation, task *structs.Task, tr *taskRunner) func(*driver.TaskConfig) (*template.Manager, error) {
	return func(cfg *driver.TaskConfig) (*template.Manager, error) {
		return template.New(template.Config{
			Templates: task.Templates,
			Dirs:      tr.dirs.templateDirs(),
			Env:       cfg.Env,
			Node:      ar.client.Node(),
			Source:    &templateSource{c: ar.client, allocID: alloc.ID, namespace: structs.NamespaceOrDefault(alloc.Namespace)},
			OnEvent:   tr.templateEvent,
			OnChange:  tr.noteChange,
			Logger:    ar.client.logger.Named("template").With("alloc_id", alloc.ID, "task", task.Name),
		})
	}
}

// task returns the runner of the named task, or nil.
func (ar *allocRunner) task(name string) *taskRunner {
	for _, tr := range ar.tasks {
		if tr.task.Name == name {
			return tr
		}
	}
	return nil
}

// LogPath returns the base path of a task's stdout or stderr stream;
// the driver writes the stream to rotated files next to it (see
// containerd.LogFiles).
func (ar *allocRunner) LogPath(task, stream string) string {
	return filepath.Join(ar.dir, "alloc", "logs", task+"."+stream)
}

// taskConfig builds what the driver needs for one task of alloc (the
// version the runner was built with): command, the environment with the
// DROVER_* variables, limits and log files.
func (ar *allocRunner) taskConfig(alloc *structs.Allocation, tg *structs.TaskGroup, task *structs.Task) *driver.TaskConfig {
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
		ID:        alloc.ID + "-" + task.Name,
		AllocID:   alloc.ID,
		TaskName:  task.Name,
		JobID:     alloc.JobID,
		Env:       env,
		MemoryMB:  int64(task.Resources.MemoryMB),
		CPUShares: int64(task.Resources.CPU),
		// Copied: the handle persisting cfg must not share the slice.
		DNSServers: append([]string(nil), ar.client.config.DNSServers...),
	}
	if ar.dir != "" {
		cfg.StdoutPath = ar.LogPath(task.Name, "stdout")
		cfg.StderrPath = ar.LogPath(task.Name, "stderr")
		dirs := newTaskDirs(ar.dir, task.Name, false)
		cfg.AllocDir, cfg.LocalDir, cfg.SecretsDir = dirs.alloc, dirs.local, dirs.secrets
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

// start starts every task runner (each on its own tracked goroutine);
// the last one to return closes doneCh and reports the final status.
func (ar *allocRunner) start() {
	ar.mu.Lock()
	stopped := ar.alloc.ServerTerminalStatus()
	ar.health = newHealthWatch(ar, ar.alloc)
	ar.mu.Unlock()
	if stopped {
		ar.stopForServer()
	}
	ar.running.Store(int32(len(ar.tasks)))
	if len(ar.tasks) == 0 {
		close(ar.doneCh)
	}
	for _, tr := range ar.tasks {
		ar.client.goRunner(func() {
			tr.run()
			if ar.running.Add(-1) == 0 {
				close(ar.doneCh)
				// Nothing runs any more: the checks end before the
				// last report, so it carries their last statuses.
				ar.stopChecks(true)
				ar.taskChanged()
			}
		})
	}
	// Report once at start, so "pending" reaches the server.
	ar.taskChanged()
}

// modifyIndex returns the AllocModifyIndex of the version held.
func (ar *allocRunner) modifyIndex() uint64 {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return ar.alloc.AllocModifyIndex
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
	if moved {
		ar.health.stop()
		ar.health = newHealthWatch(ar, alloc)
	}
	ar.mu.Unlock()
	if err := ar.client.db.PutAlloc(alloc); err != nil {
		ar.log.Error("failed to persist allocation", "error", err)
	}
	if alloc.ServerTerminalStatus() {
		ar.stopForServer()
	}
	if moved {
		ar.taskChanged()
	}
}

// stop kills every task (they remove their containers), at once: the
// services' checks end with them. It may be called with reportMu held,
// so it does not wait for the checks to end.
func (ar *allocRunner) stop() {
	ar.stopOnce.Do(func() {
		ar.log.Info("stopping allocation")
		ar.mu.Lock()
		if ar.stopTimer != nil {
			ar.stopTimer.Stop()
		}
		ar.mu.Unlock()
		ar.stopChecks(false)
		for _, tr := range ar.tasks {
			tr.kill()
		}
	})
}

// stopForServer stops the allocation the servers want stopped (desired
// stop or evict). When its services have a shutdown_delay and a task
// runs, the tasks are signalled only after the longest delay: the
// allocation is reported running meanwhile, which the servers show as
// its service instances terminating, so that their users stop sending
// requests before the tasks stop answering them.
//
// The wait is a timer, not a goroutine: a client shut down meanwhile
// drops it (detach) and leaves the tasks running; the restarted client
// finds the allocation stopped and waits the delay again, once.
func (ar *allocRunner) stopForServer() {
	ar.mu.Lock()
	if ar.stopTimer != nil {
		ar.mu.Unlock()
		return
	}
	delay := shutdownDelay(ar.alloc)
	if delay <= 0 || !ar.anyTaskRunning() {
		ar.mu.Unlock()
		ar.stop()
		return
	}
	ar.stopTimer = time.AfterFunc(delay, ar.stop)
	ar.mu.Unlock()
	ar.log.Info("waiting for the services' shutdown_delay before stopping the tasks", "shutdown_delay", delay)
}

// anyTaskRunning reports whether a task runs (or ran when the client
// last stopped, for a restored runner whose tasks re-attach).
func (ar *allocRunner) anyTaskRunning() bool {
	for _, tr := range ar.tasks {
		if tr.TaskState().State == structs.TaskStateRunning {
			return true
		}
	}
	return false
}

// shutdownDelay is the longest shutdown_delay of the services of
// alloc's group.
func shutdownDelay(alloc *structs.Allocation) time.Duration {
	var d time.Duration
	for _, s := range alloc.Job.LookupTaskGroup(alloc.TaskGroup).GroupServices() {
		if s != nil {
			d = max(d, s.ShutdownDelay)
		}
	}
	return min(d, structs.MaxShutdownDelay)
}

// detach is the client's shutdown for this runner: the shutdown_delay
// timer is dropped (the tasks keep running for the next client process)
// and the checks end; it returns once they have.
func (ar *allocRunner) detach() {
	ar.mu.Lock()
	if ar.stopTimer != nil {
		ar.stopTimer.Stop()
	}
	ar.mu.Unlock()
	ar.stopChecks(true)
}

// destroy stops the tasks, waits for them and removes their containers
// (the task runners already did; this catches containers of tasks that
// never ran here). The servers no longer have the allocation: no
// shutdown_delay is waited.
func (ar *allocRunner) destroy() {
	ar.stop()
	<-ar.doneCh
	ar.stopChecks(true)
	for _, tr := range ar.tasks {
		_ = tr.drv.DestroyTask(context.Background(), tr.id, true)
		// Also for a task that never finished here (its runner
		// detached before a restart that forgot the allocation).
		tr.releaseDirs()
	}
}

// servicesWithChecks returns the services of tg (its tasks' included)
// that have checks.
func servicesWithChecks(tg *structs.TaskGroup) []*structs.Service {
	var out []*structs.Service
	for _, s := range tg.GroupServices() {
		if s != nil && len(s.Checks) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// syncChecks starts the checks once the allocation runs and tells them
// which tasks run. Called from taskChanged, with reportMu held: nothing
// here waits for the checks' goroutine, which calls taskChanged itself.
func (ar *allocRunner) syncChecks(status string, states map[string]*structs.TaskState) {
	if len(ar.checked) == 0 {
		return
	}
	ar.mu.Lock()
	r := ar.checks
	start := false
	if r == nil && !ar.checksStopped && status == structs.AllocClientStatusRunning {
		cfg := checks.Config{
			Services: ar.checked,
			Address:  ar.client.checkAddress(),
			Ports:    allocPorts(ar.alloc),
			OnChange: ar.checksChanged,
			Limiter:  ar.client.checkLimiter,
			Exec:     ar.execCheck,
		}
		if ar.restored {
			// Keep the statuses reported before the restart until the
			// first probes say otherwise: the instances of a healthy
			// allocation do not blink critical on a client restart.
			cfg.Initial = ar.alloc.Checks
		}
		r = checks.New(cfg)
		ar.checks, start = r, true
		ar.noteChecksLocked(r.Statuses())
	}
	ar.mu.Unlock()
	if r == nil {
		return
	}
	for name, ts := range states {
		r.SetTaskRunning(name, ts.State == structs.TaskStateRunning)
	}
	if start {
		ar.log.Info("starting service checks", "checks", r.Len())
		r.Start()
	}
}

// stopChecks ends the checks for good. With wait it returns once their
// goroutines have (the caller must not hold reportMu: they may be
// reporting); without, a tracked goroutine waits for them.
func (ar *allocRunner) stopChecks(wait bool) {
	ar.mu.Lock()
	r := ar.checks
	ar.checks, ar.checksStopped = nil, true
	ar.mu.Unlock()
	switch {
	case r == nil:
	case wait:
		r.Stop()
	default:
		ar.client.goRunner(r.Stop)
	}
}

// checksChanged is the checks' OnChange: a status changed, report it.
func (ar *allocRunner) checksChanged(statuses map[string]*structs.CheckStatus) {
	ar.mu.Lock()
	ar.noteChecksLocked(statuses)
	ar.mu.Unlock()
	ar.taskChanged()
}

// noteChecksLocked takes new check statuses and keeps since when all
// of them pass. The caller holds mu.
func (ar *allocRunner) noteChecksLocked(statuses map[string]*structs.CheckStatus) {
	ar.checkStatuses = statuses
	passing := len(statuses) > 0
	for _, st := range statuses {
		if st.Status != structs.ServiceStatusPassing {
			passing = false
			break
		}
	}
	switch {
	case !passing:
		ar.checksSince = time.Time{}
	case ar.checksSince.IsZero():
		ar.checksSince = time.Now()
	}
}

// allocPorts returns the allocation's ports by label.
func allocPorts(alloc *structs.Allocation) map[string]int {
	ports := make(map[string]int)
	if alloc.AllocatedResources != nil {
		for _, p := range alloc.AllocatedResources.Shared.Ports {
			ports[p.Label] = p.Value
		}
	}
	return ports
}

// taskStates returns a copy of every task's state.
func (ar *allocRunner) taskStates() map[string]*structs.TaskState {
	states := make(map[string]*structs.TaskState, len(ar.tasks))
	for _, tr := range ar.tasks {
		states[tr.task.Name] = tr.TaskState()
	}
	return states
}

// report returns what the client reports about the allocation: its
// status derived from the task states (given), the states, its checks
// and its health. Only what a client may report is set (see
// server/node_auth.go). The view returned is what the health watch
// judges, taken with it.
func (ar *allocRunner) report(states map[string]*structs.TaskState, status, desc string) (*structs.Allocation, healthView) {
	ar.mu.Lock()
	a := ar.alloc
	// Replaced, never changed in place: shared.
	checks, since := ar.checkStatuses, ar.checksSince
	ar.mu.Unlock()
	return &structs.Allocation{
		ID: a.ID, NodeID: a.NodeID, JobID: a.JobID, TaskGroup: a.TaskGroup,
		ClientStatus: status, ClientDescription: desc, TaskStates: states,
		Checks: checks,
		// Never changed in place (setHealth replaces it): shared.
		DeploymentStatus: a.DeploymentStatus,
	}, healthView{states: states, checksSince: since}
}

// healthView returns the current task states and checks for the health
// watch's timers.
func (ar *allocRunner) healthView() healthView {
	states := ar.taskStates()
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return healthView{states: states, checksSince: ar.checksSince}
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
//
// It also lets the health watch judge the new states: health is decided
// on changes and on the watch's timers, never by polling.
func (ar *allocRunner) taskChanged() {
	// Task runners change states concurrently: the view is taken and
	// queued under reportMu, so an older view never replaces a newer one
	// in the queue.
	ar.reportMu.Lock()
	states := ar.taskStates()
	status, desc := clientStatus(states, ar.names)
	ar.syncChecks(status, states)
	alloc, view := ar.report(states, status, desc)
	for _, ts := range alloc.TaskStates {
		if ts.State == structs.TaskStateDead && ts.Failed {
			ar.log.Warn("a task failed; stopping the allocation's other tasks")
			ar.stop()
			break
		}
	}
	ar.mu.Lock()
	old := ar.reported
	ar.reported = alloc.ClientStatus
	health := ar.health
	ar.mu.Unlock()
	ar.client.noteReported(old, alloc.ClientStatus)
	ar.client.queueAllocUpdate(alloc)
	ar.reportMu.Unlock()
	health.check(view)
}
