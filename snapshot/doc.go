// Package snapshot owns the snapshot archive: the file `drover operator
// snapshot save` writes, `restore` sends back and scheduled snapshots
// leave on the leader's disk. An archive is a tar (optionally gzipped
// as a whole) of, in this order:
//
//	meta.json   structs.SnapshotMeta: cluster ID, Raft index and term,
//	            time, Drover version, archive and FSM snapshot versions
//	state.bin   the FSM snapshot (fsm's format, as Raft stores it)
//	SHA256SUMS  the SHA-256 of meta.json and state.bin, in the format
//	            of sha256sum (so `tar x` then `sha256sum -c` checks it)
//
// Write streams an archive (the sums come last, so state.bin is never
// held in memory); Read checks one: the layout, the bounds, the sums;
// Decode also decodes state.bin into a throwaway state store with the
// FSM's own restore code, for inspection and for the checks a restore
// makes before anything changes.
//
// Read treats its input as hostile: every size is bounded before it is
// read or allocated, a gzip stream is bounded after decompression, and
// every failure is an error wrapping ErrInvalid or ErrTooLarge, never a
// panic (FuzzRead).
//
// It imports structs, state and fsm; server and command import it. It
// must not import server or agent.
package snapshot
