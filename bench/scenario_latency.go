package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/internal/ociimage"
	"github.com/droverhq/drover/internal/poll"
	"github.com/droverhq/drover/internal/privctrd"
)

var latencyScenario = &scenario{
	name: "latency",
	help: `End-to-end latency of "drover job run". A dev agent (server and client in
one process) with a private containerd (own root, state and socket) and
the busybox image imported. "drover job run FILE" of a count-3 job
(busybox sh loops, cpu 100 MHz, 32 MB) is run 20 times (quick: 3), each
time a new job ID; the CLI exits 0 once all three allocations run in
containerd. Between runs the job is stopped and purged (not timed). One
untimed warm-up run comes first.
  job_run_p50/p99/min/max   wall time of the CLI process, from exec to
                            exit: parse, register, evaluation, placement,
                            the client starting three containers and
                            reporting them running, the CLI seeing it.
                            Goal p50 < 350 ms.`,
	run: runLatency,
}

// latencyJob is the latency scenario's count-3 job file.
func latencyJob(id string) string {
	return fmt.Sprintf(`job %q {
  datacenters = ["dc1"]
  group "g" {
    count = 3
    task "t" {
      driver = "containerd"
      config {
        image   = %q
        command = "/bin/sh"
        args    = ["-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
      }
      resources {
        cpu    = 100
        memory = 32
      }
      kill_timeout = "2s"
    }
  }
}
`, id, benchImage)
}

func runLatency(ctx context.Context, r *runner, res *Result, dir string) error {
	runs := pick(r, 20, 3)
	res.Parameters = map[string]interface{}{
		"runs": runs, "warmup_runs": 1, "count": 3, "cpu_mhz": 100, "memory_mb": 32,
		"agent": "drover agent -dev with a private containerd", "image": benchImage,
	}
	ctrdDir := filepath.Join(dir, "ctrd")
	if len(ctrdDir) > 80 {
		// The socket path must stay short (unix sockets: 108 bytes).
		d, err := os.MkdirTemp("/tmp", "drover-bench-ctrd-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		ctrdDir = d
	}
	r.progress("starting a private containerd in %s", ctrdDir)
	cd, err := privctrd.Launch(ctrdDir)
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	defer func() {
		if err := cd.Stop(); err != nil {
			r.progress("stop containerd: %v", err)
		}
	}()
	ns := cd.Namespace + "-bench"
	if err := importBusybox(ctx, cd.Address, ns, dir); err != nil {
		return err
	}

	host, err := newHost()
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "dev")
	a := &agentProc{
		proc: &proc{name: "dev agent", bin: r.cfg.Binary, logPath: filepath.Join(dir, "dev.log"),
			args: []string{"agent", "-dev", "-bind", host, "-node-name", "dev", "-data-dir", dataDir,
				"-containerd-address", cd.Address, "-containerd-namespace", ns, "-log-level", "info"}},
		id: "dev", host: host, dataDir: dataDir,
	}
	a.api = newAPIClient(a.httpAddr(), 30*time.Second)
	if err := a.start(); err != nil {
		return err
	}
	defer a.stop(10 * time.Second)
	if err := waitDevReady(ctx, a); err != nil {
		return err
	}
	r.progress("dev agent ready on %s", a.httpAddr())

	var walls []time.Duration
	for i := -1; i < runs; i++ {
		id := fmt.Sprintf("lat-%02d", i+1)
		if i < 0 {
			id = "lat-warmup"
		}
		wall, err := r.timeJobRun(ctx, a, dir, id)
		if err != nil {
			return err
		}
		if i >= 0 {
			walls = append(walls, wall)
			r.progress("run %d/%d: drover job run took %s", i+1, runs, wall.Round(time.Millisecond))
		} else {
			r.progress("warm-up run took %s", wall.Round(time.Millisecond))
		}
		if err := stopAndPurge(ctx, a, id); err != nil {
			return err
		}
	}
	what := "wall time of `drover job run` (count 3, busybox) from exec to exit 0 with all allocations running"
	res.add("job_run_p50", "drover job run (count 3) until all running, p50", "ms", ms(percentile(walls, 0.5)), what+", median").goal("<", 350)
	res.add("job_run_p99", "drover job run (count 3) until all running, p99", "ms", ms(percentile(walls, 0.99)), what+", 99th percentile (nearest rank)")
	res.add("job_run_min", "drover job run (count 3) until all running, min", "ms", ms(percentile(walls, 0)), what+", fastest run")
	res.add("job_run_max", "drover job run (count 3) until all running, max", "ms", ms(percentile(walls, 1)), what+", slowest run")
	return nil
}

// importBusybox builds the busybox OCI image and imports it into ns.
func importBusybox(ctx context.Context, address, ns, dir string) error {
	archive := filepath.Join(dir, "busybox-oci.tar")
	if err := ociimage.BuildBusybox(archive, benchImage); err != nil {
		return fmt.Errorf("build busybox image: %w", err)
	}
	client, err := ctrd.New(address, ctrd.WithTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to containerd: %w", err)
	}
	defer client.Close()
	ictx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, ns), 2*time.Minute)
	defer cancel()
	if err := ociimage.Import(ictx, client, archive, benchImage); err != nil {
		return fmt.Errorf("import busybox image: %w", err)
	}
	return nil
}

// waitDevReady waits until the dev agent's node is ready.
func waitDevReady(ctx context.Context, a *agentProc) error {
	return poll.Until(ctx, time.Minute, 50*time.Millisecond, func() (bool, error) {
		if !a.alive() {
			return false, a.exitError()
		}
		nodes, _, err := a.api.Nodes().List(nil)
		if err != nil {
			return false, err
		}
		for _, n := range nodes {
			if n.Status == "ready" {
				return true, nil
			}
		}
		return false, fmt.Errorf("no ready node yet")
	})
}

// timeJobRun runs `drover job run` of a new count-3 job and returns its
// wall time; anything but exit 0 is an error.
func (r *runner) timeJobRun(ctx context.Context, a *agentProc, dir, id string) (time.Duration, error) {
	file := filepath.Join(dir, id+".hcl")
	if err := os.WriteFile(file, []byte(latencyJob(id)), 0o644); err != nil {
		return 0, err
	}
	p := &proc{name: "drover job run " + id, bin: r.cfg.Binary, logPath: filepath.Join(dir, id+".log"),
		args: []string{"job", "run", "-address", a.httpAddr(), "-timeout", "1m", file}}
	start := time.Now()
	if err := p.start(); err != nil {
		return 0, err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.kill()
		return 0, ctx.Err()
	}
	wall := time.Since(start)
	if p.err != nil {
		return 0, fmt.Errorf("drover job run %s: %v; output:\n%s\nagent log:\n%s", id, p.err, p.logTail(30), a.logTail(20))
	}
	return wall, nil
}

// stopAndPurge stops the job, waits until its allocations stopped and
// purges it.
func stopAndPurge(ctx context.Context, a *agentProc, id string) error {
	if _, _, err := a.api.Jobs().Deregister(id, false); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	err := poll.Until(ctx, time.Minute, 50*time.Millisecond, func() (bool, error) {
		allocs, _, err := a.api.Jobs().Allocations(id, &api.QueryOptions{Context: ctx})
		if err != nil {
			return false, err
		}
		for _, al := range allocs {
			switch al.ClientStatus {
			case "complete", "failed", "lost":
			default:
				return false, fmt.Errorf("allocation %s is %s", al.Name, al.ClientStatus)
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	if _, _, err := a.api.Jobs().Deregister(id, true); err != nil {
		return fmt.Errorf("purge %s: %w", id, err)
	}
	return nil
}
