package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sort"
	"testing"
	"time"
)

// Benchmarks of the proxy against the same backend dialed directly:
//
//	go test -run '^$' -bench 'HTTP' -benchtime 3s ./client/proxy
//
// new-conn opens a TCP connection per request (keep-alive off), the
// proxy's worst case (its accept, backend dial and two extra
// connections per request); keep-alive reuses one connection, so only
// the copying is measured. Each reports requests/s and the p50 and p99
// latency of a request; the proxy's added latency is the difference
// with BenchmarkDirect_HTTP.

func BenchmarkProxy_HTTP(b *testing.B) {
	be := startHTTPBackend(b, "b1")
	p := newTestProxy(b, Config{})
	addr := listenVIP(b, p, instances(b, be.addr))
	benchHTTP(b, addr)
}

func BenchmarkDirect_HTTP(b *testing.B) {
	be := startHTTPBackend(b, "b1")
	benchHTTP(b, be.addr)
}

func benchHTTP(b *testing.B, addr string) {
	for _, tc := range []struct {
		name      string
		keepAlive bool
	}{{"new-conn", false}, {"keep-alive", true}} {
		b.Run(tc.name, func(b *testing.B) {
			tr := &http.Transport{DisableKeepAlives: !tc.keepAlive, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			url := "http://" + addr + "/"
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
			}
			elapsed := time.Since(start)
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(lat[len(lat)*50/100]), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
		})
	}
}

// The parallel variants keep both cores busy with several clients at
// once (b.RunParallel), where the sequential ones above measure one
// request at a time. BenchmarkProxy_Parallel also times the same number
// of requests sent straight to the backend in the same run and reports
// the proxy's throughput as a percentage of it (pct-of-direct), so the
// ratio does not depend on how fast the machine happens to be.
//
//	go test -run '^$' -bench 'Parallel' -benchtime 3s ./client/proxy

// benchParallelism is RunParallel's goroutines per GOMAXPROCS: enough
// clients that the proxy, the backend and the clients never all wait.
const benchParallelism = 4

func BenchmarkProxy_Parallel(b *testing.B) {
	be := startHTTPBackend(b, "b1")
	p := newTestProxy(b, Config{})
	addr := listenVIP(b, p, instances(b, be.addr))
	benchParallel(b, addr, be.addr)
}

func BenchmarkDirect_Parallel(b *testing.B) {
	be := startHTTPBackend(b, "b1")
	benchParallel(b, be.addr, "")
}

// benchParallel requests addr from parallel clients and reports req/s;
// with a reference address it then sends the same number of requests
// there, with the timer stopped, and reports the ratio.
func benchParallel(b *testing.B, addr, reference string) {
	for _, tc := range []struct {
		name      string
		keepAlive bool
	}{{"new-conn", false}, {"keep-alive", true}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetParallelism(benchParallelism)
			run := func(addr string) time.Duration {
				tr := &http.Transport{DisableKeepAlives: !tc.keepAlive,
					MaxIdleConnsPerHost: benchParallelism * runtime.GOMAXPROCS(0)}
				defer tr.CloseIdleConnections()
				c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
				url := "http://" + addr + "/"
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := c.Get(url)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
				return time.Since(start)
			}
			b.ResetTimer()
			elapsed := run(addr)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			if reference != "" {
				ref := run(reference)
				b.ReportMetric(float64(b.N)/ref.Seconds(), "direct-req/s")
				b.ReportMetric(100*ref.Seconds()/elapsed.Seconds(), "pct-of-direct")
			}
		})
	}
}

// BenchmarkLoopback_TCP is the floor under the proxy's cost per
// connection: the system calls the proxy adds to a request sent on a
// new connection, with no proxy logic. Each operation dials a loopback
// listener and has it accept (the proxy's backend dial and its
// accept), sends a request the size of the benchmarks' HTTP GET one
// way and a response the size of their answer the other (the proxy's
// copy in each direction), and closes both ends. Its ns/op, against
// BenchmarkDirect_HTTP/new-conn's, says how much of the proxy's budget
// the kernel alone takes on this machine.
func BenchmarkLoopback_TCP(b *testing.B) {
	// No keep-alive probes on either socket: the proxy sets none on a
	// short connection.
	l, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	d := net.Dialer{KeepAlive: -1}
	const reqSize, respSize = 96, 118 // as GET / and its answer in benchHTTP
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		resp := make([]byte, respSize)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if _, err := io.ReadFull(c, buf[:reqSize]); err == nil {
				_, _ = c.Write(resp)
			}
			_ = c.Close()
		}
	}()
	req := make([]byte, reqSize)
	buf := make([]byte, 512)
	addr := l.Addr().String()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:respSize]); err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
	b.StopTimer()
	_ = l.Close()
	<-done
}
