package command

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newSystemCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "system",
		Short: "Cluster-wide maintenance",
	}
	cmd.AddCommand(newSystemGCCommand(g))
	return cmd
}

func newSystemGCCommand(g *globals) *cobra.Command {
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "gc [-dry-run] [-json]",
		Short: "Garbage-collect finished jobs, evaluations, allocations, deployments and down nodes now",
		Long: `Make the leader collect garbage now, whatever its age: every stopped or
dead job (with its versions, evaluations, allocations and deployments),
terminal evaluation, finished allocation, finished deployment and down
node that a collection may delete. The servers then delete the same rows,
in Raft entries of at most 512 objects, and clients remove the
directories of the allocations that went.

What is still in use is never deleted, forced or not: a job with a
running or pending allocation or evaluation, a running deployment, a
node up or with running allocations; a live job keeps its newest
evaluation, its newest deployment and its current version, and a
finished allocation the scheduler still counts (a batch job's result, a
failure not replaced yet). The per-job caps of the server's gc block
(job_versions, terminal_allocs) apply as configured.

Without this command the leader collects every 5 minutes (server gc
interval) what is older than its thresholds: terminal evaluations 1h
(of batch jobs 24h), deployments 1h, dead jobs 4h, down nodes 24h.

-dry-run deletes nothing and lists, by kind and ID, what would go (at
most 10,000 IDs of each kind). Needs operator:write when ACLs are on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.System().GarbageCollect(dryRun)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, r)
			}
			printGCReport(g.ui, r)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "delete nothing; list what would be deleted")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// gcKinds names the kinds of a report, in print order.
var gcKinds = []struct {
	name  string
	count func(api.GCCounts) int
	ids   func(api.GCObjects) []string
}{
	{"jobs", func(c api.GCCounts) int { return c.Jobs }, func(o api.GCObjects) []string { return o.Jobs }},
	{"job versions", func(c api.GCCounts) int { return c.JobVersions }, func(o api.GCObjects) []string { return o.JobVersions }},
	{"evaluations", func(c api.GCCounts) int { return c.Evals }, func(o api.GCObjects) []string { return o.Evals }},
	{"allocations", func(c api.GCCounts) int { return c.Allocs }, func(o api.GCObjects) []string { return o.Allocs }},
	{"deployments", func(c api.GCCounts) int { return c.Deployments }, func(o api.GCObjects) []string { return o.Deployments }},
	{"nodes", func(c api.GCCounts) int { return c.Nodes }, func(o api.GCObjects) []string { return o.Nodes }},
}

func printGCReport(u *ui, r *api.GCReport) {
	if r.DryRun {
		if r.Chosen.Total() == 0 {
			u.Printf("Nothing to collect\n")
			return
		}
		u.Printf("Would delete %s:\n", gcSummary(r.Chosen))
		for _, k := range gcKinds {
			ids := k.ids(r.Objects)
			if len(ids) == 0 {
				continue
			}
			u.Printf("\n%s (%d)\n", strings.ToUpper(k.name[:1])+k.name[1:], k.count(r.Chosen))
			for _, id := range ids {
				u.Printf("  %s\n", id)
			}
			if n := k.count(r.Chosen) - len(ids); n > 0 {
				u.Printf("  ... and %d more\n", n)
			}
		}
		return
	}
	if r.Chosen.Total() == 0 {
		u.Printf("Nothing to collect\n")
		return
	}
	u.Printf("Deleted %s in %d Raft %s\n", gcSummary(r.Deleted), r.Entries, plural(r.Entries, "entry", "entries"))
	if r.Skipped.Total() > 0 {
		u.Printf("Skipped %s: no longer collectable when deleted\n", gcSummary(r.Skipped))
	}
}

// gcSummary renders counts as "1 job, 2 evaluations, ..." (kinds with
// none left out).
func gcSummary(c api.GCCounts) string {
	var parts []string
	for _, k := range gcKinds {
		if n := k.count(c); n > 0 {
			name := k.name
			if n == 1 {
				name = strings.TrimSuffix(name, "s")
			}
			parts = append(parts, fmt.Sprintf("%d %s", n, name))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
