// Package state is Drover's in-memory indexed state store, built on
// go-memdb: jobs (with their versions), nodes, allocations and
// evaluations, plus the latest Raft index per table.
//
// Jobs and everything looked up by job (versions, allocations,
// evaluations, deployments) are keyed by (namespace, job ID): job IDs
// repeat across namespaces. Lookups by job take the namespace ("" is
// the default one); lists take a namespace or structs.AllNamespaces.
// The default namespace is in every store (namespaces.go).
//
// Only the FSM writes to it, from the Raft apply goroutine; everything
// else reads, either directly (with a memdb.WatchSet for blocking
// queries) or through an immutable Snapshot (the scheduler).
//
// Objects returned by reads are shared with the store and must not be
// modified; write paths copy before changing anything.
//
// Allocations are listed by node and by job through derived rows (one
// per node and per job, see alloc_sets.go) rather than memdb indexes,
// which cost ~370 bytes per allocation each; decoded allocations share
// strings with the nodes table (ShareNodeStrings). At 100,000
// allocations a server's memory is mostly allocations.
//
// Rows are deleted by the garbage collector's entries (gc.go), with
// the rows derived from them, only while they are still collectable.
//
// state imports only structs.
package state
