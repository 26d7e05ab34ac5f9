// Package agent runs a Drover agent: a server, a client, or both (dev
// mode) in one process, with the HTTP API in front of them. It owns the
// agent configuration (defaults, an HCL config file, command-line flags,
// in that order of precedence), the wiring between server, client and
// task drivers, and the HTTP handlers.
//
// agent imports server, client, driver/containerd, structs and rpcpool.
// Nothing imports agent except command.
package agent
