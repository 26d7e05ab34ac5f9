package command

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/droverhq/drover/agent"
	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

func aclCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestACLCommand_HelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"acl"},
		{"acl", "bootstrap"},
		{"acl", "policy"},
		{"acl", "policy", "apply"},
		{"acl", "policy", "list"},
		{"acl", "policy", "info"},
		{"acl", "policy", "delete"},
		{"acl", "token"},
		{"acl", "token", "create"},
		{"acl", "token", "list"},
		{"acl", "token", "info"},
		{"acl", "token", "self"},
		{"acl", "token", "delete"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := aclCLI(append(args, "-help")...)
			if code != ExitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, "-token") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

// TestACLCommand_RefusesBeforeCalling: mistakes the CLI can see are
// refused without an agent (none listens at the address).
func TestACLCommand_RefusesBeforeCalling(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"apply without file", []string{"acl", "policy", "apply", "ci"}, "takes a NAME and a FILE"},
		{"apply missing file", []string{"acl", "policy", "apply", "ci", "/nonexistent/ci.hcl"}, "read policy file"},
		{"info without name", []string{"acl", "policy", "info"}, "takes one policy NAME"},
		{"delete two names", []string{"acl", "policy", "delete", "a", "b"}, "takes one policy NAME, got 2"},
		{"client token without policy", []string{"acl", "token", "create", "-name", "x"}, "a client token needs at least one -policy NAME"},
		{"bad type", []string{"acl", "token", "create", "-type", "root"}, `-type "root" is invalid; accepted: client, management`},
		{"bad ttl", []string{"acl", "token", "create", "-policy", "p", "-ttl", "soon"}, `invalid argument "soon"`},
		{"token info without accessor", []string{"acl", "token", "info"}, "takes one ACCESSOR ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := aclCLI(append([]string{"-address", "http://127.0.0.1:1"}, tc.args...)...)
			if code != ExitError || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
			}
		})
	}
}

func aclFreePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// startACLAgent starts an in-process server agent with ACLs on and
// returns its HTTP address.
func startACLAgent(t *testing.T) string {
	t.Helper()
	c := agent.DefaultConfig()
	c.BindAddr = "127.0.0.1"
	c.NodeName = "acl-cli-test"
	c.DataDir = t.TempDir()
	c.Ports = &agent.Ports{HTTP: 0, RPC: aclFreePort(t), Gossip: aclFreePort(t)}
	c.Server.Enabled = true
	c.Server.BootstrapExpect = 1
	c.Server.NumSchedulers = 1
	c.ACL = &agent.ACLConfig{Enabled: true}
	a, err := agent.New(c, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return a.Server().IsLeader(), nil })
	return "http://" + a.HTTPAddr()
}

