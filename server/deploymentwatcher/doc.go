// Package deploymentwatcher owns the leader's decisions about running
// deployments that no client report triggers: failing a deployment
// with an unhealthy allocation or past its progress deadline (and
// choosing the job version an auto-revert registers again), promoting
// canaries that are all healthy when auto_promote is set, and marking a
// deployment whose groups are all healthy successful.
//
// It reads the cluster through State, a read-only view this package
// defines (the state store and its snapshots satisfy it), and writes
// only through Raft, a narrow interface the server implements (fail,
// promote, mark successful). Time comes from an injectable clock.
//
// deploymentwatcher imports structs only (and go-memdb and go-hclog);
// never server, state or fsm.
package deploymentwatcher
