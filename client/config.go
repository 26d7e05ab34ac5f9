package client

import (
	"fmt"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
)

// RPCer sends an RPC to the servers. The agent passes the in-process
// server in dev mode, or a pool that fails over between servers.
type RPCer interface {
	RPC(method string, args, reply interface{}) error
}

// Config configures a Client.
//
// A real client agent fingerprints its machine and keeps its state on
// disk. The node simulator runs thousands of Clients in one process and
// swaps what those cannot afford: it gives each its Node, an in-memory
// State, no DataDir (no allocation directories, no log files), a fake
// driver, and one JobCache for all.
type Config struct {
	// DriverHealthInterval is how often the drivers' health is checked
	// again (0: DefaultDriverHealthInterval; negative: never, for
	// simulated nodes).
	DriverHealthInterval time.Duration

	// DataDir holds the client's state database and allocation
	// directories. Empty: the client keeps nothing on disk; State must
	// be set, and tasks get no allocation directory or log files.
	DataDir string

	// Node, when set, is the node to register as given (ID, SecretID,
	// resources, attributes): the machine is not fingerprinted and the
	// identity in the state store is not used. Driver health is still
	// fingerprinted from Drivers.
	Node *structs.Node
	// State, when set, replaces the bbolt file in DataDir (e.g.
	// NewMemoryState()).
	State StateStore
	// Jobs, when set, is shared with other clients in the process, so
	// their allocations of one job version share one copy of the job.
	Jobs *JobCache

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

	// DNSServers, when set, are IPv4 nameservers every task asks before
	// the host's (driver.TaskConfig.DNSServers): the agent sets its own
	// DNS server when that listens on port 53. Empty: tasks use the
	// host's resolv.conf.
	DNSServers []string

	// SecretsOnDisk makes each task's secrets directory an ordinary
	// 0700 directory instead of a tmpfs: for tests of the client with
	// fake drivers, whose tasks outlive the test's temporary directory.
	// A client agent leaves it false, so secrets never touch the disk;
	// a task whose tmpfs cannot be mounted fails.
	SecretsOnDisk bool

	// RPC reaches the servers.
	RPC RPCer

	// AllocUpdateCoalesce is how long the client gathers allocation
	// status changes before sending them in one update.
	AllocUpdateCoalesce time.Duration

	Logger hclog.Logger
}

func (c *Config) validate() error {
	if c.DataDir == "" && c.State == nil {
		return fmt.Errorf("client: a data dir is required (or an in-memory state store, for a client that keeps nothing on disk)")
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
