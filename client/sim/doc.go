// Package sim simulates client nodes for scale tests and benchmarks.
//
// Each simulated node is a real client.Client: the same registration,
// heartbeats, allocation watch, alloc and task runners, restart policy,
// health decisions and batched status updates as a client agent, and
// the same failover through the RPCer it is given. What a process of
// thousands of nodes cannot afford is swapped through client.Config, not
// re-implemented: the simulator gives each client its node (identity and
// fingerprint, made up here), an in-memory state store instead of a
// bbolt file, no data dir (no allocation directories or log files), one
// job cache for all nodes, and a fake task driver (driver/fake): tasks
// start after StartDelay, service tasks run until stopped, batch tasks
// exit successfully after BatchRuntime, and deployment allocations
// become healthy after the group's min_healthy_time as the client
// judges it. The nodes advertise the containerd driver, so ordinary job
// files place on them.
//
// The nodes have varied resources, node classes, datacenters and
// meta.rack values, derived deterministically from the seed and the
// node's index, so a restarted simulator registers the same nodes again.
// Each node reports its own allocations with its own secret, as a real
// client must.
//
// sim imports client, driver, driver/fake and structs; the agent gives
// it the RPC transport.
package sim
