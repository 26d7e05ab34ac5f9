// Package proxy is the layer-4 (TCP) load balancer every client agent
// runs for the services that have a virtual IP or a published port
// (kube-proxy's job, in user space).
//
// For each service the servers list (Service.Proxy, a blocking query
// the Watcher repeats), a Proxy listens on
//
//	VIP:VIPPort                    when the service has a `vip` block
//	<publish host>:PublishedPort   when it has a published_port
//
// and forwards every accepted connection to one of the service's
// passing instances: least connections by default (ties broken round
// robin, so sequential short connections spread evenly), or round
// robin. A backend that refuses a dial is skipped for a short cool-down
// and the connection is retried on the next one (at most three tries);
// the client sees a failure only when no backend answers.
//
// VIP listeners set SO_REUSEADDR and SO_REUSEPORT: every client agent
// on a machine listens on the same VIP:port and the kernel spreads new
// connections among them. Published ports are exclusive; a port in use
// on this host is logged and reported in Status, never fatal.
//
// Updates reconcile: a backend that stops passing (critical,
// terminating) or disappears gets no new connection at once, and its
// open connections are drained: left to finish, and closed after
// Config.DrainTimeout. A service that disappears has its listeners
// closed; its open connections drain the same way. Each listener
// carries at most Config.MaxConnsPerListener connections; more are
// closed as soon as they are accepted.
//
// TCP keep-alive probes are off on the proxy's sockets when they open
// (Go turns them on for every connection, at four setsockopt calls per
// socket) and are turned on, with a 15 s idle time and interval, for
// the connections still open after a second (one to two: a sweep of
// the open connections every second), on both the client's and the
// backend's socket. Short connections cost no socket option call;
// long idle ones are still probed.
//
// Counters per service and per backend are in Status (GET
// /v1/client/proxy on the agent) and in Registry (Prometheus, served at
// /v1/metrics).
//
// proxy imports structs, the standard library, golang.org/x/sys/unix
// (socket options) and prometheus/client_golang only. It must not
// import client, server or agent: the agent hands it a FetchFunc.
package proxy
