// Package drainer owns node drains on the leader: it moves the
// allocations of a draining node elsewhere a few at a time (per group,
// at most the group's migrate max_parallel in flight), system
// allocations last, everything at once at the drain's deadline, and
// ends the drain when the node is empty.
//
// It reads the cluster through State, a read-only view this package
// defines (the state store and its snapshots satisfy it), and writes
// only through Raft, a narrow interface the server implements (mark
// allocations to migrate, end a drain). Time comes from an injectable
// clock.
//
// drainer imports structs only (and go-memdb and go-hclog); never
// server, state or fsm.
package drainer
