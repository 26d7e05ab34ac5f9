// Package tlsutil owns Drover's mutual TLS: it makes the CA and the
// role certificates (`drover tls ca create`, `drover tls cert create`),
// loads an agent's CA, certificate and key into a Configurator that
// reloads them atomically (SIGHUP), builds the *tls.Config of each
// connection kind (incoming and outgoing RPC, incoming and outgoing
// HTTPS), and tells the role of a verified peer from its certificate.
//
// Roles are certificate DNS names: server.<region>.drover for servers,
// client.<region>.drover for client agents and cli.<region>.drover for
// operators' CLI. One CA signs them all; what a role may do is decided
// by the packages that serve connections (server, agent), not here.
//
// tlsutil imports nothing internal, so the CLI, the server and rpcpool's
// callers can all use it.
package tlsutil
