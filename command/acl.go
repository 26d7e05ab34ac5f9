package command

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newACLCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Manage ACLs: bootstrap, policies and tokens",
		Long: `Manage access control. With ACLs on (acl { enabled = true } in every
agent's configuration, or drover agent -acl-enabled), requests carry a
token (-token or DROVER_TOKEN) and may do what the token's policies
allow.

  drover acl bootstrap                         once per cluster: prints the first
                                               management token's Secret ID
  drover acl policy apply NAME FILE            create or replace a policy (HCL)
  drover acl token create -name N -policy P    make a client token

Every command but bootstrap and token self needs a management token.`,
	}
	cmd.AddCommand(newACLBootstrapCommand(g), newACLPolicyCommand(g), newACLTokenCommand(g))
	return cmd
}

func newACLBootstrapCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Make the cluster's first management token (once per cluster)",
		Long: `Make the cluster's first management token and print it, Secret ID
included. It works once per cluster: keep the Secret ID safe (it is never
shown again) and use it to make policies and other tokens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tok, _, err := c.ACL().Bootstrap()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, tok)
			}
			printACLToken(g.ui, tok)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printACLToken prints a token's fields, the Secret ID only when the
// token carries it (bootstrap and create).
func printACLToken(u *ui, t *api.ACLToken) {
	policies := "n/a"
	if len(t.Policies) > 0 {
		policies = strings.Join(t.Policies, ", ")
	}
	kv := [][2]string{{"Accessor ID", t.AccessorID}}
	if t.SecretID != "" {
		kv = append(kv, [2]string{"Secret ID", t.SecretID})
	}
	kv = append(kv,
		[2]string{"Name", orNone(t.Name)},
		[2]string{"Type", t.Type},
		[2]string{"Policies", policies},
		[2]string{"Create Time", formatUnixNano(t.CreateTime)},
		[2]string{"Expiry Time", formatUnixNano(t.ExpirationTime)},
		[2]string{"Create Index", fmt.Sprint(t.CreateIndex)},
		[2]string{"Modify Index", fmt.Sprint(t.ModifyIndex)},
	)
	printKV(u, kv)
}

func newACLPolicyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Manage ACL policies",
		Long: `Manage ACL policies: named rules in HCL, for example

  namespace "team-a" {
    policy       = "write"              # deny, read, write or scale
    capabilities = ["alloc-exec"]       # added to what the policy grants
  }
  namespace "team-*" { policy = "read" } # globs: the most specific match wins
  node     { policy = "read" }          # deny, read or write
  agent    { policy = "read" }
  operator { policy = "read" }`,
	}
	cmd.AddCommand(newACLPolicyApplyCommand(g), newACLPolicyListCommand(g), newACLPolicyInfoCommand(g), newACLPolicyDeleteCommand(g))
	return cmd
}

func newACLPolicyApplyCommand(g *globals) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "apply [-description D] NAME FILE",
		Short: "Create or replace a policy from an HCL file (- reads standard input)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("acl policy apply takes a NAME and a FILE (- for standard input), got %d arguments", len(args))
			}
			name, file := args[0], args[1]
			rules, err := readRulesFile(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			meta, err := c.ACL().PolicyApply(&api.ACLPolicy{Name: name, Description: description, Rules: rules})
			if err != nil {
				return locateRulesError(err, file)
			}
			g.ui.Printf("Successfully wrote %q ACL policy (index %d)\n", name, meta.LastIndex)
			return nil
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "description of the policy")
	return cmd
}

func readRulesFile(stdin io.Reader, file string) (string, error) {
	var (
		b   []byte
		err error
	)
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return "", fmt.Errorf("read policy file: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("policy file %s is empty; a policy needs at least one rule, e.g. namespace \"default\" { policy = \"read\" }", file)
	}
	return string(b), nil
}

// locateRulesError points the server's parse errors, which name the
// rules "rules" (rules:LINE:COL: ...), at the file they came from.
func locateRulesError(err error, file string) error {
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_request" || file == "-" {
		return err
	}
	located := *apiErr
	located.Message = strings.ReplaceAll(apiErr.Message, "\nrules:", "\n"+file+":")
	return &located
}

func newACLPolicyListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			policies, _, err := c.ACL().Policies(nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, policies)
			}
			if len(policies) == 0 {
				g.ui.Printf("No policies\n")
				return nil
			}
			rows := [][]string{{"Name", "Description"}}
			for _, p := range policies {
				rows = append(rows, []string{p.Name, p.Description})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newACLPolicyInfoCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info NAME",
		Short: "Show a policy and its rules",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("acl policy info takes one policy NAME, got %d arguments", len(args))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			p, _, err := c.ACL().PolicyInfo(args[0], nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, p)
			}
			printKV(g.ui, [][2]string{
				{"Name", p.Name},
				{"Description", orNone(p.Description)},
				{"Create Index", fmt.Sprint(p.CreateIndex)},
				{"Modify Index", fmt.Sprint(p.ModifyIndex)},
			})
			g.ui.Printf("\nRules\n\n%s\n", strings.TrimRight(p.Rules, "\n"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newACLPolicyDeleteCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy (tokens naming it lose what it granted)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("acl policy delete takes one policy NAME, got %d arguments", len(args))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.ACL().PolicyDelete(args[0]); err != nil {
				return err
			}
			g.ui.Printf("Successfully deleted %q ACL policy\n", args[0])
			return nil
		},
	}
}

func newACLTokenCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage ACL tokens",
	}
	cmd.AddCommand(newACLTokenCreateCommand(g), newACLTokenListCommand(g), newACLTokenInfoCommand(g),
		newACLTokenSelfCommand(g), newACLTokenDeleteCommand(g))
	return cmd
}

func newACLTokenCreateCommand(g *globals) *cobra.Command {
	var (
		name, typ string
		policies  []string
		ttl       time.Duration
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "create -name N [-type client|management] -policy P... [-ttl 1h]",
		Short: "Make a token; its Secret ID is printed once",
		Long: `Make a token. A client token (the default) may do what its policies
