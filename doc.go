// Command drover is the Drover container orchestrator: agent and CLI in
// one binary.
package main
