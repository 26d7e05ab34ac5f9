package connlimit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// server accepts on a limited listener and keeps what it accepted, so
// tests can close connections from the server side.
type server struct {
	t  *testing.T
	l  *Listener
	mu sync.Mutex
	// accepted are the connections Accept returned, in order.
	accepted []net.Conn
}

func newServer(t *testing.T, cfg Config) *server {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, l: NewListener(inner, cfg)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted = append(s.accepted, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		s.l.Close()
		<-done
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.accepted {
			c.Close()
		}
	})
	return s
}

// dial connects from the given local IP (127.0.0.x).
func (s *server) dial(from string) net.Conn {
	s.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", s.l.Addr().String())
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

func (s *server) acceptedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

// closedByServer reports whether the server closed c without a word:
// a read returns EOF (or a reset) within a few seconds.
func closedByServer(c net.Conn) bool { return readEnds(c, 5*time.Second) }

// stillOpen reports whether c stays open (a read times out) for a
// moment; the server never writes on these connections.
func stillOpen(c net.Conn) bool { return !readEnds(c, 200*time.Millisecond) }

func readEnds(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// waitStats waits until the listener's counters satisfy ok.
func waitStats(t *testing.T, l *Listener, ok func(Stats) bool) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
		if s := l.Stats(); !ok(s) {
			return false, fmt.Errorf("stats not reached yet: %+v", s)
		}
		return true, nil
	})
}

func TestListener_PerClientLimit(t *testing.T) {
	var mu sync.Mutex
	var hits []Limit
	s := newServer(t, Config{MaxPerClient: 3, OnLimit: func(ip string, limit Limit, overflowed bool) {
		mu.Lock()
		defer mu.Unlock()
		if ip != "127.0.0.2" || overflowed {
			t.Errorf("OnLimit(%q, %q, %v): want the refused client 127.0.0.2, closed", ip, limit, overflowed)
		}
		hits = append(hits, limit)
	}})
	for i := 0; i < 3; i++ {
		s.dial("127.0.0.2")
	}
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 3 })

	over := s.dial("127.0.0.2")
	if !closedByServer(over) {
		t.Fatal("a fourth connection from the same IP stayed open; want it closed at once")
	}
	// Another address is not affected by the first one's limit.
	other := s.dial("127.0.0.3")
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 4 })
	if !stillOpen(other) {
		t.Fatal("a connection from another IP was closed")
	}
	if got := s.l.OpenFrom("127.0.0.2"); got != 3 {
		t.Errorf("OpenFrom(127.0.0.2) = %d, want 3", got)
	}
	if st := s.l.Stats(); st.Closed != 1 || st.Clients != 2 || s.acceptedCount() != 4 {
		t.Errorf("stats %+v, accepted %d; want 1 closed, 2 clients, 4 accepted", st, s.acceptedCount())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 1 || hits[0] != LimitPerClient {
		t.Errorf("OnLimit calls %v, want one per_client", hits)
	}
}

func TestListener_CloseReleasesSlot(t *testing.T) {
	s := newServer(t, Config{MaxPerClient: 1})
	first := s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 1 })

	// The server side closes (twice: the slot is given back once).
	s.mu.Lock()
	srvSide := s.accepted[0]
	s.mu.Unlock()
	srvSide.Close()
	srvSide.Close()
	if !closedByServer(first) {
		t.Fatal("the first connection is still open")
	}
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 0 && st.Clients == 0 })

	second := s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 1 })
	if !stillOpen(second) {
		t.Fatal("a connection after the first one closed was refused")
	}
	if st := s.l.Stats(); st.Closed != 0 {
		t.Errorf("%d connections refused, want 0", st.Closed)
	}
}

func TestListener_TotalLimit(t *testing.T) {
	limits := make(chan Limit, 1)
	s := newServer(t, Config{MaxPerClient: 10, MaxTotal: 2, OnLimit: func(_ string, l Limit, _ bool) { limits <- l }})
	s.dial("127.0.0.2")
	s.dial("127.0.0.3")
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 2 })
	if !closedByServer(s.dial("127.0.0.4")) {
		t.Fatal("a third connection stayed open over a total limit of 2")
	}
	if limit := <-limits; limit != LimitTotal {
		t.Errorf("limit hit = %q, want total", limit)
	}
}

func TestListener_ZeroDisables(t *testing.T) {
	s := newServer(t, Config{})
	for i := 0; i < 50; i++ {
		s.dial("127.0.0.2")
	}
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 50 })
	if st := s.l.Stats(); st.Closed != 0 || st.Overflowed != 0 {
		t.Fatalf("stats %+v: nothing may be refused without limits", st)
	}
	if s.l.Overflow() != nil {
		t.Fatal("an overflow listener without MaxOverflow")
	}
}

