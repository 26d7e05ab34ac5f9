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
// Entries and snapshots written before namespaces existed name none:
// what they hold is applied to, and restored into, the default
// namespace (snapshot.go, state.Restore), alike on every server.
//
// Apply never panics: an entry it cannot apply (unknown type, does not
// decode, fails the structural checks of check.go, such as a job that
// fails Job.Validate) is logged and refused with an error response, and
// changes nothing, on every server alike. A snapshot that does not
// restore is an error for raft to report. One bad entry must not turn
// into a crash loop on every server that replays the log.
//
// fsm imports structs and state. It must not import server or scheduler.
package fsm
