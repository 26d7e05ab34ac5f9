package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// netLab puts hosts in their own network namespaces on one bridge, so a
// test can cut links between them (blackhole routes in the namespaces)
// while the test process, on the bridge, still reaches every host.
type netLab struct {
	t      *testing.T
	bridge string
	ns     []string
	ips    []string
}

var labSeq atomic.Int32

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// newNetLab creates n namespaces with addresses 10.213.X.1..n, the
// bridge at 10.213.X.254.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("the partition tests need iproute2's ip: %v", err)
	}
	id := fmt.Sprintf("%d%d", os.Getpid()%1000, labSeq.Add(1))
	octet := (os.Getpid() + int(labSeq.Load())) % 200
	l := &netLab{t: t, bridge: "drb" + id}
	t.Cleanup(l.destroy)
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("link", "add", l.bridge, "type", "bridge")
	must("addr", "add", fmt.Sprintf("10.213.%d.254/24", octet), "dev", l.bridge)
	must("link", "set", l.bridge, "up")
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("drns%s-%d", id, i)
		outside, inside := fmt.Sprintf("drv%sa%d", id, i), fmt.Sprintf("drv%sb%d", id, i)
		ip := fmt.Sprintf("10.213.%d.%d", octet, i)
		must("netns", "add", ns)
		l.ns = append(l.ns, ns)
		must("link", "add", outside, "type", "veth", "peer", "name", inside)
		must("link", "set", inside, "netns", ns)
		must("link", "set", outside, "master", l.bridge, "up")
		must("netns", "exec", ns, "ip", "addr", "add", ip+"/24", "dev", inside)
		must("netns", "exec", ns, "ip", "link", "set", inside, "up")
		must("netns", "exec", ns, "ip", "link", "set", "lo", "up")
		l.ips = append(l.ips, ip)
	}
	return l
}

// cut drops all traffic between hosts i and j (0-based), both ways.
func (l *netLab) cut(i, j int) {
	l.t.Helper()
	for _, e := range [][2]int{{i, j}, {j, i}} {
		if err := ipCmd("netns", "exec", l.ns[e[0]], "ip", "route", "add", "blackhole", l.ips[e[1]]+"/32"); err != nil {
			l.t.Fatal(err)
		}
	}
}

// heal restores the link between hosts i and j.
func (l *netLab) heal(i, j int) {
	l.t.Helper()
	for _, e := range [][2]int{{i, j}, {j, i}} {
		if err := ipCmd("netns", "exec", l.ns[e[0]], "ip", "route", "del", "blackhole", l.ips[e[1]]+"/32"); err != nil {
			l.t.Fatal(err)
		}
	}
}

func (l *netLab) destroy() {
	for _, ns := range l.ns {
		_ = ipCmd("netns", "del", ns)
	}
	_ = ipCmd("link", "del", l.bridge)
}
