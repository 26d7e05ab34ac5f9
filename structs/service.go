package structs

import "time"

// Service check types.
const (
	ServiceCheckHTTP   = "http"
	ServiceCheckTCP    = "tcp"
	ServiceCheckScript = "script"
)

// Service instance and check statuses. An instance is passing when all
// its checks pass (or it has none and its allocation runs), warning
// when a check warns, critical when any check fails or has not passed
// yet, and terminating from the moment its allocation is told to stop
// until its task is signalled (shutdown_delay).
const (
	ServiceStatusPassing     = "passing"
	ServiceStatusWarning     = "warning"
	ServiceStatusCritical    = "critical"
	ServiceStatusTerminating = "terminating"
)

// Limits on services, checked at submit time.
const (
	// MaxServicesPerGroup bounds the services of one group, its tasks'
	// included.
	MaxServicesPerGroup = 32
	// MaxChecksPerService bounds the checks of one service.
	MaxChecksPerService = 8
	// MinCheckInterval and MaxCheckInterval bound a check's interval;
	// MinCheckTimeout bounds its timeout from below.
	MinCheckInterval = time.Second
	MaxCheckInterval = time.Hour
	MinCheckTimeout  = 100 * time.Millisecond
	// MaxShutdownDelay bounds a service's shutdown_delay.
	MaxShutdownDelay = 10 * time.Minute
	// MaxServiceTags bounds a service's tags.
	MaxServiceTags = 32
	// MaxCheckArgs and MaxCheckCommandBytes bound a script check's
	// command: its arguments, and the bytes of command and arguments.
	MaxCheckArgs         = 64
	MaxCheckCommandBytes = 4096
)

// Service is a `service` block of a group or a task: a name other jobs
// find the group's allocations by, the port it answers on, its health
// checks and, optionally, a virtual IP and a port published on every
// client.
type Service struct {
	// Name is the service's DNS-safe name, unique in the namespace's
	// job (several jobs may offer the same name: their instances add up).
	Name string
	// PortLabel is the label of one of the group's network ports.
	PortLabel string
	Tags      []string `json:",omitempty"`
	// TaskName is the task the block was written in ("" for a group
	// service). Checks of a task service only run while that task runs.
	TaskName string          `json:",omitempty"`
	Checks   []*ServiceCheck `json:",omitempty"`
	// VIP asks for a stable virtual address for the service; nil: none.
	VIP *ServiceVIP `json:",omitempty"`
	// PublishedPort, when not 0, is listened on by every client's proxy
	// and forwarded to the service's passing instances.
	PublishedPort int `json:",omitempty"`
	// ShutdownDelay is how long an instance stays registered as
	// terminating before its task is signalled.
	ShutdownDelay time.Duration `json:",omitempty"`
	// Routes are the service's `route` blocks: HTTP requests the
	// gateways send to its passing instances.
	Routes []*ServiceRoute `json:",omitempty"`
}

// ServiceVIP is a `vip` block: the port the proxy listens on at the
// service's virtual address.
type ServiceVIP struct {
	Port int
}

// ServiceCheck is a `check` block.
type ServiceCheck struct {
	// Name defaults to "<service>-<type>" (with an index when a service
	// has several checks of one type).
	Name string
	// Type is "http", "tcp" or "script".
	Type string
	// Path is the HTTP path (http checks; default "/").
	Path string `json:",omitempty"`
	// Command and Args are what a script check runs in its service's
	// task (through the task driver's exec): exit 0 is passing, 1
	// warning, anything else critical.
	Command  string   `json:",omitempty"`
	Args     []string `json:",omitempty"`
	Interval time.Duration
	Timeout  time.Duration
}

// CheckStatus is a client's latest result of one check of one
// allocation, reported with the allocation's updates.
type CheckStatus struct {
	// Service and Check name the check.
	Service string
	Check   string
	// Status is passing, warning or critical.
	Status string
	// Output is the check's last result, short: "HTTP 200", "dial tcp
	// ...: connection refused".
	Output string `json:",omitempty"`
	// Timestamp is when the result was taken, Unix nanoseconds.
	Timestamp int64
}

// CheckKey is the key of a check in Allocation.Checks:
// "<service>/<check>".
func CheckKey(service, check string) string { return service + "/" + check }

