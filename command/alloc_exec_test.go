package command

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestNormalizeArgs_TrailingCommand: single-dash long flags are
// rewritten up to alloc exec's ALLOC, and the command after it is left
// exactly as typed (its -c, -la, --help and -- are its own).
func TestNormalizeArgs_TrailingCommand(t *testing.T) {
	root := newRoot(&globals{ui: &ui{out: &bytes.Buffer{}, err: &bytes.Buffer{}}})
	cases := []struct{ in, want string }{
		{"alloc exec 3f1c sh -c exit-3", "alloc exec 3f1c sh -c exit-3"},
		{"alloc exec -task web -it 3f1c ls -la --help", "alloc exec --task web -it 3f1c ls -la --help"},
		{"-address http://x alloc exec -task=web -i -t 3f1c -- cat -n", "--address http://x alloc exec --task=web -i -t 3f1c -- cat -n"},
		{"alloc exec -token s -namespace ns -task -weird 3f1c env", "alloc exec --token s --namespace ns --task -weird 3f1c env"},
		{"alloc exec -help", "alloc exec --help"},
		{"alloc logs -stderr 3f1c", "alloc logs --stderr 3f1c"},
	}
	for _, tc := range cases {
		got := normalizeArgs(root, strings.Fields(tc.in))
		if !slices.Equal(got, strings.Fields(tc.want)) {
			t.Errorf("%s\n got  %q\n want %q", tc.in, got, strings.Fields(tc.want))
		}
	}
}

func TestAllocExec_Help(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run([]string{"alloc", "exec", "-help"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"exec [-task TASK] [-i] [-t] ALLOC COMMAND [ARG...]", "--interactive", "--tty", "alloc-exec"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	// The command is required.
	if code := Run([]string{"alloc", "exec", "3f1c"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "requires at least 2 arg(s)") {
		t.Fatalf("alloc exec without a command: exit %d, %s", code, errb.String())
	}
}