// TestListener_Overflow: connections over the limit go to the overflow
// listener, newest first; when it is full the oldest one whose client
// has said nothing makes room, and when every client has spoken a new
// connection is closed.
func TestListener_Overflow(t *testing.T) {
	s := newServer(t, Config{MaxPerClient: 1, MaxOverflow: 2})
	s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 1 })

	ov := s.l.Overflow()
	c1 := s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Overflowed == 1 })
	c2 := s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Overflowed == 2 })
	// Full: c1, the oldest silent one, makes room for c3.
	c3 := s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Overflowed == 3 && st.Evicted == 1 && st.OverflowOpen == 2 })
	if !closedByServer(c1) {
		t.Fatal("the oldest silent overflow connection was not shed")
	}

	// Newest first: c3, then c2. Both clients speak, the server hears
	// them and answers.
	for _, want := range []net.Conn{c3, c2} {
		oc, err := ov.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer oc.Close()
		if oc.RemoteAddr().String() != want.LocalAddr().String() {
			t.Fatalf("Accept gave %s, want %s (newest first)", oc.RemoteAddr(), want.LocalAddr())
		}
		if _, err := want.Write([]byte("?")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		_ = oc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(oc, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := oc.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		_ = want.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(want, buf); err != nil || buf[0] != 'x' {
			t.Fatalf("overflow connection did not reach the client: %q, %v", buf, err)
		}
	}
	// Every overflow client has spoken: a new connection is closed and
	// nothing more is shed.
	if !closedByServer(s.dial("127.0.0.2")) {
		t.Fatal("a connection beyond MaxOverflow stayed open while every overflow client had spoken")
	}
	if st := s.l.Stats(); st.Evicted != 1 || st.Closed != 1 || st.Open != 1 {
		t.Errorf("stats %+v: want 1 shed, 1 closed, 1 open within the limit", st)
	}
}

// TestListener_OverflowKeepsClientsWithDataWaiting: a client whose
// request is waiting in the socket, not yet read by a busy server, is
// not shed; a silent newer one is.
func TestListener_OverflowKeepsClientsWithDataWaiting(t *testing.T) {
	s := newServer(t, Config{MaxPerClient: 1, MaxOverflow: 2})
	s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 1 })
	asking := s.dial("127.0.0.2")
	if _, err := asking.Write([]byte("GET /v1/agent/health HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitStats(t, s.l, func(st Stats) bool { return st.OverflowOpen == 1 })
	silent := s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.OverflowOpen == 2 })
	// On loopback, the request is in the listener's socket buffer once
	// the write returned, though nobody read it.
	newest := s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Evicted == 1 })
	if !closedByServer(silent) {
		t.Fatal("the silent connection was not the one shed")
	}
	if !stillOpen(asking) || !stillOpen(newest) {
		t.Fatal("the connection with a request waiting, or the newest, was closed")
	}
}

func TestListener_OverflowCloseClosesQueued(t *testing.T) {
	s := newServer(t, Config{MaxPerClient: 1, MaxOverflow: 4})
	s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.Open == 1 })
	queued := s.dial("127.0.0.2")
	waitStats(t, s.l, func(st Stats) bool { return st.OverflowOpen == 1 })
	ov := s.l.Overflow()
	ov.Close()
	if !closedByServer(queued) {
		t.Fatal("a queued overflow connection survived closing the overflow listener")
	}
	waitStats(t, s.l, func(st Stats) bool { return st.OverflowOpen == 0 })
	if _, err := ov.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed overflow listener: %v, want net.ErrClosed", err)
	}
	// After the overflow listener closed, connections over the limit
	// are closed at once.
	if !closedByServer(s.dial("127.0.0.2")) {
		t.Fatal("a connection over the limit stayed open after the overflow closed")
	}
}

func TestListener_ClosePassesErrors(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, Config{MaxPerClient: 1})
	errCh := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errCh <- err
	}()
	l.Close()
	select {
	case err := <-errCh:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func TestShare(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		fd, percent, min, out int
	}{
		{"unknown limit", 0, 25, 64, 0},
		{"a quarter", 20000, 25, 64, 5000},
		{"at least min", 100, 25, 64, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Share(tc.fd, tc.percent, tc.min); got != tc.out {
				t.Fatalf("Share(%d, %d, %d) = %d, want %d", tc.fd, tc.percent, tc.min, got, tc.out)
			}
		})
	}
	if FDLimit() <= 0 {
		t.Fatal("FDLimit() <= 0 on Linux")
	}
}
