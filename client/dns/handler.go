package dns

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/droverhq/drover/structs"
)

// nameKind is what a name under the domain asks for.
type nameKind int

const (
	kindUnknown nameKind = iota
	kindService          // <svc>[.<ns>].service
	kindSRV              // _<svc>._tcp[.<ns>].service
	kindVIP              // <svc>[.<ns>].vip
	kindAddr             // <alloc8>.<node8>.addr
)

// query is a parsed question name.
type query struct {
	kind      nameKind
	namespace string
	service   string
}

// ServeDNS implements mdns.Handler. It is called on the miekg/dns
// server's goroutines, one per UDP packet or TCP connection. A panic
// while answering is recovered and answered SERVFAIL: a bad name or a
// broken lookup must not take the agent down.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	defer func() {
		if v := recover(); v != nil {
			s.logf("[ERROR] dns: panic answering a query: %v\n%s", v, debug.Stack())
			m := new(mdns.Msg)
			m.SetRcode(r, mdns.RcodeServerFailure)
			_ = w.WriteMsg(m)
		}
	}()
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	_ = w.WriteMsg(s.answer(ctx, r, udp))
}

// answer builds the reply to r; udp says whether it must fit a UDP
// packet (512 bytes, or the size in the query's EDNS0 record).
func (s *Server) answer(ctx context.Context, r *mdns.Msg, udp bool) *mdns.Msg {
	m := new(mdns.Msg)
	if r.Opcode != mdns.OpcodeQuery {
		// The server's accept function already refuses other opcodes
		// but NOTIFY.
		m.SetRcode(r, mdns.RcodeNotImplemented)
		return m
	}
	if len(r.Question) != 1 {
		m.SetRcode(r, mdns.RcodeFormatError)
		return m
	}
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = false
	size := mdns.MaxMsgSize
	if udp {
		size = mdns.MinMsgSize
	}
	if opt := r.IsEdns0(); opt != nil {
		if udp && int(opt.UDPSize()) > size {
			size = min(int(opt.UDPSize()), mdns.DefaultMsgSize)
		}
		m.SetEdns0(uint16(min(size, mdns.DefaultMsgSize)), false)
	}

	q := r.Question[0]
	name := mdns.CanonicalName(q.Name)
	if !mdns.IsSubDomain(s.domain, name) {
		m.Rcode = mdns.RcodeRefused
		m.Authoritative = false
		return m
	}
	if q.Qclass != mdns.ClassINET {
		return m
	}
	pq := s.parse(name)
	if pq.kind == kindUnknown {
		m.Rcode = mdns.RcodeNameError
		return m
	}
	if err := s.fill(ctx, m, name, q.Qtype, pq); err != nil {
		m = new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeServerFailure)
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errLookupPanic) {
			s.logf("[WARN] dns: lookup of service %q in namespace %q: %v", pq.service, pq.namespace, err)
		}
		return m
	}
	m.Truncate(size)
	return m
}

// parse splits a canonical name under the domain into what it asks
// for; kindUnknown for anything else.
func (s *Server) parse(name string) query {
	rel := strings.TrimSuffix(strings.TrimSuffix(name, s.domain), ".")
	if rel == "" {
		return query{}
	}
	labels := strings.Split(rel, ".")
	n := len(labels)
	ns := structs.DefaultNamespace
	switch labels[n-1] {
	case "service":
		if n >= 3 && strings.HasPrefix(labels[0], "_") && labels[1] == "_tcp" {
			if n == 4 {
				ns = labels[2]
			} else if n != 3 {
				return query{}
			}
			svc := labels[0][1:]
			if !validService(svc) || !validLabel(ns) {
				return query{}
			}
			return query{kind: kindSRV, namespace: ns, service: svc}
		}
		fallthrough
	case "vip":
		kind := kindService
		if labels[n-1] == "vip" {
			kind = kindVIP
		}
		switch n {
		case 2:
		case 3:
			ns = labels[1]
		default:
			return query{}
		}
		if !validService(labels[0]) || !validLabel(ns) {
			return query{}
		}
		return query{kind: kind, namespace: ns, service: labels[0]}
	case "addr":
		if n == 3 && labels[0] != "" && labels[1] != "" {
			return query{kind: kindAddr}
		}
	}
	return query{}
}

