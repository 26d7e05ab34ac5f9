package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/client"
	ctrdriver "github.com/droverhq/drover/driver/containerd"
	"github.com/droverhq/drover/structs"
)

// logPollInterval is how often a followed log file is checked for new
// output.
const logPollInterval = 100 * time.Millisecond

// clientLogs serves GET /v1/client/fs/logs/<alloc>?task=&type=stdout|stderr
// &offset=N&origin=start|end&follow=true as plain bytes. With follow, it
// streams new output until the client disconnects or the task is dead
// and its output fully sent. An allocation that runs on another node is
// proxied to that node's agent.
func (a *Agent) clientLogs(w http.ResponseWriter, r *http.Request) {
	allocID := r.PathValue("alloc")
	q := r.URL.Query()
	task := q.Get("task")
	stream := q.Get("type")
	if stream == "" {
		stream = "stdout"
	}
	if stream != "stdout" && stream != "stderr" {
		writeError(w, badRequest("type=%q: use stdout or stderr", stream))
		return
	}
	follow, _ := strconv.ParseBool(q.Get("follow"))
	var offset int64
	if s := q.Get("offset"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			writeError(w, badRequest("offset=%q is not a non-negative integer", s))
			return
		}
		offset = v
	}
	origin := q.Get("origin")
	if origin == "" {
		origin = "start"
	}
	if origin != "start" && origin != "end" {
		writeError(w, badRequest("origin=%q: use start or end", origin))
		return
	}

	local := a.client != nil && a.runsAlloc(allocID)
	// With ACLs on, every agent the request passes checks read-logs in
	// the allocation's namespace: the one that proxies it and the one
	// that serves the file (which gets the token with the proxied
	// request), so that no agent serves logs on another's word.
	var alloc *structs.Allocation
	if a.aclEnabled() {
		var err error
		if alloc, err = a.logsAlloc(r, allocID, local); err != nil {
			writeError(w, err)
			return
		}
		setRequestNamespace(r, alloc.Namespace)
		if err := a.requireNamespace(r, alloc.Namespace, acl.CapabilityReadLogs); err != nil {
			writeError(w, err)
			return
		}
	}
	if !local {
		a.proxyLogs(w, r, allocID, alloc)
		return
	}
	if task == "" {
		tasks, _ := a.client.AllocTasks(allocID)
		if len(tasks) != 1 {
			sort.Strings(tasks)
			writeError(w, badRequest("allocation %s has %d tasks %v; name one with task=", allocID, len(tasks), tasks))
			return
		}
		task = tasks[0]
	}
	base, err := a.client.LogPath(allocID, task, stream)
	if err != nil {
		writeError(w, structs.NewError(structs.CodeNotFound, err.Error()))
		return
	}
	a.streamLog(w, r, base, allocID, task, offset, origin, follow)
}

func (a *Agent) runsAlloc(allocID string) bool {
	_, err := a.client.AllocTasks(allocID)
	return err == nil
}

// logsAlloc finds the allocation a log request is about, to learn its
// namespace (and node) from a source the caller cannot forge:
//
//   - the agent that runs it asks the servers as its node (the node's
//     secret; Alloc.GetAllocs answers only the node's own allocations);
//   - a server agent reads its own state store, then, if the allocation
//     is not there yet (a follower behind), asks the leader;
//   - a client agent that does not run it asks the servers with the
//     request's token, which therefore also needs read-job.
//
// An unknown allocation is 404.
func (a *Agent) logsAlloc(r *http.Request, allocID string, local bool) (*structs.Allocation, error) {
	notFound := structs.NewError(structs.CodeNotFound, fmt.Sprintf("allocation %q not found", allocID))
	if local {
		node := a.client.Node()
		args := structs.AllocsGetRequest{NodeID: node.ID, SecretID: node.SecretID, AllocIDs: []string{allocID}}
		var resp structs.AllocsGetResponse
		if err := a.RPC("Alloc.GetAllocs", &args, &resp); err != nil {
			return nil, err
		}
		for _, al := range resp.Allocs {
			if al != nil && al.ID == allocID {
				return al, nil
			}
		}
		return nil, notFound
	}
	if a.server != nil && a.aclEnabled() {
		if al, err := a.server.State().AllocByID(nil, allocID); err == nil && al != nil {
			return al, nil
		}
	}
	args := structs.AllocSpecificRequest{AllocID: allocID}
	args.AuthToken = authToken(r)
	var resp structs.SingleAllocResponse
	if err := a.RPC("Alloc.GetAlloc", &args, &resp); err != nil {
		return nil, err
	}
	if resp.Alloc == nil {
		return nil, notFound
	}
	return resp.Alloc, nil
}

