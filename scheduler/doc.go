// Package scheduler turns an evaluation into a plan: it reconciles the
// job's desired allocations against the existing ones, filters the nodes
// that can run each missing allocation, ranks them by bin-packing, and
// submits the resulting plan through a Planner.
//
// The scheduler is a pure function of (state snapshot, evaluation) plus
// a seeded random source and an injected clock: replaying an evaluation
// against the same snapshot produces the same placements.
//
// It sees cluster state only through the State interface and commits
// only through the Planner interface, both defined here. scheduler
// imports structs (and state only in tests); it must never import server.
package scheduler
