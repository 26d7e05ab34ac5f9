package command

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"context"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newAllocCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alloc",
		Short: "Inspect allocations, read their logs and run commands in their tasks",
	}
	cmd.AddCommand(newAllocStatusCommand(g), newAllocLogsCommand(g), newAllocExecCommand(g))
	return cmd
}

// resolveAllocID returns the allocation ID matching id exactly or by
// unique prefix.
func resolveAllocID(c *api.Client, id string) (string, error) {
	allocs, _, err := c.Allocations().List(&api.QueryOptions{Prefix: id})
	if err != nil {
		return "", err
	}
	ids := make([]string, len(allocs))
	for i, a := range allocs {
		ids[i] = a.ID
	}
	found, err := resolvePrefix("allocation", id, ids)
	return found, inNamespaceHint(c, err)
}

func newAllocStatusCommand(g *globals) *cobra.Command {
	var asJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "status ALLOC",
		Short: "Show an allocation: status, resources, ports and task events",
		Long:  "Show an allocation. ALLOC is its ID or a unique prefix of it.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			id, err := resolveAllocID(c, args[0])
			if err != nil {
				return err
			}
			alloc, _, err := c.Allocations().Info(id, nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, alloc)
			}
			printAllocStatus(g.ui, alloc, verbose)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "show full IDs and every task event")
	return cmd
}

