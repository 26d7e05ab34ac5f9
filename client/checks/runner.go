package checks

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/droverhq/drover/structs"
)

// Defaults for checks whose interval or timeout is unset (the jobspec
// parser sets both; a check submitted as JSON may not).
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 2 * time.Second
	// DefaultMaxConcurrent bounds the probes in flight of a Runner
	// given no Limiter.
	DefaultMaxConcurrent = 8
	// maxJitter bounds the random delay added to each interval, so the
	// checks of allocations started together drift apart.
	maxJitter = time.Second
)

// Outputs of checks that have no result of their own.
const (
	outputNotYetChecked  = "not yet checked"
	outputTaskNotRunning = "task %s is not running"
	outputNoPort         = "port label %q has no port in this allocation"
)

// Limiter bounds the probes in flight across the Runners sharing it
// (a node's allocations). Use NewLimiter.
type Limiter struct{ slots chan struct{} }

// NewLimiter returns a limiter of n probes at a time (at least 1).
func NewLimiter(n int) *Limiter { return &Limiter{slots: make(chan struct{}, max(n, 1))} }

// Config configures a Runner.
type Config struct {
	// Services are the allocation's services, the group's and its
	// tasks'; services without checks are ignored. The Runner keeps
	// them: do not change them.
	Services []*structs.Service
	// Address is the node's advertised address the checks dial.
	Address string
	// Ports are the allocation's ports by label.
	Ports map[string]int
	// Initial seeds the statuses of the checks (those last reported
	// before a client restart, say) in place of "not yet checked";
	// entries of checks the services do not have are ignored.
	Initial map[string]*structs.CheckStatus
	// OnChange is called with every check's status, keyed by
	// structs.CheckKey, each time a status changes and on each check's
	// first result. Calls come one at a
	// time from the Runner's goroutine, never after Stop returns; the
	// callee owns the map. It must not call Stop.
	OnChange func(map[string]*structs.CheckStatus)
	// Limiter bounds probes in flight; nil: a Limiter of
	// DefaultMaxConcurrent for this Runner alone.
	Limiter *Limiter
	// Exec runs a script check's command in a running task of the
	// allocation and returns its exit code, with its stdout and stderr
	// written to output (from more than one goroutine: output is safe
	// for that); an error means it could not run. Cancelling ctx (the
	// check's timeout) must kill the command. Nil: script checks are
	// critical ("cannot run commands").
	Exec func(ctx context.Context, task string, command []string, output io.Writer) (int, error)
}

// check is one check of one service, owned by the Runner's goroutine.
type check struct {
	key     string
	service string
	// task is the service's task ("" for a group service).
	task string
	def  *structs.ServiceCheck
	// port is the allocation's port of the service (0: none).
	port     int
	interval time.Duration
	timeout  time.Duration

	// next is when the check is due; inFlight is set while a probe
	// runs; paused while its task does not run.
	next     time.Time
	inFlight bool
	paused   bool
	// checked is set once a probe's result was recorded.
	checked bool
	// reported is when a result of this check was last reported, and
	// reportedOutput that result's output.
	reported       time.Time
	reportedOutput string
}

// outputReportInterval spaces the reports of a check whose status stays
// the same while its output changes ("connection refused", then
// "HTTP 404"): the servers learn the newer reason without a Raft write
// on every probe of a check whose output varies.
const outputReportInterval = 10 * time.Second

// result is one probe's outcome.
type result struct {
	c      *check
	status string
	output string
	// start and end are when the probe began and ended.
	start, end time.Time
}

// Runner runs the checks of one allocation. New, then Start; Stop ends
// it. Statuses and SetTaskRunning may be called from any goroutine.
type Runner struct {
	cfg     Config
	checks  []*check
	limiter *Limiter
	client  *http.Client
	// jitter returns a random duration in [0, d]; tests replace it.
	jitter func(d time.Duration) time.Duration

	// mu guards statuses and taskRunning.
	mu       sync.Mutex
	statuses map[string]*structs.CheckStatus
	// taskRunning says which tasks run; a task missing runs not.
	taskRunning map[string]bool

	// wake (one slot) tells the loop that a task started or stopped.
	wake chan struct{}
	// results has room for one result per check: a probe never blocks
	// sending its result, even after the loop returned.
	results chan result
	ctx     context.Context
	cancel  context.CancelFunc
	// wg tracks the loop and the probes.
	wg        sync.WaitGroup
	startOnce sync.Once
	stopOnce  sync.Once
}

// New returns a Runner for cfg's checks; nothing runs before Start.
func New(cfg Config) *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{
		cfg:         cfg,
		limiter:     cfg.Limiter,
		statuses:    make(map[string]*structs.CheckStatus),
		taskRunning: make(map[string]bool),
		wake:        make(chan struct{}, 1),
		ctx:         ctx,
		cancel:      cancel,
		jitter: func(d time.Duration) time.Duration {
			return time.Duration(rand.Int64N(int64(d) + 1))
		},
	}
	if r.limiter == nil {
		r.limiter = NewLimiter(DefaultMaxConcurrent)
	}
	r.client = &http.Client{
		// No connection outlives its probe, and nothing is pooled for
		// a check that runs every ten seconds.
		Transport: &http.Transport{DisableKeepAlives: true},
		// A redirect is an answer: 3xx counts as passing, and the
		// check never leaves the allocation's port.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	now := time.Now().UnixNano()
	for _, s := range cfg.Services {
		if s == nil {
			continue
		}
		for _, def := range s.Checks {
			if def == nil {
				continue
			}
			c := &check{
				key: structs.CheckKey(s.Name, def.Name), service: s.Name, task: s.TaskName,
				def: def, port: cfg.Ports[s.PortLabel],
				interval: def.Interval, timeout: def.Timeout,
			}
			if c.interval <= 0 {
				c.interval = DefaultInterval
			}
			if c.timeout <= 0 {
				c.timeout = DefaultTimeout
			}
			r.checks = append(r.checks, c)
			st := &structs.CheckStatus{Service: s.Name, Check: def.Name, Status: structs.ServiceStatusCritical, Output: outputNotYetChecked, Timestamp: now}
			if c.port == 0 {
				st.Output = fmt.Sprintf(outputNoPort, s.PortLabel)
			} else if init := cfg.Initial[c.key]; init != nil {
				st = init.Copy()
			}
			r.statuses[c.key] = st
		}
	}
	r.results = make(chan result, len(r.checks))
	return r
}

