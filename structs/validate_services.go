package structs

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Service defaults, applied by ApplyServiceDefaults.
const (
	DefaultCheckInterval = 10 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultCheckPath     = "/"
	// DefaultRoutePath is a route's path when it names none: every
	// path of its host.
	DefaultRoutePath = "/"
	// MaxRoutePathLen bounds a route's path, in bytes.
	MaxRoutePathLen = 256
	// MinRouteTimeout bounds a route's timeout from below.
	MinRouteTimeout = time.Second
)

// serviceNamePattern is a DNS label: other jobs find a service by its
// name in DNS-like lookups.
var serviceNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// routeHostPattern is a DNS name a route matches requests by: labels
// of lowercase letters, digits and '-', not starting or ending with
// '-', joined by dots.
var routeHostPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// ApplyServiceDefaults fills in what the service blocks of a group and
// its tasks leave out: a task service's TaskName, and per check its
// name ("<service>-<type>", then "<service>-<type>-1", ... for further
// checks of the same type), the path of an http check ("/"), the
// interval (10s) and the timeout (2s, or the interval when that is
// shorter); per route its path ("/") and timeout (60s). Fields already set are kept for Validate to judge. Both
// jobspec and the Nomad JSON decoder call it, so a job means the same
// whichever way it was written.
func ApplyServiceDefaults(tg *TaskGroup) {
	if tg == nil {
		return
	}
	for _, s := range tg.Services {
		applyServiceDefaults(s)
	}
	for _, t := range tg.Tasks {
		if t == nil {
			continue
		}
		for _, s := range t.Services {
			if s != nil && s.TaskName == "" {
				s.TaskName = t.Name
			}
			applyServiceDefaults(s)
		}
	}
}

func applyServiceDefaults(s *Service) {
	if s == nil {
		return
	}
	ofType := make(map[string]int)
	for _, c := range s.Checks {
		if c == nil {
			continue
		}
		n := ofType[c.Type]
		ofType[c.Type]++
		if c.Name == "" && c.Type != "" {
			c.Name = s.Name + "-" + c.Type
			if n > 0 {
				c.Name += "-" + strconv.Itoa(n)
			}
		}
		if c.Type == ServiceCheckHTTP && c.Path == "" {
			c.Path = DefaultCheckPath
		}
		if c.Interval == 0 {
			c.Interval = DefaultCheckInterval
		}
		if c.Timeout == 0 {
			c.Timeout = min(DefaultCheckTimeout, c.Interval)
		}
	}
	for _, r := range s.Routes {
		if r == nil {
			continue
		}
		if r.Path == "" {
			r.Path = DefaultRoutePath
		}
		if r.Timeout == 0 {
			r.Timeout = DefaultRouteTimeout
		}
	}
}

// serviceSite is where one service was declared.
type serviceSite struct {
	path  string
	group string
}

// jobServices checks the services of a job's groups across groups:
// names, published ports and routes (host and path) must be unique in
// the job.
type jobServices struct {
	names     map[string]serviceSite
	published map[int]string
	routes    map[string]string
}

// validateServices checks the service blocks of every group and task of
// a job (groups past the job's group limit are not passed in).
func validateServices(p *problems, groups []*TaskGroup) {
	js := jobServices{names: make(map[string]serviceSite), published: make(map[int]string), routes: make(map[string]string)}
	for i, tg := range groups {
		if tg != nil {
			js.validateGroup(p, fmt.Sprintf("TaskGroups[%d]", i), tg)
		}
	}
}

