// Package client is the node agent: it fingerprints the machine,
// registers the node with the servers and heartbeats, watches the node's
// allocations with blocking queries, runs each allocation's tasks through
// task drivers (restarting them per the group's restart policy), decides
// their health in deployments, and reports task states back.
//
// The conversation with the servers is one protocol core (protocol.go:
// registration with backoff and jitter, heartbeats within the TTL, the
// allocation watch and pull, re-registration when the servers forgot
// the node; updates.go: coalesced, batched status reports that survive a
// failed send; servers.go: failover between servers, learning their list
// from heartbeat answers). The client agent and every node of the
// simulator (client/sim) run it, and the same alloc and task runners.
// What a process of thousands of simulated nodes cannot afford is
// pluggable in Config rather than re-implemented: the node (identity and
// fingerprint), the state store (bbolt file or memory), the data dir (no
// allocation directories or log files without one), the drivers, and a
// job cache shared between clients.
//
// A runner costs one goroutine per task and nothing per allocation:
// alloc runners are driven by their task runners, health is decided on
// task state changes and timers, reports are sent from timers.
//
// Task handles and states are persisted in a bbolt database in the data
// dir, so a restarted client re-attaches to the containers it started
// instead of starting new ones. Shutting a client down leaves its tasks
// running.
//
// Each task gets its directories under the allocation's: local/ on
// disk and secrets/, a tmpfs the client mounts (taskdir.go), beside the
// group's shared alloc/. Its templates (client/template) are rendered
// there before it starts, as this node (rpc_template.go), and a change
// restarts or signals it (task_templates.go); the secrets tmpfs is
// unmounted once the task is done for good.
//
// client imports structs, driver, client/checks and client/template. It
// must not import server: it reaches the servers only through the RPCer
// interface.
package client
