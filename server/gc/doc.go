// Package gc owns garbage collection on the leader: it finds the
// evaluations, allocations, deployments, jobs, job versions and down
// nodes that are old enough to go (thresholds and per-job caps from the
// server configuration, Nomad's defaults), and writes what it chose in
// GCBatchRequest Raft entries of at most structs.MaxGCBatchObjects
// objects. Every server's FSM (state.GCBatch) deletes what an entry
// names only if it is still collectable, judged from the state alone,
// so the clock is read here and never in the FSM.
//
// The collector runs a pass every Settings.Interval while its server
// leads, and on demand (PUT /v1/system/gc: Collect with force, every
// age threshold zero; a dry run only reports).
//
// It reads the cluster through State, a read-only view this package
// defines (the state store and its snapshots satisfy it), and writes
// only through Raft, a narrow interface the server implements. Time
// comes from an injectable clock.
//
// gc imports structs only (and go-memdb and go-hclog); never server,
// state or fsm.
package gc