func printAllocStatus(u *ui, a *api.Allocation, verbose bool) {
	id := func(s string) string {
		if verbose {
			return s
		}
		return short(s)
	}
	kv := [][2]string{
		{"ID", a.ID},
		{"Eval ID", id(a.EvalID)},
		{"Name", a.Name},
		{"Node ID", id(a.NodeID)},
		{"Node Name", a.NodeName},
		{"Job ID", a.JobID},
		{"Job Version", fmt.Sprint(a.JobVersion)},
		{"Client Status", a.ClientStatus},
		{"Client Description", a.ClientDescription},
		{"Desired Status", a.DesiredStatus},
		{"Desired Description", orNone(a.DesiredDescription)},
		{"Created", formatAge(a.CreateTime)},
		{"Modified", formatAge(a.ModifyTime)},
	}
	if a.DeploymentID != "" {
		health := "unset"
		if ds := a.DeploymentStatus; ds != nil && ds.Healthy != nil {
			health = map[bool]string{true: "healthy", false: "unhealthy"}[*ds.Healthy]
		}
		if ds := a.DeploymentStatus; ds != nil && ds.Canary {
			health += " (canary)"
		}
		kv = append(kv, [2]string{"Deployment ID", id(a.DeploymentID)}, [2]string{"Deployment Health", health})
	}
	printKV(u, kv)
	if a.PreemptedByAllocation != "" {
		u.Printf("Preempted by allocation %s (a job of higher priority needed its resources)\n", id(a.PreemptedByAllocation))
	}
	if len(a.PreemptedAllocations) > 0 {
		ids := make([]string, len(a.PreemptedAllocations))
		for i, p := range a.PreemptedAllocations {
			ids[i] = id(p)
		}
		u.Printf("Preempted allocations to be placed: %s\n", strings.Join(ids, ", "))
	}
	if a.PreviousAllocation != "" {
		u.Printf("Replaces allocation %s\n", id(a.PreviousAllocation))
	}
	if a.NextAllocation != "" {
		u.Printf("Replaced by allocation %s\n", id(a.NextAllocation))
	}
	if a.AllocatedResources != nil && len(a.AllocatedResources.Shared.Ports) > 0 {
		u.Printf("\nAllocation Addresses\n")
		rows := [][]string{{"Label", "Address"}}
		for _, p := range a.AllocatedResources.Shared.Ports {
			rows = append(rows, []string{p.Label, fmt.Sprintf("%s:%d", p.HostIP, p.Value)})
		}
		printTable(u, rows)
	}
	if verbose && a.Metrics != nil {
		printPlacementMetrics(u, a.Metrics)
	}
	names := make([]string, 0, len(a.TaskStates))
	for n := range a.TaskStates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ts := a.TaskStates[n]
		u.Printf("\nTask %q is %q\n", n, ts.State)
		if a.AllocatedResources != nil {
			if r := a.AllocatedResources.Tasks[n]; r != nil {
				u.Printf("Task Resources: %d MHz CPU, %d MiB memory\n", r.Cpu.CpuShares, r.Memory.MemoryMB)
			}
		}
		printKV(u, [][2]string{
			{"Started At", formatTime(ts.StartedAt)},
			{"Finished At", formatTime(ts.FinishedAt)},
			{"Total Restarts", fmt.Sprint(ts.Restarts)},
			{"Failed", fmt.Sprint(ts.Failed)},
		})
		events := ts.Events
		if !verbose && len(events) > 5 {
			events = events[len(events)-5:]
		}
		u.Printf("\nRecent Events:\n")
		rows := [][]string{{"Time", "Type", "Description"}}
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			rows = append(rows, []string{formatUnixNano(e.Time), e.Type, e.Message})
		}
		printTable(u, rows)
	}
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func newAllocLogsCommand(g *globals) *cobra.Command {
	var stderr, follow bool
	var tail int64
	cmd := &cobra.Command{
		Use:   "logs [-stderr] [-f] ALLOC [TASK]",
		Short: "Print a task's stdout (or stderr)",
		Long: `Print the output of a task of an allocation. ALLOC is its ID or a unique
prefix; TASK may be left out when the allocation has one task. With -f the
output is followed until the task stops or you interrupt.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			id, err := resolveAllocID(c, args[0])
			if err != nil {
				return err
			}
			task := ""
			if len(args) == 2 {
				task = args[1]
			} else {
				alloc, _, err := c.Allocations().Info(id, nil)
				if err != nil {
					return err
				}
				if alloc.Job != nil {
					for _, tg := range alloc.Job.TaskGroups {
						if tg.Name != alloc.TaskGroup {
							continue
						}
						if len(tg.Tasks) != 1 {
							var names []string
							for _, t := range tg.Tasks {
								names = append(names, t.Name)
							}
							return fmt.Errorf("allocation %s has several tasks; name one: %s", short(id), strings.Join(names, ", "))
						}
						task = tg.Tasks[0].Name
					}
				}
			}
			opts := api.LogOptions{Task: task, Stderr: stderr, Follow: follow}
			if tail > 0 {
				opts.Origin, opts.Offset = "end", tail
			}
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
			rc, err := c.Allocations().Logs(id, opts, &api.QueryOptions{Context: ctx})
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(g.ui.out, rc)
			if err != nil && ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&stderr, "stderr", false, "print stderr instead of stdout")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	cmd.Flags().Int64Var(&tail, "tail", 0, "print only the last N bytes")
	return cmd
}

// printPlacementMetrics explains how the scheduler chose the node: how
// many nodes it looked at, which were filtered or exhausted and why, and
// the best-scored nodes with each score component.
func printPlacementMetrics(u *ui, m *api.AllocMetric) {
	u.Printf("\nPlacement Metrics\n")
	printKV(u, [][2]string{
		{"Nodes Evaluated", fmt.Sprint(m.NodesEvaluated)},
		{"Nodes Filtered", fmt.Sprint(m.NodesFiltered)},
		{"Nodes Exhausted", fmt.Sprint(m.NodesExhausted)},
		{"Allocation Time", m.AllocationTime.String()},
	})
	for _, line := range placementReasons(m) {
		u.Printf("  * %s\n", line)
	}
	if len(m.ScoreMetaData) == 0 {
		return
	}
	// One column per score component, in a fixed order, then the rest.
	known := []string{"binpack", "job-anti-affinity", "node-affinity", "spread", "node-reschedule-penalty", "preemption"}
	seen := map[string]bool{}
	for _, s := range m.ScoreMetaData {
		for k := range s.Scores {
			seen[k] = true
		}
	}
	var cols []string
	for _, k := range known {
		if seen[k] {
			cols = append(cols, k)
			delete(seen, k)
		}
	}
	cols = append(cols, sortedKeys(boolKeys(seen))...)
	header := append([]string{"Node"}, cols...)
	header = append(header, "final score")
	rows := [][]string{header}
	for _, s := range m.ScoreMetaData {
		row := []string{s.NodeID}
		for _, c := range cols {
			if v, ok := s.Scores[c]; ok {
				row = append(row, fmt.Sprintf("%.3g", v))
			} else {
				// Did not apply to this node, and is not part of its
				// final score (the mean of the components that did).
				row = append(row, "-")
			}
		}
		row = append(row, fmt.Sprintf("%.3g", s.NormScore))
		rows = append(rows, row)
	}
	u.Printf("\nTop Scored Nodes\n")
	printTable(u, rows)
}

func boolKeys(m map[string]bool) map[string]int {
	out := make(map[string]int, len(m))
	for k := range m {
		out[k] = 1
	}
	return out
}
