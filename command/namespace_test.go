package command

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/agent"
	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/testutil"
)

func TestNamespaceCommand_HelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"namespace"},
		{"namespace", "apply"},
		{"namespace", "list"},
		{"namespace", "status"},
		{"namespace", "delete"},
		{"job", "status"},
		{"job", "run"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := aclCLI(append(args, "-help")...)
			if code != ExitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, "-namespace") || !strings.Contains(out, "DROVER_NAMESPACE") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

// TestNamespaceCommand_RefusesBeforeCalling: mistakes the CLI can see
// are refused without an agent (none listens at the address).
func TestNamespaceCommand_RefusesBeforeCalling(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "web.hcl")
	if err := os.WriteFile(file, []byte(webHCL("team-a", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"apply without name", []string{"namespace", "apply"}, "takes one namespace NAME, got 0"},
		{"apply two names", []string{"namespace", "apply", "a", "b"}, "takes one namespace NAME, got 2"},
		{"status without name", []string{"namespace", "status"}, "takes one namespace NAME"},
		{"delete without name", []string{"namespace", "delete"}, "takes one namespace NAME"},
		{"run into every namespace", []string{"-namespace", "*", "job", "run", file}, "-namespace '*' is for listing"},
		{"file and flag disagree", []string{"-namespace", "team-b", "job", "run", file}, `names namespace "team-a" but -namespace (or DROVER_NAMESPACE) is "team-b"`},
		{"plan: file and flag disagree", []string{"-namespace", "team-b", "job", "plan", file}, `names namespace "team-a"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := aclCLI(append([]string{"-address", "http://127.0.0.1:1"}, tc.args...)...)
			if code == ExitOK || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
			}
		})
	}
}

// webHCL is job "web" with count, in namespace ns ("" names none).
func webHCL(ns string, count int) string {
	attr := ""
	if ns != "" {
		attr = "  namespace = \"" + ns + "\"\n"
	}
	return "job \"web\" {\n" + attr + `  group "web" {
    count = ` + string(rune('0'+count)) + `
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
`
}

// startServerAgent starts an in-process server agent (no client: jobs
// register but are not placed) and returns its HTTP address.
func startServerAgent(t *testing.T) string {
	t.Helper()
	c := agent.DefaultConfig()
	c.BindAddr = "127.0.0.1"
	c.NodeName = "ns-cli-test"
	c.DataDir = t.TempDir()
	c.Ports = &agent.Ports{HTTP: 0, RPC: aclFreePort(t), Gossip: aclFreePort(t)}
	c.Server.Enabled = true
	c.Server.BootstrapExpect = 1
	c.Server.NumSchedulers = 1
	a, err := agent.New(c, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return a.Server().IsLeader(), nil })
	return "http://" + a.HTTPAddr()
}

func TestNamespaceCommand_AgainstAnAgent(t *testing.T) {
	addr := startServerAgent(t)
	t.Setenv("DROVER_NAMESPACE", "")
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

	if out := mustCLI("namespace", "apply", "-description", "Team A", "-quota", "small", "team-a"); !strings.Contains(out, `Successfully applied namespace "team-a"`) {
		t.Fatalf("apply: %s", out)
	}
	mustCLI("namespace", "apply", "team-b")
	// An update keeps what its flags do not change.
	mustCLI("namespace", "apply", "-quota", "large", "team-a")
	st := kv(mustCLI("namespace", "status", "team-a"))
	if st["Name"] != "team-a" || st["Description"] != "Team A" || st["Quota"] != "large" || st["Jobs"] != "0 (0 running)" {
		t.Fatalf("status: %v", st)
	}
	out := mustCLI("namespace", "list")
	for _, want := range []string{"default", "team-a", "Team A", "team-b"} {
		if !strings.Contains(out, want) {
			t.Fatalf("list lacks %q:\n%s", want, out)
		}
	}
	var list []*api.Namespace
	if err := json.Unmarshal([]byte(mustCLI("namespace", "list", "-json")), &list); err != nil || len(list) != 3 {
		t.Fatalf("list -json: %v %+v", err, list)
	}

	dir := t.TempDir()
	inA := filepath.Join(dir, "web-a.hcl")     // names team-a, count 1
	noNS := filepath.Join(dir, "web-none.hcl") // names none, count 2
	if err := os.WriteFile(inA, []byte(webHCL("team-a", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(noNS, []byte(webHCL("", 2)), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI("job", "run", "-detach", inA)                          // the file's namespace
	mustCLI("-namespace", "team-b", "job", "run", "-detach", noNS) // the flag's

	count := func(args ...string) (string, int) {
		t.Helper()
		var got struct{ Job *api.Job }
		if err := json.Unmarshal([]byte(mustCLI(append(args, "job", "status", "-json", "web")...)), &got); err != nil || got.Job == nil {
			t.Fatalf("job status -json: %v", err)
		}
		return got.Job.Namespace, got.Job.TaskGroups[0].Count
	}
	if ns, n := count("-namespace", "team-a"); ns != "team-a" || n != 1 {
		t.Fatalf("team-a's web: %s count %d", ns, n)
	}
	if ns, n := count("-namespace", "team-b"); ns != "team-b" || n != 2 {
		t.Fatalf("team-b's web: %s count %d", ns, n)
	}
	t.Setenv("DROVER_NAMESPACE", "team-b")
	if ns, _ := count(); ns != "team-b" {
		t.Fatalf("DROVER_NAMESPACE=team-b: %s", ns)
	}
	if ns, _ := count("-namespace", "team-a"); ns != "team-a" {
		t.Fatalf("-namespace overrides DROVER_NAMESPACE: %s", ns)
	}
	t.Setenv("DROVER_NAMESPACE", "")
	if kv(mustCLI("-namespace", "team-a", "job", "status", "web"))["Namespace"] != "team-a" {
		t.Fatal("job status does not show the namespace")
	}

	// Lists: one namespace, or every one with a Namespace column.
	if out := mustCLI("job", "status"); !strings.Contains(out, `No running jobs in namespace "default"`) {
		t.Fatalf("default namespace list:\n%s", out)
	}
	out = mustCLI("-namespace", "*", "job", "status")
	if !strings.Contains(out, "Namespace") || !strings.Contains(out, "team-a") || !strings.Contains(out, "team-b") {
		t.Fatalf("list of every namespace:\n%s", out)
	}
	if code, _, errOut := cli("-namespace", "*", "job", "status", "web"); code != ExitError || !strings.Contains(errOut, "2 jobs match \"web\" across namespaces") || !strings.Contains(errOut, "team-a/web") {
		t.Fatalf("ambiguous job across namespaces: %d %s", code, errOut)
	}
	if code, _, errOut := cli("job", "status", "web"); code != ExitError || !strings.Contains(errOut, `no job with ID prefix "web" in namespace "default"`) {
		t.Fatalf("web in default: %d %s", code, errOut)
	}

	// Refusals the server makes.
	if code, _, errOut := cli("-namespace", "team-z", "job", "run", "-detach", noNS); code != ExitError || !strings.Contains(errOut, "drover namespace apply team-z") {
		t.Fatalf("run into an unknown namespace: %d %s", code, errOut)
	}
	if code, _, errOut := cli("namespace", "delete", "team-a"); code != ExitError || !strings.Contains(errOut, `namespace "team-a" has 1 job (web); purge them first`) {
		t.Fatalf("delete team-a with a job: %d %s", code, errOut)
	}
	if code, _, errOut := cli("namespace", "delete", "default"); code != ExitError || !strings.Contains(errOut, "cannot be deleted") {
		t.Fatalf("delete default: %d %s", code, errOut)
	}

	// Purged, team-a goes; team-b's web stays.
	mustCLI("-namespace", "team-a", "job", "stop", "-purge", "-detach", "web")
	if out := mustCLI("namespace", "delete", "team-a"); !strings.Contains(out, `Successfully deleted namespace "team-a"`) {
		t.Fatalf("delete: %s", out)
	}
	if code, _, errOut := cli("namespace", "status", "team-a"); code != ExitError || !strings.Contains(errOut, `namespace "team-a" not found`) {
		t.Fatalf("status after delete: %d %s", code, errOut)
	}
	if ns, n := count("-namespace", "team-b"); ns != "team-b" || n != 2 {
		t.Fatalf("team-b's web after team-a's delete: %s count %d", ns, n)
	}
}
