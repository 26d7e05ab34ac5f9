// Package containerd is Drover's task driver for containerd: it runs
// each task as a containerd container (runc v2 shim, host networking,
// memory and CPU limits from the task's resources) in its own containerd
// namespace, and re-attaches to running tasks after the client agent
// restarts.
//
// The driver keeps no per-task state: every call looks the container up
// by ID in containerd, so an agent that restarts needs only the task IDs
// from its persisted handles, and containerd itself may restart too (the
// gRPC connection reconnects; tasks live on under their shims).
//
// Task output never passes through the agent. The runc shim starts the
// drover binary itself as a containerd "binary logger" (see
// IsLoggerInvocation and RunLogger), which writes the task's stdout and
// stderr to rotated files next to the paths named in the task config
// (LogFiles lists them), keeps at most the task's max_files of
// max_file_size per stream, drops output while the disk is nearly full,
// and keeps doing so while the agent is down.
//
// ExecTask runs extra processes in a task's container through
// containerd's exec (exec.go): their stdio does pass through the agent,
// over FIFOs, because a person or a script check is at the other end;
// they are killed when the caller's context ends, and deleted from the
// shim however they end.
//
// Tasks run without an init process, as with `docker run` without
// --init: the task's command is PID 1 of its PID namespace, and the
// kernel delivers it only signals it installed a handler for. StopTask's
// SIGTERM therefore stops only programs that handle it; others are
// killed with SIGKILL when the stop timeout expires. The same holds for
// SignalTask (a template change asking the task to reload).
//
// The directories the client prepares are bind-mounted into the task:
// the group's shared directory at /alloc and the task's own at /local
// and /secrets (a tmpfs on the node), read-write, nosuid and nodev.
//
// The package imports structs and driver only; client is its caller.
package containerd