// ServiceInstance is one allocation's offer of one service, derived by
// the state store from the allocation (while it is desired to run and
// not terminal), its job's service block, its node and its reported
// checks. Nothing writes instances directly.
type ServiceInstance struct {
	// ID is "<alloc ID>-<service name>".
	ID          string
	ServiceName string
	Namespace   string
	JobID       string
	NodeID      string
	AllocID     string
	// Address is the node's address; Port the allocation's port of the
	// service's port label.
	Address string
	Port    int
	Tags    []string `json:",omitempty"`
	// Status: passing, warning, critical or terminating.
	Status string
	// Checks are the instance's checks, as last reported.
	Checks []*CheckStatus `json:",omitempty"`
	// VIP and VIPPort: the service's virtual address and port, when it
	// has one; PublishedPort as in the service block.
	VIP           string `json:",omitempty"`
	VIPPort       int    `json:",omitempty"`
	PublishedPort int    `json:",omitempty"`
	// Canary is set while the instance's allocation is a canary of a
	// deployment that is not promoted yet.
	Canary bool `json:",omitempty"`

	CreateIndex uint64
	ModifyIndex uint64
}

// ServiceListStub is one service name in a namespace, in GET
// /v1/services.
type ServiceListStub struct {
	Name      string
	Namespace string
	// Tags is the union of the instances' tags, sorted.
	Tags []string
	// Instances counts every instance; Passing those that pass.
	Instances int
	Passing   int
	// VIP is the service's virtual address, when it has one.
	VIP string `json:",omitempty"`
}

// ServiceListRequest lists service names (QueryOptions.Namespace; "*"
// for every namespace the token may read).
//
// A client node may list every namespace's services without a token,
// by its NodeID and SecretID (its DNS server and proxy do).
type ServiceListRequest struct {
	NodeID   string
	SecretID string `json:"-" codec:"SecretID"`
	QueryOptions
}

// ServiceListResponse answers ServiceListRequest.
type ServiceListResponse struct {
	Services []*ServiceListStub
	QueryMeta
}

// ServiceInstancesRequest reads the instances of one service name in
// QueryOptions.Namespace; Status, when set, keeps only instances in
// that status.
//
// A client node may read any namespace's instances without a token, by
// its NodeID and SecretID.
type ServiceInstancesRequest struct {
	ServiceName string
	Status      string
	NodeID      string
	SecretID    string `json:"-" codec:"SecretID"`
	QueryOptions
}

// ServiceInstancesResponse answers ServiceInstancesRequest, sorted by
// ID.
type ServiceInstancesResponse struct {
	Instances []*ServiceInstance
	QueryMeta
}

// AllocChecksRequest reads one allocation's checks.
type AllocChecksRequest struct {
	AllocID string
	QueryOptions
}

// AllocChecksResponse answers AllocChecksRequest: the checks keyed by
// CheckKey.
type AllocChecksResponse struct {
	Checks map[string]*CheckStatus
	QueryMeta
}

// Copy returns a deep copy of the service.
func (s *Service) Copy() *Service {
	if s == nil {
		return nil
	}
	c := *s
	c.Tags = copyStrings(s.Tags)
	if s.Checks != nil {
		c.Checks = make([]*ServiceCheck, len(s.Checks))
		for i, ch := range s.Checks {
			if ch != nil {
				cc := *ch
				cc.Args = copyStrings(ch.Args)
				c.Checks[i] = &cc
			}
		}
	}
	if s.VIP != nil {
		v := *s.VIP
		c.VIP = &v
	}
	if s.Routes != nil {
		c.Routes = make([]*ServiceRoute, len(s.Routes))
		for i, r := range s.Routes {
			c.Routes[i] = r.Copy()
		}
	}
	return &c
}

// Copy returns a deep copy of the route.
func (r *ServiceRoute) Copy() *ServiceRoute {
	if r == nil {
		return nil
	}
	c := *r
	if r.TLS != nil {
		t := *r.TLS
		c.TLS = &t
	}
	return &c
}

func copyServices(in []*Service) []*Service {
	if in == nil {
		return nil
	}
	out := make([]*Service, len(in))
	for i, s := range in {
		out[i] = s.Copy()
	}
	return out
}

// Copy returns a copy of the check status.
func (c *CheckStatus) Copy() *CheckStatus {
	if c == nil {
		return nil
	}
	n := *c
	return &n
}

// GroupServices returns the services of a group and of its tasks, the
// group's first.
func (tg *TaskGroup) GroupServices() []*Service {
	if tg == nil {
		return nil
	}
	out := append([]*Service(nil), tg.Services...)
	for _, t := range tg.Tasks {
		out = append(out, t.Services...)
	}
	return out
}

