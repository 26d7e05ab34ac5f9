package agent

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/structs"
)

// Authorization of the agent's own endpoints.
//
// Endpoints the agent forwards to the servers (jobs, nodes,
// allocations, evaluations, deployments, namespaces, ACLs, operator
// raft and scheduler, system gc (operator:write), quotas) are
// authorized by the server that serves them: the handlers only carry
// the request's token (authToken) in the RPC's AuthToken. Endpoints the agent answers itself are authorized
// here, on the agent, with the token resolved by resolveToken:
//
//	GET /v1/agent/self, /v1/agent/members         agent:read
//	GET /v1/agent/keyring/list                    agent:read
//	GET /v1/metrics                               agent:read
//	PUT /v1/agent/leave, keyring install|use|remove  agent:write
//	/debug/pprof/* (with enable_debug)            agent:write
//	GET /v1/operator/state-hash                   operator:read (and the server checks it too)
//	GET, PUT /v1/operator/snapshot                management (and the server checks it too): a
//	                                              snapshot holds node secrets and every namespace,
//	                                              a restore replaces the ACL tokens
//	PUT /v1/validate/job                          read-job in the job's namespace
//	GET /v1/client/fs/logs/{alloc}                read-logs in the allocation's namespace,
//	                                              on the agent that serves the file too
//	GET /v1/client/allocation/{alloc}/exec        alloc-exec in the allocation's namespace,
//	                                              on the node's agent too (audited as a write)
//	GET /v1/agent/health, /v1/status/*            open (load balancers; Nomad's status endpoints)
//	PUT /v1/acl/bootstrap                         open (works once per cluster)
//
// A request's token is resolved at most once (requestAuth), and the
// audit middleware reuses the answer to name the token.

// requestAuth is what one HTTP request carries between the audit
// middleware, the authorization checks and the handlers. It is used on
// the request's goroutine only.
type requestAuth struct {
	resolved bool
	acl      *acl.ACL
	token    *structs.ACLToken
	err      error

	// namespace is the request's namespace when a handler knows it
	// better than ?namespace= (a job's own, an allocation's).
	namespace string
}

type requestAuthKey struct{}

func withRequestAuth(r *http.Request) (*http.Request, *requestAuth) {
	info := &requestAuth{}
	return r.WithContext(context.WithValue(r.Context(), requestAuthKey{}, info)), info
}

func requestAuthOf(r *http.Request) *requestAuth {
	info, _ := r.Context().Value(requestAuthKey{}).(*requestAuth)
	return info
}

// setRequestNamespace records the namespace a request acts in, for the
// audit log.
func setRequestNamespace(r *http.Request, ns string) {
	if info := requestAuthOf(r); info != nil {
		info.namespace = ns
	}
}

// requestACL resolves the request's token, once per request.
func (a *Agent) requestACL(r *http.Request) (*acl.ACL, *structs.ACLToken, error) {
	info := requestAuthOf(r)
	if info == nil {
		return a.resolveToken(authToken(r))
	}
	if !info.resolved {
		info.acl, info.token, info.err = a.resolveToken(authToken(r))
		info.resolved = true
	}
	return info.acl, info.token, info.err
}

// ruleCheck is a check of a node, agent, operator or quota rule.
type ruleCheck struct {
	rule, policy string
	allow        func(*acl.ACL) bool
}

// The checks of the agent's own endpoints.
var (
	needAgentRead    = ruleCheck{"agent", acl.PolicyRead, (*acl.ACL).AllowAgentRead}
	needAgentWrite   = ruleCheck{"agent", acl.PolicyWrite, (*acl.ACL).AllowAgentWrite}
	needOperatorRead = ruleCheck{"operator", acl.PolicyRead, (*acl.ACL).AllowOperatorRead}
)

