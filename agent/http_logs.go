package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/droverhq/drover/client"
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

	if a.client == nil || !a.runsAlloc(allocID) {
		a.proxyLogs(w, r, allocID)
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
	path, err := a.client.LogPath(allocID, task, stream)
	if err != nil {
		writeError(w, structs.NewError(structs.CodeNotFound, err.Error()))
		return
	}
	a.streamLog(w, r, path, allocID, task, offset, origin, follow)
}

func (a *Agent) runsAlloc(allocID string) bool {
	_, err := a.client.AllocTasks(allocID)
	return err == nil
}

// streamLog writes the file from the requested position and, with
// follow, keeps writing what is appended.
func (a *Agent) streamLog(w http.ResponseWriter, r *http.Request, path, allocID, task string, offset int64, origin string, follow bool) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		// The task has not written anything yet.
		f = nil
	} else if err != nil {
		writeError(w, err)
		return
	}
	if f != nil {
		defer f.Close()
	}
	pos := int64(0)
	if f != nil {
		st, err := f.Stat()
		if err != nil {
			writeError(w, err)
			return
		}
		pos = offset
		if origin == "end" {
			pos = st.Size() - offset
		}
		if pos < 0 {
			pos = 0
		}
		if pos > st.Size() {
			pos = st.Size()
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		if f == nil {
			if nf, err := os.Open(path); err == nil {
				f = nf
				defer nf.Close()
			}
		}
		if f != nil {
			n, err := f.ReadAt(buf, pos)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				pos += int64(n)
				if flusher != nil {
					flusher.Flush()
				}
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return
			}
		}
		if !follow || a.taskDead(allocID, task) {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(logPollInterval):
		}
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
// the allocation.
func (a *Agent) proxyLogs(w http.ResponseWriter, r *http.Request, allocID string) {
	if r.URL.Query().Get("forwarded") != "" {
		writeError(w, structs.NewError(structs.CodeNotFound, fmt.Sprintf("allocation %s does not run on this node", allocID)))
		return
	}
	var aresp structs.SingleAllocResponse
	if err := a.RPC("Alloc.GetAlloc", &structs.AllocSpecificRequest{AllocID: allocID}, &aresp); err != nil {
		writeError(w, err)
		return
	}
	if aresp.Alloc == nil {
		writeError(w, structs.NewError(structs.CodeNotFound, fmt.Sprintf("allocation %q not found", allocID)))
		return
	}
	var nresp structs.SingleNodeResponse
	if err := a.RPC("Node.GetNode", &structs.NodeSpecificRequest{NodeID: aresp.Alloc.NodeID}, &nresp); err != nil {
		writeError(w, err)
		return
	}
	if nresp.Node == nil || nresp.Node.HTTPAddr == "" {
		writeError(w, structs.NewError(structs.CodeUnavailable, fmt.Sprintf("node %s of allocation %s has no reachable agent", aresp.Alloc.NodeID, allocID)))
		return
	}
	target := &url.URL{Scheme: "http", Host: nresp.Node.HTTPAddr}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		writeError(w, structs.NewError(structs.CodeUnavailable, fmt.Sprintf("reach node %s at %s: %v", nresp.Node.Name, nresp.Node.HTTPAddr, err)))
	}
	q := r.URL.Query()
	q.Set("forwarded", "1")
	r.URL.RawQuery = q.Encode()
	proxy.ServeHTTP(w, r)
}