// validService reports whether l can be a service name (what
// structs.Service validation accepts): 1 to 63 lowercase letters,
// digits and '-', starting and ending with a letter or digit.
func validService(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validLabel reports whether l can be a namespace name (or an ID
// prefix) as a DNS label. Names are case-folded, so a namespace with
// capitals in its name is not reachable by DNS.
func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 {
		return false
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// fill answers the question (name, qtype) of kind pq into m: records,
// NOERROR without records when the name exists but has none of qtype,
// or NXDOMAIN. An error is a failed lookup.
func (s *Server) fill(ctx context.Context, m *mdns.Msg, name string, qtype uint16, pq query) error {
	if pq.kind == kindAddr {
		ip := s.targets.get(name)
		switch {
		case ip == nil:
			m.Rcode = mdns.RcodeNameError
		case qtype == mdns.TypeA:
			m.Answer = append(m.Answer, s.a(name, ip))
		}
		return nil
	}
	insts, err := s.cache.get(ctx, pq.namespace, pq.service)
	if err != nil {
		return err
	}
	if len(insts) == 0 {
		m.Rcode = mdns.RcodeNameError
		return nil
	}
	switch pq.kind {
	case kindService:
		if qtype == mdns.TypeA {
			m.Answer = s.passingA(name, insts)
		}
	case kindSRV:
		if qtype == mdns.TypeSRV {
			m.Answer, m.Extra = s.passingSRV(name, insts)
		}
	case kindVIP:
		var vip net.IP
		for _, in := range insts {
			if in != nil && in.VIP != "" {
				if vip = ipv4(in.VIP); vip != nil {
					break
				}
			}
		}
		switch {
		case vip == nil:
			m.Rcode = mdns.RcodeNameError
		case qtype == mdns.TypeA:
			m.Answer = []mdns.RR{s.a(name, vip)}
		}
	}
	return nil
}

// passingA returns an A record per distinct IPv4 address of the passing
// instances, in random order (callers that take the first address spread
// out), at most maxAnswers.
func (s *Server) passingA(name string, insts []*structs.ServiceInstance) []mdns.RR {
	seen := make(map[string]bool)
	var rrs []mdns.RR
	for _, in := range insts {
		if !passing(in) {
			continue
		}
		ip := ipv4(in.Address)
		if ip == nil || seen[ip.String()] {
			continue
		}
		seen[ip.String()] = true
		rrs = append(rrs, s.a(name, ip))
	}
	rand.Shuffle(len(rrs), func(i, j int) { rrs[i], rrs[j] = rrs[j], rrs[i] })
	if len(rrs) > maxAnswers {
		rrs = rrs[:maxAnswers]
	}
	return rrs
}

// passingSRV returns an SRV record per passing instance, in random
// order, at most maxAnswers, and the A records of their targets.
func (s *Server) passingSRV(name string, insts []*structs.ServiceInstance) (answer, extra []mdns.RR) {
	var pass []*structs.ServiceInstance
	for _, in := range insts {
		if passing(in) && in.Port > 0 && in.Port <= 65535 {
			pass = append(pass, in)
		}
	}
	rand.Shuffle(len(pass), func(i, j int) { pass[i], pass[j] = pass[j], pass[i] })
	if len(pass) > maxAnswers {
		pass = pass[:maxAnswers]
	}
	seen := make(map[string]bool)
	for _, in := range pass {
		target := mdns.CanonicalName(prefix8(in.AllocID) + "." + prefix8(in.NodeID) + ".addr." + s.domain)
		answer = append(answer, &mdns.SRV{
			Hdr:      mdns.RR_Header{Name: name, Rrtype: mdns.TypeSRV, Class: mdns.ClassINET, Ttl: s.ttl},
			Priority: 1, Weight: 1, Port: uint16(in.Port), Target: target,
		})
		if ip := ipv4(in.Address); ip != nil && !seen[target] {
			seen[target] = true
			extra = append(extra, s.a(target, ip))
			s.targets.put(target, ip)
		}
	}
	return answer, extra
}

func (s *Server) a(name string, ip net.IP) mdns.RR {
	return &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: s.ttl}, A: ip}
}

func passing(in *structs.ServiceInstance) bool {
	return in != nil && in.Status == structs.ServiceStatusPassing
}

// ipv4 parses an IPv4 address; nil for anything else.
func ipv4(addr string) net.IP {
	return net.ParseIP(addr).To4()
}

// prefix8 is the first 8 characters of an ID, as a DNS label.
func prefix8(id string) string {
	if len(id) > 8 {
		id = id[:8]
	}
	if !validLabel(strings.ToLower(id)) {
		return "x"
	}
	return id
}
