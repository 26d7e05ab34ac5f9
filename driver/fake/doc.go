// Package fake is a task driver that runs nothing: a task is a record
// that "runs" from StartTask until it is stopped, or until the run time
// its configuration gives it ends with exit code 0. The node simulator
// (client/sim) gives it to real client code so that thousands of
// simulated nodes run the client's registration, heartbeats, allocation
// watch, alloc and task runners and status reports without a container
// runtime.
//
// ExecTask runs a handful of built-in programs (echo, warn, cat, exit,
// sleep, stty size: RunBuiltin) instead of processes, with the real
// drivers' contract for streams, terminal sizes and cancellation.
//
// It is product code (drover sim nodes links it); tests use
// testutil/fakedriver, which adds failure injection and counters.
//
// A task costs one small record and no goroutine: waits are channels
// closed when the task exits, and a cancelled wait is dropped through
// context.AfterFunc, so a process can hold a hundred thousand tasks.
//
// fake imports driver and structs only.
package fake
