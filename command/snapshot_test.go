package command

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

func TestSnapshotCommand_HelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"operator", "snapshot"}, {"operator", "snapshot", "save"}, {"operator", "snapshot", "inspect"}, {"operator", "snapshot", "restore"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := aclCLI(append(args, "-help")...)
			if code != ExitOK || !strings.Contains(out, "Usage:") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

// Mistakes the CLI can see are refused without an agent (none listens
// at the address); a file that is not a snapshot is never sent.
func TestSnapshotCommand_RefusesBeforeCalling(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.snap")
	if err := os.WriteFile(junk, []byte("not a tar at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"save without FILE", []string{"operator", "snapshot", "save"}, "takes one snapshot FILE, got 0"},
		{"inspect a missing file", []string{"operator", "snapshot", "inspect", filepath.Join(dir, "nope")}, "no such file"},
		{"inspect junk", []string{"operator", "snapshot", "inspect", junk}, "invalid snapshot archive"},
		{"restore junk", []string{"operator", "snapshot", "restore", junk}, "invalid snapshot archive"},
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

// save, inspect and restore against an in-process server agent: the
// file is a checked archive (plain or gzipped), never left as .tmp,
// inspect counts the rows, and restore puts it back.
func TestSnapshotCommand_AgainstAnAgent(t *testing.T) {
	addr := startServerAgent(t)
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
	mustCLI("namespace", "apply", "team-a")
	mustCLI("namespace", "apply", "team-b")

	dir := t.TempDir()
	plain, zipped := filepath.Join(dir, "c.snap"), filepath.Join(dir, "c.snap.gz")
	var out string
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		// The first leader writes the cluster ID just after it starts.
		code, o, errOut := cli("operator", "snapshot", "save", plain)
		out = o
		if code != ExitOK {
			return false, errorString(errOut)
		}
		return true, nil
	})
	if !strings.Contains(out, "Saved a snapshot of cluster ") || !strings.Contains(out, " to "+plain) {
		t.Fatalf("save: %s", out)
	}
	mustCLI("operator", "snapshot", "save", zipped)
	for _, p := range []string{plain + ".tmp", zipped + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s is left behind: %v", p, err)
		}
	}
	f, err := os.Open(zipped)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gzip.NewReader(f); err != nil {
		t.Fatalf("%s is not gzipped: %v", zipped, err)
	}
	f.Close()
	if fi, _ := os.Stat(plain); fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file mode %v, want 0600 (it holds secrets)", fi.Mode().Perm())
	}

	for _, p := range []string{plain, zipped} {
		text := mustCLI("operator", "snapshot", "inspect", p)
		info := kv(text)
		if info["Cluster ID"] == "" || info["Index"] == "" || !strings.Contains(text, "namespaces") {
			t.Fatalf("inspect %s:\n%s", p, text)
		}
		var js snapshotInspection
		if err := json.Unmarshal([]byte(mustCLI("operator", "snapshot", "inspect", "-json", p)), &js); err != nil {
			t.Fatal(err)
		}
		if js.Rows["namespaces"] != 3 || js.Rows["cluster_meta"] != 1 || js.Rows["jobs"] != 0 || js.Index == 0 {
			t.Fatalf("inspect -json %s: %+v", p, js)
		}
		rowLine := false
		for _, line := range strings.Split(text, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "namespaces" && f[1] == "3" {
				rowLine = true
			}
		}
		if !rowLine {
			t.Fatalf("inspect does not print the namespaces' 3 rows:\n%s", text)
		}
	}

	// A damaged file is refused before it is sent.
	raw, _ := os.ReadFile(plain)
	raw[len(raw)/2] ^= 0xff
	damaged := filepath.Join(dir, "damaged.snap")
	os.WriteFile(damaged, raw, 0o600)
	if code, _, errOut := cli("operator", "snapshot", "restore", damaged); code == ExitOK || !strings.Contains(errOut, "nothing was sent") {
		t.Fatalf("restore of a damaged file: exit %d %s", code, errOut)
	}

	mustCLI("namespace", "delete", "team-b")
	if out := mustCLI("operator", "snapshot", "restore", zipped); !strings.Contains(out, "Restored the snapshot of cluster ") {
		t.Fatalf("restore: %s", out)
	}
	if out := mustCLI("namespace", "list"); !strings.Contains(out, "team-b") {
		t.Fatalf("team-b is not back after the restore:\n%s", out)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// Large transfers show progress on stderr, ending at 100%; small ones
// show none.
func TestSnapshotCommand_Progress(t *testing.T) {
	var errOut strings.Builder
	u := &ui{out: io.Discard, err: &errOut}
	if newProgress(u, "Saved", progressMin-1) != nil {
		t.Fatal("progress for a small transfer")
	}
	p := newProgress(u, "Saved", 32<<20)
	r := &progressReader{r: strings.NewReader(strings.Repeat("x", 32<<20)), p: p}
	if n, err := io.Copy(io.Discard, r); err != nil || n != 32<<20 {
		t.Fatalf("copied %d: %v", n, err)
	}
	if !strings.HasSuffix(errOut.String(), "Saved 32.0 MiB of 32.0 MiB (100%)\n") {
		t.Fatalf("progress output %q", errOut.String())
	}
}
