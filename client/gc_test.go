package client

import (
	"os"
	"path/filepath"
	"testing"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/driver"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/fakedriver"
	"github.com/droverhq/drover/testutil/mock"
)

// A client starting on a data dir removes the directories of
// allocations it does not hold (forgotten, or whose removal was cut
// short), and keeps those of the allocations it restored.
func TestClient_SweepsDirectoriesOfAllocationsItDoesNotHold(t *testing.T) {
	dataDir := t.TempDir()
	root := filepath.Join(dataDir, "alloc")
	node := mock.Node()
	job := mock.Job()
	held := mock.Alloc(job, node, 0)
	db := NewMemoryState()
	if err := db.PutAlloc(held); err != nil {
		t.Fatal(err)
	}
	orphan := structs.GenerateUUID()
	for _, id := range []string{held.ID, orphan} {
		logs := filepath.Join(root, id, "alloc", "logs")
		if err := os.MkdirAll(logs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(logs, "server.stdout.0"), []byte("output"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The orphan's task left its secrets tmpfs mounted (a crash before
	// its runner released it).
	orphanSecrets := newTaskDirs(filepath.Join(root, orphan), "t", true)
	if err := orphanSecrets.prepare(); err != nil {
		t.Fatal(err)
	}
	if mounted, _ := isTmpfsMount(orphanSecrets.secrets); !mounted {
		t.Fatal("fixture: no tmpfs on the orphan's secrets directory")
	}
	// A file that is not an allocation's directory is none of its
	// business.
	stray := filepath.Join(root, "README")
	if err := os.WriteFile(stray, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	srv := newFakeServers()
	srv.handle("Node.Register", func(int, interface{}, interface{}) error { return errUnreachable })
	c, err := New(&Config{
		DataDir: dataDir, Node: node, State: db, SecretsOnDisk: true,
		Drivers: map[string]driver.Driver{"containerd": fakedriver.New()},
		RPC:     srv,
		Logger:  hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()

	if _, err := os.Stat(filepath.Join(root, orphan)); !os.IsNotExist(err) {
		t.Fatalf("the orphaned directory is still there: %v", err)
	}
	if n := countMounts(t, orphanSecrets.secrets); n != 0 {
		t.Fatalf("%d mounts left on the orphan's secrets directory", n)
	}
	if _, err := os.Stat(filepath.Join(root, held.ID, "alloc", "logs", "server.stdout.0")); err != nil {
		t.Fatalf("the restored allocation's logs: %v", err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("a file in the allocation root was removed: %v", err)
	}
	// Nothing more to sweep.
	if n := c.sweepAllocDirs(); n != 0 {
		t.Fatalf("a second sweep removed %d directories", n)
	}
}
