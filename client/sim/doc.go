// Package sim simulates client nodes for scale tests and benchmarks.
//
// A Simulator registers many nodes through the same RPCs a real client
// agent uses (Node.Register, Node.UpdateStatus, Node.GetClientAllocs,
// Alloc.GetAllocs, Node.UpdateAlloc), heartbeats each within its TTL and
// plays the client's part for the allocations placed on them: running
// soon after placement, healthy after the group's min_healthy_time,
// complete when stopped, and complete after a short run for batch jobs.
// No container is started. The nodes advertise the containerd driver,
// so ordinary job files place on them.
//
// The nodes have varied resources, node classes and meta.rack values,
// derived deterministically from the seed and the node's index, so a
// restarted simulator registers the same nodes again. Each node reports
// its own allocations with its own secret, as a real client must.
//
// sim imports only structs; the agent gives it the RPC transport.
package sim
