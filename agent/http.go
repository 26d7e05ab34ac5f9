package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/structs"
)

// routes builds the HTTP API. Paths and JSON shapes follow Nomad's API.
func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request) (interface{}, error)) {
		mux.HandleFunc(pattern, a.wrap(h))
	}
	handle("GET /v1/jobs", a.jobList)
	handle("PUT /v1/jobs", a.jobRegister)
	handle("POST /v1/jobs", a.jobRegister)
	handle("PUT /v1/validate/job", a.jobValidate)
	handle("POST /v1/validate/job", a.jobValidate)
	handle("GET /v1/job/{id}", a.jobGet)
	handle("PUT /v1/job/{id}", a.jobRegister)
	handle("POST /v1/job/{id}", a.jobRegister)
	handle("DELETE /v1/job/{id}", a.jobDeregister)
	handle("GET /v1/job/{id}/allocations", a.jobAllocations)
	handle("GET /v1/job/{id}/evaluations", a.jobEvaluations)
	handle("GET /v1/job/{id}/versions", a.jobVersions)
	for _, m := range []string{"PUT", "POST"} {
		handle(m+" /v1/job/{id}/plan", a.jobPlan)
		handle(m+" /v1/job/{id}/revert", a.jobRevert)
		handle(m+" /v1/job/{id}/stable", a.jobStable)
		handle(m+" /v1/deployment/promote/{id}", a.deploymentPromote)
		handle(m+" /v1/deployment/fail/{id}", a.deploymentFail)
		handle(m+" /v1/node/{id}/drain", a.nodeDrain)
		handle(m+" /v1/node/{id}/eligibility", a.nodeEligibility)
		handle(m+" /v1/operator/scheduler/configuration", a.schedulerConfigSet)
	}
	handle("GET /v1/job/{id}/deployments", a.jobDeployments)
	handle("GET /v1/job/{id}/deployment", a.jobLatestDeployment)
	handle("GET /v1/deployments", a.deploymentList)
	handle("GET /v1/deployment/{id}", a.deploymentGet)
	handle("GET /v1/deployment/allocations/{id}", a.deploymentAllocations)
	handle("GET /v1/operator/scheduler/configuration", a.schedulerConfigGet)

	handle("GET /v1/allocations", a.allocList)
	handle("GET /v1/allocation/{id}", a.allocGet)
	handle("GET /v1/allocation/{id}/checks", a.allocChecks)

	// Service discovery (http_services.go).
	handle("GET /v1/services", a.serviceList)
	handle("GET /v1/service/{name}", a.serviceInstances)
	handle("GET /v1/routes", a.routeList) // http_routes.go

	handle("GET /v1/nodes", a.nodeList)
	handle("GET /v1/node/{id}", a.nodeGet)
	handle("GET /v1/node/{id}/allocations", a.nodeAllocations)

	handle("GET /v1/evaluations", a.evalList)
	handle("GET /v1/evaluation/{id}", a.evalGet)
	handle("GET /v1/evaluation/{id}/allocations", a.evalAllocations)

	// Nomad-shaped endpoints for Nomad's tools (http_nomad.go).
	handle("GET /v1/job/{id}/summary", a.jobSummary)
	handle("GET /v1/job/{id}/scale", a.jobScaleStatus)
	handle("PUT /v1/job/{id}/scale", a.jobScale)
	handle("POST /v1/job/{id}/scale", a.jobScale)
	handle("GET /v1/regions", a.regions)
	handle("GET /v1/agent/servers", a.guard(needAgentRead, a.agentServers))
	handle("PUT /v1/jobs/parse", a.jobsParse)
	handle("POST /v1/jobs/parse", a.jobsParse)

	handle("GET /v1/status/leader", a.statusLeader)
	handle("GET /v1/status/peers", a.statusPeers)
	// The agent's own endpoints are authorized here (http_authz.go);
	// the health check stays open for load balancers.
	handle("GET /v1/agent/self", a.guard(needAgentRead, a.agentSelf))
	handle("GET /v1/agent/health", a.agentHealth)
	handle("GET /v1/agent/members", a.guard(needAgentRead, a.agentMembers))
	handle("GET /v1/client/proxy", a.guard(needAgentRead, a.clientProxy))
	handle("GET /v1/client/gateway", a.guard(needAgentRead, a.clientGateway))
	handle("PUT /v1/agent/leave", a.guard(needAgentWrite, a.agentLeave))
	handle("POST /v1/agent/leave", a.guard(needAgentWrite, a.agentLeave))
	// Gossip keyring (http_keyring.go).
	handle("GET /v1/agent/keyring/list", a.guard(needAgentRead, a.keyringList))
	for _, m := range []string{"PUT", "POST"} {
		handle(m+" /v1/agent/keyring/install", a.guard(needAgentWrite, a.keyringInstall))
		handle(m+" /v1/agent/keyring/use", a.guard(needAgentWrite, a.keyringUse))
		handle(m+" /v1/agent/keyring/remove", a.guard(needAgentWrite, a.keyringRemove))
	}
	handle("GET /v1/operator/raft/configuration", a.raftConfiguration)
	handle("DELETE /v1/operator/raft/peer", a.raftRemovePeer)
	handle("GET /v1/operator/state-hash", a.guard(needOperatorRead, a.stateHash))
	handle("GET /v1/operator/keyring/keys", a.rootKeyList) // http_variables.go
	handle("PUT /v1/system/gc", a.systemGC)                // http_system.go
	handle("POST /v1/system/gc", a.systemGC)
	for _, m := range []string{"PUT", "POST"} {
		handle(m+" /v1/operator/keyring/rotate", a.rootKeyRotate)
	}

	handle("GET /v1/vars", a.variableList)
	handle("GET /v1/var/{path...}", a.variableGet)
	handle("PUT /v1/var/{path...}", a.variablePut)
	handle("POST /v1/var/{path...}", a.variablePut)
	handle("DELETE /v1/var/{path...}", a.variableDelete)
	// Snapshots (http_snapshot.go): management tokens only.
	mux.HandleFunc("GET /v1/operator/snapshot", a.snapshotSave)
	for _, m := range []string{"PUT", "POST"} {
		handle(m+" /v1/operator/snapshot", a.snapshotRestore)
	}

	// ACLs (http_acl.go), Nomad's paths.
	handle("GET /v1/acl/policies", a.aclPolicyList)
	handle("GET /v1/acl/policy/{name}", a.aclPolicyGet)
	handle("DELETE /v1/acl/policy/{name}", a.aclPolicyDelete)
	handle("GET /v1/acl/tokens", a.aclTokenList)
	handle("GET /v1/acl/token/self", a.aclTokenSelf)
	handle("GET /v1/acl/token/{accessor}", a.aclTokenGet)
	handle("DELETE /v1/acl/token/{accessor}", a.aclTokenDelete)
	for _, m := range []string{"PUT", "POST"} {
		handle(m+" /v1/acl/bootstrap", a.aclBootstrap)
		handle(m+" /v1/acl/policy/{name}", a.aclPolicyUpsert)
		handle(m+" /v1/acl/token", a.aclTokenCreate)
	}

	// Namespaces (http_namespaces.go), Nomad's paths.
	handle("GET /v1/namespaces", a.namespaceList)
	handle("GET /v1/namespace/{name}", a.namespaceGet)
	handle("DELETE /v1/namespace/{name}", a.namespaceDelete)
	for _, m := range []string{"PUT", "POST"} {
		handle(m+" /v1/namespace/{name}", a.namespaceUpsert)
		handle(m+" /v1/namespace", a.namespaceUpsert)
	}

	// Quotas (http_quotas.go).
	handle("GET /v1/quotas", a.quotaList)
	handle("GET /v1/quota/usage/{name}", a.quotaUsage)
	handle("GET /v1/quota/{name}", a.quotaGet)
	handle("DELETE /v1/quota/{name}", a.quotaDelete)
	for _, m := range []string{"PUT", "POST"} {
		handle(m+" /v1/quota/{name}", a.quotaUpsert)
	}

	mux.HandleFunc("GET /v1/client/fs/logs/{alloc}", a.clientLogs)
	// Exec over a WebSocket (http_exec.go).
	mux.HandleFunc("GET /v1/client/allocation/{alloc}/exec", a.clientAllocExec)
	mux.HandleFunc("GET /v1/event/stream", a.eventStream) // http_events.go
	mux.Handle("GET /v1/metrics", a.guardHTTP(needAgentRead, a.metricsHandler()))
	if a.config.EnableDebug {
		// The profiler can stall the process (profile, trace) and
		// shows its command line: agent:write.
		mux.Handle("/debug/pprof/", a.guardHTTP(needAgentWrite, http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", a.guardHTTP(needAgentWrite, http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", a.guardHTTP(needAgentWrite, http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", a.guardHTTP(needAgentWrite, http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", a.guardHTTP(needAgentWrite, http.HandlerFunc(pprof.Trace)))
	}
	a.mountUI(mux) // the web UI at /ui/ (http_ui.go)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, structs.NewError(structs.CodeNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)))
	})
	return a.audited(mux)
}

