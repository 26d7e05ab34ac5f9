package command

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

// Version is the drover version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// Exit codes.
const (
	ExitOK = 0
	// ExitError is any failure.
	ExitError = 1
	// ExitPlacementFailed is `job run` whose allocations could not all be
	// placed.
	ExitPlacementFailed = 2
)

// exitError carries an exit code through cobra.
type exitError struct {
	code   int
	err    error
	silent bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// silentExit ends a command with code and prints nothing more: the
// command has already said what the code means.
func silentExit(code int, reason error) error {
	return &exitError{code: code, err: reason, silent: true}
}

// ui holds the streams commands write to.
type ui struct {
	out, err io.Writer
}

func (u *ui) Printf(format string, args ...interface{})  { fmt.Fprintf(u.out, format, args...) }
func (u *ui) Eprintf(format string, args ...interface{}) { fmt.Fprintf(u.err, format, args...) }

// globals are the flags every API command takes.
type globals struct {
	address string
	// tls is the HTTPS setup: -ca-cert, -client-cert, -client-key,
	// -tls-server-name, -tls-skip-verify; the api package fills what is
	// unset from DROVER_CACERT and the other DROVER_* variables.
	tls api.TLSConfig
	// token is the ACL token secret (-token); the api package falls
	// back to DROVER_TOKEN.
	token string
	// namespace is the namespace commands work in (-namespace); the api
	// package falls back to DROVER_NAMESPACE, and the agent to the
	// default namespace. "*" lists every namespace (lists only).
	namespace string
	ui        *ui
}

func (g *globals) client() (*api.Client, error) {
	tc := g.tls
	return api.NewClient(&api.Config{Address: g.address, TLSConfig: &tc, Token: g.token, Namespace: g.namespace})
}

// Run runs the CLI with args (without the program name) and returns the
// exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	g := &globals{ui: &ui{out: stdout, err: stderr}}
	root := newRoot(g)
	root.SetArgs(normalizeArgs(root, args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if !ee.silent {
			fmt.Fprintf(stderr, "Error: %v\n", err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	return ExitError
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "drover",
		Short: "Drover runs containers on a cluster of machines",
		Long: `Drover is a container orchestrator: servers agree on the cluster state
through Raft, a bin-packing scheduler places jobs, and client agents run
them as containerd containers.

Start a dev cluster with "drover agent -dev", then "drover job run FILE".`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.address, "address", "",
		"address of the agent's HTTP API, http:// or https:// (default $DROVER_ADDR or "+api.DefaultAddress+")")
	pf.StringVar(&g.tls.CACert, "ca-cert", "", "CA certificate (PEM) that signed the agent's HTTPS certificate (default $DROVER_CACERT)")
	pf.StringVar(&g.tls.ClientCert, "client-cert", "", "client certificate (PEM) for agents that require one, e.g. from drover tls cert create -cli (default $DROVER_CLIENT_CERT)")
	pf.StringVar(&g.tls.ClientKey, "client-key", "", "private key (PEM) of -client-cert (default $DROVER_CLIENT_KEY)")
	pf.StringVar(&g.tls.TLSServerName, "tls-server-name", "", "name the agent's certificate must carry when the address is not in it, e.g. server.global.drover (default $DROVER_TLS_SERVER_NAME)")
	pf.BoolVar(&g.tls.Insecure, "tls-skip-verify", false, "do not verify the agent's certificate (testing only; default $DROVER_TLS_SKIP_VERIFY)")
	pf.StringVar(&g.token, "token", "", "ACL token secret sent with every request (default $DROVER_TOKEN)")
	pf.StringVar(&g.namespace, "namespace", "", "namespace of the jobs, allocations, evaluations and deployments to work with; '*' lists every namespace (default $DROVER_NAMESPACE or \"default\")")
	root.AddCommand(
		newAgentCommand(g),
		newJobCommand(g),
		newAllocCommand(g),
		newNodeCommand(g),
		newDeploymentCommand(g),
		newServerCommand(g),
		newOperatorCommand(g),
		newSystemCommand(g),
		newSimCommand(g),
		newBenchCommand(g),
		newTLSCommand(g),
		newACLCommand(g),
		newNamespaceCommand(g),
		newQuotaCommand(g),
		newVarCommand(g),
		newEventCommand(g),
		newServiceCommand(g),
		newGatewayCommand(g),
		newVersionCommand(g),
	)
	return root
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the drover version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			g.ui.Printf("Drover v%s\n", Version)
			return nil
		},
	}
}

var singleDashLong = regexp.MustCompile(`^-([A-Za-z][A-Za-z0-9-]+)(=.*)?$`)

// annotationTrailingCommand marks a command whose last arguments are a
// command line of their own (alloc exec ALLOC CMD...): normalizeArgs
// leaves everything after its first positional argument alone.
const annotationTrailingCommand = "drover.trailing-command"

// normalizeArgs rewrites single-dash long flags (-detach, -data-dir=x,
// -help) to the double-dash form cobra parses. One-letter flags (-f)
// and everything after "--" are left alone, and so is a trailing
// command line (annotationTrailingCommand).
func normalizeArgs(root *cobra.Command, args []string) []string {
	out := make([]string, 0, len(args))
	cur := root
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if cur.Annotations[annotationTrailingCommand] != "" {
			return append(out, normalizeTrailing(cur, args[i:])...)
		}
		if !strings.HasPrefix(a, "-") {
			for _, sub := range cur.Commands() {
				if sub.Name() == a || sub.HasAlias(a) {
					cur = sub
					break
				}
			}
		}
		if singleDashLong.MatchString(a) && !strings.HasPrefix(a, "--") {
			out = append(out, "-"+a)
			continue
		}
		out = append(out, a)
	}
	return out
}

// normalizeTrailing normalizes the arguments of a command that takes a
// trailing command line: its own flags (known long flags only, so that
// -it stays two one-letter flags), then the first positional argument,
// and then the rest as they are.
func normalizeTrailing(cmd *cobra.Command, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			return append(out, args[i:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := cmd.Flags().Lookup(name)
		if f == nil {
			f = cmd.InheritedFlags().Lookup(name)
		}
		long := f != nil && len(name) > 1
		if long && !strings.HasPrefix(a, "--") {
			a = "-" + a
		}
		if name == "help" && !strings.HasPrefix(a, "--") {
			a = "-" + a
		}
		out = append(out, a)
		if long && !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
			// The flag's value, whatever it looks like.
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// resolvePrefix finds the one ID among ids that starts with prefix.
func resolvePrefix(kind, prefix string, ids []string) (string, error) {
	var matches []string
	for _, id := range ids {
		if id == prefix {
			return id, nil
		}
		if strings.HasPrefix(id, prefix) {
			matches = append(matches, id)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no %s with ID prefix %q", kind, prefix)
	case 1:
		return matches[0], nil
	}
	return "", fmt.Errorf("%d %ss match the prefix %q; give more characters:\n  %s", len(matches), kind, prefix, strings.Join(matches, "\n  "))
}

// Main is the program's entry point after the task-logger check.
func Main() {
	os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr))
}
