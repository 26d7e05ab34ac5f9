package proxy

import (
	"io"
	"net/http"
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
