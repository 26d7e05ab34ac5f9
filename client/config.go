package client

import (
	"fmt"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
)

// RPCer sends an RPC to the servers. The agent passes the in-process
// server in dev mode, or a pool that fails over between servers.
type RPCer interface {
	RPC(method string, args, reply interface{}) error
}

// Config configures a Client.
type Config struct {
	// DataDir holds the client's state database and allocation
	// directories.
	DataDir string

	NodeName   string
	Datacenter string
	NodeClass  string
	Meta       map[string]string

	// HTTPAddr is the agent's HTTP address (host:port) other machines use
	// to read task logs from this node.
	HTTPAddr string
	// NetworkIP is the address tasks' ports are reachable at.
	NetworkIP string

	// CPUTotalMHz and MemoryTotalMB override the fingerprint when set.
	CPUTotalMHz   int64
	MemoryTotalMB int64
	// ReservedCPU, ReservedMemoryMB and ReservedPorts are held back for
	// the machine and the agent.
	ReservedCPU      int64
	ReservedMemoryMB int64
	ReservedPorts    []int
	// MinDynamicPort and MaxDynamicPort bound dynamic port assignment.
	MinDynamicPort, MaxDynamicPort int

	// Drivers run tasks, by name.
	Drivers map[string]driver.Driver

	// RPC reaches the servers.
	RPC RPCer

	// AllocUpdateCoalesce is how long the client gathers allocation
	// status changes before sending them in one update.
	AllocUpdateCoalesce time.Duration

	Logger hclog.Logger
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("client: data dir is required")
	}
	if c.RPC == nil {
		return fmt.Errorf("client: no way to reach the servers")
	}
	if len(c.Drivers) == 0 {
		return fmt.Errorf("client: no task drivers configured")
	}
	if c.Datacenter == "" {
		c.Datacenter = "dc1"
	}
	if c.NetworkIP == "" {
		c.NetworkIP = "127.0.0.1"
	}
	if c.AllocUpdateCoalesce == 0 {
		c.AllocUpdateCoalesce = 10 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}