// logsNode finds the node of an allocation for the logs proxy: in a
// server agent's own state, else from the servers with the request's
// token (node:read).
func (a *Agent) logsNode(r *http.Request, nodeID string) (*structs.Node, error) {
	if a.server != nil && a.aclEnabled() {
		if n, err := a.server.State().NodeByID(nil, nodeID); err == nil && n != nil {
			return n, nil
		}
	}
	args := structs.NodeSpecificRequest{NodeID: nodeID}
	args.AuthToken = authToken(r)
	var resp structs.SingleNodeResponse
	if err := a.RPC("Node.GetNode", &args, &resp); err != nil {
		return nil, err
	}
	return resp.Node, nil
}

// streamLog writes a task output stream from the requested position.
// The task logger keeps a stream in numbered files, rotating to a new
// one at the size limit and deleting the oldest (containerd.LogFiles);
// streamLog serves the files retained when the request starts as one
// stream: offset counts from the start of the oldest, or back from the
// end of the newest with origin=end. It always reads on into files
// created meanwhile; with follow it keeps writing what is appended
// until the client goes, or the task is dead and everything is sent.
// A file deleted while being read is still read to its end (it is
// open).
func (a *Agent) streamLog(w http.ResponseWriter, r *http.Request, base, allocID, task string, offset int64, origin string, follow bool) {
	files, err := ctrdriver.LogFiles(base)
	if err != nil {
		writeError(w, err)
		return
	}
	cur := &logCursor{base: base}
	defer cur.close()
	if i, pos, ok := logStart(files, offset, origin); ok {
		if f, err := os.Open(files[i].Path); err == nil {
			cur.f, cur.index, cur.pos = f, files[i].Index, pos
		}
		// A file deleted since the listing: start from the oldest one
		// still there.
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		// A follower gets the headers now, not with the first output.
		flusher.Flush()
	}
	buf := make([]byte, 32*1024)
	for {
		if cur.f == nil {
			if _, err := cur.next(); err != nil {
				return
			}
		}
		if cur.f != nil {
			n, err := cur.f.ReadAt(buf, cur.pos)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				cur.pos += int64(n)
				if flusher != nil {
					flusher.Flush()
				}
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return
			}
			// At the end of this file. The logger writes only the
			// newest file and creates a newer one after its last write
			// here, so once a newer one exists, this one is complete:
			// read what reached it meanwhile (the loop above), then
			// move on.
			if newer, err := cur.newerExists(); err != nil {
				return
			} else if newer {
				if n, _ := cur.f.ReadAt(buf[:1], cur.pos); n > 0 {
					continue
				}
				if _, err := cur.next(); err != nil {
					return
				}
				continue
			}
		}
		if !follow {
			return
		}
		if a.taskDead(allocID, task) {
			// One more pass for output the logger wrote after the
			// task ended, then stop at the end.
			follow = false
			continue
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(logPollInterval):
		}
	}
}

// logStart finds where a stream read starts in files: the position in
// the list and the offset in that file. ok is false when there are no
// files yet.
func logStart(files []ctrdriver.LogFile, offset int64, origin string) (int, int64, bool) {
	if len(files) == 0 {
		return 0, 0, false
	}
	sizes := make([]int64, len(files))
	var total int64
	for i, f := range files {
		if st, err := os.Stat(f.Path); err == nil {
			sizes[i] = st.Size()
		}
		total += sizes[i]
	}
	target := offset
	if origin == "end" {
		target = total - offset
	}
	target = max(0, min(target, total))
	for i, sz := range sizes {
		if target < sz || i == len(sizes)-1 {
			return i, min(target, sz), true
		}
		target -= sz
	}
	return 0, 0, false // unreachable: files is not empty
}

