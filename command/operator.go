package command

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newServerCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Inspect and manage the servers",
	}
	cmd.AddCommand(newServerMembersCommand(g), newServerLeaveCommand(g))
	return cmd
}

func newServerMembersCommand(g *globals) *cobra.Command {
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the servers in the gossip pool, their status, and which one leads",
		Long: `List the servers the agent at -address knows from gossip: name,
address, status (alive, suspect, failed, left) and the leader. -all also
lists client agents.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			members, err := c.Agent().Members()
			if err != nil {
				return err
			}
			var shown []*api.Member
			for _, m := range members {
				if all || m.Tags["rpc_addr"] != "" {
					shown = append(shown, m)
				}
			}
			if asJSON {
				return printJSON(g.ui, shown)
			}
			rows := [][]string{{"Name", "Address", "Port", "Status", "Leader", "Role", "Bootstrap Expect", "DC"}}
			for _, m := range shown {
				rows = append(rows, []string{m.Name, m.Addr, fmt.Sprint(m.Port), m.Status, fmt.Sprint(m.Leader), m.Tags["role"], orNone(m.Tags["bootstrap_expect"]), m.Tags["dc"]})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&all, "all", false, "list client agents too")
	return cmd
}

func newServerLeaveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Make the agent at -address leave the cluster gracefully and stop",
		Long: `The agent at -address leaves the cluster: a server that leads hands
leadership on, gossip announces the departure, and the leader removes the
server from Raft. The agent then shuts down. Its containers, if it is a
client, keep running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Agent().Leave(); err != nil {
				return err
			}
			g.ui.Printf("Agent at %s left the cluster and is shutting down\n", c.Address())
			return nil
		},
	}
}

func newOperatorCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Cluster operations",
	}
	raftCmd := &cobra.Command{
		Use:   "raft",
		Short: "Inspect and change the Raft peer set",
	}
	raftCmd.AddCommand(newRaftListPeersCommand(g), newRaftRemovePeerCommand(g))
	cmd.AddCommand(raftCmd, newOperatorSchedulerCommand(g), newOperatorGossipCommand(g), newOperatorSnapshotCommand(g))
	cmd.AddCommand(newOperatorRootCommand(g))
	return cmd
}

func newRaftListPeersCommand(g *globals) *cobra.Command {
	var asJSON, stale bool
	cmd := &cobra.Command{
		Use:   "list-peers",
		Short: "List the Raft peers: ID, address, state (leader/follower), voter",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cfg, err := c.Operator().RaftGetConfiguration(&api.QueryOptions{AllowStale: stale})
			if err != nil {
				return err
			}
			sort.Slice(cfg.Servers, func(i, j int) bool { return cfg.Servers[i].Node < cfg.Servers[j].Node })
			if asJSON {
				return printJSON(g.ui, cfg)
			}
			rows := [][]string{{"Node", "ID", "Address", "State", "Voter"}}
			for _, s := range cfg.Servers {
				state := "follower"
				if s.Leader {
					state = "leader"
				}
				rows = append(rows, []string{orNone(s.Node), s.ID, s.Address, state, fmt.Sprint(s.Voter)})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the agent's server even without a leader")
	return cmd
}

func newRaftRemovePeerCommand(g *globals) *cobra.Command {
	var address, id string
	cmd := &cobra.Command{
		Use:   "remove-peer (-peer-address ADDR | -peer-id ID)",
		Short: "Remove a server (normally a dead one) from the Raft peer set",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (address == "") == (id == "") {
				return fmt.Errorf("give -peer-address or -peer-id (one of them)")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if address != "" {
				err = c.Operator().RaftRemovePeerByAddress(address)
			} else {
				err = c.Operator().RaftRemovePeerByID(id)
			}
			if err != nil {
				return err
			}
			g.ui.Printf("Removed peer %s%s from Raft\n", address, id)
			return nil
		},
	}
	cmd.Flags().StringVar(&address, "peer-address", "", "RPC address (host:port) of the peer")
	cmd.Flags().StringVar(&id, "peer-id", "", "Raft ID of the peer")
	return cmd
}
