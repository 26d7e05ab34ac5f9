package command

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func resolveNodeID(c *api.Client, id string) (string, error) {
	nodes, _, err := c.Nodes().List(&api.QueryOptions{Prefix: id})
	if err != nil {
		return "", err
	}
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	return resolvePrefix("node", id, ids)
}

func newNodeDrainCommand(g *globals) *cobra.Command {
	var enable, disable, ignoreSystem, keepIneligible, detach, force bool
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:   "drain (-enable [-deadline D] [-ignore-system] | -disable) NODE",
		Short: "Move a node's allocations elsewhere and mark it ineligible",
		Long: `Drain a node: it becomes ineligible for new allocations at once, and its
allocations move to other nodes a few at a time (per group, at most the
group's migrate max_parallel, else its update max_parallel, else 1).
System jobs' allocations are stopped last, or left alone with
-ignore-system. At -deadline, what is left is stopped at once (-force:
now). When the node is empty the drain ends and the node stays
ineligible (drover node eligibility -enable makes it eligible again).

-disable stops a drain; the node is made eligible again unless
-keep-ineligible. Without -detach, the command follows the drain until
it is done.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if enable == disable {
				return fmt.Errorf("give -enable or -disable")
			}
			c, id, err := clientAndID(g, args[0], resolveNodeID)
			if err != nil {
				return err
			}
			if disable {
				if err := c.Nodes().Drain(id, false, 0, false, !keepIneligible); err != nil {
					return err
				}
				g.ui.Printf("Node %s drain stopped\n", short(id))
				return nil
			}
			if force {
				deadline = -1
			}
			if err := c.Nodes().Drain(id, true, deadline, ignoreSystem, false); err != nil {
				return err
			}
			g.ui.Printf("Node %s drain started; it is ineligible for new allocations\n", short(id))
			if detach {
				return nil
			}
			return followDrain(g.ui, c, id)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&enable, "enable", false, "start draining")
	fl.BoolVar(&disable, "disable", false, "stop draining")
	fl.DurationVar(&deadline, "deadline", 0, "stop whatever is left after this long (default: no deadline)")
	fl.BoolVar(&force, "force", false, "stop every allocation at once")
	fl.BoolVar(&ignoreSystem, "ignore-system", false, "leave system jobs' allocations on the node")
	fl.BoolVar(&keepIneligible, "keep-ineligible", false, "with -disable: leave the node ineligible")
	fl.BoolVar(&detach, "detach", false, "return at once instead of following the drain")
	return cmd
}

// followDrain prints the node's live allocations until its drain ends.
func followDrain(u *ui, c *api.Client, id string) error {
	var index uint64
	last := -1
	for {
		node, meta, err := c.Nodes().Info(id, &api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Second})
		if err != nil {
			return err
		}
		index = meta.LastIndex
		allocs, _, err := c.Nodes().Allocations(id, nil)
		if err != nil {
			return err
		}
		live := 0
		for _, a := range allocs {
			if a.DesiredStatus == "run" && a.ClientStatus != "complete" && a.ClientStatus != "failed" && a.ClientStatus != "lost" {
				live++
			}
		}
		if live != last {
			u.Printf("    %d allocation(s) left on the node\n", live)
			last = live
		}
		if node.DrainStrategy == nil {
			u.Printf("==> Node %s drain complete; it stays ineligible\n", short(id))
			return nil
		}
	}
}

func newNodeEligibilityCommand(g *globals) *cobra.Command {
	var enable, disable bool
	cmd := &cobra.Command{
		Use:   "eligibility (-enable | -disable) NODE",
		Short: "Allow or stop new allocations on a node (existing ones keep running)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if enable == disable {
				return fmt.Errorf("give -enable or -disable")
			}
			c, id, err := clientAndID(g, args[0], resolveNodeID)
			if err != nil {
				return err
			}
			if err := c.Nodes().Eligibility(id, enable); err != nil {
				return err
			}
			state := "ineligible"
			if enable {
				state = "eligible"
			}
			g.ui.Printf("Node %s is %s\n", short(id), state)
			return nil
		},
	}
	cmd.Flags().BoolVar(&enable, "enable", false, "make the node eligible")
	cmd.Flags().BoolVar(&disable, "disable", false, "make the node ineligible")
	return cmd
}

func newOperatorSchedulerCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Show or change the scheduler configuration (preemption)",
	}
	var asJSON bool
	get := &cobra.Command{
		Use:   "get-config",
		Short: "Show the scheduler configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cfg, err := c.Operator().SchedulerGetConfiguration()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, cfg)
			}
			printKV(g.ui, [][2]string{
				{"Preemption System Scheduler", fmt.Sprint(cfg.PreemptionConfig.SystemSchedulerEnabled)},
				{"Preemption Service Scheduler", fmt.Sprint(cfg.PreemptionConfig.ServiceSchedulerEnabled)},
				{"Preemption Batch Scheduler", fmt.Sprint(cfg.PreemptionConfig.BatchSchedulerEnabled)},
			})
			return nil
		},
	}
	get.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var system, service, batch string
	set := &cobra.Command{
		Use:   "set-config [-preempt-system-scheduler=true|false] [-preempt-service-scheduler=...] [-preempt-batch-scheduler=...]",
		Short: "Change which job types may preempt lower-priority allocations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cfg, err := c.Operator().SchedulerGetConfiguration()
			if err != nil {
				return err
			}
			for _, f := range []struct {
				val string
				dst *bool
			}{
				{system, &cfg.PreemptionConfig.SystemSchedulerEnabled},
				{service, &cfg.PreemptionConfig.ServiceSchedulerEnabled},
				{batch, &cfg.PreemptionConfig.BatchSchedulerEnabled},
			} {
				switch f.val {
				case "":
				case "true":
					*f.dst = true
				case "false":
					*f.dst = false
				default:
					return fmt.Errorf("%q: use true or false", f.val)
				}
			}
			if err := c.Operator().SchedulerSetConfiguration(cfg); err != nil {
				return err
			}
			g.ui.Printf("Scheduler configuration updated\n")
			return nil
		},
	}
	set.Flags().StringVar(&system, "preempt-system-scheduler", "", "system jobs may preempt (true|false)")
	set.Flags().StringVar(&service, "preempt-service-scheduler", "", "service jobs may preempt (true|false)")
	set.Flags().StringVar(&batch, "preempt-batch-scheduler", "", "batch jobs may preempt (true|false)")
	cmd.AddCommand(get, set)
	return cmd
}
