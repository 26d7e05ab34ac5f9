package e2e

import (
	"sync"
	"testing"
	"time"
)

// BenchmarkLeaderFailover measures leader failover on this machine:
// three server processes under a steady write load, the leader killed
// with SIGKILL 12 times; it reports, from the kill, the time until the
// surviving servers agree on a new leader and until the first write sent
// after the kill is accepted (p50 and max), in milliseconds. Run it with
//
//	go test -run '^$' -bench LeaderFailover -benchtime 1x ./e2e
func BenchmarkLeaderFailover(b *testing.B) {
	const kills = 12
	for i := 0; i < b.N; i++ {
		h := startServers(b, 3, nil, nil)
		hist := &history{start: time.Now(), acked: map[string][2]time.Time{}}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		load(h, hist, stop, &wg)
		times := killLeaders(b, h, hist, kills)
		close(stop)
		wg.Wait()

		var newLeader, firstWrite []time.Duration
		for _, ft := range times {
			newLeader = append(newLeader, ft.newLeader)
			firstWrite = append(firstWrite, ft.firstWrite)
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(percentile(newLeader, 0.5)), "new-leader-p50-ms")
		b.ReportMetric(ms(percentile(newLeader, 1)), "new-leader-max-ms")
		b.ReportMetric(ms(percentile(firstWrite, 0.5)), "first-write-p50-ms")
		b.ReportMetric(ms(percentile(firstWrite, 1)), "first-write-max-ms")
		b.ReportMetric(float64(len(times)), "kills")
	}
}