// requireRule refuses the request unless its token passes c: 403
// permission_denied naming the token and the rule, or token_not_found.
func (a *Agent) requireRule(r *http.Request, c ruleCheck) error {
	aclObj, token, err := a.requestACL(r)
	if err != nil {
		return err
	}
	if !c.allow(aclObj) {
		return structs.NewRuleDeniedError(token, c.rule, c.policy)
	}
	return nil
}

// requireNamespace refuses the request unless its token has capability
// in namespace ns.
func (a *Agent) requireNamespace(r *http.Request, ns, capability string) error {
	aclObj, token, err := a.requestACL(r)
	if err != nil {
		return err
	}
	if !aclObj.AllowNamespace(ns, capability) {
		return structs.NewNamespaceDeniedError(token, capability, ns)
	}
	return nil
}

// guard puts check c in front of a handler.
func (a *Agent) guard(c ruleCheck, h func(w http.ResponseWriter, r *http.Request) (interface{}, error)) func(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	return func(w http.ResponseWriter, r *http.Request) (interface{}, error) {
		if err := a.requireRule(r, c); err != nil {
			return nil, err
		}
		return h(w, r)
	}
}

// guardHTTP puts check c in front of a plain http.Handler (metrics,
// pprof).
func (a *Agent) guardHTTP(c ruleCheck, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.requireRule(r, c); err != nil {
			writeError(w, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status and error code of an answer for
// the audit log. It passes Flush on (followed logs, the logs proxy) and
// unwraps for http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
	code   string
}

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		if s.status == 0 {
			s.status = http.StatusOK
		}
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack passes a WebSocket upgrade (exec, and the exec proxy) on and
// records it as 101.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// recordErrorCode is called by writeError with the code it answers.
func (s *statusRecorder) recordErrorCode(code string) { s.code = code }

// isWrite reports whether a request changes something (and is audited
// whatever its outcome).
func isWrite(method string) bool {
	switch method {
	case http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch:
		return true
	}
	return false
}

// auditedRequest reports whether a request is audited whatever its outcome:
// writes, and execs (a GET that runs a command in a task).
func auditedRequest(r *http.Request) bool {
	return isWrite(r.Method) || (strings.HasPrefix(r.URL.Path, "/v1/client/allocation/") && strings.HasSuffix(r.URL.Path, "/exec"))
}

// namespacedPaths are the path prefixes of requests that act in one
// namespace (the default one without ?namespace=).
var namespacedPaths = []string{"/v1/job", "/v1/var", "/v1/allocation", "/v1/evaluation", "/v1/deployment", "/v1/validate/job", "/v1/client/fs/", "/v1/client/allocation/"}

// maxAuditNamespace bounds a namespace copied from a hostile query.
const maxAuditNamespace = 128

// auditEntry builds the audit line of an answered request.
func (a *Agent) auditEntry(r *http.Request, info *requestAuth, status int, code string) auditEntry {
	e := auditEntry{Time: time.Now().UTC().Format(time.RFC3339Nano), Method: r.Method, Path: r.URL.Path, Status: status, Code: code}
	if len(e.Path) > 1024 {
		e.Path = e.Path[:1024]
	}
	_, token, err := a.requestACL(r)
	switch {
	case err != nil:
		// Unknown or expired: no name to give.
	case token == nil:
		// ACLs off: nobody is authenticated.
		e.TokenName = structs.ACLAnonymousToken.Name
	default:
		e.AccessorID, e.TokenName = token.AccessorID, token.Name
	}
	e.Namespace = info.namespace
	if e.Namespace == "" {
		e.Namespace = r.URL.Query().Get("namespace")
		if e.Namespace == "" {
			for _, p := range namespacedPaths {
				if strings.HasPrefix(r.URL.Path, p) {
					e.Namespace = structs.DefaultNamespace
					break
				}
			}
		}
	}
	if len(e.Namespace) > maxAuditNamespace {
		e.Namespace = e.Namespace[:maxAuditNamespace]
	}
	return e
}
