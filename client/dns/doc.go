// Package dns is the DNS interface every client agent serves: it answers
// for the services the servers know, so tasks (and the machine) can find
// each other by name without talking to Drover's API.
//
// The names, under Config.Domain ("drover." by default; matched
// without regard to case):
//
//	<svc>.service.drover.                A: the passing instances' addresses
//	<svc>.<ns>.service.drover.           the same, in namespace <ns>
//	_<svc>._tcp.service.drover.          SRV: one record per passing instance
//	_<svc>._tcp.<ns>.service.drover.     the same, in namespace <ns>
//	<svc>.vip.drover.                    A: the service's virtual IP
//	<svc>.<ns>.vip.drover.               the same, in namespace <ns>
//	<alloc8>.<node8>.addr.drover.        A: an SRV target (see below)
//
// SRV targets are "<first 8 of the alloc ID>.<first 8 of the node
// ID>.addr.<domain>", with their A records in the Additional section.
// The server also remembers the targets it handed out for a while
// (targets.go), so a resolver that ignores the Additional section and
// asks for the target's A record gets it; a target it never handed out
// is NXDOMAIN.
//
// Answers come from Config.Lookup (on an agent: Service.Instances over
// RPC, stale reads allowed), behind a one-second cache with one lookup in
// flight per name (cache.go), so a flood of queries is not a flood of
// RPCs. A name outside the domain is REFUSED: this server is not a
// recursive resolver, and REFUSED tells a stub resolver to try the next
// server rather than cache a negative answer for a name that exists.
//
// dns imports structs, github.com/miekg/dns and the standard library
// only. It must not import client, server or agent: the agent hands it
// a Lookup function.
package dns
