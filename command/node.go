package command

import (
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newNodeCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Inspect client nodes",
	}
	cmd.AddCommand(newNodeStatusCommand(g), newNodeDrainCommand(g), newNodeEligibilityCommand(g))
	return cmd
}

func newNodeStatusCommand(g *globals) *cobra.Command {
	var asJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "status [NODE]",
		Short: "List nodes, or show one node with its allocations",
		Long:  "List client nodes, or show one. NODE is its ID or a unique prefix of it.",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			nodes, _, err := c.Nodes().List(&api.QueryOptions{Prefix: prefix})
			if err != nil {
				return err
			}
			if len(args) == 0 {
				if asJSON {
					return printJSON(g.ui, nodes)
				}
				if len(nodes) == 0 {
					g.ui.Printf("No nodes registered\n")
					return nil
				}
				rows := [][]string{{"ID", "DC", "Name", "Class", "Address", "Eligibility", "Status"}}
				for _, n := range nodes {
					rows = append(rows, []string{short(n.ID), n.Datacenter, n.Name, orNone(n.NodeClass), n.Address, n.SchedulingEligibility, n.Status})
				}
				printTable(g.ui, rows)
				return nil
			}
			ids := make([]string, len(nodes))
			for i, n := range nodes {
				ids[i] = n.ID
			}
			id, err := resolvePrefix("node", args[0], ids)
			if err != nil {
				return err
			}
			node, _, err := c.Nodes().Info(id, nil)
			if err != nil {
				return err
			}
			allocs, _, err := c.Nodes().Allocations(id, nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, map[string]interface{}{"Node": node, "Allocations": allocs})
			}
			printNodeStatus(g.ui, node, allocs)
			if verbose {
				printNodeDrivers(g.ui, node)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&verbose, "verbose", false, "also show each driver's health, why, and since when")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printNodeDrivers prints each driver's health and when it last changed.
func printNodeDrivers(u *ui, n *api.Node) {
	u.Printf("\nDrivers\n")
	names := make([]string, 0, len(n.Drivers))
	for name := range n.Drivers {
		names = append(names, name)
	}
	sort.Strings(names)
	rows := [][]string{{"Driver", "Detected", "Healthy", "Since", "Description"}}
	for _, name := range names {
		d := n.Drivers[name]
		since := "-"
		if d.UpdateTime > 0 {
			since = formatTime(time.Unix(0, d.UpdateTime))
		}
		desc := d.HealthDescription
		if desc == "" {
			desc = "-"
		}
		rows = append(rows, []string{name, fmt.Sprint(d.Detected), fmt.Sprint(d.Healthy), since, desc})
	}
	printTable(u, rows)
}

func printNodeStatus(u *ui, n *api.Node, allocs []*api.AllocationListStub) {
	kv := [][2]string{
		{"ID", n.ID},
		{"Name", n.Name},
		{"Class", orNone(n.NodeClass)},
		{"DC", n.Datacenter},
		{"HTTP Addr", n.HTTPAddr},
		{"Eligibility", n.SchedulingEligibility},
		{"Status", n.Status},
		{"Status Updated", formatAge(n.StatusUpdatedAt)},
	}
	var drivers []string
	for name, d := range n.Drivers {
		state := "healthy"
		if !d.Healthy {
			state = "unhealthy: " + d.HealthDescription
		}
		drivers = append(drivers, fmt.Sprintf("%s (%s)", name, state))
	}
	sort.Strings(drivers)
	kv = append(kv, [2]string{"Drivers", fmt.Sprint(drivers)})
	printKV(u, kv)

	if r := n.NodeResources; r != nil {
		var usedCPU, usedMem int64
		live := 0
		for _, a := range allocs {
			if a.DesiredStatus != "run" || a.ClientStatus == "complete" || a.ClientStatus == "failed" || a.ClientStatus == "lost" {
				continue
			}
			live++
			if a.AllocatedResources != nil {
				for _, t := range a.AllocatedResources.Tasks {
					usedCPU += t.Cpu.CpuShares
					usedMem += t.Memory.MemoryMB
				}
			}
		}
		u.Printf("\nAllocated Resources\n")
		rows := [][]string{{"CPU", "Memory", "Allocations"}}
		rows = append(rows, []string{
			fmt.Sprintf("%d/%d MHz", usedCPU, r.Cpu.CpuShares),
			fmt.Sprintf("%d/%d MiB", usedMem, r.Memory.MemoryMB),
			fmt.Sprint(live),
		})
		printTable(u, rows)
	}
	u.Printf("\nAllocations\n")
	if len(allocs) == 0 {
		u.Printf("No allocations placed\n")
		return
	}
	sort.Slice(allocs, func(i, j int) bool { return allocs[i].CreateIndex > allocs[j].CreateIndex })
	rows := [][]string{{"ID", "Job ID", "Task Group", "Version", "Desired", "Status", "Created"}}
	for _, a := range allocs {
		rows = append(rows, []string{short(a.ID), a.JobID, a.TaskGroup, fmt.Sprint(a.JobVersion), a.DesiredStatus, a.ClientStatus, formatAge(a.CreateTime)})
	}
	printTable(u, rows)
}
