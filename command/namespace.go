package command

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newNamespaceCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "namespace",
		Short: "Manage namespaces: apply, list, status, delete",
		Long: `Namespaces partition the cluster's jobs (and their allocations,
evaluations and deployments): a job ID may repeat across namespaces, and
ACL policies grant capabilities per namespace. Jobs that name none are in
the "default" namespace, which always exists.

  drover namespace apply -description "Team A" team-a   create or update
  drover -namespace team-a job run web.hcl               run a job there
  drover -namespace '*' job status                       every namespace's jobs
  drover namespace delete team-a                         once it has no jobs`,
	}
	cmd.AddCommand(newNamespaceApplyCommand(g), newNamespaceListCommand(g), newNamespaceStatusCommand(g), newNamespaceDeleteCommand(g))
	return cmd
}

func newNamespaceApplyCommand(g *globals) *cobra.Command {
	var description, quota string
	cmd := &cobra.Command{
		Use:   "apply [-description D] [-quota Q] NAME",
		Short: "Create a namespace, or update one",
		Long: `Create the namespace NAME (1-128 letters, digits and dashes), or
update it: the flags given replace the namespace's description and quota;
those not given are kept.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("namespace apply takes one namespace NAME, got %d arguments", len(args))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ns := &api.Namespace{Name: args[0]}
			existing, _, err := c.Namespaces().Info(args[0], nil)
			switch {
			case err == nil:
				ns = existing
			case !api.IsNotFound(err):
				return err
			}
			if cmd.Flags().Changed("description") {
				ns.Description = description
			}
			if cmd.Flags().Changed("quota") {
				ns.Quota = quota
			}
			if _, err := c.Namespaces().Register(ns); err != nil {
				return err
			}
			g.ui.Printf("Successfully applied namespace %q!\n", ns.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what the namespace is for")
	cmd.Flags().StringVar(&quota, "quota", "", "name of the quota specification the namespace is held to")
	return cmd
}

func newNamespaceListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List namespaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, _, err := c.Namespaces().List(nil)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []*api.Namespace{}
				}
				return printJSON(g.ui, list)
			}
			rows := [][]string{{"Name", "Description"}}
			for _, ns := range list {
				rows = append(rows, []string{ns.Name, ns.Description})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newNamespaceStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a namespace and how many jobs it holds",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("namespace status takes one namespace NAME, got %d arguments", len(args))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ns, _, err := c.Namespaces().Info(args[0], nil)
			if err != nil {
				if api.IsNotFound(err) {
					return fmt.Errorf("namespace %q not found; see drover namespace list", args[0])
				}
				return err
			}
			jobs, _, err := c.WithNamespace(ns.Name).Jobs().List(nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, map[string]interface{}{"Namespace": ns, "Jobs": len(jobs)})
			}
			running := 0
			for _, j := range jobs {
				if j.Status == "running" {
					running++
				}
			}
			printKV(g.ui, [][2]string{
				{"Name", ns.Name},
				{"Description", orNone(ns.Description)},
				{"Quota", orNone(ns.Quota)},
				{"Jobs", fmt.Sprintf("%d (%d running)", len(jobs), running)},
				{"Create Index", fmt.Sprint(ns.CreateIndex)},
				{"Modify Index", fmt.Sprint(ns.ModifyIndex)},
			})
			if len(ns.Meta) > 0 {
				g.ui.Printf("\nMetadata\n")
				keys := make([]string, 0, len(ns.Meta))
				for k := range ns.Meta {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				meta := make([][2]string, len(keys))
				for i, k := range keys {
					meta[i] = [2]string{k, ns.Meta[k]}
				}
				printKV(g.ui, meta)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newNamespaceDeleteCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a namespace that holds no jobs",
		Long: `Delete the namespace NAME. A namespace that still holds jobs, stopped
ones included, is not deleted: purge them first with
drover job stop -purge -namespace NAME JOB. The "default" namespace
cannot be deleted.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("namespace delete takes one namespace NAME, got %d arguments", len(args))
			}
			if strings.TrimSpace(args[0]) == "" {
				return fmt.Errorf("namespace delete: the NAME is empty")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.Namespaces().Delete(args[0]); err != nil {
				return err
			}
			g.ui.Printf("Successfully deleted namespace %q!\n", args[0])
			return nil
		},
	}
}

// inNamespaceHint adds, to a prefix lookup that found nothing, which
// namespace was searched and how to search others: allocations and
// deployments are listed per namespace.
func inNamespaceHint(c *api.Client, err error) error {
	if err == nil || !strings.HasPrefix(err.Error(), "no ") || c.Namespace() == api.AllNamespaces {
		return err
	}
	return fmt.Errorf("%w in namespace %q; pass -namespace NAME, or -namespace '*' to look in every namespace", err, namespaceName(c))
}