func (js *jobServices) validateGroup(p *problems, path string, tg *TaskGroup) {
	ports := groupPortLabels(tg)
	tasks := make(map[string]bool, len(tg.Tasks))
	for _, t := range tg.Tasks {
		if t != nil {
			tasks[t.Name] = true
		}
	}
	type site struct {
		path string
		svc  *Service
		task *Task
	}
	var sites []site
	for i, s := range tg.Services {
		sites = append(sites, site{fmt.Sprintf("%s.Services[%d]", path, i), s, nil})
	}
	for j, t := range tg.Tasks {
		if t == nil {
			continue
		}
		for i, s := range t.Services {
			sites = append(sites, site{fmt.Sprintf("%s.Tasks[%d].Services[%d]", path, j, i), s, t})
		}
	}
	if len(sites) > MaxServicesPerGroup {
		p.add(path+".Services", "the group and its tasks declare %d services; the limit is %d per group", len(sites), MaxServicesPerGroup)
	}
	inGroup := make(map[string]string)
	for _, st := range sites {
		s := st.svc
		if s == nil {
			p.add(st.path, "must not be null")
			continue
		}
		s.validate(p, st.path, ports)
		switch {
		case st.task != nil && s.TaskName != "" && s.TaskName != st.task.Name:
			p.add(st.path+".TaskName", "%q does not match the task the service is declared in (%q); leave it unset", s.TaskName, st.task.Name)
		case st.task == nil && s.TaskName != "" && !tasks[s.TaskName]:
			p.add(st.path+".TaskName", "unknown task %q; a group service's task must be one of the group's tasks: %s", s.TaskName, listOrNone(sortedSetKeys(tasks)))
		}
		if s.Name != "" {
			if prev, dup := inGroup[s.Name]; dup {
				p.add(st.path+".Name", "service %q is already declared at %s; service names must be unique in a group and its tasks", s.Name, prev)
			} else {
				if other, dup := js.names[s.Name]; dup {
					p.add(st.path+".Name", "service %q is already declared by group %q at %s; service names must be unique in the job", s.Name, other.group, other.path)
				}
				inGroup[s.Name] = st.path
			}
		}
		if s.PublishedPort > 0 && s.PublishedPort <= 65535 {
			if prev, dup := js.published[s.PublishedPort]; dup {
				p.add(st.path+".PublishedPort", "port %d is already published by %s; every service of the job needs its own published port", s.PublishedPort, prev)
			} else {
				js.published[s.PublishedPort] = st.path
			}
		}
		for i, r := range s.Routes {
			if r == nil || r.Path == "" {
				continue
			}
			rpath := fmt.Sprintf("%s.Routes[%d]", st.path, i)
			key := RouteKey(r.Host, r.Path)
			if prev, dup := js.routes[key]; dup {
				p.add(rpath+".Path", "route %s is already declared at %s; every route of the job needs its own host and path", key, prev)
				continue
			}
			js.routes[key] = rpath
		}
	}
	// Names of this group enter the job's index only now, so that a
	// duplicate inside the group is reported as such.
	for name, at := range inGroup {
		if _, ok := js.names[name]; !ok {
			js.names[name] = serviceSite{path: at, group: tg.Name}
		}
	}
}

