package command

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func newJobScaleCommand(g *globals) *cobra.Command {
	var detach bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "scale [-detach] JOB GROUP COUNT",
		Short: "Change how many allocations of a task group run",
		Long: `Set the count of task group GROUP of JOB to COUNT. The job is
registered again with the new count, as a new version (see "drover job
history"), and the rollout is followed as "drover job run" does; -detach
returns at once. A job changed by someone else since it was read is not
overwritten: the command fails with a conflict, and can be run again.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			count, err := strconv.ParseInt(args[2], 10, 32)
			if err != nil || count < 0 {
				return fmt.Errorf("count %q is not a non-negative number", args[2])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			c, jobID, err := resolveJobID(c, args[0])
			if err != nil {
				return err
			}
			resp, err := c.Jobs().Scale(jobID, args[1], count)
			if err != nil {
				return explainAPIError(err)
			}
			if detach {
				g.ui.Printf("Job %q group %q scaled to %d\nEvaluation ID: %s\n", jobID, args[1], count, resp.EvalID)
				return nil
			}
			g.ui.Printf("==> Job %q group %q scaled to %d\n", jobID, args[1], count)
			if resp.EvalID == "" {
				return nil
			}
			m := &monitor{ui: g.ui, client: c, jobID: jobID, deadline: time.Now().Add(timeout), tty: isTTY(g.ui.out)}
			return m.run(resp.EvalID)
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "return without following the rollout")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to follow the rollout")
	return cmd
}
