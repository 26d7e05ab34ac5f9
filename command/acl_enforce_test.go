package command

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestACLEnforcement_RefusalsAreOneLine: with ACLs on, a command without
// a token exits 1 with the server's refusal on one line, and the HTTP
// API answers 403 with {"Code":"permission_denied","Error":...}.
func TestACLEnforcement_RefusalsAreOneLine(t *testing.T) {
	addr := startACLAgent(t)
	t.Setenv("DROVER_TOKEN", "")
	if code, _, errOut := aclCLI("-address", addr, "acl", "bootstrap"); code != ExitOK {
		t.Fatalf("bootstrap: %d %s", code, errOut)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"job", "status"}, `token "anonymous" lacks capability list-jobs in namespace "default" (no token was sent: pass -token or set DROVER_TOKEN)`},
		{[]string{"node", "status"}, `token "anonymous" lacks node:read (it needs a policy with node { policy = "read" }) (no token was sent: pass -token or set DROVER_TOKEN)`},
		{[]string{"-token", "not-a-real-secret", "job", "status"}, "ACL token not found"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errOut := aclCLI(append([]string{"-address", addr}, c.args...)...)
			if code != ExitError {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitError, out, errOut)
			}
			if !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("stderr is not one line naming the refusal:\n%s", errOut)
			}
		})
	}

	resp, err := http.Get(addr + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Code, Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden || body.Code != "permission_denied" || !strings.HasPrefix(body.Error, `token "anonymous" lacks capability list-jobs in namespace "default"`) {
		t.Fatalf("GET /v1/jobs without a token: %d %+v", resp.StatusCode, body)
	}
}