// audited is the one middleware around every route: it gives each
// request its requestAuth (a token resolved at most once per request)
// and, with audit on, appends the audit line of every write, exec and
// denied request once the answer is sent (audit.go).
func (a *Agent) audited(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, info := withRequestAuth(r)
		if a.audit != nil && auditedRequest(r) {
			// Named before the write: a token that deletes itself is
			// still named in its line.
			_, _, _ = a.requestACL(r)
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if a.audit == nil {
			return
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		if status != http.StatusForbidden && !auditedRequest(r) {
			return
		}
		a.audit.write(a.auditEntry(r, info, status, rec.code))
	})
}

// wrap turns a handler returning (body, error) into an http.HandlerFunc:
// bodies are JSON; errors are JSON with a fitting status.
func (a *Agent) wrap(h func(w http.ResponseWriter, r *http.Request) (interface{}, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, err := h(w, r)
		if err != nil {
			status := writeError(w, err)
			if r.URL.Path != "/v1/agent/health" {
				a.logger.Debug("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err, "duration", time.Since(start))
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		if _, pretty := r.URL.Query()["pretty"]; pretty {
			enc.SetIndent("", "    ")
		}
		if err := enc.Encode(body); err != nil {
			a.logger.Warn("failed to write response", "path", r.URL.Path, "error", err)
		}
	}
}

// errorBody is the JSON of every error response.
type errorBody struct {
	// Code is stable and machine-readable; Error is for people.
	Code  string
	Error string
	// Problems lists every field that failed validation.
	Problems []structs.FieldError `json:",omitempty"`
	// A variable check-and-set conflict carries the variable's current
	// metadata at the top level, as Nomad's 409 does.
	*structs.VariableMetadata
}

// writeError writes err as JSON with its status and returns the status.
func writeError(w http.ResponseWriter, err error) int {
	body := errorBody{Code: structs.CodeInternal, Error: err.Error()}
	status := http.StatusInternalServerError
	var verr *structs.ValidationError
	var tooBig *http.MaxBytesError
	var cas *casConflictError
	if errors.As(err, &cas) {
		body.VariableMetadata = cas.current
	}
	switch {
	case errors.As(err, &verr):
		body.Code, status, body.Problems = structs.CodeInvalid, http.StatusBadRequest, verr.Problems
	case errors.As(err, &tooBig):
		body.Code, status = structs.CodeTooLarge, http.StatusRequestEntityTooLarge
		body.Error = fmt.Sprintf("request body is larger than the limit of %d bytes", tooBig.Limit)
	default:
		if ce := structs.ParseCodedError(err); ce != nil {
			body.Code, status, body.Error = ce.Code, ce.Status, ce.Message
		}
	}
	if rec, ok := w.(interface{ recordErrorCode(string) }); ok {
		rec.recordErrorCode(body.Code)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
	return status
}

func badRequest(format string, args ...interface{}) error {
	return structs.NewError(structs.CodeInvalid, fmt.Sprintf(format, args...))
}

// decodeBody reads a JSON body of at most the configured size into out,
// rejecting unknown fields with their path. A body over the limit gives
// an *http.MaxBytesError (413).
func (a *Agent) decodeBody(w http.ResponseWriter, r *http.Request, out interface{}) error {
	r.Body = http.MaxBytesReader(w, r.Body, a.config.MaxRequestBytes)
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return badRequest("request body is empty; send a JSON object")
	}
	var generic interface{}
	if err := json.Unmarshal(raw, &generic); err != nil {
		return badRequest("request body is not valid JSON: %v", err)
	}
	var problems []structs.FieldError
	// Nomad-only fields left at their zero/default are accepted; others
	// are refused as not supported (http_nomad_job.go).
	acceptNomadFields(generic, reflect.TypeOf(out), "", &problems)
	checkFields(generic, reflect.TypeOf(out), "", &problems)
	if len(problems) > 0 {
		return &structs.ValidationError{Problems: problems}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &structs.ValidationError{Problems: []structs.FieldError{{
				Path:    typeErr.Field,
				Message: fmt.Sprintf("expected %s, got a JSON %s", typeErr.Type, typeErr.Value),
			}}}
		}
		return badRequest("cannot decode request body: %v", err)
	}
	return nil
}

var jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// checkFields walks decoded JSON against the Go type it will be decoded
// into and records every object key that matches no field (case-
// insensitively, as encoding/json matches), with its path.
func checkFields(v interface{}, t reflect.Type, path string, problems *[]structs.FieldError) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]interface{})
		if !ok {
			return // a type error; json.Unmarshal reports it
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := lookupField(fields, k)
			p := joinPath(path, k)
			if !ok {
				*problems = append(*problems, structs.FieldError{Path: p, Message: fmt.Sprintf("unknown field; accepted fields here: %s", fieldNames(fields))})
				continue
			}
			checkFields(obj[k], f.Type, joinPath(path, f.name), problems)
		}
	case reflect.Slice, reflect.Array:
		if list, ok := v.([]interface{}); ok {
			for i, item := range list {
				checkFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), problems)
			}
		}
	case reflect.Map:
		if obj, ok := v.(map[string]interface{}); ok {
			for k, item := range obj {
				checkFields(item, t.Elem(), fmt.Sprintf("%s[%q]", path, k), problems)
			}
		}
	}
}