// validate checks one service at path; ports are the labels of its
// group's network ports, sorted.
func (s *Service) validate(p *problems, path string, ports []string) {
	switch {
	case s.Name == "":
		p.add(path+".Name", "must be set to a DNS label, e.g. \"web\"")
	case !serviceNamePattern.MatchString(s.Name):
		p.add(path+".Name", "%q is not a valid service name; use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit", s.Name)
	}
	switch {
	case s.PortLabel == "" && len(ports) == 0:
		p.add(path+".PortLabel", "must be set to the label of one of the group's network ports, and the group has none; add a network { port \"<label>\" {} } block to the group")
	case s.PortLabel == "":
		p.add(path+".PortLabel", "must be set to the label of one of the group's network ports: %s", strings.Join(ports, ", "))
	case len(ports) == 0:
		p.add(path+".PortLabel", "unknown port label %q; the group has no network ports: add a network { port %q {} } block to the group", s.PortLabel, s.PortLabel)
	case !contains(ports, s.PortLabel):
		p.add(path+".PortLabel", "unknown port label %q; the group's ports are: %s", s.PortLabel, strings.Join(ports, ", "))
	}
	if len(s.Tags) > MaxServiceTags {
		p.add(path+".Tags", "has %d tags; the limit is %d", len(s.Tags), MaxServiceTags)
	}
	tags := make(map[string]int, len(s.Tags))
	for i, tag := range s.Tags {
		tpath := fmt.Sprintf("%s.Tags[%d]", path, i)
		if strings.TrimSpace(tag) == "" {
			p.add(tpath, "must not be empty")
			continue
		}
		if prev, dup := tags[tag]; dup {
			p.add(tpath, "tag %q is listed twice (also Tags[%d]); list each tag once", tag, prev)
			continue
		}
		tags[tag] = i
	}
	if len(s.Checks) > MaxChecksPerService {
		p.add(path+".Checks", "has %d checks; the limit is %d per service", len(s.Checks), MaxChecksPerService)
	}
	checks := make(map[string]int, len(s.Checks))
	for i, c := range s.Checks {
		cpath := fmt.Sprintf("%s.Checks[%d]", path, i)
		if c == nil {
			p.add(cpath, "must not be null")
			continue
		}
		c.validate(p, cpath)
		if c.Type == ServiceCheckScript && s.TaskName == "" {
			p.add(cpath+".Type", "a script check runs in its service's task, and a group service has none; put the service in a task block, or use type %q or %q", ServiceCheckHTTP, ServiceCheckTCP)
		}
		if c.Name == "" {
			continue
		}
		if prev, dup := checks[c.Name]; dup {
			p.add(cpath+".Name", "check %q is declared twice in service %q (also Checks[%d]); give each check its own name", c.Name, s.Name, prev)
			continue
		}
		checks[c.Name] = i
	}
	if s.VIP != nil && (s.VIP.Port < 1 || s.VIP.Port > 65535) {
		p.add(path+".VIP.Port", "%d is out of range; accepted: 1 to 65535", s.VIP.Port)
	}
	if s.PublishedPort < 0 || s.PublishedPort > 65535 {
		p.add(path+".PublishedPort", "%d is out of range; accepted: 1 to 65535, or 0 (unset) for none", s.PublishedPort)
	} else if reservedPublishedPort(s.PublishedPort) {
		p.add(path+".PublishedPort", "%d is a port of the Drover agent itself (HTTP 4646, RPC 4647, gossip 4648, DNS 8600); every client's proxy would listen on it: choose another port", s.PublishedPort)
	}
	if s.ShutdownDelay < 0 || s.ShutdownDelay > MaxShutdownDelay {
		p.add(path+".ShutdownDelay", "%s is out of range; accepted: 0s to %s", s.ShutdownDelay, MaxShutdownDelay)
	}
	if len(s.Routes) > MaxRoutesPerService {
		p.add(path+".Routes", "has %d routes; the limit is %d per service", len(s.Routes), MaxRoutesPerService)
	}
	for i, r := range s.Routes {
		rpath := fmt.Sprintf("%s.Routes[%d]", path, i)
		if r == nil {
			p.add(rpath, "must not be null")
			continue
		}
		r.validate(p, rpath)
	}
}

// RouteKey is how a route is named in messages and told apart from
// others: its host and path ("shop.example.com/api"; "/api" for any
// host).
func RouteKey(host, path string) string { return host + path }

