// Package mock builds realistic jobs, nodes, allocations and evaluations
// for tests. Every call returns fresh objects with new IDs.
package mock
