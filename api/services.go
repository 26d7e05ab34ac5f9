package api

import (
	"net/url"
	"time"
)

// Service instance and check statuses.
const (
	ServiceStatusPassing     = "passing"
	ServiceStatusWarning     = "warning"
	ServiceStatusCritical    = "critical"
	ServiceStatusTerminating = "terminating"
)

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
}

// ServiceInstance is one allocation's offer of one service.
type ServiceInstance struct {
	ID            string
	ServiceName   string
	Namespace     string
	JobID         string
	NodeID        string
	AllocID       string
	Address       string
	Port          int
	Tags          []string `json:",omitempty"`
	Status        string
	Checks        []*CheckStatus `json:",omitempty"`
	VIP           string         `json:",omitempty"`
	VIPPort       int            `json:",omitempty"`
	PublishedPort int            `json:",omitempty"`
	// Canary is set while the instance is a canary of a deployment
	// that is not promoted yet.
	Canary      bool `json:",omitempty"`
	CreateIndex uint64
	ModifyIndex uint64
}

// CheckStatus is a client's latest result of one check.
type CheckStatus struct {
	Service string
	Check   string
	// Status is passing, warning or critical.
	Status string
	Output string `json:",omitempty"`
	// Timestamp is when the result was taken, Unix nanoseconds.
	Timestamp int64
}

// Services returns the service discovery endpoints: /v1/services and
// /v1/service/{name}.
func (c *Client) Services() *Services { return &Services{c: c} }

// Services is /v1/services and /v1/service/{name}.
type Services struct{ c *Client }

// List lists the service names of the namespace (AllNamespaces: of
// every namespace the token may read), sorted by namespace and name.
func (s *Services) List(q *QueryOptions) ([]*ServiceListStub, *QueryMeta, error) {
	var out []*ServiceListStub
	meta, err := s.c.query("/v1/services", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info reads the instances of service name, sorted by ID; status, when
// not "", keeps only instances in that status (ServiceStatusPassing for
// the ones to send traffic to). An unknown name has none.
func (s *Services) Info(name, status string, q *QueryOptions) ([]*ServiceInstance, *QueryMeta, error) {
	params := url.Values{}
	if status != "" {
		params.Set("status", status)
	}
	var out []*ServiceInstance
	meta, err := s.c.queryParams("/v1/service/"+escape(name), params, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Checks reads an allocation's check results, keyed by
// "<service>/<check>"; an unknown allocation is a 404 (see IsNotFound).
func (a *Allocations) Checks(id string, q *QueryOptions) (map[string]*CheckStatus, *QueryMeta, error) {
	var out map[string]*CheckStatus
	meta, err := a.c.query("/v1/allocation/"+escape(id)+"/checks", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// ServiceRoute is a service's `route` block: the HTTP requests the
// gateways send to its passing instances.
type ServiceRoute struct {
	// Host is an exact name, a wildcard of one label ("*.example.com")
	// or "" for any host; Path a path prefix starting with "/".
	Host         string `json:",omitempty"`
	Path         string
	StripPrefix  bool          `json:",omitempty"`
	Timeout      time.Duration `json:",omitempty"`
	Retries      int           `json:",omitempty"`
	HTTPSOnly    bool          `json:",omitempty"`
	TLS          *RouteTLS     `json:",omitempty"`
	CanaryWeight int           `json:",omitempty"`
}

// RouteTLS names the certificate a gateway serves for a route's host.
type RouteTLS struct {
	CertName string `json:",omitempty"`
	Variable string `json:",omitempty"`
}

// RouteListStub is one route of one job's service, in GET /v1/routes.
type RouteListStub struct {
	Namespace   string
	ServiceName string
	JobID       string
	Route       *ServiceRoute
	// Passing and Canary count the service's passing instances, and
	// the canaries among them; Backends are their "address:port".
	Passing  int
	Canary   int
	Backends []string
}

// Routes lists the routes of the services of the namespace
// (AllNamespaces: of every namespace the token may read) with their
// passing backends, sorted by host then path.
func (s *Services) Routes(q *QueryOptions) ([]*RouteListStub, *QueryMeta, error) {
	var out []*RouteListStub
	meta, err := s.c.query("/v1/routes", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}