func (r *ServiceRoute) validate(p *problems, path string) {
	if err := validRouteHost(r.Host); err != "" {
		p.add(path+".Host", "%s", err)
	}
	switch {
	case r.Path == "":
		p.add(path+".Path", "must be set to a path prefix starting with '/', e.g. \"/api\"")
	case len(r.Path) > MaxRoutePathLen:
		p.add(path+".Path", "is %d bytes; the limit is %d", len(r.Path), MaxRoutePathLen)
	case !strings.HasPrefix(r.Path, "/"):
		p.add(path+".Path", "%q must start with '/', e.g. \"/api\"", r.Path)
	case strings.IndexFunc(r.Path, func(c rune) bool { return c <= ' ' || c == 0x7f }) >= 0:
		p.add(path+".Path", "%q contains a space or a control character; escape it (%%20) as it appears in request paths", r.Path)
	}
	if r.Timeout < MinRouteTimeout || r.Timeout > MaxRouteTimeout {
		p.add(path+".Timeout", "%s is out of range; accepted: %s to %s", r.Timeout, MinRouteTimeout, MaxRouteTimeout)
	}
	if r.Retries < 0 || r.Retries > MaxRouteRetries {
		p.add(path+".Retries", "%d is out of range; accepted: 0 to %d", r.Retries, MaxRouteRetries)
	}
	if r.CanaryWeight < 0 || r.CanaryWeight > 100 {
		p.add(path+".CanaryWeight", "%d is out of range; accepted: 0 to 100 (percent of requests sent to canaries)", r.CanaryWeight)
	}
	if t := r.TLS; t != nil {
		switch {
		case t.CertName != "" && t.Variable != "":
			p.add(path+".TLS", "names both a cert and a variable; set one of them")
		case t.Variable != "":
			p.add(path+".TLS.Variable", "certificates from variables are not supported yet; use cert = \"NAME\" with a gateway certificate")
		case t.CertName == "":
			p.add(path+".TLS.CertName", "must be set to the name of a gateway certificate, e.g. cert = \"shop\"")
		}
	}
	if r.HTTPSOnly && r.TLS == nil {
		p.add(path+".HTTPSOnly", "https_only needs a tls block: the gateway can only redirect to HTTPS for a host it has a certificate for")
	}
}

// validRouteHost returns what is wrong with a route's host, "" when
// nothing is.
func validRouteHost(host string) string {
	if host == "" {
		return ""
	}
	name := host
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		name = rest
	}
	if len(name) > 253 || !routeHostPattern.MatchString(name) {
		return fmt.Sprintf("%q is not a valid host; use a DNS name of lowercase letters, digits, '-' and '.' (\"shop.example.com\"), a wildcard of one leading label (\"*.example.com\"), or leave it unset for any host", host)
	}
	return ""
}

func (c *ServiceCheck) validate(p *problems, path string) {
	switch c.Type {
	case ServiceCheckHTTP:
		switch {
		case c.Path == "":
			p.add(path+".Path", "must be set for an http check, e.g. \"/health\"")
		case !strings.HasPrefix(c.Path, "/"):
			p.add(path+".Path", "%q must start with '/', e.g. \"/health\"", c.Path)
		}
	case ServiceCheckTCP:
		if c.Path != "" {
			p.add(path+".Path", "a tcp check has no path; remove it, or use type %q", ServiceCheckHTTP)
		}
	case ServiceCheckScript:
		if c.Path != "" {
			p.add(path+".Path", "a script check has no path; remove it, or use type %q", ServiceCheckHTTP)
		}
		c.validateCommand(p, path)
	case "":
		p.add(path+".Type", "must be set; accepted: %q, %q, %q", ServiceCheckHTTP, ServiceCheckTCP, ServiceCheckScript)
	default:
		p.add(path+".Type", "unknown check type %q; accepted: %q, %q, %q", c.Type, ServiceCheckHTTP, ServiceCheckTCP, ServiceCheckScript)
	}
	if c.Type != ServiceCheckScript && (c.Command != "" || len(c.Args) > 0) {
		p.add(path+".Command", "only a script check runs a command; use type %q, or remove command and args", ServiceCheckScript)
	}
	if c.Name == "" && c.Type != "" {
		p.add(path+".Name", "must be set")
	}
	intervalOK := c.Interval >= MinCheckInterval && c.Interval <= MaxCheckInterval
	if !intervalOK {
		p.add(path+".Interval", "%s is out of range; accepted: %s to %s", c.Interval, MinCheckInterval, MaxCheckInterval)
	}
	switch {
	case c.Timeout < MinCheckTimeout:
		p.add(path+".Timeout", "%s is too short; use at least %s", c.Timeout, MinCheckTimeout)
	case intervalOK && c.Timeout > c.Interval:
		p.add(path+".Timeout", "%s is longer than the check's interval (%s); use at most the interval", c.Timeout, c.Interval)
	}
}

