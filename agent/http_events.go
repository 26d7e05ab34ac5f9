package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
)

// The event stream: GET /v1/event/stream?topic=Job:*&topic=Allocation:web
// &index=N&namespace=NS, newline-delimited JSON, one event per line:
//
//	{"Topic":"Allocation","Type":"AllocationUpdated","Key":"<alloc ID>",
//	 "Namespace":"default","FilterKeys":["web"],"Index":42,
//	 "Payload":{"Allocation":{...}}}
//
// served by any server agent from the events its own FSM derived from
// the writes it applied (every server derives the same events with the
// same indexes). `index=N` resumes exactly after N: the events of one
// index are written and flushed together, so a consumer that resumes
// from the last index it received whole sees every event once. An N
// older than the buffer keeps is 410 Gone, never a silent gap. A line
// `{}` is a heartbeat, every 10 s without events.
//
// Topics: Job, Allocation, Evaluation, Deployment, Node, or * (all);
// after the colon a key (the object's ID, or a job ID for allocations,
// evaluations and deployments; a deployment ID for allocations and
// evaluations) or * (all). Without topic, every topic. Events are
// filtered by the token: read-job in the event's namespace, node:read
// for Node events.

const (
	// maxEventTopics bounds the topic parameters of one stream.
	maxEventTopics = 64
	// eventHeartbeat is how often an idle stream writes `{}`.
	eventHeartbeat = 10 * time.Second
)

// eventFilter is a parsed subscription.
type eventFilter struct {
	// topics maps a topic (or "*") to its keys ("*" for all).
	topics    map[string][]string
	namespace string
}

func parseEventFilter(r *http.Request) (*eventFilter, error) {
	q := r.URL.Query()
	f := &eventFilter{topics: map[string][]string{}, namespace: q.Get("namespace")}
	if f.namespace == "" {
		f.namespace = structs.DefaultNamespace
	}
	raw := q["topic"]
	if len(raw) > maxEventTopics {
		return nil, badRequest("%d topic parameters; the limit is %d", len(raw), maxEventTopics)
	}
	if len(raw) == 0 {
		raw = []string{"*:*"}
	}
	for _, t := range raw {
		topic, key, ok := strings.Cut(t, ":")
		if !ok {
			key = "*"
		}
		if topic != structs.TopicAll && !slices.Contains(structs.EventTopics, topic) {
			return nil, badRequest("unknown topic %q; topics are %s or *", topic, strings.Join(structs.EventTopics, ", "))
		}
		if key == "" || len(key) > 256 {
			return nil, badRequest("topic %q: the key after ':' must be 1-256 bytes (or *)", t)
		}
		f.topics[topic] = append(f.topics[topic], key)
	}
	return f, nil
}

// matches reports whether the subscription selects e (ACL aside).
func (f *eventFilter) matches(e *structs.Event) bool {
	if e.Topic != structs.TopicNode && f.namespace != structs.AllNamespaces && e.Namespace != f.namespace {
		return false
	}
	for _, topic := range []string{e.Topic, structs.TopicAll} {
		for _, k := range f.topics[topic] {
			if k == "*" || k == e.Key || slices.Contains(e.FilterKeys, k) {
				return true
			}
		}
	}
	return false
}

// allowed reports whether the token may see e.
func allowedEvent(a *acl.ACL, e *structs.Event) bool {
	if e.Topic == structs.TopicNode {
		return a.AllowNodeRead()
	}
	return a.AllowNamespace(e.Namespace, acl.CapabilityReadJob)
}

// eventLine is one event as the stream writes it.
type eventLine struct {
	Topic      string
	Type       string
	Key        string
	Namespace  string
	FilterKeys []string `json:",omitempty"`
	Index      uint64
	Payload    map[string]interface{}
}

// eventPayload is what an event carries: the object, without what a
// stream must not show (a node's secret) or need not repeat (an
// allocation's copy of its job).
func eventPayload(e *structs.Event) map[string]interface{} {
	obj := e.Object
	switch o := obj.(type) {
	case *structs.Node:
		c := *o
		c.SecretID = ""
		obj = &c
	case *structs.Allocation:
		c := *o
		c.Job = nil
		obj = &c
	}
	return map[string]interface{}{e.Topic: obj}
}

func (a *Agent) eventStream(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) { writeError(w, err) }
	if a.server == nil {
		fail(badRequest("the event stream is served by servers; send the request to a server agent"))
		return
	}
	f, err := parseEventFilter(r)
	if err != nil {
		fail(err)
		return
	}
	var after uint64
	resume := false
	if s := r.URL.Query().Get("index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fail(badRequest("index=%q is not a non-negative integer", s))
			return
		}
		after, resume = n, n > 0
	}
	aclObj, _, err := a.requestACL(r)
	if err != nil {
		fail(err)
		return
	}
	if f.namespace != structs.AllNamespaces && !aclObj.AllowNamespace(f.namespace, acl.CapabilityReadJob) && !aclObj.AllowNodeRead() {
		_, token, _ := a.requestACL(r)
		fail(structs.NewNamespaceDeniedError(token, acl.CapabilityReadJob, f.namespace))
		return
	}
	if !resume {
		after = a.server.EventsLastIndex()
	}
	batches, notify, err := a.server.EventsSince(after)
	if errors.Is(err, server.ErrEventsGone) {
		fail(structs.NewError(structs.CodeGone, err.Error()))
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	heartbeat := time.NewTimer(eventHeartbeat)
	defer heartbeat.Stop()
	for {
		for _, b := range batches {
			for i := range b.Events {
				e := &b.Events[i]
				if !f.matches(e) || !allowedEvent(aclObj, e) {
					continue
				}
				line := eventLine{Topic: e.Topic, Type: e.Type, Key: e.Key, Namespace: e.Namespace, FilterKeys: e.FilterKeys, Index: e.Index, Payload: eventPayload(e)}
				if e.Topic == structs.TopicNode {
					line.Namespace = ""
				}
				if err := enc.Encode(&line); err != nil {
					return
				}
			}
			after = b.Index
			if flusher != nil {
				flusher.Flush()
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-a.shutdownCh:
			return
		case <-notify:
		case <-heartbeat.C:
			if _, err := w.Write([]byte("{}\n")); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			heartbeat.Reset(eventHeartbeat)
			continue
		}
		batches, notify, err = a.server.EventsSince(after)
		if err != nil {
			// The stream fell behind what the buffer keeps: say so and
			// end; the consumer resumes from its last index and gets
			// 410.
			_ = enc.Encode(map[string]string{"Error": fmt.Sprintf("stream fell behind: %v", err)})
			return
		}
		// A token revoked meanwhile ends the stream.
		if aclObj, _, err = a.resolveToken(authToken(r)); err != nil {
			_ = enc.Encode(map[string]string{"Error": err.Error()})
			return
		}
	}
}
