package sim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/driver/fake"
	"github.com/droverhq/drover/structs"
)

// Config configures a Simulator.
type Config struct {
	// Count is how many nodes to simulate.
	Count int
	// RPC reaches the servers; used when NodeRPCs is empty.
	RPC client.RPCer
	// NodeRPCs, when set, spread the nodes over several server proxies:
	// node i uses NodeRPCs[i % len]. Like a fleet of real clients, each
	// sticking to its own server, this spreads the stale watch reads
	// over every server instead of loading one.
	NodeRPCs []client.RPCer
	// NamePrefix names the nodes "<prefix>-00042"; simulators sharing a
	// cluster need different prefixes. Default "sim".
	NamePrefix string
	// Seed derives node IDs and shapes; the same seed and prefix give
	// the same nodes.
	Seed int64
	// Datacenters the nodes are spread over, round-robin. Default dc1.
	Datacenters []string
	// Racks is how many meta.rack values (r0..) the nodes are spread
	// over. Default 25.
	Racks int
	// StartDelay is how long a task takes to start (its allocation is
	// pending meanwhile). Default 0.
	StartDelay time.Duration
	// BatchRuntime is how long a task of a batch job runs before it
	// exits successfully. Default 1s.
	BatchRuntime time.Duration
	// UpdateCoalesce is each node's allocation update coalescing window
	// (client.Config.AllocUpdateCoalesce). Default 20ms.
	UpdateCoalesce time.Duration
	// RegisterParallelism bounds how many nodes register at once.
	// Default 64.
	RegisterParallelism int
	Logger              hclog.Logger
}

func (c *Config) defaults() {
	if c.NamePrefix == "" {
		c.NamePrefix = "sim"
	}
	if len(c.Datacenters) == 0 {
		c.Datacenters = []string{structs.DefaultDatacenter}
	}
	if c.Racks <= 0 {
		c.Racks = 25
	}
	if c.BatchRuntime <= 0 {
		c.BatchRuntime = time.Second
	}
	if c.UpdateCoalesce <= 0 {
		c.UpdateCoalesce = 20 * time.Millisecond
	}
	if c.RegisterParallelism <= 0 {
		c.RegisterParallelism = 64
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
}

// Stats counts what the simulated nodes did: the sum of their clients'
// client.Stats.
type Stats struct {
	Registered       int64
	Heartbeats       int64
	HeartbeatErrors  int64
	Reregistrations  int64
	AllocsRunning    int64
	AllocsComplete   int64
	UpdatesSent      int64
	UpdateBatches    int64
	UpdateErrors     int64
	WatchErrors      int64
	MaxHeartbeatTTLs int64 // the largest TTL the servers gave, in ms
}

// Simulator runs simulated nodes: one real client.Client each.
type Simulator struct {
	cfg   Config
	nodes []*structs.Node
	jobs  *client.JobCache

	// mu guards clients.
	mu      sync.Mutex
	clients []*client.Client

	registered atomic.Int64
	stopOnce   sync.Once
}

// New builds the nodes; Run starts them.
func New(cfg Config) *Simulator {
	cfg.defaults()
	s := &Simulator{cfg: cfg, jobs: client.NewJobCache()}
	for i := 0; i < cfg.Count; i++ {
		s.nodes = append(s.nodes, s.buildNode(i))
	}
	return s
}

// Nodes returns the simulated nodes' IDs.
func (s *Simulator) Nodes() []string {
	out := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.ID
	}
	return out
}

// Stats returns the counters so far.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	clients := append([]*client.Client(nil), s.clients...)
	s.mu.Unlock()
	st := Stats{Registered: s.registered.Load()}
	for _, c := range clients {
		cs := c.Stats()
		st.Heartbeats += cs.Heartbeats
		st.HeartbeatErrors += cs.HeartbeatErrors
		st.Reregistrations += cs.Reregistrations
		st.AllocsRunning += cs.AllocsRunning
		st.AllocsComplete += cs.AllocsComplete
		st.UpdatesSent += cs.UpdatesSent
		st.UpdateBatches += cs.UpdateBatches
		st.UpdateErrors += cs.UpdateErrors
		st.WatchErrors += cs.WatchErrors
		st.MaxHeartbeatTTLs = max(st.MaxHeartbeatTTLs, cs.HeartbeatTTL.Milliseconds())
	}
	return st
}

// nodeShapes are the machine sizes simulated nodes get, drawn from the
// seed: cpu MHz, memory MB, cores, class.
var nodeShapes = []struct {
	cpu, mem int64
	cores    int
	class    string
}{
	{8000, 16 * 1024, 4, "small"},
	{14000, 32 * 1024, 8, "medium"},
	{16000, 32 * 1024, 8, "medium"},
	{28000, 64 * 1024, 16, "large"},
	{56000, 128 * 1024, 32, "xlarge"},
}

