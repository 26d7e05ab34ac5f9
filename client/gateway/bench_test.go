package gateway

import (
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

// Benchmarks of the gateway against the same backend dialed directly:
//
//	go test -run '^$' -bench 'HTTP' -benchtime 3s ./client/gateway
//
// new-conn opens a TCP connection per request (keep-alive off);
// keep-alive reuses one. The gateway keeps its own pooled connections
// to the backend either way. Each reports requests/s and the p50 and
// p99 latency of a request; the gateway's added latency is the
// difference with BenchmarkDirect_HTTP.

func BenchmarkGateway_HTTP(b *testing.B) {
	be := startBackend(b, "b1")
	g := newTestGateway(b, Config{})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Host: "web.example.com", Path: "/"}}, instance(b, be.addr, false))})
	benchHTTP(b, g.HTTPAddr(), "web.example.com")
}

func BenchmarkDirect_HTTP(b *testing.B) {
	be := startBackend(b, "b1")
	benchHTTP(b, be.addr, "web.example.com")
}

func benchHTTP(b *testing.B, addr, host string) {
	for _, tc := range []struct {
		name      string
		keepAlive bool
	}{{"new-conn", false}, {"keep-alive", true}} {
		b.Run(tc.name, func(b *testing.B) {
			tr := &http.Transport{DisableKeepAlives: !tc.keepAlive, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Host = host
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("HTTP %d", resp.StatusCode)
				}
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
