// Package jobspec turns HCL job files into *structs.Job.
//
// It owns the job file format: the job -> group -> task block layout,
// which HCL expressions a job file may use (plain values, plus ${...}
// interpolations of runtime references such as ${meta.rack} or
// ${DROVER_PORT_http}, which are kept verbatim for the client to resolve
// when the task starts), and the diagnostics a person reads when a file
// is wrong: every problem with file:line:col, what was wrong and what
// would be accepted. Problems found later by structs.(*Job).Validate are
// mapped back to the attribute or block that caused them.
//
// jobspec imports only structs (and the HCL library). It must not import
// server, client, agent or api: the CLI parses and validates job files
// without talking to a cluster.
package jobspec