type jsonField struct {
	reflect.StructField
	name string
}

// jsonFields lists a struct's JSON fields, flattening embedded structs.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			tagName, _, _ := strings.Cut(tag, ",")
			if tagName == "-" {
				continue
			}
			if tagName != "" {
				name = tagName
			}
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		out = append(out, jsonField{StructField: f, name: name})
	}
	return out
}

func lookupField(fields []jsonField, key string) (jsonField, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return jsonField{}, false
}

func fieldNames(fields []jsonField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parseQueryOptions reads ?index=, ?wait=, ?stale, ?prefix= and
// ?namespace= (http_namespaces.go), and puts the request's ACL token in
// AuthToken for the server to authorize the read. A
// wait is capped at structs.MaxQueryTime; the index of a request over
// the blocking-query cap (limitRequests) is dropped, so it is answered
// at once.
func parseQueryOptions(r *http.Request, q *structs.QueryOptions) error {
	values := r.URL.Query()
	if s := values.Get("index"); s != "" {
		idx, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return badRequest("index=%q is not a non-negative integer", s)
		}
		if queryMayBlock(r) {
			q.MinQueryIndex = idx
		}
	}
	if s := values.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			secs, ierr := strconv.ParseUint(s, 10, 32)
			if ierr != nil {
				return badRequest("wait=%q is not a duration; use e.g. 30s or 5m (at most %s)", s, structs.MaxQueryTime)
			}
			d = time.Duration(secs) * time.Second
		}
		if d < 0 {
			return badRequest("wait=%q is negative; use e.g. 30s or 5m (at most %s)", s, structs.MaxQueryTime)
		}
		q.MaxQueryTime = min(d, structs.MaxQueryTime)
	}
	if _, ok := values["stale"]; ok && values.Get("stale") != "false" {
		q.AllowStale = true
	}
	q.Prefix = values.Get("prefix")
	// Lists take "*" (every namespace); reads of one job refuse it
	// (parseSingleQuery).
	ns, err := queryNamespace(r, true)
	if err != nil {
		return err
	}
	q.Namespace = ns
	q.AuthToken = authToken(r)
	return nil
}

// setMeta writes the query metadata headers (Nomad's names, for
// tooling, and Drover's).
func setMeta(w http.ResponseWriter, m structs.QueryMeta) {
	idx := strconv.FormatUint(m.Index, 10)
	h := w.Header()
	h.Set("X-Drover-Index", idx)
	h.Set("X-Nomad-Index", idx)
	h.Set("X-Drover-KnownLeader", strconv.FormatBool(m.KnownLeader))
	h.Set("X-Nomad-KnownLeader", strconv.FormatBool(m.KnownLeader))
	lastContact := strconv.FormatInt(m.LastContact.Milliseconds(), 10)
	h.Set("X-Drover-LastContact", lastContact)
	h.Set("X-Nomad-LastContact", lastContact)
}

func setIndex(w http.ResponseWriter, index uint64) {
	idx := strconv.FormatUint(index, 10)
	w.Header().Set("X-Drover-Index", idx)
	w.Header().Set("X-Nomad-Index", idx)
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
