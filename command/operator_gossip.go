package command

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

// newOperatorGossipCommand is `drover operator gossip`: the gossip
// encryption keyring. Everything but generate talks to the agent at
// -address, which carries the change to every member of the pool.
func newOperatorGossipCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gossip",
		Short: "Manage gossip encryption",
	}
	keyring := &cobra.Command{
		Use:   "keyring",
		Short: "Manage the gossip encryption keyring of every agent",
		Long: `Every agent of a closed cluster encrypts gossip with the primary key of
its keyring and accepts any installed key. Rotate a key without downtime:

  drover operator gossip keyring generate          make a new key
  drover operator gossip keyring install NEW_KEY   every agent accepts it
  drover operator gossip keyring use NEW_KEY       every agent sends with it
  drover operator gossip keyring remove OLD_KEY    the old key is gone

install, use and remove are sent to the agent at -address, which passes
the change to every alive member and waits until each one shows it (up
to 10s); members that did not are named. The agents keep their keyring
in <data_dir>/gossip/keyring, which wins over -encrypt at restart. The
agents must have been started with -encrypt.`,
	}
	keyring.AddCommand(
		newKeyringGenerateCommand(g),
		newKeyringListCommand(g),
		newKeyringChangeCommand(g, "install", "Install KEY on every agent as a secondary key (accepted, not yet sent with)",
			func(k *api.Keyring, key string) (*api.KeyringResponse, error) { return k.Install(key) }, "Installed"),
		newKeyringChangeCommand(g, "use", "Make KEY, installed on every alive agent, the primary key every agent sends with",
			func(k *api.Keyring, key string) (*api.KeyringResponse, error) { return k.Use(key) }, "Now using"),
		newKeyringChangeCommand(g, "remove", "Remove KEY, which must be no agent's primary key, from every agent",
			func(k *api.Keyring, key string) (*api.KeyringResponse, error) { return k.Remove(key) }, "Removed"),
	)
	cmd.AddCommand(keyring)
	return cmd
}

func newKeyringGenerateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "generate",
		Short: "Print a new random gossip key (base64 of 32 bytes); needs no agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return fmt.Errorf("generate a gossip key: %w", err)
			}
			g.ui.Printf("%s\n", base64.StdEncoding.EncodeToString(key))
			return nil
		},
	}
}

func newKeyringListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the gossip keys, how many alive agents hold each, and which is primary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.Agent().Keyring().List()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, list)
			}
			rows := [][]string{{"Key", "Fingerprint", "Installed", "Primary On", "Primary Here"}}
			for _, k := range list.Keys {
				key := k.Key
				if key == "" {
					key = "(not on this agent)"
				}
				rows = append(rows, []string{key, k.Fingerprint,
					fmt.Sprintf("%d/%d", k.Installed, list.Members), fmt.Sprintf("%d/%d", k.PrimaryOn, list.Members), fmt.Sprint(k.Primary)})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// newKeyringChangeCommand builds install, use and remove: one KEY
// argument, sent to the agent at -address.
func newKeyringChangeCommand(g *globals, name, short string, op func(*api.Keyring, string) (*api.KeyringResponse, error), done string) *cobra.Command {
	return &cobra.Command{
		Use:   name + " KEY",
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("keyring %s takes one KEY (base64 of 16, 24 or 32 bytes), got %d arguments", name, len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := op(c.Agent().Keyring(), args[0])
			if err != nil {
				return err
			}
			g.ui.Printf("%s the key on %d/%d alive agents\n", done, res.Reflected, res.Members)
			return nil
		},
	}
}
