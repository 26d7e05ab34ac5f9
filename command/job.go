package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/jobspec"
)

func newJobCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Run, inspect and stop jobs",
	}
	cmd.AddCommand(newJobRunCommand(g), newJobStatusCommand(g), newJobStopCommand(g), newJobValidateCommand(g), newJobPlanCommand(g), newJobHistoryCommand(g), newJobRevertCommand(g), newJobScaleCommand(g))
	return cmd
}

func newJobValidateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a job file for errors without running it",
		Long: `Parse and validate an HCL job file. Problems are reported as
file:line:col with what was wrong and what is accepted; the exit code is 1
when there are any.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			job, err := jobspec.ParseAndValidate(args[0], src, jobspec.SourceDir(filepath.Dir(args[0])))
			if err != nil {
				return err
			}
			g.ui.Printf("Job validation successful: job %q, %d group(s)\n", job.ID, len(job.TaskGroups))
			return nil
		},
	}
}

func newJobRunCommand(g *globals) *cobra.Command {
	var detach bool
	var checkIndex int64
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "run [-detach] FILE",
		Short: "Submit a job and follow it until its allocations run",
		Long: `Submit the job in FILE (HCL) and follow its evaluation and allocations
until every allocation is running (batch jobs: running or complete).

A job whose groups have an update block rolls out through a deployment:
the command then follows the deployment with a progress table (group,
desired, placed, healthy, unhealthy, time left to the progress deadline),
redrawn in place on a terminal and printed as plain lines otherwise, until
the deployment succeeds, fails or its canaries wait for promotion.

Exit codes: 0 when the allocations run (or the deployment succeeded, or
its canaries are healthy and wait for "drover deployment promote"); 2 when
some allocations could not be placed (the reasons are printed: the
constraints that filtered nodes and how many, the resources exhausted); 1
on any other error, including a failed allocation and a deployment that
failed, was reverted or was cancelled. With -detach, the job is submitted
and the command returns at once.

With -check-index N (from "drover job plan"), the job is registered only
if its modify index is still N: nobody changed it since the plan.

The job goes to the namespace its file names (namespace = "team-a"), or
else to -namespace (DROVER_NAMESPACE), or else to "default"; a file and a
-namespace that name different namespaces are refused. The namespace
must exist (drover namespace apply NAME).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			job, err := jobspec.ParseAndValidate(args[0], src, jobspec.SourceDir(filepath.Dir(args[0])))
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ns, err := jobFileNamespace(c, args[0], src)
			if err != nil {
				return err
			}
			job.Namespace = ns
			c = c.WithNamespace(ns)
			var opts *api.RegisterOptions
			if cmd.Flags().Changed("check-index") {
				if checkIndex < 0 {
					return fmt.Errorf("-check-index must not be negative")
				}
				opts = &api.RegisterOptions{EnforceIndex: true, JobModifyIndex: uint64(checkIndex)}
			}
			resp, _, err := c.Jobs().Register(job, opts)
			if err != nil {
				return explainAPIError(err)
			}
			if detach {
				g.ui.Printf("Job registration successful\nEvaluation ID: %s\n", resp.EvalID)
				return nil
			}
			m := &monitor{ui: g.ui, client: c, jobID: job.ID, deadline: time.Now().Add(timeout), tty: isTTY(g.ui.out)}
			return m.run(resp.EvalID)
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "submit the job and return without following it")
	cmd.Flags().Int64Var(&checkIndex, "check-index", 0, "only register if the job's modify index is this (0: the job must not exist)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the allocations to run")
	return cmd
}

// explainAPIError adds the field problems of a validation error.
func explainAPIError(err error) error {
	var apiErr *api.Error
	if errors.As(err, &apiErr) && len(apiErr.Problems) > 0 {
		lines := make([]string, len(apiErr.Problems))
		for i, p := range apiErr.Problems {
			lines[i] = fmt.Sprintf("  * %s: %s", p.Path, p.Message)
		}
		return fmt.Errorf("the job was rejected:\n%s", strings.Join(lines, "\n"))
	}
	return err
}

func newJobStopCommand(g *globals) *cobra.Command {
	var purge, detach bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop [-purge] [-detach] JOB",
		Short: "Stop a job's allocations (and with -purge, remove the job)",
		Long: `Stop every allocation of JOB. The job stays visible as "dead" unless
-purge removes it. Without -detach, the command waits until the
allocations have stopped.`,
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
			resp, _, err := c.Jobs().Deregister(jobID, purge)
			if err != nil {
				return err
			}
			if detach {
				g.ui.Printf("Job %q stopped\nEvaluation ID: %s\n", jobID, resp.EvalID)
				return nil
			}
			m := &monitor{ui: g.ui, client: c, jobID: jobID, deadline: time.Now().Add(timeout)}
			if _, err := m.waitEval(resp.EvalID); err != nil {
				return err
			}
			return m.waitStopped()
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "remove the job from the cluster state, not just stop it")
	cmd.Flags().BoolVar(&detach, "detach", false, "return without waiting for the allocations to stop")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the allocations to stop")
	return cmd
}

