package command

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newServiceCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Discover services: list, info, routes",
		Long: `Services are the names jobs offer their allocations under (a group's or a
task's service block). Each running allocation of the group is an instance
of each of its services, at its node's address and the port of the
service's port label, passing, warning or critical by its checks.

  drover service list                        service names of the namespace
  drover -namespace '*' service list         of every namespace
  drover service info web                    web's passing instances
  drover service info -status any web        all of web's instances
  drover -namespace team-a service info api  api's instances in team-a
  drover service routes                      HTTP routes and their backends`,
	}
	cmd.AddCommand(newServiceListCommand(g), newServiceInfoCommand(g), newServiceRoutesCommand(g))
	return cmd
}

func newServiceListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [-json]",
		Short: "List service names with their passing and total instances",
		Long: `List the service names of the namespace (-namespace, '*' for every
namespace you may read): their tags (the union of their instances') and
how many of their instances pass of how many there are.

  drover service list
  drover -namespace '*' service list -json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, _, err := c.Services().List(nil)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []*api.ServiceListStub{}
				}
				return printJSON(g.ui, list)
			}
			if len(list) == 0 {
				g.ui.Printf("No services\n")
				return nil
			}
			rows := [][]string{{"Name", "Namespace", "Tags", "Passing/Total"}}
			for _, s := range list {
				rows = append(rows, []string{s.Name, s.Namespace, strings.Join(s.Tags, ","), fmt.Sprintf("%d/%d", s.Passing, s.Instances)})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newServiceInfoCommand(g *globals) *cobra.Command {
	var asJSON bool
	var status string
	cmd := &cobra.Command{
		Use:   "info [-status passing|warning|critical|terminating|any] [-json] NAME",
		Short: "Show a service's instances",
		Long: `Show the instances of service NAME in the namespace (-namespace): the
allocation, node, address and port of each, its status and its checks.
By default only passing instances (those traffic goes to); -status any
shows all of them. A name without instances shows none; it is not an
error.

  drover service info web
  drover service info -status any web
  drover service info -status critical -json web`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("service info takes one service NAME, got %d arguments", len(args))
			}
			filter := status
			switch status {
			case "any":
				filter = ""
			case api.ServiceStatusPassing, api.ServiceStatusWarning, api.ServiceStatusCritical, api.ServiceStatusTerminating:
			default:
				return fmt.Errorf("-status %q: use passing, warning, critical, terminating or any", status)
			}
			if g.namespace == api.AllNamespaces {
				return fmt.Errorf("-namespace '*' is for listing; service info reads one namespace: name it with -namespace")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			list, _, err := c.Services().Info(args[0], filter, nil)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []*api.ServiceInstance{}
				}
				return printJSON(g.ui, list)
			}
			if len(list) == 0 {
				if filter == "" {
					g.ui.Printf("No instances of service %q\n", args[0])
				} else {
					g.ui.Printf("No %s instances of service %q (-status any shows all)\n", filter, args[0])
				}
				return nil
			}
			printServiceAddresses(g.ui, list)
			rows := [][]string{{"ID", "Node", "Address", "Status", "Checks"}}
			for _, inst := range list {
				rows = append(rows, []string{short(inst.AllocID), short(inst.NodeID), net.JoinHostPort(inst.Address, strconv.Itoa(inst.Port)), inst.Status, checksSummary(inst.Checks)})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&status, "status", api.ServiceStatusPassing, "show only instances in this status: passing, warning, critical, terminating, or any")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newServiceRoutesCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "routes [-json]",
		Short: "List the HTTP routes of services with their passing backends",
		Long: `List the routes (a service's route blocks) of the namespace (-namespace,
'*' for every namespace you may read), sorted by host then path: the
service they send requests to, how many of its instances pass, how many
of those are canaries, and their addresses. A host of "*" matches any
host.

  drover service routes
  drover -namespace '*' service routes -json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, _, err := c.Services().Routes(nil)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []*api.RouteListStub{}
				}
				return printJSON(g.ui, list)
			}
			if len(list) == 0 {
				g.ui.Printf("No routes\n")
				return nil
			}
			rows := [][]string{{"Host", "Path", "Service", "Namespace", "Passing", "Canary", "Backends"}}
			for _, r := range list {
				host, path := "*", "/"
				if r.Route != nil {
					if r.Route.Host != "" {
						host = r.Route.Host
					}
					path = r.Route.Path
				}
				backends := "-"
				if len(r.Backends) > 0 {
					backends = strings.Join(r.Backends, ",")
				}
				rows = append(rows, []string{host, path, r.ServiceName, r.Namespace, strconv.Itoa(r.Passing), strconv.Itoa(r.Canary), backends})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printServiceAddresses prints the service's virtual address and
// published port, when its instances carry them, above the table: the
// addresses every client's proxy answers on for it.
func printServiceAddresses(u *ui, list []*api.ServiceInstance) {
	var vip string
	published := 0
	for _, inst := range list {
		if vip == "" && inst.VIP != "" {
			vip = net.JoinHostPort(inst.VIP, strconv.Itoa(inst.VIPPort))
		}
		if published == 0 {
			published = inst.PublishedPort
		}
	}
	if vip != "" {
		u.Printf("VIP            = %s\n", vip)
	}
	if published != 0 {
		u.Printf("Published port = %d\n", published)
	}
	if vip != "" || published != 0 {
		u.Printf("\n")
	}
}

// checksSummary is "2/3 passing (alive: critical)": how many checks
// pass, and the status of the others.
func checksSummary(checks []*api.CheckStatus) string {
	if len(checks) == 0 {
		return "-"
	}
	passing := 0
	var other []string
	for _, c := range checks {
		if c.Status == api.ServiceStatusPassing {
			passing++
			continue
		}
		other = append(other, c.Check+": "+c.Status)
	}
	out := fmt.Sprintf("%d/%d passing", passing, len(checks))
	if len(other) > 0 {
		out += " (" + strings.Join(other, ", ") + ")"
	}
	return out
}
