package client

import (
	"time"

	"github.com/droverhq/drover/structs"
)

// DefaultDriverHealthInterval is how often the client re-checks its
// drivers' health.
const DefaultDriverHealthInterval = 5 * time.Second

// sameDriverHealth reports whether two fingerprints say the same about
// a driver's health.
func sameDriverHealth(a, b *structs.DriverInfo) bool {
	return a.Detected == b.Detected && a.Healthy == b.Healthy && a.HealthDescription == b.HealthDescription
}

// watchDriverHealth re-fingerprints the drivers every interval. When a
// driver's health changes (containerd stopped, or came back), the node
// is registered again at once with the new health, so the scheduler
// stops placing there (or starts again) without waiting for a
// heartbeat; the change and its time are in the node's driver info.
func (c *Client) watchDriverHealth(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.shutdownCh:
			return
		case <-t.C:
		}
		cur := c.Node()
		node := cur.Copy()
		c.fingerprintDrivers(node)
		changed := false
		for name, info := range node.Drivers {
			old := cur.Drivers[name]
			if old != nil && sameDriverHealth(old, info) {
				continue
			}
			changed = true
			if info.Healthy {
				c.logger.Info("driver is healthy again", "driver", name)
			} else {
				c.logger.Warn("driver is unhealthy: no new allocations will be placed on this node until it recovers", "driver", name, "reason", info.HealthDescription)
			}
		}
		if !changed {
			continue
		}
		c.nodeLock.Lock()
		c.node = node
		c.nodeLock.Unlock()
		c.proto.nodeChanged()
	}
}
