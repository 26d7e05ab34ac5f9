package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/bench"
)

func newBenchCommand(g *globals) *cobra.Command {
	var (
		scenarios         string
		resultsDir        string
		quick             bool
		keep              bool
		profile           bool
		serverConfig      string
		heartbeatDuration time.Duration
		gcCycles          int
	)
	cmd := &cobra.Command{
		Use:   "bench [-scenarios all|NAME,...] [-results-dir DIR] [-quick] [-keep]",
		Short: "Measure Drover on this machine with real server processes",
		Long: `Measure Drover on its real code path: each scenario starts its own
drover processes (three servers on their own 127.x.y.z addresses with
Raft on boltdb and fsync, a "drover sim nodes" process for simulated
client nodes, or a dev agent with a private containerd), drives them
through the HTTP API and the CLI and reads the leader's metrics at
/v1/metrics. It prints progress, then a table with one row per measured
figure (scenario, metric, value, goal, pass/fail), and writes
<results-dir>/<scenario>.json with the figures, units, goals, parameters
and the machine.

Every process started is killed when the command ends, also on failure
and on ^C (a second ^C kills at once); data dirs and logs live in a temp
dir that is removed (kept with -keep). -quick shrinks every scenario to
a smoke run of well under a minute.

Exit codes: 0 when every scenario ran and every invariant held (missed
performance targets are only reported); 1 when a scenario could not
complete, or an invariant (no lost write, no node over capacity, no
false down) was violated.

Scenarios (run in this order by "all"):

` + bench.Help(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the drover binary: %w", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sigCh := make(chan os.Signal, 2)
			signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sigCh)
			done := make(chan struct{})
			defer close(done)
			go func() {
				select {
				case sig := <-sigCh:
					g.ui.Eprintf("\n==> %s: stopping the benchmark and its processes (again to kill at once)\n", sig)
					cancel()
				case <-done:
					return
				}
				select {
				case sig := <-sigCh:
					g.ui.Eprintf("==> %s: killing every process started\n", sig)
					bench.KillAll()
					os.Exit(ExitError)
				case <-done:
				}
			}()
			_, err = bench.Run(ctx, bench.Config{
				Binary:            bin,
				Scenarios:         splitList(scenarios),
				ResultsDir:        resultsDir,
				Quick:             quick,
				Keep:              keep,
				HeartbeatDuration: heartbeatDuration,
				Profile:           profile,
				ServerConfig:      serverConfig,
				GCCycles:          gcCycles,
				Out:               g.ui.out,
			})
			if errors.Is(err, bench.ErrGoalsMissed) {
				return withCode(ExitError, fmt.Errorf("%w (see the table)", err))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenarios, "scenarios", "all", "comma-separated scenarios to run: all, or "+strings.Join(bench.ScenarioNames(), ", "))
	f.StringVar(&resultsDir, "results-dir", "bench/results", "directory for <scenario>.json (created if needed)")
	f.BoolVar(&quick, "quick", false, "shrink every scenario to a smoke run (well under a minute each)")
	f.BoolVar(&keep, "keep", false, "keep the temp dir with the data dirs and logs of every process, for debugging")
	f.BoolVar(&profile, "profile", false, "save CPU profiles of the leader (and heap profiles in memory) to the results dir")
	f.StringVar(&serverConfig, "server-config", "", "agent config file (HCL) every server starts with, to measure tuning, e.g. server { num_schedulers = 8 }")
	f.DurationVar(&heartbeatDuration, "heartbeat-duration", 0, "how long the heartbeats scenario watches its nodes (default 5m, 30s with -quick)")
	f.IntVar(&gcCycles, "gc-cycles", 0, "register/stop cycles of the gc scenario (default 2000, 100 with -quick)")
	return cmd
}
