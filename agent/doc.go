// Package agent runs a Drover agent: a server, a client, or both (dev
// mode) in one process, with the HTTP API in front of them. It owns the
// agent configuration (defaults, an HCL config file, command-line flags,
// in that order of precedence), the wiring between server, client and
// task drivers, and the HTTP handlers.
//
// agent imports server, client, client/sim, driver, driver/containerd,
// structs, rpcpool, gossip, tlsutil (mTLS for RPC and the HTTPS API,
// tls.go) and connlimit (connection limits, http_limits.go). Nothing
// imports agent except command.
package agent
