package command

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newJobHistoryCommand(g *globals) *cobra.Command {
	var showDiffs, asJSON bool
	var version int64
	cmd := &cobra.Command{
		Use:   "history [-p] [-version N] [-json] JOB",
		Short: "List a job's versions, whether each is stable, and what changed",
		Long: `List the kept versions of JOB, newest first: when each was submitted,
whether it is stable (a deployment of it succeeded), and the status of the
deployment that rolled it out.

With -p, each version is followed by its diff against the version before
it, in the format of "drover job plan". With -version N, only that
version is shown. "drover job revert JOB N" runs an earlier version again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			c, jobID, err := resolveJobID(c, args[0])
			if err != nil {
				return err
			}
			versions, diffs, _, err := c.Jobs().VersionsWithDiffs(jobID, nil)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("version") {
				kept := -1
				for i, v := range versions {
					if int64(v.Version) == version {
						kept = i
					}
				}
				if kept < 0 {
					return fmt.Errorf("job %q has no version %d; kept versions: %s", jobID, version, versionList(versions))
				}
				versions = versions[kept : kept+1]
				if kept < len(diffs) {
					diffs = diffs[kept : kept+1]
				} else {
					diffs = nil
				}
			}
			if asJSON {
				if showDiffs {
					return printJSON(g.ui, map[string]interface{}{"Versions": versions, "Diffs": diffs})
				}
				return printJSON(g.ui, versions)
			}
			deps, _, err := c.Jobs().Deployments(jobID, nil)
			if err != nil {
				return err
			}
			// The newest deployment of each version.
			depOf := map[uint64]*api.Deployment{}
			for _, d := range deps {
				if cur := depOf[d.JobVersion]; cur == nil || d.CreateIndex > cur.CreateIndex {
					depOf[d.JobVersion] = d
				}
			}
			if !showDiffs {
				rows := [][]string{{"Version", "Stable", "Submit Date", "Deployment"}}
				for _, v := range versions {
					rows = append(rows, []string{fmt.Sprint(v.Version), fmt.Sprint(v.Stable), formatUnixNano(v.SubmitTime), deploymentCell(depOf[v.Version])})
				}
				printTable(g.ui, rows)
				return nil
			}
			for i, v := range versions {
				if i > 0 {
					g.ui.Printf("\n")
				}
				printKV(g.ui, [][2]string{
					{"Version", fmt.Sprint(v.Version)},
					{"Stable", fmt.Sprint(v.Stable)},
					{"Submit Date", formatUnixNano(v.SubmitTime)},
					{"Deployment", deploymentCell(depOf[v.Version])},
				})
				if i < len(diffs) && diffs[i] != nil {
					var b strings.Builder
					r := &planRenderer{b: &b, color: isTerminal(g.ui.out)}
					r.job(diffs[i])
					g.ui.Printf("Diff =\n%s", indent(b.String(), "  "))
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&showDiffs, "diffs", "p", false, "show each version's changes against the version before it")
	cmd.Flags().Int64Var(&version, "version", 0, "show only this version")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func deploymentCell(d *api.Deployment) string {
	if d == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s", short(d.ID), d.Status)
}

func versionList(versions []*api.Job) string {
	parts := make([]string, len(versions))
	for i, v := range versions {
		parts[i] = fmt.Sprint(v.Version)
	}
	return strings.Join(parts, ", ")
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func newJobRevertCommand(g *globals) *cobra.Command {
	var detach bool
	var timeout time.Duration
	var priorVersion int64
	cmd := &cobra.Command{
		Use:   "revert [-detach] [-prior-version N] JOB VERSION",
		Short: "Run an earlier version of a job again",
		Long: `Register version VERSION of JOB again, as a new version, and follow the
rollout as "drover job run" does (deployment progress table; exit 0 when
healthy, 1 when the deployment fails, 2 when allocations cannot be
placed). "drover job history JOB" lists the versions.

With -prior-version N, the revert is refused unless the job's current
version is N, so two operators cannot revert over each other.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("version %q is not a number; see \"drover job history %s\"", args[1], args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			c, jobID, err := resolveJobID(c, args[0])
			if err != nil {
				return err
			}
			var prior *uint64
			if cmd.Flags().Changed("prior-version") {
				if priorVersion < 0 {
					return fmt.Errorf("-prior-version must not be negative")
				}
				p := uint64(priorVersion)
				prior = &p
			}
			resp, err := c.Jobs().Revert(jobID, v, prior)
			if err != nil {
				return explainAPIError(err)
			}
			if detach {
				g.ui.Printf("Job %q reverted to version %d\nEvaluation ID: %s\n", jobID, v, resp.EvalID)
				return nil
			}
			g.ui.Printf("==> Job %q reverted to version %d\n", jobID, v)
			if resp.EvalID == "" {
				return nil
			}
			m := &monitor{ui: g.ui, client: c, jobID: jobID, deadline: time.Now().Add(timeout), tty: isTTY(g.ui.out)}
			return m.run(resp.EvalID)
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "revert and return without following the rollout")
	cmd.Flags().Int64Var(&priorVersion, "prior-version", 0, "refuse unless the job's current version is this")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to follow the rollout")
	return cmd
}
