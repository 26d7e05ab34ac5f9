package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// Limits of exec requests.
const (
	// maxExecArgs and maxExecCommandBytes bound the command: its
	// arguments, and their bytes in total.
	maxExecArgs         = 256
	maxExecCommandBytes = 16 << 10
	// defaultMaxExecsPerAlloc and defaultMaxExecsPerAgent bound the
	// exec sessions an agent serves (or proxies) at once.
	defaultMaxExecsPerAlloc = 8
	defaultMaxExecsPerAgent = 64
	// defaultExecIdleTimeout is how long a session waits for a frame
	// (a heartbeat at least) or a ping from its client before it ends.
	defaultExecIdleTimeout = 60 * time.Second
	// execWriteTimeout bounds one frame's write to the client: a client
	// that stops reading ends its session.
	execWriteTimeout = 30 * time.Second
	// execShutdownWait bounds how long an agent that shuts down waits
	// for its exec sessions to have their processes killed.
	execShutdownWait = 10 * time.Second
)

// execLimits are the exec limits of an agent; zero fields take the
// defaults (tests shorten them).
type execLimits struct {
	perAlloc, perAgent int
	idle               time.Duration
}

func (l execLimits) withDefaults() execLimits {
	if l.perAlloc <= 0 {
		l.perAlloc = defaultMaxExecsPerAlloc
	}
	if l.perAgent <= 0 {
		l.perAgent = defaultMaxExecsPerAgent
	}
	if l.idle <= 0 {
		l.idle = defaultExecIdleTimeout
	}
	return l
}

// execSlots counts the exec sessions an agent holds, per allocation and
// in all. Its zero value is ready.
type execSlots struct {
	mu       sync.Mutex // guards perAlloc and total
	perAlloc map[string]int
	total    int
	// active tracks the sessions for Shutdown.
	active sync.WaitGroup
}

// acquire takes a slot for an exec session of allocID, or says which
// limit is reached. The caller calls release once the session ended.
func (s *execSlots) acquire(allocID string, l execLimits) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= l.perAgent {
		return nil, structs.NewError(structs.CodeTooManyRequests, fmt.Sprintf("this agent already serves %d exec sessions, its limit; retry when one has ended", s.total))
	}
	if s.perAlloc[allocID] >= l.perAlloc {
		return nil, structs.NewError(structs.CodeTooManyRequests, fmt.Sprintf("allocation %s already has %d exec sessions through this agent, the limit per allocation; retry when one has ended", allocID, s.perAlloc[allocID]))
	}
	if s.perAlloc == nil {
		s.perAlloc = make(map[string]int)
	}
	s.perAlloc[allocID]++
	s.total++
	s.active.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.perAlloc[allocID]--; s.perAlloc[allocID] <= 0 {
				delete(s.perAlloc, allocID)
			}
			s.total--
			s.mu.Unlock()
			s.active.Done()
		})
	}, nil
}

// wait waits, at most timeout, until no session holds a slot.
func (s *execSlots) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// execRequest is what an exec request asks for, from its query.
type execRequest struct {
	task    string
	command []string
	tty     bool
	stdin   bool
}

// parseExecRequest reads the query of an exec request:
//
//	task=NAME        the task (may be left out when the allocation has one)
//	command=JSON     the command as a JSON array of strings, e.g.
//	                 ["sh","-c","exit 3"] (Nomad's form); or the command
//	                 as repeated command= values, one per argument. One
//	                 value that starts with "[" is the JSON form.
//	tty=true|false   a pseudo-terminal (default false)
//	stdin=true|false whether the client sends stdin (default true, as
//	                 Nomad's clients do)
func parseExecRequest(q url.Values) (*execRequest, error) {
	req := &execRequest{task: q.Get("task"), stdin: true}
	vals := q["command"]
	switch {
	case len(vals) == 0:
		return nil, badRequest(`command= is required: a JSON array of strings such as ["sh","-c","echo hi"], or one command= per argument`)
	case len(vals) == 1 && strings.HasPrefix(strings.TrimSpace(vals[0]), "["):
		if len(vals[0]) > 2*maxExecCommandBytes {
			return nil, badRequest("command is longer than %d bytes", maxExecCommandBytes)
		}
		if err := json.Unmarshal([]byte(vals[0]), &req.command); err != nil {
			return nil, badRequest("command=%s is not a JSON array of strings: %v", truncateForError(vals[0]), err)
		}
	default:
		req.command = vals
	}
	if err := checkExecCommand(req.command); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"tty", &req.tty}, {"stdin", &req.stdin}} {
		s := q.Get(b.name)
		if s == "" {
			continue
		}
		v, err := strconv.ParseBool(s)
		if err != nil {
			return nil, badRequest("%s=%s: use true or false", b.name, truncateForError(s))
		}
		*b.dst = v
	}
	return req, nil
}

