package server

import (
	"net"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

// testServer starts a single-server cluster in a temp dir, on a free
// port, with fast timings, and waits until it leads.
func testServer(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RPCAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 0}
	cfg.NumSchedulers = 2
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn})
	if mutate != nil {
		mutate(cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	waitForLeader(t, s)
	return s
}

func waitForLeader(t *testing.T, s *Server) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		return s.IsLeader() && s.evalBroker.Enabled(), nil
	})
}

// registerNode registers a ready node through the RPC endpoint.
func registerNode(t *testing.T, s *Server, node *structs.Node) {
	t.Helper()
	var resp structs.NodeUpdateResponse
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: node}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.HeartbeatTTL <= 0 {
		t.Fatalf("no heartbeat TTL returned")
	}
}

// registerJob registers a job through the RPC endpoint.
func registerJob(t *testing.T, s *Server, job *structs.Job) *structs.JobRegisterResponse {
	t.Helper()
	var resp structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

// waitForEval waits until the evaluation is terminal and returns it.
func waitForEval(t *testing.T, s *Server, id string) *structs.Evaluation {
	t.Helper()
	var eval *structs.Evaluation
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		e, err := s.State().EvalByID(nil, id)
		if err != nil || e == nil {
			return false, err
		}
		eval = e
		return e.TerminalStatus(), nil
	})
	return eval
}

// liveAllocs returns a job's allocations the scheduler wants running.
func liveAllocs(t *testing.T, s *Server, jobID string) []*structs.Allocation {
	t.Helper()
	all, err := s.State().AllocsByJob(nil, "", jobID)
	if err != nil {
		t.Fatal(err)
	}
	var out []*structs.Allocation
	for _, a := range all {
		if !a.TerminalStatus() {
			out = append(out, a)
		}
	}
	return out
}
