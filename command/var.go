package command

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newVarCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "var",
		Short: "Manage variables: put, get, list, purge",
		Long: `Variables are small maps of strings (configuration and secrets) kept by
the servers under a path in a namespace, encrypted at rest: the leader
seals them with AES-256-GCM under a root key that Raft holds only wrapped
by a key-encryption key on the servers' disks. Tasks read them through
template blocks ({{ with var "app/config" }}{{ .greeting }}{{ end }}).

  drover var put app/config greeting=hello port=8080
  drover var put certs/shop cert=@shop.pem key=@shop-key.pem
  drover var get app/config
  drover var get -item greeting app/config
  drover var list app/
  drover var purge app/config

-namespace picks the namespace (default $DROVER_NAMESPACE or "default").
A write replaces all of the variable's items. -cas N writes (or purges)
only if the variable's modify index is N (0: only if it does not exist),
and fails with a conflict otherwise, changing nothing.`,
	}
	cmd.AddCommand(newVarPutCommand(g), newVarGetCommand(g), newVarListCommand(g), newVarPurgeCommand(g))
	return cmd
}

// casFlag is an optional -cas N.
type casFlag struct {
	set bool
	n   uint64
}

func (c *casFlag) String() string {
	if !c.set {
		return ""
	}
	return strconv.FormatUint(c.n, 10)
}

func (c *casFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("-cas takes a modify index (a non-negative integer), not %q", s)
	}
	c.set, c.n = true, n
	return nil
}

func (c *casFlag) Type() string { return "index" }

func (c *casFlag) ptr() *uint64 {
	if !c.set {
		return nil
	}
	n := c.n
	return &n
}

// checkVarPath refuses a path the URL would change (empty, "." or ".."
// segments): the servers check the rest and answer 400.
func checkVarPath(path string) error {
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("variable path %q is invalid: use segments of letters, digits, '_', '.', '~' and '-' separated by single '/'", path)
		}
	}
	return nil
}

// parseItems reads k=v and k=@file arguments.
func parseItems(args []string) (map[string]string, error) {
	items := make(map[string]string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("item %q is not KEY=VALUE (or KEY=@FILE to read the value from a file)", a)
		}
		if _, dup := items[k]; dup {
			return nil, fmt.Errorf("item %q is given twice", k)
		}
		if file, ok := strings.CutPrefix(v, "@"); ok {
			b, err := readBounded(file, api.MaxVariableSize)
			if err != nil {
				return nil, fmt.Errorf("item %q: %w", k, err)
			}
			v = string(b)
		}
		items[k] = v
	}
	return items, nil
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes, the limit of a variable", path, limit)
	}
	return b, nil
}

func newVarPutCommand(g *globals) *cobra.Command {
	var cas casFlag
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "put [-cas N] PATH KEY=VALUE|KEY=@FILE...",
		Short: "Write a variable (all its items)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if err := checkVarPath(path); err != nil {
				return err
			}
			if len(args) < 2 {
				return fmt.Errorf("var put needs at least one item: drover var put %s KEY=VALUE", path)
			}
			items, err := parseItems(args[1:])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			v, _, err := c.Variables().Put(path, items, cas.ptr())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.ui, v)
			}
			verb := "Updated"
			if v.CreateIndex == v.ModifyIndex {
				verb = "Created"
			}
			g.ui.Printf("%s variable %q in namespace %q (modify index %d)\n", verb, v.Path, v.Namespace, v.ModifyIndex)
			return nil
		},
	}
	cmd.Flags().Var(&cas, "cas", "write only if the variable's modify index is this (0: only if it does not exist)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the written variable as JSON")
	return cmd
}

