package command

import (
	"sort"

	"github.com/spf13/cobra"
)

// newAgentInfoCommand is `drover agent info`: what the agent at -address
// runs, and whether it is closed to strangers.
func newAgentInfoCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show the agent's roles, addresses and security status",
		Long: `Show what the agent at -address runs (server, client), where it
listens, its Raft state when it is a server, and whether it is secure:
"Secure: false" lists what is open to anyone who reaches its ports (plain
RPC and Raft, unencrypted gossip, an HTTP API without client
certificates) and the setting that closes it. See docs/security.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			self, err := c.Agent().Self()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, self)
			}
			if cfg, ok := self["Config"].(map[string]interface{}); ok {
				g.ui.Printf("Agent\n")
				keys := make([]string, 0, len(cfg))
				for k := range cfg {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					g.ui.Printf("  %-12s = %v\n", k, cfg[k])
				}
			}
			if id, ok := self["NodeID"]; ok {
				g.ui.Printf("  %-12s = %v\n", "NodeID", id)
			}
			if stats, ok := self["Stats"].(map[string]interface{}); ok {
				if raft, ok := stats["raft"].(map[string]interface{}); ok {
					g.ui.Printf("Raft\n")
					for _, k := range []string{"state", "term", "last_log_index", "commit_index", "applied_index", "num_peers", "last_contact"} {
						if v, ok := raft[k]; ok {
							g.ui.Printf("  %-14s = %v\n", k, v)
						}
					}
				}
			}
			secure, _ := self["Secure"].(bool)
			g.ui.Printf("Security\n  Secure = %v\n", secure)
			if sec, ok := self["Security"].(map[string]interface{}); ok {
				if lo, _ := sec["LoopbackOnly"].(bool); lo {
					g.ui.Printf("  (listens on loopback only: reachable from this host alone)\n")
				}
				if ws, ok := sec["Warnings"].([]interface{}); ok {
					for _, w := range ws {
						g.ui.Printf("  WARNING: %v\n", w)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the agent's /v1/agent/self as JSON")
	return cmd
}
