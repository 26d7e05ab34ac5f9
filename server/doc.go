// Package server is a Drover server: it runs Raft (hashicorp/raft over
// raft-boltdb) with the FSM, serves the RPC endpoints (jobs, nodes,
// allocations, evaluations, deployments, operator, status) on the RPC
// port, with Raft traffic multiplexed on the same port, and, while it
// leads, runs the leader loops: the eval broker, blocked evaluations,
// the plan applier, and the controllers. Scheduler workers run on every
// server: the leader's in process, a follower's over the server-only
// scheduling RPCs of eval_worker_endpoint.go (Eval.Dequeue, Ack, Nack,
// WorkerUpdate and Plan.Submit) to the leader's broker and applier.
//
// The controllers are packages of their own, each with a read-only
// state view and a narrow Raft-write interface it defines, which
// controllers.go adapts this server to: server/heartbeat (node
// heartbeat timers), server/drainer (node drains),
// server/deploymentwatcher (failing, promoting and completing
// deployments, and auto-revert) and server/gc (garbage collection;
// system_endpoint.go forces it). raft_compact.go compacts raft.db at
// start-up.
//
// Files are named for what they hold: <name>_endpoint.go holds the RPC
// endpoint <Name> (node_drain_endpoint.go, job_versions_endpoint.go and
// job_deployments_endpoint.go the parts of Node and Job named so,
// eval_worker_endpoint.go the workers' part of Eval and the Plan
// endpoint);
// forward.go sends writes and consistent reads to the leader through
// Peers, blocking.go serves blocking and consistent reads; job_evals.go
// creates the evaluations nodes and controllers call for.
//
// Seams for tests: Config takes the Raft transport and stores
// (RaftTransport, RaftLogStore, RaftStableStore, RaftSnapshotStore) and
// the way to reach other servers (Peers), so that tests run three
// servers in one process over raft.InmemTransport, without sockets,
// and partition and heal them (cluster_test.go). Without them the
// server keeps Raft in raft-boltdb and snapshot files in its data dir,
// multiplexes Raft on the RPC port and reaches other servers through a
// connection pool.
//
// Operator snapshots (snapshot*.go): saves and restores move archives
// (package snapshot) in chunks over ordinary RPCs to and from the
// leader; scheduled snapshots are a leader loop; cluster_meta.go gives
// a new cluster its ID.
//
// With mTLS (Config.TLS) the RPC port is TLS from its first byte and a
// peer's certificate decides what it may do: a server certificate
// speaks Raft and calls every endpoint, a client certificate only the
// client endpoints (rpc.go), anything else is dropped.
//
// server imports structs, state, fsm and scheduler, its controllers
// (server/heartbeat, server/drainer, server/deploymentwatcher), and
// rpcpool, gossip, connlimit and tlsutil for the wire, and snapshot
// for the snapshot archive. Nothing imports
// server except agent; the controllers never import it.
package server
