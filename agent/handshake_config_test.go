package agent

import (
	"strings"
	"testing"
	"time"
)

func TestConfig_HandshakeTimeouts(t *testing.T) {
	c := DevConfig()
	c.Limits.RPCHandshakeTimeout = "750ms"
	sc, err := c.serverConfig()
	if err != nil {
		t.Fatal(err)
	}
	if sc.RPCHandshakeTimeout != 750*time.Millisecond {
		t.Fatalf("rpc_handshake_timeout reached the server as %s", sc.RPCHandshakeTimeout)
	}
	for _, bad := range []struct{ rpc, https, want string }{
		{"soon", "", "rpc_handshake_timeout"},
		{"-1s", "", "rpc_handshake_timeout"},
		{"", "0s", "https_handshake_timeout"},
		{"", "fast", "https_handshake_timeout"},
	} {
		c := DevConfig()
		c.Limits.RPCHandshakeTimeout, c.Limits.HTTPSHandshakeTimeout = bad.rpc, bad.https
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("rpc %q https %q: got %v, want an error naming %s", bad.rpc, bad.https, err, bad.want)
		}
	}
}
