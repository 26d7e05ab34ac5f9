package client

import (
	"os"
	"path/filepath"
)

// Allocation directories and garbage collection.
//
// An allocation's directory (<data_dir>/alloc/<alloc ID>, its tasks'
// logs and data) lives as long as the client holds the allocation,
// also after it finished, so its logs stay readable. When the servers'
// garbage collector deletes the allocation, the next answer of the
// client's watch no longer lists it, at an index no older than the
// deletion (Node.GetClientAllocs), and the protocol removes it
// (removeAlloc): the runner is destroyed and the directory with it.
//
// What that leaves behind is a directory whose allocation the client
// no longer holds at all: one the client forgot because it could not
// restore it after a restart, or one whose removal a crash or an error
// interrupted. sweepAllocDirs removes those when the client starts,
// after it restored what it held and before it talks to the servers.

// sweepAllocDirs removes the directories under the allocation root of
// allocations the client does not hold. It reports how many it removed.
func (c *Client) sweepAllocDirs() int {
	if c.allocRoot == "" {
		return 0
	}
	entries, err := os.ReadDir(c.allocRoot)
	if err != nil {
		if !os.IsNotExist(err) {
			c.logger.Warn("cannot list allocation directories", "dir", c.allocRoot, "error", err)
		}
		return 0
	}
	c.allocLock.RLock()
	defer c.allocLock.RUnlock()
	removed := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, held := c.allocs[e.Name()]; held {
			continue
		}
		dir := filepath.Join(c.allocRoot, e.Name())
		// A task's secrets tmpfs may still be mounted (a crash before
		// its runner released it): unmount it first, or RemoveAll would
		// empty it and then fail on the mount point.
		secrets, _ := filepath.Glob(filepath.Join(dir, "tasks", "*", "secrets"))
		for _, dir := range secrets {
			if err := (&taskDirs{secrets: dir}).release(); err != nil {
				c.logger.Warn("cannot release the secrets directory of an allocation this client no longer has", "dir", dir, "error", err)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			c.logger.Warn("cannot remove the directory of an allocation this client no longer has", "alloc_id", e.Name(), "error", err)
			continue
		}
		c.logger.Info("removed the directory of an allocation this client no longer has", "alloc_id", e.Name())
		removed++
	}
	return removed
}
