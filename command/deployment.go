package command

import (
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newDeploymentCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deployment",
		Short: "Inspect, promote and fail deployments (rolling updates)",
	}
	cmd.AddCommand(newDeploymentListCommand(g), newDeploymentStatusCommand(g), newDeploymentPromoteCommand(g), newDeploymentFailCommand(g))
	return cmd
}

// clientAndID connects to the agent and resolves an ID or unique prefix
// given on the command line with resolve.
func clientAndID(g *globals, arg string, resolve func(*api.Client, string) (string, error)) (*api.Client, string, error) {
	c, err := g.client()
	if err != nil {
		return nil, "", err
	}
	id, err := resolve(c, arg)
	return c, id, err
}

func resolveDeploymentID(c *api.Client, id string) (string, error) {
	deps, _, err := c.Deployments().List(&api.QueryOptions{Prefix: id})
	if err != nil {
		return "", err
	}
	ids := make([]string, len(deps))
	for i, d := range deps {
		ids[i] = d.ID
	}
	found, err := resolvePrefix("deployment", id, ids)
	return found, inNamespaceHint(c, err)
}

func newDeploymentListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List deployments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			deps, _, err := c.Deployments().List(nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, deps)
			}
			sort.Slice(deps, func(i, j int) bool { return deps[i].CreateIndex > deps[j].CreateIndex })
			rows := [][]string{{"ID", "Job ID", "Job Version", "Status", "Description"}}
			for _, d := range deps {
				rows = append(rows, []string{short(d.ID), d.JobID, fmt.Sprint(d.JobVersion), d.Status, d.StatusDescription})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newDeploymentStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status DEPLOYMENT",
		Short: "Show a deployment: per-group progress and its history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, err := clientAndID(g, args[0], resolveDeploymentID)
			if err != nil {
				return err
			}
			d, _, err := c.Deployments().Info(id, nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, d)
			}
			printDeployment(g.ui, d, true)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printDeployment prints a deployment's summary, group table and, with
// history, its events.
func printDeployment(u *ui, d *api.Deployment, history bool) {
	printKV(u, [][2]string{
		{"ID", d.ID},
		{"Job ID", d.JobID},
		{"Job Version", fmt.Sprint(d.JobVersion)},
		{"Status", d.Status},
		{"Description", d.StatusDescription},
	})
	u.Printf("\nDeployed\n")
	printTable(u, deploymentRows(d))
	if history && len(d.History) > 0 {
		u.Printf("\nHistory\n")
		rows := [][]string{{"Time", "Event"}}
		for _, e := range d.History {
			rows = append(rows, []string{formatUnixNano(e.Time), e.Message})
		}
		printTable(u, rows)
	}
}

// deploymentRows is the per-group progress table.
func deploymentRows(d *api.Deployment) [][]string {
	rows := [][]string{{"Task Group", "Promoted", "Desired", "Canaries", "Placed", "Healthy", "Unhealthy", "Progress Deadline"}}
	names := make([]string, 0, len(d.TaskGroups))
	for n := range d.TaskGroups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := d.TaskGroups[n]
		promoted := "n/a"
		if s.DesiredCanaries > 0 {
			promoted = fmt.Sprint(s.Promoted)
		}
		deadline := "<none>"
		if s.RequireProgressBy > 0 {
			deadline = formatUnixNano(s.RequireProgressBy)
			if left := time.Until(time.Unix(0, s.RequireProgressBy)); left > 0 && d.Status == "running" {
				deadline = fmt.Sprintf("%s (in %s)", deadline, formatDuration(left))
			}
		}
		rows = append(rows, []string{n, promoted, fmt.Sprint(s.DesiredTotal), fmt.Sprint(s.DesiredCanaries),
			fmt.Sprint(s.PlacedAllocs), fmt.Sprint(s.HealthyAllocs), fmt.Sprint(s.UnhealthyAllocs), deadline})
	}
	return rows
}

func newDeploymentPromoteCommand(g *globals) *cobra.Command {
	var groups []string
	cmd := &cobra.Command{
		Use:   "promote [-group NAME]... DEPLOYMENT",
		Short: "Promote a deployment's healthy canaries so the rollout continues",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, err := clientAndID(g, args[0], resolveDeploymentID)
			if err != nil {
				return err
			}
			resp, err := c.Deployments().Promote(id, groups)
			if err != nil {
				return err
			}
			g.ui.Printf("Deployment %s promoted; evaluation %s continues the rollout\n", short(id), short(resp.EvalID))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&groups, "group", nil, "promote only this group (repeatable; default: all)")
	return cmd
}

func newDeploymentFailCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "fail DEPLOYMENT",
		Short: "Fail a running deployment (reverting the job if the deployment asks for auto_revert)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, err := clientAndID(g, args[0], resolveDeploymentID)
			if err != nil {
				return err
			}
			resp, err := c.Deployments().Fail(id)
			if err != nil {
				return err
			}
			g.ui.Printf("Deployment %s marked failed\n", short(id))
			if resp.RevertedJobVersion != nil {
				g.ui.Printf("The job was reverted to version %d\n", *resp.RevertedJobVersion)
			}
			return nil
		},
	}
}