// kv reads "Key = value" lines.
func kv(out string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func TestACLCommand_AgainstAnAgent(t *testing.T) {
	addr := startACLAgent(t)
	t.Setenv("DROVER_TOKEN", "")
	cli := func(args ...string) (int, string, string) {
		return aclCLI(append([]string{"-address", addr}, args...)...)
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		code, out, errOut := cli(args...)
		if code != ExitOK {
			t.Fatalf("drover %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
		return out
	}

	out := mustCLI("acl", "bootstrap")
	boot := kv(out)
	mgmt := boot["Secret ID"]
	if mgmt == "" || boot["Type"] != "management" || boot["Accessor ID"] == "" || boot["Name"] != "Bootstrap Token" {
		t.Fatalf("bootstrap output:\n%s", out)
	}
	if code, _, errOut := cli("acl", "bootstrap"); code != ExitError || !strings.Contains(errOut, "ACL bootstrap already done at index") {
		t.Fatalf("second bootstrap: %d %s", code, errOut)
	}

	// Without a token, management commands are refused and say why.
	if code, _, errOut := cli("acl", "policy", "list"); code != ExitError || !strings.Contains(errOut, "no token was sent: pass -token or set DROVER_TOKEN") {
		t.Fatalf("policy list without a token: %d %s", code, errOut)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "ci.hcl")
	if err := os.WriteFile(file, []byte("namespace \"prod\" {\n  policy = \"read\"\n  capabilities = [\"sbumit-job\"]\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := cli("-token", mgmt, "acl", "policy", "apply", "ci", file)
	if code != ExitError || !strings.Contains(errOut, file+`:3:19: unknown capability "sbumit-job" in namespace "prod"; accepted: deny, list-jobs`) {
		t.Fatalf("apply with a bad capability: %d %s", code, errOut)
	}
	if err := os.WriteFile(file, []byte("namespace \"prod\" {\n  policy = \"read\"\n  capabilities = [\"submit-job\"]\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustCLI("-token", mgmt, "acl", "policy", "apply", "-description", "CI deploys", "ci", file)
	if !strings.Contains(out, `Successfully wrote "ci" ACL policy`) {
		t.Fatalf("apply: %s", out)
	}

	// DROVER_TOKEN from here on.
	t.Setenv("DROVER_TOKEN", mgmt)
	if out = mustCLI("acl", "policy", "list"); !strings.Contains(out, "ci") || !strings.Contains(out, "CI deploys") {
		t.Fatalf("policy list:\n%s", out)
	}
	if out = mustCLI("acl", "policy", "info", "ci"); !strings.Contains(out, `capabilities = ["submit-job"]`) {
		t.Fatalf("policy info:\n%s", out)
	}

	out = mustCLI("acl", "token", "create", "-name", "ci-deployer", "-policy", "ci", "-ttl", "1h")
	created := kv(out)
	secret, accessor := created["Secret ID"], created["Accessor ID"]
	if secret == "" || created["Policies"] != "ci" || created["Expiry Time"] == "<none>" {
		t.Fatalf("token create:\n%s", out)
	}
	out = mustCLI("acl", "token", "list")
	if !strings.Contains(out, "ci-deployer") || !strings.Contains(out, accessor) || strings.Contains(out, secret) {
		t.Fatalf("token list:\n%s", out)
	}
	out = mustCLI("acl", "token", "list", "-json")
	var list []*api.ACLToken
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || strings.Contains(out, secret) {
		t.Fatalf("token list -json: %v\n%s", err, out)
	}
	if out = mustCLI("acl", "token", "info", accessor); kv(out)["Name"] != "ci-deployer" || strings.Contains(out, secret) {
		t.Fatalf("token info:\n%s", out)
	}
	// -token wins over DROVER_TOKEN.
	if out = mustCLI("-token", secret, "acl", "token", "self"); kv(out)["Name"] != "ci-deployer" || strings.Contains(out, "Secret ID") {
		t.Fatalf("token self:\n%s", out)
	}
	code, _, errOut = cli("-token", secret, "acl", "token", "list")
	if code != ExitError || !strings.Contains(errOut, `token "ci-deployer" is not a management token`) {
		t.Fatalf("client token listing tokens: %d %s", code, errOut)
	}
	if out = mustCLI("acl", "token", "delete", accessor); !strings.Contains(out, "successfully deleted") {
		t.Fatalf("token delete: %s", out)
	}
	code, _, errOut = cli("-token", secret, "acl", "token", "self")
	if code != ExitError || !strings.Contains(errOut, "ACL token not found") {
		t.Fatalf("deleted token: %d %s", code, errOut)
	}
	mustCLI("acl", "policy", "delete", "ci")
	if code, _, errOut := cli("acl", "policy", "info", "ci"); code != ExitError || !strings.Contains(errOut, `ACL policy "ci" not found`) {
		t.Fatalf("deleted policy: %d %s", code, errOut)
	}
}

func TestAgentFlags_ACLEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		f := agentFlags{server: true, dataDir: t.TempDir(), aclEnabled: enabled, httpMaxConnsPerClient: -1, rpcMaxConnsPerClient: -1}
		cfg, err := f.config(&cobra.Command{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ACL.Enabled != enabled {
			t.Fatalf("-acl-enabled=%v gave acl.enabled=%v", enabled, cfg.ACL.Enabled)
		}
	}
	// The flag is registered with the agent command.
	if fl := newAgentCommand(&globals{ui: &ui{}}).Flags().Lookup("acl-enabled"); fl == nil || fl.DefValue != "false" {
		t.Fatalf("agent -acl-enabled: %+v", fl)
	}
}