// Len returns the number of checks.
func (r *Runner) Len() int { return len(r.checks) }

// Start starts the checks. Once only; a stopped Runner does not start.
func (r *Runner) Start() {
	r.startOnce.Do(func() {
		if r.ctx.Err() != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.loop()
		}()
	})
}

// Stop stops the checks, cancelling probes in flight, and returns once
// every goroutine of the Runner has. Safe to call more than once, and
// before Start.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() {
		r.startOnce.Do(func() {}) // a later Start starts nothing
		r.cancel()
	})
	r.wg.Wait()
	r.client.CloseIdleConnections()
}

// SetTaskRunning tells the Runner whether a task runs: the checks of
// its services are probed only while it does. It does not block.
func (r *Runner) SetTaskRunning(task string, running bool) {
	r.mu.Lock()
	changed := r.taskRunning[task] != running
	r.taskRunning[task] = running
	r.mu.Unlock()
	if changed {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Statuses returns a copy of every check's latest status, keyed by
// structs.CheckKey.
func (r *Runner) Statuses() map[string]*structs.CheckStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.copyLocked()
}

func (r *Runner) copyLocked() map[string]*structs.CheckStatus {
	out := make(map[string]*structs.CheckStatus, len(r.statuses))
	for k, v := range r.statuses {
		out[k] = v.Copy()
	}
	return out
}

// active reports whether c may be probed now: it has a port, and its
// task, if any, runs.
func (r *Runner) active(c *check) bool {
	if c.port == 0 {
		return false
	}
	if c.task == "" {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.taskRunning[c.task]
}

// loop is the Runner's goroutine: it starts the probes that are due,
// takes their results and sleeps until the next one is due.
func (r *Runner) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		wait := time.Duration(-1)
		changed := false
		for _, c := range r.checks {
			if c.inFlight || c.port == 0 {
				continue
			}
			if !r.active(c) {
				if !c.paused {
					c.paused = true
					out := fmt.Sprintf(outputTaskNotRunning, c.task)
					if r.record(c, structs.ServiceStatusCritical, out, now) {
						c.reported, c.reportedOutput = now, out
						changed = true
					}
				}
				continue
			}
			if c.paused {
				// The task (re)started: probe it now.
				c.paused, c.next = false, now
			}
			if d := c.next.Sub(now); d > 0 {
				if wait < 0 || d < wait {
					wait = d
				}
				continue
			}
			c.inFlight = true
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.probe(c)
			}()
		}
		if changed {
			r.notify()
		}
		if wait < 0 {
			wait = time.Hour // only results or a task change wake the loop
		}
		timer.Reset(wait)
		select {
		case <-r.ctx.Done():
			return
		case res := <-r.results:
			c := res.c
			c.inFlight = false
			// Probe every interval from the probe's start, and never
			// before this one finished.
			c.next = res.start.Add(c.interval + r.jitter(min(c.interval/10, maxJitter)))
			if !c.paused && r.active(c) {
				// The first result is reported even when it leaves the
				// status critical: it says why, where "not yet
				// checked" said nothing.
				first := !c.checked
				c.checked = true
				if r.record(c, res.status, res.output, res.end) || first {
					c.reported, c.reportedOutput = res.end, res.output
					r.notify()
				}
			}
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// record stores a result; it reports whether it is to be reported: the
// status changed, or the output did and the check's last report is at
// least outputReportInterval old.
func (r *Runner) record(c *check, status, output string, at time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.statuses[c.key]
	changed := st.Status != status ||
		(c.reportedOutput != output && !at.Before(c.reported.Add(outputReportInterval)))
	r.statuses[c.key] = &structs.CheckStatus{Service: c.service, Check: c.def.Name, Status: status, Output: output, Timestamp: at.UnixNano()}
	return changed
}

// notify hands the statuses to OnChange.
func (r *Runner) notify() {
	if r.cfg.OnChange == nil {
		return
	}
	r.mu.Lock()
	m := r.copyLocked()
	r.mu.Unlock()
	r.cfg.OnChange(m)
}

// probe runs one probe of c once the limiter lets it, and sends the
// result (none when the Runner stops meanwhile).
func (r *Runner) probe(c *check) {
	select {
	case r.limiter.slots <- struct{}{}:
	case <-r.ctx.Done():
		return
	}
	defer func() { <-r.limiter.slots }()
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.ctx, c.timeout)
	defer cancel()
	var status, output string
	switch c.def.Type {
	case structs.ServiceCheckHTTP:
		status, output = r.probeHTTP(ctx, c)
	case structs.ServiceCheckTCP:
		status, output = probeTCP(ctx, c, r.cfg.Address)
	case structs.ServiceCheckScript:
		status, output = r.probeScript(ctx, c)
	default:
		status, output = structs.ServiceStatusCritical, fmt.Sprintf("unknown check type %q", c.def.Type)
	}
	if r.ctx.Err() != nil {
		return // stopped: a cancelled probe says nothing about the service
	}
	r.results <- result{c: c, status: status, output: truncate(output), start: start, end: time.Now()}
}
