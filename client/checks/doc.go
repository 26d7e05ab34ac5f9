// Package checks runs the service checks of one allocation on a client
// node and keeps their latest results.
//
// A Runner probes each check of the allocation's services on its
// interval (the first probe right away, later ones every interval plus
// a little jitter, never two of one check at a time) against the
// allocation's port on the node's advertised address: tasks use host
// networking, so that is where other machines reach them. An http check
// is passing on a 2xx or 3xx answer (redirects are not followed),
// warning on 429 and critical otherwise; a tcp check is passing when the
// connection opens; a script check runs its command in its service's
// task (through Config.Exec, the task driver's exec) and is passing on
// exit 0, warning on 1 and critical otherwise or past its timeout (the
// command is then killed), with its output as the check's. Every check is critical until its first result, and
// the checks of a task's service are critical ("task is not running")
// and not probed while that task does not run.
//
// The Runner calls its OnChange callback when a check's status changes
// (and on each check's first result, which says why a check that stays
// critical fails), not on every probe: the client turns each call into
// an allocation update, and a Raft write per probe would flood the
// servers.
//
// checks imports structs and the standard library only. It knows
// nothing of the client's runners or of the servers.
package checks
