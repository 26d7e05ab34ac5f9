package server

import (
	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/structs"
)

// Authorization of RPC endpoints.
//
// Every endpoint authorizes on the server that serves the request, after
// forwarding (s.forward carries the request, and its AuthToken, to the
// leader): a follower never answers for the leader. The pattern is
//
//	if done, err := x.srv.forward("X.Method", args, args, reply); done {
//		return err
//	}
//	authz, err := x.srv.Authorize(args.AuthToken)
//	if err != nil {
//		return err // token_not_found (403)
//	}
//	if err := authz.Namespace(ns, acl.CapabilitySubmitJob); err != nil {
//		return err // permission_denied (403), naming token, capability, namespace
//	}
//
// The helpers other endpoint files use (the quota endpoint among them):
//
//   - (*Server).Authorize(secret) (*Authz, error): resolve a token once.
//   - (*Authz).Namespace(ns, capability), (*Authz).AnyNamespace(ns),
//     (*Authz).NodeRead/NodeWrite, OperatorRead/OperatorWrite,
//     QuotaRead/QuotaWrite, Management(what): nil or the 403 to return.
//   - (*Authz).CanNamespace(ns, capability): the bool, for filtering lists.
//   - (*Server).AuthorizeQuotaRead(secret) / AuthorizeQuotaWrite(secret):
//     one-call checks for quota:read / quota:write.
//
// What each RPC needs (ns is the request's namespace unless said):
//
//	Job.List, Alloc.List, Eval.List, Deployment.List   list-jobs in ns; "*" lists only
//	                                                   objects of namespaces with list-jobs
//	Job.GetJob, Versions, Allocations, Evaluations,
//	  Deployments, LatestDeployment                    read-job in ns
//	Alloc.GetAlloc, Eval.GetEval, Eval.Allocations,
//	  Deployment.GetDeployment, Deployment.Allocations read-job in the object's own namespace
//	Job.Register, Plan, Revert, Stable, Deregister      submit-job in ns (the job's)
//	Deployment.Promote, Deployment.Fail                submit-job in the deployment's namespace
//	Node.List, GetNode, GetAllocs                      node:read (GetAllocs lists only
//	                                                   allocations of namespaces with read-job)
//	Node.UpdateDrain, UpdateEligibility                node:write
//	Operator.RaftGetConfiguration, StateHash,
//	  SchedulerGetConfiguration                        operator:read
//	Operator.RaftRemovePeer, SchedulerSetConfiguration,
//	  System.GarbageCollect                            operator:write
//	Service.List, Service.Instances                    read-job in ns; "*" (List) lists only
//	                                                   namespaces with read-job; or a client
//	                                                   node's secret: every namespace
//	Service.Routes                                     read-job in ns; "*" lists only namespaces
//	                                                   with read-job (no node secret)
//	Alloc.Checks                                       read-job in the allocation's namespace
//	Namespace.List                                     lists namespaces with any capability
//	Namespace.Get                                      any capability in it
//	Namespace.Upsert, Namespace.Delete, ACL.* writes
//	  and reads of policies/tokens                     management
//	Operator.SnapshotSave, SnapshotRead,
//	  SnapshotRestore                                  management (a snapshot holds node secrets
//	                                                   and every namespace; a restore replaces
//	                                                   the ACL tokens)
//	ACL.GetTokenSelf, ACL.ResolveToken                 a valid token (ResolveToken: any secret)
//	ACL.Bootstrap, Status.*                            nothing
//	Node.Register, UpdateStatus, GetClientAllocs,
//	  UpdateAlloc, Alloc.GetAllocs                     the node's secret, no token
//
// With ACLs disabled Authorize returns the management ACL, so every
// check passes and endpoints need no special case. Client RPCs
// (Node.Register, Node.UpdateStatus, Node.GetClientAllocs,
// Node.UpdateAlloc, Alloc.GetAllocs) authenticate by node secret
// (node_auth.go) and take no token; Status (ping, leader, peers, and
// the server-to-server RaftConfiguration and ServerInfo) is open.

// Authz is a resolved request token: what it may do, and who it is
// (for naming it in refusals). Immutable; safe for concurrent use.
type Authz struct {
	// ACL is the token's compiled rules (the management ACL with ACLs
	// off).
	ACL *acl.ACL
	// Token is the token without its secret: structs.ACLAnonymousToken
	// when none was sent, nil with ACLs off.
	Token *structs.ACLToken
}

// Authorize resolves the request's token secret. An unknown or expired
// token is structs.ErrACLTokenNotFound (403 token_not_found).
func (s *Server) Authorize(secret string) (*Authz, error) {
	a, token, err := s.ResolveToken(secret)
	if err != nil {
		return nil, err
	}
	return &Authz{ACL: a, Token: token}, nil
}

// CanNamespace reports whether the token has capability in ns; lists
// use it to drop what the token may not see.
func (z *Authz) CanNamespace(ns, capability string) bool {
	return z.ACL.AllowNamespace(structs.NamespaceOrDefault(ns), capability)
}

