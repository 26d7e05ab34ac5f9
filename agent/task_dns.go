package agent

import (
	"net"
	"net/netip"
)

// taskDNSServers returns the nameservers a client agent gives its tasks
// (client.Config.DNSServers) for its DNS address dnsAddr (Config.DNSAddr,
// "" when DNS is off).
//
// A resolv.conf names nameservers without a port, so tasks can use the
// agent's DNS only when it listens on port 53: then they get its address
// (127.0.0.1 for 0.0.0.0, which tasks sharing the host's network reach
// there), ahead of the host's nameservers, and resolve *.drover names
// like any other. On any other port, the default 8600 included, tasks
// keep the host's resolv.conf and ask the agent's DNS by explicit port
// (busybox: nslookup -port=8600 web.service.drover 127.0.0.1). An IPv6
// or host-name address also gives nil: the drivers take IPv4 servers.
func taskDNSServers(dnsAddr string) []string {
	host, port, err := net.SplitHostPort(dnsAddr)
	if err != nil || port != "53" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return nil
	}
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return []string{ip.String()}
}
