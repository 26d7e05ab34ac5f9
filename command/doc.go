// Package command is the drover CLI, built on spf13/cobra: the agent,
// and job, alloc and node commands over the HTTP API (package api).
// Long flags are accepted with one dash or two (-detach, --detach), as
// operators coming from Nomad type them.
//
// command imports api, jobspec, tlsutil (drover tls), bench (drover
// bench), snapshot (to check and inspect snapshot files without an
// agent) and agent (for the agent subcommand only). Nothing imports
// command except main.
package command
