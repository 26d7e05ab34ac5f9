// Package acl owns Drover's access-control rules: parsing ACL policies
// (HCL, Nomad's policy language: namespace, node, agent, operator and
// quota rules) into Policy values, and compiling the policies of one
// token into an *ACL that answers "may this token do X" (AllowNamespace,
// AllowNodeRead, ...).
//
// The package is pure: no I/O, no clock, no state. Tokens, their
// storage, expiry and the lookup of a token's policies belong to the
// server (server/acl_resolve.go); enforcing an *ACL on an endpoint
// belongs to the endpoint.
//
// acl imports nothing internal; agent and server import it.
package acl