// groupPortLabels returns the labels of a group's network ports,
// sorted.
func groupPortLabels(tg *TaskGroup) []string {
	set := make(map[string]bool)
	for _, n := range tg.Networks {
		if n == nil {
			continue
		}
		for _, port := range n.ReservedPorts {
			set[port.Label] = true
		}
		for _, port := range n.DynamicPorts {
			set[port.Label] = true
		}
	}
	delete(set, "")
	labels := make([]string, 0, len(set))
	for l := range set {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	return labels
}

func listOrNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, ", ")
}

// reservedPublishedPort reports whether port is one of the agent's
// default ports (HTTP, RPC, gossip, DNS), which a published port would
// collide with on every client.
func reservedPublishedPort(port int) bool {
	switch port {
	case 4646, 4647, 4648, 8600:
		return true
	}
	return false
}

// MinServiceVIPRangeSize is the fewest addresses a VIP range may have.
const MinServiceVIPRangeSize = 16

// ParseServiceVIPRange parses a VIP range (server service_vip_range):
// an IPv4 CIDR inside 127.0.0.0/8 with at least MinServiceVIPRangeSize
// addresses. "" is DefaultServiceVIPRange. It returns the network with
// its address masked.
func ParseServiceVIPRange(cidr string) (*net.IPNet, error) {
	if cidr == "" {
		cidr = DefaultServiceVIPRange
	}
	ip, ipn, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("service_vip_range %q is not a CIDR range; accepted: an IPv4 range inside 127.0.0.0/8, e.g. %q", cidr, DefaultServiceVIPRange)
	}
	ones, bits := ipn.Mask.Size()
	if ip.To4() == nil || bits != 32 {
		return nil, fmt.Errorf("service_vip_range %q is not IPv4; accepted: an IPv4 range inside 127.0.0.0/8, e.g. %q", cidr, DefaultServiceVIPRange)
	}
	if ipn.IP.To4()[0] != 127 || ones < 8 {
		return nil, fmt.Errorf("service_vip_range %q is not inside 127.0.0.0/8; virtual addresses are loopback addresses every client answers on, e.g. %q", cidr, DefaultServiceVIPRange)
	}
	if size := 1 << (bits - ones); size < MinServiceVIPRangeSize {
		return nil, fmt.Errorf("service_vip_range %q has %d addresses; it needs at least %d (a /%d or wider)", cidr, size, MinServiceVIPRangeSize, 32-4)
	}
	return ipn, nil
}

// validateCommand checks a script check's command and arguments.
func (c *ServiceCheck) validateCommand(p *problems, path string) {
	if c.Command == "" {
		p.add(path+".Command", "must be set for a script check, e.g. \"/bin/sh\" with args [\"-c\", \"test -f /tmp/ready\"]")
	}
	if len(c.Args) > MaxCheckArgs {
		p.add(path+".Args", "has %d arguments; the limit is %d", len(c.Args), MaxCheckArgs)
	}
	total := len(c.Command)
	for i, a := range c.Args {
		total += len(a)
		if strings.IndexByte(a, 0) >= 0 {
			p.add(fmt.Sprintf("%s.Args[%d]", path, i), "holds a NUL byte")
		}
	}
	if strings.IndexByte(c.Command, 0) >= 0 {
		p.add(path+".Command", "holds a NUL byte")
	}
	if total > MaxCheckCommandBytes {
		p.add(path+".Args", "the command and its arguments are %d bytes; the limit is %d", total, MaxCheckCommandBytes)
	}
}
