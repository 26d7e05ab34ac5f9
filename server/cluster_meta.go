package server

import (
	"time"

	"github.com/droverhq/drover/structs"
)

// clusterIDRetry is how long the leader waits before trying again to
// write the cluster ID.
const clusterIDRetry = time.Second

// ensureClusterID is a leader loop: a cluster without an ID (a new
// one, or one upgraded from a Drover without IDs, or restored from a
// snapshot without one) gets one, written through Raft. The entry
// carries IgnoreUnknownTypeFlag so that older servers, during an
// upgrade, skip it. The FSM keeps the first ID it applies, so a leader
// change in the middle cannot give the cluster two.
func (s *Server) ensureClusterID(stopCh <-chan struct{}) {
	for {
		meta, err := s.State().ClusterMeta()
		if err == nil && meta != nil {
			return
		}
		req := &structs.ClusterMetaRequest{Meta: structs.ClusterMeta{
			ClusterID: structs.GenerateUUID(), CreateTime: time.Now().UnixNano(),
		}}
		if _, _, err := s.raftApply(structs.ClusterMetaRequestType|structs.IgnoreUnknownTypeFlag, req); err != nil {
			s.logger.Warn("failed to write the cluster ID; retrying", "error", err)
		} else if meta, _ := s.State().ClusterMeta(); meta != nil {
			s.logger.Info("cluster ID created", "cluster_id", meta.ClusterID)
			return
		}
		select {
		case <-stopCh:
			return
		case <-time.After(clusterIDRetry):
		}
	}
}

// ClusterID returns the cluster's ID as this server's state has it, ""
// before the first leader wrote it.
func (s *Server) ClusterID() string {
	if meta, _ := s.State().ClusterMeta(); meta != nil {
		return meta.ClusterID
	}
	return ""
}