// resolveJobID returns the job ID matching id exactly or by unique
// prefix in the client's namespace, and a client for the job's
// namespace. With -namespace '*' it looks in every namespace; a job ID
// found in several is ambiguous, and the error lists where it is.
func resolveJobID(c *api.Client, id string) (*api.Client, string, error) {
	jobs, _, err := c.Jobs().List(&api.QueryOptions{Prefix: id})
	if err != nil {
		return nil, "", err
	}
	if c.Namespace() == api.AllNamespaces {
		return resolveJobEverywhere(c, id, jobs)
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	jobID, err := resolvePrefix("job", id, ids)
	if err != nil && len(jobs) == 0 {
		return nil, "", fmt.Errorf("no job with ID prefix %q in namespace %q; pass -namespace NAME, or -namespace '*' to look in every namespace", id, namespaceName(c))
	}
	return c, jobID, err
}

// resolveJobEverywhere picks the one job matching id among the jobs of
// every namespace.
func resolveJobEverywhere(c *api.Client, id string, jobs []*api.JobListStub) (*api.Client, string, error) {
	var exact, prefixed []*api.JobListStub
	for _, j := range jobs {
		if j.ID == id {
			exact = append(exact, j)
		}
		prefixed = append(prefixed, j)
	}
	matches := prefixed
	if len(exact) > 0 {
		matches = exact
	}
	switch len(matches) {
	case 0:
		return nil, "", fmt.Errorf("no job with ID prefix %q in any namespace", id)
	case 1:
		return c.WithNamespace(matches[0].Namespace), matches[0].ID, nil
	}
	names := make([]string, len(matches))
	for i, j := range matches {
		names[i] = j.Namespace + "/" + j.ID
	}
	return nil, "", fmt.Errorf("%d jobs match %q across namespaces; pass -namespace NAME to pick one:\n  %s", len(matches), id, strings.Join(names, "\n  "))
}

// namespaceName is the namespace a client works in, for messages.
func namespaceName(c *api.Client) string {
	if ns := c.Namespace(); ns != "" {
		return ns
	}
	return api.DefaultNamespace
}

// jobFileNamespace decides the namespace of the job in a job file: the
// one the file names, else the CLI's (-namespace, DROVER_NAMESPACE),
// else the default one. A file and a CLI namespace that differ are
// refused, naming both, as the server would refuse them.
func jobFileNamespace(c *api.Client, filename string, src []byte) (string, error) {
	raw, err := jobspec.Parse(filename, src, jobspec.SourceDir(filepath.Dir(filename)))
	if err != nil {
		return "", err
	}
	cli := c.Namespace()
	switch {
	case cli == api.AllNamespaces:
		return "", fmt.Errorf("-namespace '*' is for listing; a job goes to one namespace: name it in the file (namespace = \"NAME\") or with -namespace NAME")
	case raw.Namespace != "" && cli != "" && raw.Namespace != cli:
		return "", fmt.Errorf("%s names namespace %q but -namespace (or DROVER_NAMESPACE) is %q; make them agree, or drop one", filename, raw.Namespace, cli)
	case raw.Namespace != "":
		return raw.Namespace, nil
	case cli != "":
		return cli, nil
	}
	return api.DefaultNamespace, nil
}

func newJobStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [JOB]",
		Short: "List jobs, or show one job with its allocations",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				jobs, _, err := c.Jobs().List(nil)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.ui, jobs)
				}
				if len(jobs) == 0 {
					if c.Namespace() == api.AllNamespaces {
						g.ui.Printf("No running jobs\n")
					} else {
						g.ui.Printf("No running jobs in namespace %q\n", namespaceName(c))
					}
					return nil
				}
				// Every namespace's jobs: the namespace tells apart jobs
				// of the same ID.
				all := c.Namespace() == api.AllNamespaces
				header := []string{"ID", "Type", "Priority", "Status", "Version", "Submit Date"}
				if all {
					header = append([]string{"ID", "Namespace"}, header[1:]...)
				}
				rows := [][]string{header}
				for _, j := range jobs {
					row := []string{j.ID, j.Type, fmt.Sprint(j.Priority), j.Status, fmt.Sprint(j.Version), formatUnixNano(j.SubmitTime)}
					if all {
						row = append([]string{j.ID, j.Namespace}, row[1:]...)
					}
					rows = append(rows, row)
				}
				printTable(g.ui, rows)
				return nil
			}
			c, jobID, err := resolveJobID(c, args[0])
			if err != nil {
				return err
			}
			job, _, err := c.Jobs().Info(jobID, nil)
			if err != nil {
				return err
			}
			allocs, _, err := c.Jobs().Allocations(jobID, nil)
			if err != nil {
				return err
			}
			evals, _, err := c.Jobs().Evaluations(jobID, nil)
			if err != nil {
				return err
			}
			dep, _, err := c.Jobs().LatestDeployment(jobID, nil)
			if err != nil && !api.IsNotFound(err) {
				return err
			}
			if asJSON {
				return printJSON(g.ui, map[string]interface{}{"Job": job, "Allocations": allocs, "Evaluations": evals, "LatestDeployment": dep})
			}
			printJobStatus(g.ui, job, allocs, evals)
			if dep != nil {
				g.ui.Printf("\nLatest Deployment\n")
				printKV(g.ui, [][2]string{
					{"ID", short(dep.ID)},
					{"Job Version", fmt.Sprint(dep.JobVersion)},
					{"Status", dep.Status},
					{"Description", dep.StatusDescription},
				})
				g.ui.Printf("\n")
				printTable(g.ui, deploymentRows(dep))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printJobStatus(u *ui, job *api.Job, allocs []*api.AllocationListStub, evals []*api.Evaluation) {
	var dcs string
	if len(job.Datacenters) > 0 {
		dcs = strings.Join(job.Datacenters, ",")
	}
	printKV(u, [][2]string{
		{"ID", job.ID},
		{"Name", job.Name},
		{"Namespace", job.Namespace},
		{"Type", job.Type},
		{"Priority", fmt.Sprint(job.Priority)},
		{"Datacenters", dcs},
		{"Status", job.Status},
		{"Stopped", fmt.Sprint(job.Stop)},
		{"Version", fmt.Sprint(job.Version)},
		{"Submit Date", formatUnixNano(job.SubmitTime)},
	})

	u.Printf("\nSummary\n")
	type counts struct{ queued, starting, running, failed, complete, lost int }
	summary := map[string]*counts{}
	var groups []string
	for _, tg := range job.TaskGroups {
		summary[tg.Name] = &counts{}
		groups = append(groups, tg.Name)
	}
	for _, a := range allocs {
		c := summary[a.TaskGroup]
		if c == nil {
			c = &counts{}
			summary[a.TaskGroup] = c
			groups = append(groups, a.TaskGroup)
		}
		switch a.ClientStatus {
		case "pending":
			c.starting++
		case "running":
			c.running++
		case "failed":
			c.failed++
		case "complete":
			c.complete++
		case "lost":
			c.lost++
		}
	}
	for tg, n := range queuedAllocs(evals) {
		if c := summary[tg]; c != nil {
			c.queued += n
		}
	}
	rows := [][]string{{"Task Group", "Queued", "Starting", "Running", "Failed", "Complete", "Lost"}}
	for _, tg := range groups {
		c := summary[tg]
		rows = append(rows, []string{tg, fmt.Sprint(c.queued), fmt.Sprint(c.starting), fmt.Sprint(c.running), fmt.Sprint(c.failed), fmt.Sprint(c.complete), fmt.Sprint(c.lost)})
	}
	printTable(u, rows)

	for _, e := range latestEvals(evals) {
		if e.Status == "blocked" && len(e.FailedTGAllocs) > 0 {
			u.Printf("\nPlacement Failure\n")
			printPlacementFailures(u, e.FailedTGAllocs)
			break
		}
	}

	u.Printf("\nAllocations\n")
	if len(allocs) == 0 {
		u.Printf("No allocations placed\n")
		return
	}
	sort.Slice(allocs, func(i, j int) bool { return allocs[i].CreateIndex > allocs[j].CreateIndex })
	rows = [][]string{{"ID", "Node ID", "Task Group", "Version", "Desired", "Status", "Created", "Modified"}}
	for _, a := range allocs {
		rows = append(rows, []string{short(a.ID), short(a.NodeID), a.TaskGroup, fmt.Sprint(a.JobVersion), a.DesiredStatus, a.ClientStatus, formatAge(a.CreateTime), formatAge(a.ModifyTime)})
	}
	printTable(u, rows)
}

// queuedAllocs counts, per group, the allocations waiting for capacity:
// those of each blocked evaluation. The server records the count on the
// evaluation that could not place them (QueuedAllocations, with
// BlockedEval naming the blocked one), not on the blocked evaluation
// itself, which has its own count only once it has run.
func queuedAllocs(evals []*api.Evaluation) map[string]int {
	queued := map[string]int{}
	for _, b := range evals {
		if b.Status != "blocked" {
			continue
		}
		counts := b.QueuedAllocations
		if len(counts) == 0 {
			for _, e := range evals {
				if e.BlockedEval == b.ID {
					counts = e.QueuedAllocations
					break
				}
			}
		}
		for tg, n := range counts {
			queued[tg] += n
		}
	}
	return queued
}

// latestEvals returns evaluations newest first.
func latestEvals(evals []*api.Evaluation) []*api.Evaluation {
	out := append([]*api.Evaluation(nil), evals...)
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out
}

func printJSON(u *ui, v interface{}) error {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	u.Printf("%s\n", buf)
	return nil
}
