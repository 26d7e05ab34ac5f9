// Package client is the node agent: it fingerprints the machine,
// registers the node with the servers and heartbeats, watches the node's
// allocations with blocking queries, runs each allocation's tasks through
// task drivers (restarting them per the group's restart policy), and
// reports task states back.
//
// Task handles and states are persisted in a bbolt database in the data
// dir, so a restarted client re-attaches to the containers it started
// instead of starting new ones. Shutting a client down leaves its tasks
// running.
//
// client imports structs and driver. It must not import server:
// it reaches the servers only through the RPCer interface.
package client
