package structs

// Node statuses.
const (
	// NodeStatusInit is a node that registered but has not yet
	// fingerprinted its drivers or heartbeated.
	NodeStatusInit = "initializing"
	// NodeStatusReady nodes heartbeat within their TTL and take work.
	NodeStatusReady = "ready"
	// NodeStatusDown nodes missed their heartbeat TTL; their allocations
	// are lost and replaced elsewhere.
	NodeStatusDown = "down"
)

// Node scheduling eligibility.
const (
	NodeSchedulingEligible   = "eligible"
	NodeSchedulingIneligible = "ineligible"
)

// Default dynamic port range, as in the issue contract.
const (
	DefaultMinDynamicPort = 20000
	DefaultMaxDynamicPort = 32000
)

// Node is a client machine that runs allocations.
type Node struct {
	ID string
	// SecretID authenticates the node's own RPCs; never served over the
	// HTTP API.
	SecretID   string `json:"-" codec:"SecretID"`
	Name       string
	Datacenter string
	NodeClass  string
	// NodePool groups nodes; jobs choose a pool ("default" when unset).
	NodePool string
	// HTTPAddr is the address of the node agent's HTTP API, host:port.
	// The CLI reads task logs from it.
	HTTPAddr   string
	Attributes map[string]string
	Meta       map[string]string

	NodeResources *NodeResources
	// ReservedResources are held back for the operating system and the
	// agent; the scheduler never allocates them.
	ReservedResources *NodeReservedResources

	Drivers map[string]*DriverInfo

	Status                string
	StatusDescription     string
	StatusUpdatedAt       int64
	SchedulingEligibility string
	// DrainStrategy is set while the node drains.
	DrainStrategy *DrainStrategy

	CreateIndex uint64
	ModifyIndex uint64
}

// NodeResources is what a node offers.
type NodeResources struct {
	Cpu            NodeCpuResources
	Memory         NodeMemoryResources
	MinDynamicPort int
	MaxDynamicPort int
}

// NodeCpuResources is a node's CPU, in MHz (shares).
type NodeCpuResources struct {
	CpuShares     int64
	TotalCpuCores int
}

// NodeMemoryResources is a node's memory.
type NodeMemoryResources struct {
	MemoryMB int64
}

// NodeReservedResources is held back from scheduling.
type NodeReservedResources struct {
	Cpu    NodeCpuResources
	Memory NodeMemoryResources
	// ReservedPorts are never handed out, e.g. the agent's own ports.
	ReservedPorts []int
}

// DriverInfo is a fingerprinted task driver.
type DriverInfo struct {
	Attributes        map[string]string
	Detected          bool
	Healthy           bool
	HealthDescription string
	UpdateTime        int64
}

// Ready reports whether the node may be given new allocations.
func (n *Node) Ready() bool {
	return n.Status == NodeStatusReady && n.SchedulingEligibility != NodeSchedulingIneligible
}

// TerminalStatus reports whether the node is down.
func (n *Node) TerminalStatus() bool {
	return n.Status == NodeStatusDown
}

// HasHealthyDriver reports whether the named driver is detected and
// healthy on the node.
func (n *Node) HasHealthyDriver(name string) bool {
	d, ok := n.Drivers[name]
	return ok && d != nil && d.Detected && d.Healthy
}

// DynamicPortRange returns the range dynamic ports are chosen from.
func (n *Node) DynamicPortRange() (lo, hi int) {
	lo, hi = DefaultMinDynamicPort, DefaultMaxDynamicPort
	if n.NodeResources != nil {
		if n.NodeResources.MinDynamicPort > 0 {
			lo = n.NodeResources.MinDynamicPort
		}
		if n.NodeResources.MaxDynamicPort > 0 {
			hi = n.NodeResources.MaxDynamicPort
		}
	}
	return lo, hi
}

// Copy returns a deep copy of the node.
func (n *Node) Copy() *Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Attributes = copyMap(n.Attributes)
	c.Meta = copyMap(n.Meta)
	c.DrainStrategy = n.DrainStrategy.Copy()
	if n.NodeResources != nil {
		r := *n.NodeResources
		c.NodeResources = &r
	}
	if n.ReservedResources != nil {
		r := *n.ReservedResources
		r.ReservedPorts = append([]int(nil), n.ReservedResources.ReservedPorts...)
		c.ReservedResources = &r
	}
	if n.Drivers != nil {
		c.Drivers = make(map[string]*DriverInfo, len(n.Drivers))
		for k, d := range n.Drivers {
			dc := *d
			dc.Attributes = copyMap(d.Attributes)
			c.Drivers[k] = &dc
		}
	}
	return &c
}

// NodeListStub is the short form of a node returned by list endpoints.
type NodeListStub struct {
	ID                    string
	Name                  string
	Datacenter            string
	NodeClass             string
	Address               string
	HTTPAddr              string
	Status                string
	StatusDescription     string
	SchedulingEligibility string
	NodePool              string
	Drain                 bool
	Drivers               map[string]*DriverInfo
	NodeResources         *NodeResources
	CreateIndex           uint64
	ModifyIndex           uint64
}

// Stub returns the list form of the node.
func (n *Node) Stub() *NodeListStub {
	return &NodeListStub{
		ID:                    n.ID,
		Name:                  n.Name,
		Datacenter:            n.Datacenter,
		NodeClass:             n.NodeClass,
		Address:               n.Attributes["unique.network.ip-address"],
		HTTPAddr:              n.HTTPAddr,
		Status:                n.Status,
		StatusDescription:     n.StatusDescription,
		SchedulingEligibility: n.SchedulingEligibility,
		NodePool:              n.NodePool,
		Drain:                 n.DrainStrategy != nil,
		Drivers:               n.Drivers,
		NodeResources:         n.NodeResources,
		CreateIndex:           n.CreateIndex,
		ModifyIndex:           n.ModifyIndex,
	}
}
