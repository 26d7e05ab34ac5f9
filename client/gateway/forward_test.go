package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
)

// TestGateway_BodiesArriveIntact sends response bodies larger than the
// proxy's copy buffers (with a Content-Length and streamed chunked) from
// concurrent requests and checks every byte: pooled buffers must never
// be shared by two responses.
func TestGateway_BodiesArriveIntact(t *testing.T) {
	payload := func(seed, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(seed*31 + i*7)
		}
		return b
	}
	be := startBackendHandler(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		seed, _ := strconv.Atoi(r.URL.Query().Get("seed"))
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		body := payload(seed, n)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
			_, _ = w.Write(body)
			return
		}
		for len(body) > 0 {
			k := min(len(body), 10000)
			_, _ = w.Write(body[:k])
			w.(http.Flusher).Flush()
			body = body[k:]
		}
	})
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Host: "web.example.com", Path: "/"}}, instance(t, be.addr, false))})
	c := testClient(g.HTTPAddr())

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 8; j++ {
				seed, n := i*100+j, 1000+(i*j*37_000)%300_000
				chunked := ""
				if j%2 == 1 {
					chunked = "&chunked=1"
				}
				resp, err := c.Get(fmt.Sprintf("http://web.example.com/?seed=%d&n=%d%s", seed, n, chunked))
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, payload(seed, n)) {
					errs <- fmt.Errorf("seed %d n %d%s: HTTP %d, %d bytes, err %v: body differs", seed, n, chunked, resp.StatusCode, len(got), err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestGateway_AcceptEncodingPassedAsSent checks that the gateway neither
// adds an Accept-Encoding of its own nor decodes the response: the
// instance sees what the client sent and the client gets what the
// instance sent.
func TestGateway_AcceptEncodingPassedAsSent(t *testing.T) {
	be := startBackendHandler(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write([]byte("not really gzip"))
			return
		}
		_, _ = w.Write([]byte("plain"))
	})
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Host: "web.example.com", Path: "/"}}, instance(t, be.addr, false))})
	c := testClient(g.HTTPAddr())
	c.Transport.(*http.Transport).DisableCompression = true

	for _, tc := range []struct{ name, sent, wantBody string }{
		{"none", "", "plain"},
		{"br", "br", "plain"},
		{"gzip", "gzip", "not really gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://web.example.com/", nil)
			if tc.sent != "" {
				req.Header.Set("Accept-Encoding", tc.sent)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if seen := resp.Header.Get("X-Seen-Accept-Encoding"); seen != tc.sent {
				t.Errorf("instance saw Accept-Encoding %q, want %q", seen, tc.sent)
			}
			if string(body) != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
		})
	}
}

// TestGateway_MetricsSeriesFollowRoutes checks the cached series: a
// route counts into its series, a removed route's series are gone, and
// a route added again counts from zero in series exported again.
func TestGateway_MetricsSeriesFollowRoutes(t *testing.T) {
	be := startBackend(t, "b1")
	g := newTestGateway(t, Config{})
	web := service("web", []*structs.ServiceRoute{{Host: "web.example.com", Path: "/"}}, instance(t, be.addr, false))
	other := service("other", []*structs.ServiceRoute{{Host: "other.example.com", Path: "/"}}, instance(t, be.addr, false))
	c := testClient(g.HTTPAddr())
	// count returns drover_gateway_requests_total for web's route and
	// code class, -1 when the series is not exported.
	count := func(class string) float64 {
		t.Helper()
		mfs, err := g.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "drover_gateway_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["service"] == "web" && labels["host"] == "web.example.com" && labels["code"] == class {
					return m.GetCounter().GetValue()
				}
			}
		}
		return -1
	}
	// Requests are counted once answered: wait for the handler's end.
	waitCount := func(class string, want float64) {
		t.Helper()
		testutil.WaitFor(t, 5*time.Second, func() (bool, error) {
			if got := count(class); got != want {
				return false, fmt.Errorf("requests_total{service=web,code=%s} = %v, want %v", class, got, want)
			}
			return true, nil
		})
	}

	g.Update([]*structs.ProxiedService{web, other})
	if got := count("2xx"); got != -1 {
		t.Fatalf("before any request: requests_total{code=2xx} = %v, want no series", got)
	}
	for i := 0; i < 3; i++ {
		get(t, c, "http://web.example.com/")
	}
	waitCount("2xx", 3)
	if got := count("5xx"); got != -1 {
		t.Fatalf("requests_total{code=5xx} = %v, want no series", got)
	}

	g.Update([]*structs.ProxiedService{other})
	if got := count("2xx"); got != -1 {
		t.Fatalf("route removed: requests_total{code=2xx} = %v, want no series", got)
	}
	g.Update([]*structs.ProxiedService{web, other})
	get(t, c, "http://web.example.com/")
	waitCount("2xx", 1)
}

// TestGateway_StreamsWhatTheInstanceSent checks that the gateway holds
// nothing back: each piece of a body reaches the client before the
// instance sends the next (with a Content-Length or without), and a
// stream's headers reach the client before its first byte.
func TestGateway_StreamsWhatTheInstanceSent(t *testing.T) {
	next := make(chan struct{})
	be := startBackendHandler(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("length") != "" {
			w.Header().Set("Content-Length", "10")
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for _, piece := range []string{"hello", "world"} {
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, piece)
			w.(http.Flusher).Flush()
		}
	})
	g := newTestGateway(t, Config{})
	g.Update([]*structs.ProxiedService{service("web", []*structs.ServiceRoute{{Host: "web.example.com", Path: "/"}}, instance(t, be.addr, false))})
	c := testClient(g.HTTPAddr())

	for _, tc := range []struct{ name, query string }{{"content-length", "?length=1"}, {"stream", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			// The headers come before the instance sends any body.
			resp, err := c.Get("http://web.example.com/" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			for _, want := range []string{"hello", "world"} {
				next <- struct{}{}
				got := make([]byte, len(want))
				if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != want {
					t.Fatalf("read %q (%v), want %q", got, err, want)
				}
			}
		})
	}
}