// Namespace refuses a request without capability in ns:
// token "ci-deployer" lacks capability submit-job in namespace "prod".
func (z *Authz) Namespace(ns, capability string) error {
	ns = structs.NamespaceOrDefault(ns)
	if z.ACL.AllowNamespace(ns, capability) {
		return nil
	}
	return structs.NewNamespaceDeniedError(z.Token, capability, ns)
}

// CanAnyNamespace reports whether the token has any capability in ns
// (what it takes to see the namespace itself).
func (z *Authz) CanAnyNamespace(ns string) bool {
	return z.ACL.IsManagement() || len(z.ACL.NamespaceCapabilities(structs.NamespaceOrDefault(ns))) > 0
}

// AnyNamespace refuses a request about namespace ns by a token with no
// capability at all in it; the refusal names list-jobs, the least
// capability that would do.
func (z *Authz) AnyNamespace(ns string) error {
	if z.CanAnyNamespace(ns) {
		return nil
	}
	return structs.NewNamespaceDeniedError(z.Token, acl.CapabilityListJobs, structs.NamespaceOrDefault(ns))
}

// rule refuses a node, operator or quota request the ACL does not allow.
func (z *Authz) rule(allowed bool, rule, policy string) error {
	if allowed {
		return nil
	}
	return structs.NewRuleDeniedError(z.Token, rule, policy)
}

// NodeRead refuses without node:read.
func (z *Authz) NodeRead() error { return z.rule(z.ACL.AllowNodeRead(), "node", acl.PolicyRead) }

// NodeWrite refuses without node:write.
func (z *Authz) NodeWrite() error { return z.rule(z.ACL.AllowNodeWrite(), "node", acl.PolicyWrite) }

// OperatorRead refuses without operator:read.
func (z *Authz) OperatorRead() error {
	return z.rule(z.ACL.AllowOperatorRead(), "operator", acl.PolicyRead)
}

// OperatorWrite refuses without operator:write.
func (z *Authz) OperatorWrite() error {
	return z.rule(z.ACL.AllowOperatorWrite(), "operator", acl.PolicyWrite)
}

// QuotaRead refuses without quota:read.
func (z *Authz) QuotaRead() error { return z.rule(z.ACL.AllowQuotaRead(), "quota", acl.PolicyRead) }

// QuotaWrite refuses without quota:write.
func (z *Authz) QuotaWrite() error {
	return z.rule(z.ACL.AllowQuotaWrite(), "quota", acl.PolicyWrite)
}

// Management refuses anything but a management token; what names the
// operation ("Namespace.Upsert (drover namespace apply)").
func (z *Authz) Management(what string) error {
	if z.ACL.IsManagement() {
		return nil
	}
	return structs.NewManagementRequiredError(z.Token, what)
}

// AuthorizeQuotaRead resolves secret and refuses it without quota:read
// (for the quota endpoint: Quota.List, Quota.Get, Quota.Usage).
func (s *Server) AuthorizeQuotaRead(secret string) error {
	z, err := s.Authorize(secret)
	if err != nil {
		return err
	}
	return z.QuotaRead()
}

// AuthorizeQuotaWrite resolves secret and refuses it without
// quota:write (for Quota.Upsert, Quota.Delete).
func (s *Server) AuthorizeQuotaWrite(secret string) error {
	z, err := s.Authorize(secret)
	if err != nil {
		return err
	}
	return z.QuotaWrite()
}

// authorizeNamespace resolves secret and refuses it without capability
// in ns: the common case of a job endpoint.
func (s *Server) authorizeNamespace(secret, ns, capability string) (*Authz, error) {
	z, err := s.Authorize(secret)
	if err != nil {
		return nil, err
	}
	return z, z.Namespace(ns, capability)
}

// authorizeObjectRead refuses a read by ID of an object (allocation,
// evaluation, deployment) in namespace ns without read-job there. The
// caller returns the error before filling its reply, so a refused read
// says no more about the object than the 403 itself: no fields, no
// index.
func (z *Authz) authorizeObjectRead(ns string) error {
	return z.Namespace(ns, acl.CapabilityReadJob)
}

// listNamespaceAllowed decides whether a list in namespace listNS (the
// request's ListNamespace: a name or "*") may run: a named namespace
// needs list-jobs; "*" is allowed and filtered per object (with
// CanNamespace) to the namespaces where the token has list-jobs.
func (z *Authz) listNamespaceAllowed(listNS string) error {
	if listNS == structs.AllNamespaces {
		return nil
	}
	return z.Namespace(listNS, acl.CapabilityListJobs)
}

// authorizeNode resolves secret and refuses it without node:read (or
// node:write with write).
func (s *Server) authorizeNode(secret string, write bool) error {
	z, err := s.Authorize(secret)
	if err != nil {
		return err
	}
	if write {
		return z.NodeWrite()
	}
	return z.NodeRead()
}

// authorizeOperator resolves secret and refuses it without
// operator:read (or operator:write with write).
func (s *Server) authorizeOperator(secret string, write bool) error {
	z, err := s.Authorize(secret)
	if err != nil {
		return err
	}
	if write {
		return z.OperatorWrite()
	}
	return z.OperatorRead()
}