// checkExecCommand refuses an empty command, one that is too long, and
// arguments a process cannot take (NUL bytes).
func checkExecCommand(cmd []string) error {
	if len(cmd) == 0 || cmd[0] == "" {
		return badRequest("the command is empty: name a program to run, e.g. command=[\"sh\"]")
	}
	if len(cmd) > maxExecArgs {
		return badRequest("the command has %d arguments; at most %d are accepted", len(cmd), maxExecArgs)
	}
	total := 0
	for i, arg := range cmd {
		total += len(arg)
		if strings.IndexByte(arg, 0) >= 0 {
			return badRequest("argument %d of the command holds a NUL byte", i)
		}
	}
	if total > maxExecCommandBytes {
		return badRequest("the command is %d bytes long; at most %d are accepted", total, maxExecCommandBytes)
	}
	return nil
}

// truncateForError cuts a client's value for an error message.
func truncateForError(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// clientAllocExec serves GET /v1/client/allocation/<alloc>/exec: a
// WebSocket over which a command runs in a task of the allocation
// (exec_frame.go has the frames, exec_session.go the session). It
// mirrors clientLogs: an allocation that runs on another node is
// proxied to that node's agent (the WebSocket with it); with ACLs on,
// every agent the request passes checks alloc-exec in the allocation's
// namespace, the node's own agent included. Every refusal is an HTTP
// error before the upgrade: 400 for a bad query or a request that is
// not a WebSocket upgrade, 403, 404 for an unknown allocation or task,
// 409 for a task that is not running, 429 past the session limits.
func (a *Agent) clientAllocExec(w http.ResponseWriter, r *http.Request) {
	allocID := r.PathValue("alloc")
	req, err := parseExecRequest(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, badRequest("this endpoint speaks WebSocket: send a GET with Connection: Upgrade and Upgrade: websocket (drover alloc exec does)"))
		return
	}
	if err := checkExecOrigin(r); err != nil {
		writeError(w, err)
		return
	}
	local := a.client != nil && a.runsAlloc(allocID)
	var alloc *structs.Allocation
	if a.aclEnabled() {
		if alloc, err = a.logsAlloc(r, allocID, local); err != nil {
			writeError(w, err)
			return
		}
		setRequestNamespace(r, alloc.Namespace)
		if err := a.requireNamespace(r, alloc.Namespace, acl.CapabilityAllocExec); err != nil {
			writeError(w, err)
			return
		}
	}
	release, err := a.execs.acquire(allocID, a.execLimits.withDefaults())
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, err)
		return
	}
	defer release()
	if !local {
		a.proxyExec(w, r, allocID, alloc)
		return
	}
	task := req.task
	if task == "" {
		tasks, _ := a.client.AllocTasks(allocID)
		if len(tasks) != 1 {
			sort.Strings(tasks)
			writeError(w, badRequest("allocation %s has %d tasks %v; name one with task=", allocID, len(tasks), tasks))
			return
		}
		task = tasks[0]
	}
	if err := a.client.ExecTarget(allocID, task); err != nil {
		writeError(w, execTargetError(err))
		return
	}
	a.serveExec(w, r, allocID, task, req)
}

// execTargetError gives a client's refusal of an exec its HTTP code.
func execTargetError(err error) error {
	switch {
	case errors.Is(err, client.ErrUnknownAlloc), errors.Is(err, client.ErrUnknownTask), errors.Is(err, driver.ErrTaskNotFound):
		return structs.NewError(structs.CodeNotFound, err.Error())
	case errors.Is(err, driver.ErrTaskNotRunning):
		return structs.NewError(structs.CodeConflict, err.Error())
	}
	return err
}

// checkExecOrigin refuses a browser's cross-site WebSocket: a request
// with an Origin header must come from a page of the agent's own host
// (gorilla's default check, made here so that the proxying agent makes
// it before it passes the request on without the header).
func checkExecOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	return structs.NewError(structs.CodePermission, fmt.Sprintf("cross-origin exec refused: Origin %s is not this agent (%s)", truncateForError(origin), r.Host))
}

// proxyExec forwards an exec request to the agent of the node that runs
// the allocation, as proxyLogs does (same target checks and
// transport); httputil.ReverseProxy carries the WebSocket upgrade and
// then copies both ways until either side closes, so closing the
// client's connection closes the node's, which kills the process.
func (a *Agent) proxyExec(w http.ResponseWriter, r *http.Request, allocID string, alloc *structs.Allocation) {
	a.proxyToAllocNode(w, r, allocID, alloc, nodeProxy{what: "exec in allocation", dropOrigin: true})
}