// DefaultServiceVIPRange is the loopback range virtual service addresses
// are allocated from when the servers' configuration names none.
const DefaultServiceVIPRange = "127.99.0.0/16"

// ServiceVIPAllocation records the virtual address allocated to a service name
// in a namespace. It is allocated (through Raft) when the first job
// with a `vip` block for the name registers, and kept while any job of
// the namespace declares a `vip` for that name, so the address is
// stable across job updates and replacements.
type ServiceVIPAllocation struct {
	Namespace   string
	ServiceName string
	// Address is an IPv4 address from the servers' VIP range.
	Address     string
	CreateIndex uint64
	ModifyIndex uint64
}

// ProxiedService is one service that client proxies serve: it has a
// VIP or a published port. Instances are all of its instances (the
// proxy uses the passing ones).
type ProxiedService struct {
	Namespace     string
	Name          string
	VIP           string `json:",omitempty"`
	VIPPort       int    `json:",omitempty"`
	PublishedPort int    `json:",omitempty"`
	// Routes are the service's routes (of every job of the namespace
	// that offers it), for the gateways.
	Routes    []*ServiceRoute `json:",omitempty"`
	Instances []*ServiceInstance
}

// ServiceProxyRequest asks for every proxied service of every
// namespace. Client nodes call it with their node secret (the proxy on
// every client); a token needs read-job in every namespace listed.
type ServiceProxyRequest struct {
	NodeID   string
	SecretID string `json:"-" codec:"SecretID"`
	QueryOptions
}

// ServiceProxyResponse answers ServiceProxyRequest, sorted by
// namespace and name. It is a blocking query on the service instances
// and VIP allocations.
type ServiceProxyResponse struct {
	Services []*ProxiedService
	QueryMeta
}

// Limits on routes, checked at submit time.
const (
	// MaxRoutesPerService bounds the routes of one service.
	MaxRoutesPerService = 16
	// MaxRouteRetries bounds a route's retries.
	MaxRouteRetries = 5
	// MaxRouteTimeout bounds a route's timeout.
	MaxRouteTimeout = 10 * time.Minute
	// DefaultRouteTimeout is a route's timeout when it names none.
	DefaultRouteTimeout = 60 * time.Second
)

// ServiceRoute is a `route` block of a service: the HTTP requests the
// gateways on the clients send to the service's passing instances.
type ServiceRoute struct {
	// Host is the request's host to match: an exact name
	// ("shop.example.com") or a wildcard of one label ("*.example.com");
	// "" matches any host.
	Host string `json:",omitempty"`
	// Path is the path prefix to match, starting with "/" (default
	// "/"); the longest matching prefix wins.
	Path string
	// StripPrefix removes Path from the request's path before it is
	// sent on.
	StripPrefix bool `json:",omitempty"`
	// Timeout bounds one request to an instance (default
	// DefaultRouteTimeout).
	Timeout time.Duration `json:",omitempty"`
	// Retries is how many other instances a request is tried on when
	// connecting to one fails (idempotent methods only).
	Retries int `json:",omitempty"`
	// HTTPSOnly redirects plain HTTP requests to HTTPS.
	HTTPSOnly bool `json:",omitempty"`
	// TLS names the certificate the gateway serves for Host.
	TLS *RouteTLS `json:",omitempty"`
	// CanaryWeight is the percentage (0-100) of requests sent to the
	// canary instances while a deployment has canaries.
	CanaryWeight int `json:",omitempty"`
}

// RouteTLS is a route's `tls` block: where the gateway finds the
// certificate for the route's host. CertName names a certificate of
// the gateway's configuration (gateway { certificate "NAME" { cert_file
// key_file } }); Variable is reserved for certificates kept in Drover
// variables.
type RouteTLS struct {
	CertName string `json:",omitempty"`
	Variable string `json:",omitempty"`
}

// RouteListStub is one route in GET /v1/routes, with its backends.
type RouteListStub struct {
	Namespace   string
	ServiceName string
	JobID       string
	Route       *ServiceRoute
	// Passing and Canary count the service's passing instances, and the
	// canaries among them.
	Passing int
	Canary  int
	// Backends are the passing instances' "address:port".
	Backends []string
}

// RouteListRequest lists routes (QueryOptions.Namespace; "*" for every
// namespace the token may read).
type RouteListRequest struct {
	QueryOptions
}

// RouteListResponse answers RouteListRequest, sorted by host, then
// path.
type RouteListResponse struct {
	Routes []*RouteListStub
	QueryMeta
}
