package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// TestServer_PeersFileRecovery: a server whose Raft configuration names
// a voter that is gone for good cannot elect itself; a peers.json
// listing only itself recovers it with its state, and is renamed once
// applied. A peers.json that does not list the server, or is not JSON,
// stops the start with the file named.
func TestServer_PeersFileRecovery(t *testing.T) {
	dir := t.TempDir()
	startOn := func(port int) (*Server, error) {
		cfg := DefaultConfig()
		cfg.DataDir = dir
		cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: port}
		cfg.NumSchedulers = 0
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn})
		return NewServer(cfg)
	}
	s, err := startOn(0)
	if err != nil {
		t.Fatal(err)
	}
	waitForLeader(t, s)
	registerNode(t, s, mock.Node())
	id := string(s.raftID)
	port := s.config.RPCAddr.Port
	// Add a voter that will never answer: the configuration now needs
	// two votes, and this server alone has one.
	if err := s.raft.AddVoter("ghost", "192.0.2.77:4647", 0, 2*time.Second).Error(); err != nil {
		t.Logf("add voter: %v (the entry may still be in the log)", err)
	}
	_ = s.Shutdown()

	peers := filepath.Join(dir, "raft", "peers.json")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(peers, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`[{"id":"someone-else","address":"127.0.0.1:1"}]`)
	if _, err := startOn(port); err == nil || !strings.Contains(err.Error(), "does not list this server") {
		t.Fatalf("peers.json without this server: %v", err)
	}
	write(`{not json`)
	if _, err := startOn(port); err == nil || !strings.Contains(err.Error(), "peers.json: not a JSON list") {
		t.Fatalf("garbage peers.json: %v", err)
	}
	write(fmt.Sprintf(`[{"id":%q,"address":"127.0.0.1:%d"}]`, id, port))
	s2, err := startOn(port)
	if err != nil {
		t.Fatalf("recovery: %v", err)
	}
	defer s2.Shutdown()
	waitForLeader(t, s2)
	f := s2.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if servers := f.Configuration().Servers; len(servers) != 1 || servers[0].ID != raft.ServerID(id) {
		t.Fatalf("configuration after recovery: %+v", servers)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		nodes, err := s2.State().Nodes(nil)
		return err == nil && len(nodes) == 1, err
	})
	if _, err := os.Stat(peers); !os.IsNotExist(err) {
		t.Fatal("peers.json is still there after being applied")
	}
	if _, err := os.Stat(peers + ".applied"); err != nil {
		t.Fatalf("peers.json.applied: %v", err)
	}
}
