package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// TestHA_Partition cuts the leader off from the other two servers (in
// network namespaces): the majority elects a new leader and takes
// writes; the old leader stops accepting writes and serving consistent
// reads; after healing it follows and holds every write.
func TestHA_Partition(t *testing.T) {
	lab := newNetLab(t, 3)
	h := startServers(t, 3, lab.ips, lab.ns)
	old := h.waitLeader(nil)
	oldIdx := indexOf(h.servers, old)
	if ok, _ := putJob(old, regJob("before", "1")); !ok {
		t.Fatal("write before the partition failed")
	}

	for i := range h.servers {
		if i != oldIdx {
			lab.cut(oldIdx, i)
		}
	}
	var majority []*agent
	for i, s := range h.servers {
		if i != oldIdx {
			majority = append(majority, s)
		}
	}
	// The majority elects one of its own.
	var newLeader string
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		a, b := leaderOf(majority[0]), leaderOf(majority[1])
		if a == "" || a != b || strings.HasPrefix(a, old.host+":") {
			return false, fmt.Errorf("majority sees leaders %q and %q", a, b)
		}
		newLeader = a
		return true, nil
	})
	t.Logf("old leader %s cut off; %s leads the majority", old.name, newLeader)
	if ok, _ := putJob(majority[0], regJob("during", "2")); !ok {
		t.Fatal("the majority does not take writes")
	}
	if v, ok := getValue(majority[1], "during"); !ok || v != "2" {
		t.Fatalf("consistent read on the majority: %q %v", v, ok)
	}

	// The old leader takes no writes and serves no consistent reads: it
	// cannot reach a quorum. (It waits for a leader, then says so.)
	if ok, _ := putJob(old, regJob("lost", "3")); ok {
		t.Fatal("the partitioned old leader accepted a write")
	}
	status := httpStatus(t, "http://"+old.host+":4646/v1/job/during")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("consistent read on the partitioned old leader: HTTP %d, want 503", status)
	}
	// Stale reads are still answered, from its own (old) state.
	if st := httpStatus(t, "http://"+old.host+":4646/v1/job/before?stale=true"); st != 200 {
		t.Fatalf("stale read on the old leader: HTTP %d", st)
	}

	for i := range h.servers {
		if i != oldIdx {
			lab.heal(oldIdx, i)
		}
	}
	// After healing the old leader follows and holds every write.
	h.waitLeader(nil)
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		st := httpStatus(t, "http://"+old.host+":4646/v1/job/during?stale=true")
		return st == 200, fmt.Errorf("the healed server does not have the write made during the partition (HTTP %d)", st)
	})
	if st := httpStatus(t, "http://"+old.host+":4646/v1/job/lost?stale=true"); st != 404 {
		t.Fatalf("a write refused during the partition exists after healing (HTTP %d)", st)
	}
	h.waitConverged(30 * time.Second)
}

func indexOf(list []*agent, a *agent) int {
	for i, x := range list {
		if x == a {
			return i
		}
	}
	return -1
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
