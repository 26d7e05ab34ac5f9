// Command flood is the load generator of e2e's overload test: from one
// local address, it keeps -conns concurrent blocking queries open
// against an agent's HTTP API for -duration, then prints what it saw as
// JSON on stdout and exits.
//
// Each of the -conns workers dials (from -from), sends the blocking
// query and waits for the answer. A query the agent holds stays open
// until the end. One the agent answers at once is asked again: after
// -pause on the same connection when the agent kept it open (a query
// over the blocking-query cap), after -redial on a new one when the
// agent closed it (a 429 over the connection limit, or a refusal). So
// the flood keeps -conns queries asked without holding -conns
// descriptors. It only ever talks to -addr, which the
// test points at a loopback address, and stops by itself.
//
// It is built from this file by the test (go build testdata/flood/main.go)
// and imports only the standard library.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type stats struct {
	Workers    int
	Attempts   int64
	Held       int64 // queries still waiting when the flood ended
	NotBlocked int64 // 200 at once, with the not-blocked header
	OK         int64 // 200 at once otherwise
	TooMany    int64 // 429
	Other      int64 // other statuses
	Closed     int64 // connection closed or refused without an answer
}

func main() {
	addr := flag.String("addr", "", "agent HTTP address host:port")
	from := flag.String("from", "127.0.0.1", "local address to send from")
	path := flag.String("path", "/v1/jobs?index=1&wait=5m", "the blocking query")
	conns := flag.Int("conns", 1000, "concurrent queries")
	duration := flag.Duration("duration", 30*time.Second, "how long to flood")
	pause := flag.Duration("pause", time.Second, "pause before asking again on a connection the agent kept open (jittered up to 2x)")
	redial := flag.Duration("redial", 5*time.Second, "pause before dialing again after the agent closed or refused a connection (jittered up to 2x)")
	ramp := flag.Duration("ramp", 10*time.Second, "spread the workers' first dials over this long")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "flood: -addr is required")
		os.Exit(2)
	}
	end := time.Now().Add(*duration)
	var st stats
	st.Workers = *conns
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(int64(*ramp) * int64(i) / int64(*conns)))
			worker(*addr, *from, *path, end, *pause, *redial, &st)
		}(i)
	}
	wg.Wait()
	_ = json.NewEncoder(os.Stdout).Encode(&st)
}

func worker(addr, from, path string, end time.Time, pause, redial time.Duration, st *stats) {
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: agent\r\n\r\n", path)
	var c net.Conn
	var r *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for time.Now().Before(end) {
		if c == nil {
			nc, err := dialer.Dial("tcp", addr)
			if err != nil {
				atomic.AddInt64(&st.Closed, 1)
				sleepUntil(end, redial)
				continue
			}
			c, r = nc, bufio.NewReader(nc)
		}
		atomic.AddInt64(&st.Attempts, 1)
		_ = c.SetDeadline(end)
		if _, err := io.WriteString(c, req); err != nil {
			c.Close()
			c = nil
			atomic.AddInt64(&st.Closed, 1)
			sleepUntil(end, redial)
			continue
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				atomic.AddInt64(&st.Held, 1) // held until the end: blocked
				return
			}
			c.Close()
			c = nil
			atomic.AddInt64(&st.Closed, 1)
			sleepUntil(end, redial)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			atomic.AddInt64(&st.TooMany, 1)
		case resp.StatusCode == http.StatusOK && resp.Header.Get("X-Drover-Not-Blocked") != "":
			atomic.AddInt64(&st.NotBlocked, 1)
		case resp.StatusCode == http.StatusOK:
			atomic.AddInt64(&st.OK, 1)
		default:
			atomic.AddInt64(&st.Other, 1)
		}
		if resp.Close {
			c.Close()
			c = nil
			sleepUntil(end, redial)
			continue
		}
		sleepUntil(end, pause)
	}
}

// sleepUntil pauses between pause and 2*pause, not past end.
func sleepUntil(end time.Time, pause time.Duration) {
	d := pause + time.Duration(rand.Int63n(int64(pause)+1))
	if left := time.Until(end); d > left {
		d = left
	}
	if d > 0 {
		time.Sleep(d)
	}
}