// logCursor is a read position in a stream's files.
type logCursor struct {
	base string
	// f is the open file, with the index it has in the stream; nil
	// until a file was found.
	f     *os.File
	index int
	pos   int64
}

// next opens the oldest file newer than the current one (the oldest of
// all when none is open), skipping files deleted since the listing. It
// reports whether it found one; without one, the cursor stays put.
func (c *logCursor) next() (bool, error) {
	files, err := ctrdriver.LogFiles(c.base)
	if err != nil {
		return false, err
	}
	for _, lf := range files {
		if c.f != nil && lf.Index <= c.index {
			continue
		}
		f, err := os.Open(lf.Path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		c.close()
		c.f, c.index, c.pos = f, lf.Index, 0
		return true, nil
	}
	return false, nil
}

// newerExists reports whether the stream has a file newer than the
// open one.
func (c *logCursor) newerExists() (bool, error) {
	files, err := ctrdriver.LogFiles(c.base)
	if err != nil {
		return false, err
	}
	return len(files) > 0 && files[len(files)-1].Index > c.index, nil
}

func (c *logCursor) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

func (a *Agent) taskDead(allocID, task string) bool {
	st, err := a.client.TaskState(allocID, task)
	if errors.Is(err, client.ErrUnknownAlloc) {
		return true
	}
	return err == nil && st.State == structs.TaskStateDead
}

// proxyLogs forwards a log request to the agent of the node that runs
// the allocation: only to a registered, ready node, at its advertised
// address (logsTarget), over this agent's own transport (https with its
// certificate when tls.http is on, so that only an agent of the cluster
// is believed). A redirect from the other end is not passed on: the
// caller's client would follow it wherever it points.
//
// alloc is the allocation when the caller already looked it up (with
// ACLs on), nil otherwise. The request's token travels in its headers
// to the other agent, which checks it again.
func (a *Agent) proxyLogs(w http.ResponseWriter, r *http.Request, allocID string, alloc *structs.Allocation) {
	a.proxyToAllocNode(w, r, allocID, alloc, nodeProxy{what: "read logs of allocation", flush: -1})
}

// nodeProxy is how proxyToAllocNode forwards one kind of request.
type nodeProxy struct {
	// what names the request in errors: "read logs of allocation".
	what string
	// flush is the ReverseProxy's FlushInterval.
	flush time.Duration
	// dropOrigin removes the Origin header (checked here; the node sees
	// another Host).
	dropOrigin bool
}

// proxyToAllocNode forwards a request about an allocation to the agent
// of the node that runs it (logs, exec), with the checks described at
// proxyLogs: a request already forwarded is not forwarded again, only to
// a registered, ready node at its advertised address, over this agent's
// own transport, no redirect passed on.
func (a *Agent) proxyToAllocNode(w http.ResponseWriter, r *http.Request, allocID string, alloc *structs.Allocation, how nodeProxy) {
	if r.URL.Query().Get("forwarded") != "" {
		writeError(w, structs.NewError(structs.CodeNotFound, fmt.Sprintf("allocation %s does not run on this node", allocID)))
		return
	}
	if alloc == nil {
		var err error
		if alloc, err = a.logsAlloc(r, allocID, false); err != nil {
			writeError(w, err)
			return
		}
	}
	node, err := a.logsNode(r, alloc.NodeID)
	if err != nil {
		writeError(w, err)
		return
	}
	target, err := a.logsTarget(node, alloc.NodeID, allocID)
	if err != nil {
		writeError(w, err)
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			q := pr.In.URL.Query()
			q.Set("forwarded", "1")
			pr.Out.URL.RawQuery = q.Encode()
			if how.dropOrigin {
				pr.Out.Header.Del("Origin")
			}
		},
		Transport:     a.logsProxyTransport(),
		FlushInterval: how.flush,
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode >= 300 && resp.StatusCode < 400 {
				return fmt.Errorf("it answered with a redirect (HTTP %d to %q), which is not followed", resp.StatusCode, resp.Header.Get("Location"))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, structs.NewError(structs.CodeUnavailable, fmt.Sprintf("%s %s on node %s (%s) at %s: %v", how.what, allocID, node.Name, node.ID, target.Host, err)))
		},
	}
	proxy.ServeHTTP(w, r)
}
