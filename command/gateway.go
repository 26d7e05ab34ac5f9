package command

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func newGatewayCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Inspect a client agent's HTTP ingress gateway: routes",
		Long: `A client agent started with -gateway (gateway { enabled = true }) sends
HTTP requests to the passing instances of the services whose route blocks
match their host and path. These commands read the live table of the
agent at -address (GET /v1/client/gateway, agent:read with ACLs on).

  drover gateway routes                      the agent's routing table
  drover -address http://10.0.0.5:4646 gateway routes -json`,
	}
	cmd.AddCommand(newGatewayRoutesCommand(g))
	return cmd
}

// gatewayStatus mirrors the agent's GET /v1/client/gateway answer (the
// command package does not import client/gateway).
type gatewayStatus struct {
	Listeners []struct {
		Kind    string
		Address string
	}
	Certificates []string
	Routes       []gatewayRoute
}

type gatewayRoute struct {
	Namespace    string
	Service      string
	Host         string `json:",omitempty"`
	Path         string
	StripPrefix  bool   `json:",omitempty"`
	HTTPSOnly    bool   `json:",omitempty"`
	CertName     string `json:",omitempty"`
	CanaryWeight int    `json:",omitempty"`
	Backends     []struct {
		Address  string
		Canary   bool `json:",omitempty"`
		Active   int64
		Requests uint64
		Failures uint64
	}
	Requests uint64
	Errors   uint64
}

func newGatewayRoutesCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "routes [-json]",
		Short: "Print the gateway's live routing table",
		Long: `Print the routing table of the gateway on the agent at -address: each
route's host ("*" for any host), path prefix, service and namespace, its
passing backends (canaries counted apart) and the requests it answered.

  drover gateway routes
  drover gateway routes -json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			raw, err := c.Agent().Gateway()
			if err != nil {
				return err
			}
			if asJSON {
				g.ui.Printf("%s\n", strings.TrimSpace(string(raw)))
				return nil
			}
			var st gatewayStatus
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("decode the gateway's status: %w", err)
			}
			for _, l := range st.Listeners {
				g.ui.Printf("Listening (%s): %s\n", l.Kind, l.Address)
			}
			if len(st.Routes) == 0 {
				g.ui.Printf("No routes\n")
				return nil
			}
			rows := [][]string{{"HOST", "PATH", "SERVICE", "NAMESPACE", "BACKENDS", "REQUESTS"}}
			for _, r := range st.Routes {
				host := r.Host
				if host == "" {
					host = "*"
				}
				canary := 0
				for _, b := range r.Backends {
					if b.Canary {
						canary++
					}
				}
				backends := strconv.Itoa(len(r.Backends))
				if canary > 0 {
					backends += fmt.Sprintf(" (%d canary, %d%%)", canary, r.CanaryWeight)
				}
				rows = append(rows, []string{host, r.Path, r.Service, r.Namespace, backends, strconv.FormatUint(r.Requests, 10)})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
