package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAgent_GatewayAndProxy: the client agents' own status endpoints
// come back as their JSON, with the token sent; a 404 (no gateway on
// that agent) is an error carrying the agent's message.
func TestAgent_GatewayAndProxy(t *testing.T) {
	var tokens []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens = append(tokens, r.Header.Get("X-Drover-Token"))
		switch r.URL.Path {
		case "/v1/client/gateway":
			w.Write([]byte(`{"Listeners":[{"Kind":"http","Address":"127.0.0.1:80"}],"Routes":[]}`))
		case "/v1/client/proxy":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"Code":"not_found","Error":"this agent runs no services proxy"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c, err := NewClient(&Config{Address: srv.URL, Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.Agent().Gateway()
	if err != nil || !strings.Contains(string(raw), `"127.0.0.1:80"`) {
		t.Fatalf("Gateway: %s, %v", raw, err)
	}
	if _, err := c.Agent().Proxy(); err == nil || !strings.Contains(err.Error(), "runs no services proxy") {
		t.Fatalf("Proxy on an agent without one: %v", err)
	}
	for _, tok := range tokens {
		if tok != "s3cret" {
			t.Fatalf("token sent %q", tok)
		}
	}
}
