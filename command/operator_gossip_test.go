package command

import (
	"bytes"
	"encoding/base64"
	"net"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/agent"
)

// gossipCLI runs the CLI in process and returns its exit code and output.
func gossipCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestOperatorGossip_HelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"operator", "gossip"},
		{"operator", "gossip", "keyring"},
		{"operator", "gossip", "keyring", "generate"},
		{"operator", "gossip", "keyring", "list"},
		{"operator", "gossip", "keyring", "install"},
		{"operator", "gossip", "keyring", "use"},
		{"operator", "gossip", "keyring", "remove"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := gossipCLI(append(args, "-help")...)
			if code != ExitOK || !strings.Contains(out, "Usage:") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

func TestOperatorGossip_GenerateNeedsNoAgent(t *testing.T) {
	// An address where no agent listens: generate must not care.
	code, out, errOut := gossipCLI("-address", "http://127.0.0.1:1", "operator", "gossip", "keyring", "generate")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if err != nil || len(key) != 32 {
		t.Fatalf("generated %q: %d bytes, %v", out, len(key), err)
	}
	if _, again, _ := gossipCLI("operator", "gossip", "keyring", "generate"); again == out {
		t.Fatal("two generated keys are equal")
	}
}

// gossipFreePort returns a port free on 127.0.0.1 for TCP and UDP.
func gossipFreePort(t *testing.T) int {
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

// startGossipAgent starts an in-process server agent (no client, so no
// containerd) with gossip key key, and returns its HTTP address.
func startGossipAgent(t *testing.T, key string) string {
	t.Helper()
	c := agent.DefaultConfig()
	c.BindAddr = "127.0.0.1"
	c.NodeName = "cli-test"
	c.DataDir = t.TempDir()
	c.Ports = &agent.Ports{HTTP: 0, RPC: gossipFreePort(t), Gossip: gossipFreePort(t)}
	c.Server.Enabled = true
	c.Server.BootstrapExpect = 1
	c.Server.NumSchedulers = 1
	c.Encrypt = key
	a, err := agent.New(c, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	return "http://" + a.HTTPAddr()
}

func TestOperatorGossip_KeyringRotationThroughTheCLI(t *testing.T) {
	_, key1, _ := gossipCLI("operator", "gossip", "keyring", "generate")
	_, key2, _ := gossipCLI("operator", "gossip", "keyring", "generate")
	key1, key2 = strings.TrimSpace(key1), strings.TrimSpace(key2)
	addr := startGossipAgent(t, key1)
	cli := func(args ...string) (int, string, string) {
		return gossipCLI(append([]string{"-address", addr, "operator", "gossip", "keyring"}, args...)...)
	}

	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"install"}, "takes one KEY"},
		{"two keys", []string{"install", key1, key2}, "takes one KEY"},
		{"bad key", []string{"install", "c2hvcnQ="}, "16, 24 or 32 bytes"},
		{"remove primary", []string{"remove", key1}, "primary"},
		{"use missing key", []string{"use", key2}, "install it first"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := cli(tc.args...)
			if code != ExitError || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q, want %q", code, errOut, tc.want)
			}
		})
	}

	steps := []struct {
		args []string
		want string
	}{
		{[]string{"install", key2}, "Installed the key on 1/1 alive agents"},
		{[]string{"use", key2}, "Now using the key on 1/1 alive agents"},
		{[]string{"remove", key1}, "Removed the key on 1/1 alive agents"},
		{[]string{"list"}, key2},
	}
	for _, st := range steps {
		code, out, errOut := cli(st.args...)
		if code != ExitOK || !strings.Contains(out, st.want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", st.args, code, out, errOut)
		}
	}
	if _, out, _ := cli("list"); strings.Contains(out, key1) {
		t.Fatalf("removed key still listed:\n%s", out)
	}
}

func TestOperatorGossip_EncryptionOffIsExplained(t *testing.T) {
	addr := startGossipAgent(t, "")
	code, _, errOut := gossipCLI("-address", addr, "operator", "gossip", "keyring", "list")
	if code != ExitError || !strings.Contains(errOut, "-encrypt") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
