package command

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/api"
)

func TestQuotaCommand_HelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"quota"}, {"quota", "init"}, {"quota", "apply"}, {"quota", "list"}, {"quota", "status"}, {"quota", "delete"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := aclCLI(append(args, "-help")...)
			if code != ExitOK || !strings.Contains(out, "Usage:") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

// TestQuotaCommand_RefusesBeforeCalling: mistakes the CLI can see are
// refused without an agent (none listens at the address), with the
// file position of a bad quota file.
func TestQuotaCommand_RefusesBeforeCalling(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("name = \"a\"\nlimit {\n  memory = -1\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "quota.hcl")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"apply without file", []string{"quota", "apply"}, "takes one quota FILE, got 0"},
		{"apply a missing file", []string{"quota", "apply", filepath.Join(dir, "nope.hcl")}, "read quota file"},
		{"apply a bad file", []string{"quota", "apply", bad}, bad + ":3:12: memory = -1 is out of range"},
		{"status without name", []string{"quota", "status"}, "takes one quota NAME"},
		{"delete without name", []string{"quota", "delete"}, "takes one quota NAME"},
		{"init over a file", []string{"quota", "init", existing}, "already exists"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := aclCLI(append([]string{"-address", "http://127.0.0.1:1"}, tc.args...)...)
			if code == ExitOK || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Fatal("quota init overwrote a file")
	}
}

func TestQuotaCommand_AgainstAnAgent(t *testing.T) {
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
	dir := t.TempDir()
	file := filepath.Join(dir, "quota.hcl")
	mustCLI("quota", "init", file)
	mustCLI("namespace", "apply", "team-a")
	if out := mustCLI("quota", "apply", file); !strings.Contains(out, `Successfully applied quota specification "team-a"`) {
		t.Fatalf("apply: %s", out)
	}
	out := mustCLI("quota", "list")
	for _, want := range []string{"team-a", "4000", "1024", "20"} {
		if !strings.Contains(out, want) {
			t.Fatalf("list lacks %q:\n%s", want, out)
		}
	}
	var list []*api.QuotaSpec
	if err := json.Unmarshal([]byte(mustCLI("quota", "list", "-json")), &list); err != nil || len(list) != 1 || list[0].Limits.MemoryMB != 1024 {
		t.Fatalf("list -json: %v %+v", err, list)
	}
	st := mustCLI("quota", "status", "team-a")
	if kv(st)["Namespace"] != "team-a" || !strings.Contains(st, "memory (MB)") {
		t.Fatalf("status:\n%s", st)
	}

	// A job asking for more than the quota: exit 2, naming the quota,
	// and job plan shows the same.
	big := filepath.Join(dir, "big.hcl")
	src := strings.Replace(webHCL("team-a", 1), "memory = 64", "memory = 2048", 1)
	if err := os.WriteFile(big, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, runOut, errOut := cli("job", "run", big)
	want := `quota "team-a" exhausted: memory 0/1024 MB`
	if code != ExitPlacementFailed || !strings.Contains(runOut+errOut, want) {
		t.Fatalf("job run over the quota: exit %d\nstdout:\n%s\nstderr:\n%s", code, runOut, errOut)
	}
	t.Logf("job run over the quota:\n%s%s", runOut, errOut)
	_, planOut, planErr := cli("job", "plan", big)
	if !strings.Contains(planOut+planErr, want) {
		t.Fatalf("job plan over the quota:\n%s\n%s", planOut, planErr)
	}

	// Delete is refused while a namespace names the quota.
	mustCLI("namespace", "apply", "-quota", "team-a", "team-a")
	if code, _, errOut := cli("quota", "delete", "team-a"); code != ExitError || !strings.Contains(errOut, `referenced by namespace "team-a"`) {
		t.Fatalf("delete of a referenced quota: %d %s", code, errOut)
	}
	mustCLI("namespace", "apply", "-quota", "", "team-a")
	mustCLI("quota", "delete", "team-a")
	if code, _, errOut := cli("quota", "status", "team-a"); code != ExitError || !strings.Contains(errOut, "not found") {
		t.Fatalf("status of a deleted quota: %d %s", code, errOut)
	}
}
