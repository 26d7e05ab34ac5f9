package server

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/fsm"
)

// Recovering a cluster that lost its quorum: with a majority of servers
// gone for good, the survivors cannot elect a leader and Raft cannot
// change its own configuration. The operator stops every surviving
// server, writes the same <data_dir>/raft/peers.json on each, listing the
// servers that are to form the cluster:
//
//	[
//	  {"id": "<server ID, from <data_dir>/server-id>", "address": "10.0.0.1:4647", "non_voter": false},
//	  ...
//	]
//
// and starts them. At start, a server that finds the file rewrites its
// Raft configuration to exactly those servers (raft.RecoverCluster: the
// log and snapshots are kept; the FSM replays them to take a new
// snapshot), renames the file to peers.json.applied, and runs. Writes
// committed only on the lost servers are lost.

// peersFileEntry is one server in peers.json.
type peersFileEntry struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter"`
}

// maxPeersFile bounds peers.json.
const maxPeersFile = 64 << 10

// readPeersFile parses peers.json into a Raft configuration.
func readPeersFile(path string) (raft.Configuration, error) {
	f, err := os.Open(path)
	if err != nil {
		return raft.Configuration{}, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxPeersFile+1))
	if err != nil {
		return raft.Configuration{}, err
	}
	if len(raw) > maxPeersFile {
		return raft.Configuration{}, fmt.Errorf("%s is larger than %d bytes", path, maxPeersFile)
	}
	var entries []peersFileEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return raft.Configuration{}, fmt.Errorf("%s: not a JSON list of {\"id\", \"address\", \"non_voter\"}: %w", path, err)
	}
	var conf raft.Configuration
	seen := map[string]bool{}
	for i, e := range entries {
		if e.ID == "" || e.Address == "" {
			return raft.Configuration{}, fmt.Errorf("%s: entry %d needs an id and an address", path, i)
		}
		if seen[e.ID] {
			return raft.Configuration{}, fmt.Errorf("%s: server %q is listed twice", path, e.ID)
		}
		seen[e.ID] = true
		suffrage := raft.Voter
		if e.NonVoter {
			suffrage = raft.Nonvoter
		}
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(e.ID), Address: raft.ServerAddress(e.Address), Suffrage: suffrage})
	}
	voters := 0
	for _, srv := range conf.Servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters == 0 {
		return raft.Configuration{}, fmt.Errorf("%s lists no voter; at least one server must vote", path)
	}
	return conf, nil
}

// recoverFromPeersFile applies <data_dir>/raft/peers.json if it exists.
func (s *Server) recoverFromPeersFile(conf *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) error {
	if s.config.DataDir == "" {
		return nil
	}
	path := filepath.Join(s.config.DataDir, "raft", "peers.json")
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	peers, err := readPeersFile(path)
	if err != nil {
		return fmt.Errorf("server: recovery: %w", err)
	}
	found := false
	for _, p := range peers.Servers {
		found = found || p.ID == conf.LocalID
	}
	if !found {
		return fmt.Errorf("server: recovery: %s does not list this server (ID %s, see <data_dir>/server-id)", path, conf.LocalID)
	}
	// RecoverCluster replays the log into an FSM of its own to take a
	// snapshot; the server's FSM then restores from that snapshot.
	tmp := fsm.New(fsm.Config{Logger: s.config.Logger})
	if err := raft.RecoverCluster(conf, tmp, logs, stable, snaps, s.raftTransport, peers); err != nil {
		return fmt.Errorf("server: recovery with %s: %w", path, err)
	}
	if err := os.Rename(path, path+".applied"); err != nil {
		return fmt.Errorf("server: recovery applied, but %s could not be renamed (remove it before the next start): %w", path, err)
	}
	s.logger.Warn("recovered the Raft configuration from peers.json", "servers", len(peers.Servers), "file", path+".applied")
	return nil
}
