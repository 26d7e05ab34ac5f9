package agent

import (
	"slices"
	"testing"
)

func TestTaskDNSServers_OnlyPort53IPv4(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		want       []string
	}{
		{"dns off", "", nil},
		{"default port", "127.0.0.1:8600", nil},
		{"port 53 on loopback", "127.0.0.1:53", []string{"127.0.0.1"}},
		{"port 53 on the agent's loopback bind address", "127.0.0.7:53", []string{"127.0.0.7"}},
		{"port 53 on a routable address", "10.1.2.3:53", []string{"10.1.2.3"}},
		{"port 53 on every address", "0.0.0.0:53", []string{"127.0.0.1"}},
		{"port 5353", "127.0.0.1:5353", nil},
		{"IPv6 loopback", "[::1]:53", nil},
		{"IPv4-mapped IPv6", "[::ffff:127.0.0.1]:53", nil},
		{"host name", "localhost:53", nil},
		{"no port", "127.0.0.1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := taskDNSServers(tc.addr); !slices.Equal(got, tc.want) {
				t.Errorf("taskDNSServers(%q) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}
