// Package structs holds the types shared by every part of Drover: jobs,
// task groups, tasks, nodes, allocations, evaluations, plans, the Raft
// message types and the request/response shapes of the RPC endpoints.
//
// The JSON field names are the Go field names and follow Nomad's JSON
// shapes, so tooling that reads Nomad's API reads Drover's.
//
// structs imports nothing internal. Everything here must be safe to
// encode into the Raft log: no channels, no funcs, no pointers to
// shared mutable state. Objects read from the state store are shared
// and must be treated as immutable; Copy before modifying.
package structs