// uuidFrom derives a stable UUID-shaped ID.
func uuidFrom(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// buildNode is node i's identity and fingerprint, the part of a real
// client's fingerprint a simulated node makes up.
func (s *Simulator) buildNode(i int) *structs.Node {
	seed := fmt.Sprint(s.cfg.Seed)
	name := fmt.Sprintf("%s-%05d", s.cfg.NamePrefix, i)
	rng := rand.New(rand.NewSource(s.cfg.Seed*1_000_003 + int64(i)))
	shape := nodeShapes[rng.Intn(len(nodeShapes))]
	ip := fmt.Sprintf("10.%d.%d.%d", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
	return &structs.Node{
		ID:         uuidFrom("node", seed, name),
		SecretID:   uuidFrom("secret", seed, name),
		Name:       name,
		Datacenter: s.cfg.Datacenters[i%len(s.cfg.Datacenters)],
		NodeClass:  shape.class,
		HTTPAddr:   ip + ":4646",
		Attributes: map[string]string{
			"kernel.name":               "linux",
			"kernel.version":            "6.1.0",
			"os.name":                   "debian",
			"os.version":                "12",
			"cpu.arch":                  "amd64",
			"cpu.numcores":              fmt.Sprint(shape.cores),
			"cpu.totalcompute":          fmt.Sprint(shape.cpu),
			"memory.totalbytes":         fmt.Sprint(shape.mem * 1024 * 1024),
			"unique.hostname":           name,
			"unique.network.ip-address": ip,
			"simulated":                 "true",
		},
		Meta: map[string]string{"rack": fmt.Sprintf("r%d", i%s.cfg.Racks)},
		NodeResources: &structs.NodeResources{
			Cpu:            structs.NodeCpuResources{CpuShares: shape.cpu, TotalCpuCores: shape.cores},
			Memory:         structs.NodeMemoryResources{MemoryMB: shape.mem},
			MinDynamicPort: structs.DefaultMinDynamicPort,
			MaxDynamicPort: structs.DefaultMaxDynamicPort,
		},
		ReservedResources: &structs.NodeReservedResources{
			Cpu:    structs.NodeCpuResources{CpuShares: 100},
			Memory: structs.NodeMemoryResources{MemoryMB: 256},
		},
		Status: structs.NodeStatusReady,
	}
}

// startNode starts node i's client: the real client code with the
// simulator's node, in-memory state, no files, and a fake driver whose
// tasks run until stopped, or for BatchRuntime in batch jobs.
func (s *Simulator) startNode(i int) (*client.Client, error) {
	rpc := s.cfg.RPC
	if len(s.cfg.NodeRPCs) > 0 {
		rpc = s.cfg.NodeRPCs[i%len(s.cfg.NodeRPCs)]
	}
	// The driver asks the client for a task's job type; the client
	// exists only once New returns, and tasks start only after that.
	var self atomic.Pointer[client.Client]
	drv := fake.New(fake.Config{
		StartDelay: s.cfg.StartDelay,
		RunFor: func(cfg *driver.TaskConfig) time.Duration {
			if c := self.Load(); c != nil {
				if typ, err := c.AllocJobType(cfg.AllocID); err == nil && typ == structs.JobTypeBatch {
					return s.cfg.BatchRuntime
				}
			}
			return 0
		},
	})
	c, err := client.New(&client.Config{
		// Fake drivers never change health.
		DriverHealthInterval: -1,
		Node:                 s.nodes[i],
		State:                client.NewMemoryState(),
		Jobs:                 s.jobs,
		Drivers:              map[string]driver.Driver{drv.Name(): drv},
		RPC:                  rpc,
		AllocUpdateCoalesce:  s.cfg.UpdateCoalesce,
		Logger:               s.cfg.Logger.With("node", s.nodes[i].Name),
	})
	if err != nil {
		return nil, fmt.Errorf("simulated node %s: %w", s.nodes[i].Name, err)
	}
	self.Store(c)
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c, nil
}

// Run starts every node and waits until each registered (progress, if
// set, reports registrations as they complete), at most
// RegisterParallelism registering at a time. It returns once every node
// registered or ctx ended; the nodes run until Stop.
func (s *Simulator) Run(ctx context.Context, progress func(registered, total int)) error {
	sem := make(chan struct{}, s.cfg.RegisterParallelism)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		runErr  error
	)
	for i := range s.nodes {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		c, err := s.startNode(i)
		if err != nil {
			<-sem
			errOnce.Do(func() { runErr = err })
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			select {
			case <-c.Registered():
			case <-ctx.Done():
				return
			}
			if d := s.registered.Add(1); progress != nil {
				progress(int(d), len(s.nodes))
			}
		}()
	}
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	return ctx.Err()
}

// Stop shuts every node's client down (each flushes its last reports)
// and returns when all have. Stats stay readable.
func (s *Simulator) Stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		clients := append([]*client.Client(nil), s.clients...)
		s.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.Shutdown()
			}()
		}
		wg.Wait()
	})
}
