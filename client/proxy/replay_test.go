package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startSwallowBackend is a TCP server that reads what a client sends
// (a line, or until the client half-closes when untilEOF) and closes
// without answering: an instance killed mid-request. It counts the
// connections it swallowed.
func startSwallowBackend(t *testing.T, untilEOF bool) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				if untilEOF {
					_, _ = io.Copy(io.Discard, c)
				} else {
					_, _ = bufio.NewReader(c).ReadString('\n')
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().String(), &n
}

// TestProxy_ReplaysUnansweredConnection: a backend that reads the
// request and closes without a byte of answer costs the client
// nothing: the request goes to the next backend, which answers it.
func TestProxy_ReplaysUnansweredConnection(t *testing.T) {
	dead, swallowed := startSwallowBackend(t, false)
	echo := startEchoBackend(t, "e1")
	// Round-robin from the swallowing backend first: every other
	// connection meets it.
	p := newTestProxy(t, Config{Balance: BalanceRoundRobin})
	addr := listenVIP(t, p, instances(t, dead, echo.addr))
	for i := 0; i < 6; i++ {
		c := dialLine(t, addr)
		got, err := c.say("hello")
		if err != nil || got != "e1 hello" {
			t.Fatalf("connection %d: %q %v, want the echo backend's answer", i, got, err)
		}
		c.Close()
	}
	if swallowed.Load() == 0 {
		t.Fatal("the swallowing backend was never tried; the test proves nothing")
	}
	st := p.Status()
	if st.Totals.Replayed == 0 || st.Totals.FailedConnects != 0 {
		t.Fatalf("totals %+v: want replays and no failed connects", st.Totals.Counters)
	}
}

// TestProxy_NoReplay: with NoReplay, or when the client half-closed
// first, or sent more than replayLimit before any answer, the client
// sees the backend's close.
func TestProxy_NoReplay(t *testing.T) {
	t.Run("NoReplay", func(t *testing.T) {
		dead, _ := startSwallowBackend(t, false)
		p := newTestProxy(t, Config{NoReplay: true})
		addr := listenVIP(t, p, instances(t, dead, startEchoBackend(t, "e1").addr))
		// Least-conn ties go round-robin: within two connections one
		// meets the swallowing backend and gets its close.
		closes := 0
		for i := 0; i < 2; i++ {
			c := dialLine(t, addr)
			if _, err := c.say("hello"); err != nil {
				closes++
			}
			c.Close()
		}
		if closes != 1 {
			t.Fatalf("%d of 2 connections saw the close, want 1", closes)
		}
		if st := p.Status(); st.Totals.Replayed != 0 {
			t.Fatalf("replayed %d with NoReplay", st.Totals.Replayed)
		}
	})
	t.Run("client half-closed", func(t *testing.T) {
		dead, swallowed := startSwallowBackend(t, true)
		dead2, swallowed2 := startSwallowBackend(t, true)
		p := newTestProxy(t, Config{})
		addr := listenVIP(t, p, instances(t, dead, dead2))
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("fire and forget\n"))
		_ = conn.(*net.TCPConn).CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(conn); err != nil || len(b) != 0 {
			t.Fatalf("read %q %v, want a clean close", b, err)
		}
		if n := swallowed.Load() + swallowed2.Load(); n != 1 {
			t.Fatalf("the backends got %d connections, want 1 (no replay after the client's half-close)", n)
		}
	})
	t.Run("over the replay limit", func(t *testing.T) {
		dead, swallowed := startSwallowBackend(t, false)
		dead2, swallowed2 := startSwallowBackend(t, false)
		p := newTestProxy(t, Config{})
		addr := listenVIP(t, p, instances(t, dead, dead2))
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte(strings.Repeat("x", replayLimit+1) + "\n"))
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(conn)
		if len(b) != 0 {
			t.Fatalf("read %q", b)
		}
		if n := swallowed.Load() + swallowed2.Load(); n != 1 {
			t.Fatalf("the backends got %d connections, want 1 (too much to replay)", n)
		}
	})
}
