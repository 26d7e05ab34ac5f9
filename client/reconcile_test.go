package client

import (
	"fmt"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/fakedriver"
	"github.com/droverhq/drover/testutil/mock"
)

func TestClient_MissingAllocRemovedOnlyByACaughtUpServer(t *testing.T) {
	drv := fakedriver.New()
	c, err := New(&Config{
		DataDir: t.TempDir(), RPC: newReportServers(t),
		Drivers:     map[string]driver.Driver{"containerd": drv},
		CPUTotalMHz: 4000, MemoryTotalMB: 4096,
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()

	alloc := mock.Alloc(mock.Job(), c.Node(), 0)
	alloc.NodeID = c.NodeID()
	alloc.AllocModifyIndex, alloc.ModifyIndex = 100, 100
	c.applyAlloc(alloc)
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		_, _, _, _, live := drv.Counts()
		return live == 1, nil
	})

	// A lagging server (applied up to 90) does not know the allocation:
	// it must not be destroyed.
	if err := c.proto.pullAndApply(map[string]uint64{}, 90); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AllocTasks(alloc.ID); err != nil {
		t.Fatal("an allocation missing from a lagging server's answer was removed")
	}
	if _, _, stops, _, live := drv.Counts(); stops != 0 || live != 1 {
		t.Fatalf("its task was stopped: stops %d live %d", stops, live)
	}

	// A server that has applied its version and no longer has it: gone.
	if err := c.proto.pullAndApply(map[string]uint64{}, 120); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		_, _, _, _, live := drv.Counts()
		return live == 0, fmt.Errorf("%d tasks left", live)
	})
}