(-policy, repeatable) allow; a management token may do everything and
takes no policies. -ttl makes the token expire. The Secret ID is printed
now and never again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch typ {
			case api.ACLTokenTypeClient, api.ACLTokenTypeManagement:
			default:
				return fmt.Errorf("-type %q is invalid; accepted: client, management", typ)
			}
			if typ == api.ACLTokenTypeClient && len(policies) == 0 {
				return fmt.Errorf("a client token needs at least one -policy NAME (see drover acl policy list)")
			}
			if ttl < 0 {
				return fmt.Errorf("-ttl %s is negative; give a positive duration like 1h", ttl)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			tok, _, err := c.ACL().TokenCreate(&api.ACLTokenCreateRequest{Name: name, Type: typ, Policies: policies, TTL: ttl})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, tok)
			}
			printACLToken(g.ui, tok)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "name of the token (shown in lists and in refusals)")
	fl.StringVar(&typ, "type", api.ACLTokenTypeClient, "token type: client or management")
	fl.StringArrayVar(&policies, "policy", nil, "policy of the token (repeatable; client tokens)")
	fl.DurationVar(&ttl, "ttl", 0, "expire the token after this long, e.g. 1h (default: never)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newACLTokenListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tokens, _, err := c.ACL().Tokens(nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, tokens)
			}
			rows := [][]string{{"Name", "Type", "Accessor ID", "Policies", "Expires"}}
			for _, t := range tokens {
				expires := "never"
				if t.ExpirationTime != 0 {
					expires = formatUnixNano(t.ExpirationTime)
					if time.Now().UnixNano() >= t.ExpirationTime {
						expires += " (expired)"
					}
				}
				rows = append(rows, []string{orNone(t.Name), t.Type, t.AccessorID, orNone(strings.Join(t.Policies, ",")), expires})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newACLTokenInfoCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info ACCESSOR",
		Short: "Show a token by accessor ID (never its secret)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("acl token info takes one ACCESSOR ID, got %d arguments", len(args))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			tok, _, err := c.ACL().TokenInfo(args[0], nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, tok)
			}
			printACLToken(g.ui, tok)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newACLTokenSelfCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "self",
		Short: "Show the token this command runs with (-token or DROVER_TOKEN)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tok, _, err := c.ACL().TokenSelf(nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, tok)
			}
			printACLToken(g.ui, tok)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newACLTokenDeleteCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ACCESSOR",
		Short: "Delete a token by accessor ID; it stops working at once",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("acl token delete takes one ACCESSOR ID, got %d arguments", len(args))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.ACL().TokenDelete(args[0]); err != nil {
				return err
			}
			g.ui.Printf("Token %s successfully deleted\n", args[0])
			return nil
		},
	}
}
