package gossip

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newPool(t *testing.T, name string, meta Meta) *Pool {
	t.Helper()
	p, err := New(Config{Name: name, BindAddr: "127.0.0.1", BindPort: freePort(t), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

func TestPool_JoinSeesMetadataAndLeave(t *testing.T) {
	server := newPool(t, "s1", Meta{Server: true, RPCAddr: "127.0.0.1:4647", RaftID: "id-1", BootstrapExpect: 3})
	client := newPool(t, "c1", Meta{Client: true})
	other := newPool(t, "s2", Meta{Server: true, RPCAddr: "127.0.0.1:5647"})
	changes := server.Subscribe()

	if n, err := client.Join([]string{server.LocalAddr(), other.LocalAddr()}); err != nil || n != 2 {
		t.Fatalf("join: %d %v", n, err)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		return len(server.Members()) == 3 && len(client.Members()) == 3, fmt.Errorf("server sees %d, client %d", len(server.Members()), len(client.Members()))
	})
	select {
	case <-changes:
	default:
		t.Fatal("no change notification after a join")
	}
	servers := client.Servers()
	if len(servers) != 2 || servers[0].RaftID != "id-1" || servers[0].BootstrapExpect != 3 || servers[0].Status != StatusAlive {
		t.Fatalf("client's view of the servers: %+v", servers)
	}
	if addrs := client.AliveServerAddrs(); len(addrs) != 2 || addrs[0] != "127.0.0.1:4647" {
		t.Fatalf("alive server addrs %v", addrs)
	}

	if err := client.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		for _, m := range server.Members() {
			if m.Name == "c1" {
				return m.Status == StatusLeft, fmt.Errorf("c1 is %s", m.Status)
			}
		}
		return false, fmt.Errorf("c1 unknown")
	})
}

func TestPool_RejectsOversizedMetadata(t *testing.T) {
	big := make([]byte, 600)
	for i := range big {
		big[i] = 'x'
	}
	if _, err := New(Config{Name: "x", BindAddr: "127.0.0.1", BindPort: freePort(t), Meta: Meta{Datacenter: string(big)}}); err == nil {
		t.Fatal("metadata over 512 bytes accepted")
	}
}

func TestPool_FailureIsNotLeave(t *testing.T) {
	a := newPool(t, "a", Meta{Server: true})
	b, err := New(Config{Name: "b", BindAddr: "127.0.0.1", BindPort: freePort(t), Meta: Meta{Server: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) { return len(a.Members()) == 2, nil })
	// b dies without a word.
	_ = b.Shutdown()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		for _, m := range a.Members() {
			if m.Name == "b" {
				return m.Status == StatusFailed, fmt.Errorf("b is %s", m.Status)
			}
		}
		return false, fmt.Errorf("b unknown")
	})
}

// TestPool_SecondAgentWithOneNameIsRefused: an agent joining a pool in
// which its name is held by another address gets a NameConflictError
// naming that address; the pool keeps the first holder.
func TestPool_SecondAgentWithOneNameIsRefused(t *testing.T) {
	a := newPool(t, "vm", Meta{})
	b := newPool(t, "vm", Meta{})
	_, err := b.Join([]string{a.LocalAddr()})
	var conflict *NameConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("join with a taken name: %v", err)
	}
	want := fmt.Sprintf("node name %q is already used by 127.0.0.1; set -node-name", "vm")
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	// A distinct name joins without complaint.
	c := newPool(t, "vm-2", Meta{})
	if _, err := c.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatalf("join with a free name: %v", err)
	}
	if n, _ := c.nameConflicts(); n != 0 {
		t.Fatalf("a free name recorded %d conflicts", n)
	}
}
