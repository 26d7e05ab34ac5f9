package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// TestStartup_SameNodeNameFailsFast starts three servers on one machine
// without -node-name (all take the hostname): the ones that join a pool
// where the name is held exit within seconds with the message naming
// the holder's address, instead of gossiping "Conflicting address"
// forever without a leader.
func TestStartup_SameNodeNameFailsFast(t *testing.T) {
	hosts := []string{newHost(), newHost(), newHost()}
	hostname, _ := os.Hostname()
	var agents []*agent
	for i, h := range hosts {
		args := []string{"agent", "-server", "-bootstrap-expect", "3", "-bind", h}
		for _, j := range hosts {
			args = append(args, "-join", j)
		}
		a := newAgent(t, "dup", h, "", args)
		a.start()
		agents = append(agents, a)
		if i == 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	start := time.Now()
	testutil.WaitFor(t, 20*time.Second, func() (bool, error) {
		return !agents[1].alive() && !agents[2].alive(), nil
	})
	t.Logf("the two later servers exited %v after start", time.Since(start).Round(100*time.Millisecond))
	for _, a := range agents[1:] {
		cmd, _ := a.proc()
		if cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("%s exited 0", a.host)
		}
		log, _ := os.ReadFile(a.logPath)
		// The holder it met first: the first server, or the second if
		// that one had not exited yet.
		ok := false
		for _, holder := range hosts {
			if holder != a.host && strings.Contains(string(log), `Error: node name "`+hostname+`" is already used by `+holder+`; set -node-name`) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s's output lacks the name conflict error:\n%s", a.host, tail(a.logPath, 15))
		}
	}
	// The holder stays up and says what is wrong.
	if !agents[0].alive() {
		t.Fatalf("the first server exited:\n%s", tail(agents[0].logPath, 20))
	}
	log, _ := os.ReadFile(agents[0].logPath)
	if !strings.Contains(string(log), `node name "`+hostname+`" is already used by`) {
		t.Errorf("the first server did not log the conflict:\n%s", tail(agents[0].logPath, 20))
	}
}
