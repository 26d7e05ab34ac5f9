package command

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/jobspec"
)

func newQuotaCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Manage quotas: init, apply, list, status, delete",
		Long: `A quota bounds what the allocations of one namespace hold at once: CPU
(MHz), memory (MB) and the number of allocations (0 is unlimited). Only
allocations that run or are about to count. A placement that would go
over fails with, e.g., quota "team-a" exhausted: memory 1024/1024 MB, and
waits (blocked) until allocations of the namespace stop or the quota is
raised.

A quota binds to a namespace by its namespace attribute, or by the
namespace's own quota (drover namespace apply -quota NAME ns); if both are
set, the namespace's wins.

  drover quota init                     write an example quota.hcl
  drover quota apply quota.hcl          create or update the quota
  drover quota status team-a            limits and usage
  drover quota list
  drover quota delete team-a            once no namespace names it`,
	}
	cmd.AddCommand(newQuotaInitCommand(g), newQuotaApplyCommand(g), newQuotaListCommand(g), newQuotaStatusCommand(g), newQuotaDeleteCommand(g))
	return cmd
}

func newQuotaInitCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write an example quota file (quota.hcl)",
		Long:  `Write an example quota file to FILE (quota.hcl by default); an existing file is not overwritten.`,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "quota.hcl"
			if len(args) == 1 {
				path = args[0]
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s already exists; remove it or name another file: drover quota init FILE", path)
			}
			if err != nil {
				return fmt.Errorf("write example quota: %w", err)
			}
			if _, err := f.WriteString(jobspec.ExampleQuotaFile); err != nil {
				f.Close()
				return fmt.Errorf("write example quota: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("write example quota: %w", err)
			}
			g.ui.Printf("Example quota specification written to %s\n", path)
			return nil
		},
	}
}

func newQuotaApplyCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE",
		Short: "Create or update a quota from an HCL file",
		Long: `Create or update the quota described by FILE (see drover quota init):

  name        = "team-a"
  description = "team A's share"
  namespace   = "team-a"
  limit {
    cpu         = 4000 # MHz
    memory      = 1024 # MB
    allocations = 20
  }

Nomad's limit { region = "global" region_limit { cpu = .. memory = .. } }
is accepted too. Problems are reported at file:line:col.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("quota apply takes one quota FILE, got %d arguments", len(args))
			}
			spec, err := jobspec.ParseQuotaFile(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.Quotas().Register(&api.QuotaSpec{
				Name: spec.Name, Description: spec.Description, Namespace: spec.Namespace,
				Limits: api.QuotaLimits{CPU: spec.Limits.CPU, MemoryMB: spec.Limits.MemoryMB, Allocations: spec.Limits.Allocations},
			}); err != nil {
				return err
			}
			g.ui.Printf("Successfully applied quota specification %q!\n", spec.Name)
			return nil
		},
	}
}

func newQuotaListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List quotas",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, _, err := c.Quotas().List(nil)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []*api.QuotaSpec{}
				}
				return printJSON(g.ui, list)
			}
			rows := [][]string{{"Name", "Namespace", "CPU (MHz)", "Memory (MB)", "Allocations", "Description"}}
			for _, q := range list {
				rows = append(rows, []string{q.Name, orNone(q.Namespace), limitString(q.Limits.CPU), limitString(q.Limits.MemoryMB), limitString(q.Limits.Allocations), q.Description})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// limitString renders a limit; 0 is unlimited.
func limitString(v int64) string {
	if v == 0 {
		return "unlimited"
	}
	return fmt.Sprint(v)
}

func newQuotaStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a quota's limits and what its namespace uses",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("quota status takes one quota NAME, got %d arguments", len(args))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			spec, _, err := c.Quotas().Info(args[0], nil)
			if err != nil {
				if api.IsNotFound(err) {
					return fmt.Errorf("quota %q not found; see drover quota list", args[0])
				}
				return err
			}
			usage, _, err := c.Quotas().Usage(args[0], nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, map[string]interface{}{"Quota": spec, "Usage": usage})
			}
			printKV(g.ui, [][2]string{
				{"Name", spec.Name},
				{"Description", orNone(spec.Description)},
				{"Namespace", orNone(usage.Namespace)},
				{"Create Index", fmt.Sprint(spec.CreateIndex)},
				{"Modify Index", fmt.Sprint(spec.ModifyIndex)},
			})
			g.ui.Printf("\nUsage\n")
			printTable(g.ui, [][]string{
				{"Dimension", "Used", "Limit"},
				{"cpu (MHz)", fmt.Sprint(usage.Used.CPU), limitString(usage.Limits.CPU)},
				{"memory (MB)", fmt.Sprint(usage.Used.MemoryMB), limitString(usage.Limits.MemoryMB)},
				{"allocations", fmt.Sprint(usage.Used.Allocations), limitString(usage.Limits.Allocations)},
			})
			if usage.Namespace == "" {
				g.ui.Printf("\nNo namespace is held to this quota: set namespace in the quota file, or drover namespace apply -quota %s NAMESPACE\n", spec.Name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newQuotaDeleteCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a quota that no namespace names",
		Long: `Delete the quota NAME. A quota that a namespace names (drover namespace
apply -quota NAME ns) is not deleted: unbind it first with
drover namespace apply -quota "" NS.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("quota delete takes one quota NAME, got %d arguments", len(args))
			}
			if strings.TrimSpace(args[0]) == "" {
				return fmt.Errorf("quota delete: the NAME is empty")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.Quotas().Delete(args[0]); err != nil {
				return err
			}
			g.ui.Printf("Successfully deleted quota %q!\n", args[0])
			return nil
		},
	}
}