func newVarGetCommand(g *globals) *cobra.Command {
	var item string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get [-item KEY] PATH",
		Short: "Read a variable, or one of its items",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkVarPath(args[0]); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			v, _, err := c.Variables().Read(args[0], nil)
			if err != nil {
				if api.IsNotFound(err) {
					return fmt.Errorf("variable %q not found; see drover var list", args[0])
				}
				return err
			}
			if item != "" {
				val, ok := v.Items[item]
				if !ok {
					return fmt.Errorf("variable %q has no item %q (it has: %s)", v.Path, item, strings.Join(sortedItemKeys(v.Items), ", "))
				}
				g.ui.Printf("%s\n", val)
				return nil
			}
			if asJSON {
				return printJSON(g.ui, v)
			}
			printKV(g.ui, [][2]string{
				{"Namespace", v.Namespace},
				{"Path", v.Path},
				{"Create Time", formatTime(time.Unix(0, v.CreateTime))},
				{"Modify Time", formatTime(time.Unix(0, v.ModifyTime))},
				{"Modify Index", fmt.Sprint(v.ModifyIndex)},
			})
			g.ui.Printf("\nItems\n")
			rows := [][]string{{"Key", "Value"}}
			for _, k := range sortedItemKeys(v.Items) {
				rows = append(rows, []string{k, v.Items[k]})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&item, "item", "", "print only this item's value")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func sortedItemKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func newVarListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List variables (paths and metadata, never items)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			list, _, err := c.Variables().List(prefix, nil)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []*api.VariableMetadata{}
				}
				return printJSON(g.ui, list)
			}
			if len(list) == 0 {
				g.ui.Printf("No variables found\n")
				return nil
			}
			rows := [][]string{{"Namespace", "Path", "Modify Index", "Last Updated"}}
			for _, v := range list {
				rows = append(rows, []string{v.Namespace, v.Path, fmt.Sprint(v.ModifyIndex), formatTime(time.Unix(0, v.ModifyTime))})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newVarPurgeCommand(g *globals) *cobra.Command {
	var cas casFlag
	cmd := &cobra.Command{
		Use:   "purge [-cas N] PATH",
		Short: "Delete a variable",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkVarPath(args[0]); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.Variables().Delete(args[0], cas.ptr()); err != nil {
				return err
			}
			g.ui.Printf("Purged variable %q\n", args[0])
			return nil
		},
	}
	cmd.Flags().Var(&cas, "cas", "purge only if the variable's modify index is this")
	return cmd
}

func newOperatorRootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "root",
		Short: "The variables root keyring",
	}
	keyring := &cobra.Command{
		Use:   "keyring",
		Short: "List or rotate the root keys that encrypt variables",
		Long: `Variables are encrypted under the active root key; root keys are held by
Raft only wrapped by a key-encryption key (KEK) kept in each server's
data directory (keyring/<kek-id>.kek). Rotating makes a new root key
active; the leader re-encrypts the variables sealed under older keys in
the background (the Variables column counts what each key still seals).

Back up the keyring directory with your snapshots: a snapshot restored on
a cluster without the KEK cannot decrypt its variables.`,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the root keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			keys, _, err := c.RootKeyring().List(nil)
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				if keys == nil {
					keys = []*api.RootKeyMeta{}
				}
				return printJSON(g.ui, keys)
			}
			if len(keys) == 0 {
				g.ui.Printf("No root keys yet: the first variable write creates one\n")
				return nil
			}
			rows := [][]string{{"Key ID", "State", "KEK ID", "Variables", "Create Time"}}
			for _, k := range keys {
				rows = append(rows, []string{k.KeyID, k.State, k.KEKID, fmt.Sprint(k.Variables), formatTime(time.Unix(0, k.CreateTime))})
			}
			printTable(g.ui, rows)
			return nil
		},
	}
	list.Flags().Bool("json", false, "print JSON")
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new root key active (old variables are re-encrypted in the background)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			k, _, err := c.RootKeyring().Rotate()
			if err != nil {
				return err
			}
			g.ui.Printf("New active root key %s (wrapped by KEK %s)\n", k.KeyID, k.KEKID)
			return nil
		},
	}
	keyring.AddCommand(list, rotate)
	root.AddCommand(keyring)
	return root
}
