// Package driver defines the interface between the client's task runners
// and the things that actually run tasks. driver/containerd implements
// it with containerd's Go client; driver/fake runs nothing, for the node
// simulator.
//
// driver imports only structs. It must not import client or server.
package driver
