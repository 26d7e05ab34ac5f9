package command

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/droverhq/drover/agent"
)

func newSimCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate cluster members for scale tests",
	}
	cmd.AddCommand(newSimNodesCommand(g))
	return cmd
}

func newSimNodesCommand(g *globals) *cobra.Command {
	var (
		count        int
		servers      string
		prefix       string
		seed         int64
		dcs          string
		racks        int
		startDelay   time.Duration
		batchRuntime time.Duration
		duration     time.Duration
		interval     time.Duration
		logLevel     string
		tlsFiles     agent.SimTLS
	)
	cmd := &cobra.Command{
		Use:   "nodes -count N -servers ADDR[,ADDR...]",
		Short: "Run N simulated client nodes against the servers",
		Long: `Run N simulated client nodes against the servers at the given RPC
addresses (host:port, the servers' -bind address and RPC port 4647).
Each node runs the client agent's own code (registration, heartbeats
within the TTL, the allocation watch, alloc and task runners, batched
status updates, failover between the servers) with a fake task driver
instead of containerd, its state in memory and no files: tasks start at
once (or after -start-delay), service tasks run until stopped, batch
tasks complete after -batch-runtime, and allocations of a deployment
become healthy after the group's min_healthy_time. No container is
started. The nodes advertise the containerd driver, so ordinary job
files place on them.

Nodes are named <prefix>-00000, <prefix>-00001, ... and get varied
resources (8,000 to 56,000 MHz, 16 to 128 GiB), node classes (small,
medium, large, xlarge) and meta.rack values r0..r<racks-1>, derived from
-seed: a restarted simulator with the same prefix and seed registers the
same nodes again. Run simulators side by side with different prefixes.

Progress is printed while the nodes register, then a status line every
-stats-interval. The simulator runs until interrupted or for -duration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if count <= 0 {
				return fmt.Errorf("-count must be at least 1")
			}
			addrs := splitList(servers)
			if len(addrs) == 0 {
				return fmt.Errorf("-servers is required: the servers' RPC addresses, e.g. 127.0.0.1:4647")
			}
			level := hclog.LevelFromString(logLevel)
			if level == hclog.NoLevel {
				return fmt.Errorf("unknown -log-level %q; accepted: trace, debug, info, warn, error", logLevel)
			}
			logger := hclog.New(&hclog.LoggerOptions{Name: "sim", Level: level, Output: g.ui.err})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sigCh := make(chan os.Signal, 1)
			signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sigCh)
			go func() {
				select {
				case <-sigCh:
					cancel()
				case <-ctx.Done():
				}
			}()
			if duration > 0 {
				time.AfterFunc(duration, cancel)
			}

			cfg := agent.SimConfig{
				Count: count, NamePrefix: prefix, Seed: seed, Datacenters: splitList(dcs), Racks: racks,
				StartDelay: startDelay, BatchRuntime: batchRuntime,
			}
			var (
				mu      sync.Mutex
				s       *agent.Simulator
				lastPct = -1
				begin   = time.Now()
			)
			g.ui.Printf("==> Registering %d simulated nodes with %s\n", count, strings.Join(addrs, ", "))
			progress := func(done, total int) {
				mu.Lock()
				defer mu.Unlock()
				pct := done * 100 / total
				if pct/10 != lastPct/10 || done == total {
					lastPct = pct
					g.ui.Printf("    %d/%d registered (%d%%) in %s\n", done, total, pct, formatDuration(time.Since(begin)))
				}
			}
			started := func(sm *agent.Simulator) {
				mu.Lock()
				s = sm
				mu.Unlock()
				go func() {
					t := time.NewTicker(interval)
					defer t.Stop()
					for {
						select {
						case <-ctx.Done():
							return
						case <-t.C:
							st := sm.Stats()
							g.ui.Printf("    %s: %d nodes registered, %d heartbeats (%d failed, %d re-registrations), %d allocs running, %d complete, %d updates in %d batches; %s\n",
								time.Now().Format("15:04:05"), st.Registered, st.Heartbeats, st.HeartbeatErrors, st.Reregistrations,
								st.AllocsRunning, st.AllocsComplete, st.UpdatesSent, st.UpdateBatches, processFootprint())
						}
					}
				}()
			}
			var simTLS *agent.SimTLS
			if tlsFiles.CAFile != "" || tlsFiles.CertFile != "" || tlsFiles.KeyFile != "" {
				if tlsFiles.CAFile == "" || tlsFiles.CertFile == "" || tlsFiles.KeyFile == "" {
					return fmt.Errorf("mTLS needs -tls-ca-file, -tls-cert-file and -tls-key-file together (a client certificate: drover tls cert create -client)")
				}
				simTLS = &tlsFiles
			}
			err := agent.SimNodes(ctx, cfg, addrs, simTLS, logger, started, progress)
			mu.Lock()
			defer mu.Unlock()
			if s != nil {
				st := s.Stats()
				g.ui.Printf("==> Stopped: %d nodes, %d heartbeats (%d failed), %d allocation updates sent\n",
					st.Registered, st.Heartbeats, st.HeartbeatErrors, st.UpdatesSent)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&count, "count", 0, "how many nodes to simulate (required)")
	f.StringVar(&servers, "servers", "", "comma-separated RPC addresses of the servers (required)")
	f.StringVar(&prefix, "name-prefix", "sim", "node name prefix; simulators sharing a cluster need different ones")
	f.Int64Var(&seed, "seed", 1, "seed for node IDs and shapes")
	f.StringVar(&dcs, "datacenters", "dc1", "comma-separated datacenters the nodes are spread over")
	f.IntVar(&racks, "racks", 25, "how many meta.rack values the nodes are spread over")
	f.DurationVar(&startDelay, "start-delay", 0, "how long a task takes to start (its allocation is pending meanwhile)")
	f.DurationVar(&batchRuntime, "batch-runtime", time.Second, "how long a batch allocation runs before it completes")
	f.DurationVar(&duration, "duration", 0, "stop after this long (0: run until interrupted)")
	f.DurationVar(&interval, "stats-interval", 10*time.Second, "how often to print a status line")
	f.StringVar(&logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error")
	f.StringVar(&tlsFiles.CAFile, "tls-ca-file", "", "CA certificate, when the servers' RPC port is mTLS (-tls-rpc)")
	f.StringVar(&tlsFiles.CertFile, "tls-cert-file", "", "client certificate the nodes present (drover tls cert create -client)")
	f.StringVar(&tlsFiles.KeyFile, "tls-key-file", "", "private key of -tls-cert-file")
	f.StringVar(&tlsFiles.Region, "region", "", "region of the cluster's certificates (default global)")
	return cmd
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// processFootprint says what the simulator process costs: goroutines,
// Go heap in use and resident memory (what a thousand real clients in
// one process cost is the point of watching it).
func processFootprint() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := fmt.Sprintf("%d goroutines, heap %d MiB", runtime.NumGoroutine(), ms.HeapInuse>>20)
	// /proc/self/statm: size resident shared ... in pages.
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		var size, resident int64
		if n, _ := fmt.Sscan(string(b), &size, &resident); n == 2 {
			out += fmt.Sprintf(", RSS %d MiB", resident*int64(os.Getpagesize())>>20)
		}
	}
	return out
}
