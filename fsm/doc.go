// Package fsm is Drover's raft.FSM: it decodes each committed log entry
// (a structs.MessageType byte followed by msgpack) and applies it to the
// state store, and it snapshots and restores the whole store.
//
// Apply is deterministic: it reads no clock, no randomness and does no
// I/O; everything it needs (IDs, timestamps, evaluations) was stamped
// into the entry by the leader before raft.Apply. After a change commits,
// the FSM tells the leader's eval broker and blocked-evals tracker, which
// ignore the call on followers.
//
// fsm imports structs and state. It must not import server or scheduler.
package fsm
