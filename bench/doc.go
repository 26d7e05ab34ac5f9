// Package bench is the harness behind `drover bench`: it measures Drover
// on its real code path, as real processes. Each scenario starts its own
// drover server processes (three, each on its own 127.x.y.z address,
// Raft on boltdb with fsync), simulated client nodes (`drover sim
// nodes`, one process registering thousands of nodes through the real
// client RPCs) or a dev agent with a private containerd, drives them
// through the HTTP API (package api) and the CLI, and reads the leader's
// Prometheus metrics at /v1/metrics.
//
// The scenarios (see Scenarios) are the contract of the numbers Drover
// publishes: placement throughput, leader failover, job-run latency,
// write throughput, heartbeat load and server memory. Each produces a
// Result: every measured figure with its unit and meaning, the goals
// with pass or fail, the parameters and the machine; Run prints them as
// a table and writes one JSON file per scenario.
//
// Every process the harness starts runs in its own process group and is
// tracked until it exits: Run kills them all on return, on failure and
// when its context is cancelled (SIGINT), and KillAll does it at once
// for a second interrupt. Data lives in a temp dir that Run removes
// unless Config.Keep is set.
//
// bench imports api, jobspec and the non-test helpers internal/poll
// (waiting with a deadline), internal/privctrd (the private containerd)
// and internal/ociimage (the busybox image); never testutil, which
// would link package testing into the drover binary, and never server,
// client or agent code: it sees Drover only from the outside. Only
// command imports bench.
package bench
