package jobspec

import (
	"fmt"

	"github.com/droverhq/drover/structs"
	"github.com/hashicorp/hcl/v2"
)

// The service block, in a group or a task:
//
//	service {
//	  name = "web"
//	  port = "http"          # a label of the group's network ports
//	  tags = ["v1"]
//	  check { type = "http" path = "/" interval = "5s" timeout = "2s" }
//	  check {                # in a task's service: runs in the task
//	    type    = "script"
//	    command = "/bin/sh"
//	    args    = ["-c", "test -f /tmp/ready"]
//	    interval = "10s"
//	    timeout  = "3s"
//	  }
//	  vip { port = 80 }
//	  published_port = 8080
//	  shutdown_delay = "5s"
//	  route {                # zero or more: HTTP requests the gateways send here
//	    host          = "shop.example.com"   # or "*.example.com"; unset: any host
//	    path          = "/api"               # default "/"
//	    strip_prefix  = true
//	    timeout       = "30s"                # default 60s
//	    retries       = 2
//	    https_only    = false
//	    canary_weight = 10
//	    tls { cert = "shop" }                # a certificate of the gateway's configuration
//	  }
//	}
//
// Checks left without a name, path, interval or timeout get
// structs.ApplyServiceDefaults' values once the group is converted;
// everything else is judged by structs.(*Job).Validate.

var (
	serviceSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "name"}, {Name: "port"}, {Name: "tags"},
			{Name: "published_port"}, {Name: "shutdown_delay"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "check"}, {Type: "vip"}, {Type: "route"}},
	}
	checkSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "name"}, {Name: "type"}, {Name: "path"}, {Name: "interval"}, {Name: "timeout"},
			{Name: "command"}, {Name: "args"},
		},
	}
	vipSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "port"}},
	}
	routeSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "host"}, {Name: "path"}, {Name: "strip_prefix"}, {Name: "timeout"},
			{Name: "retries"}, {Name: "https_only"}, {Name: "canary_weight"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "tls"}},
	}
	routeTLSSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "cert"}, {Name: "variable"}},
	}
)

// services converts the service blocks of a group or task whose structs
// path is prefix ("TaskGroups[0]." or "TaskGroups[0].Tasks[1]."); task
// is the task's name, "" for a group.
func (c *converter) services(blocks hcl.Blocks, prefix, task string) []*structs.Service {
	var out []*structs.Service
	for i, b := range blocks.OfType("service") {
		if i == 0 {
			// Validate reports "too many services" at the Services
			// path; point at the first block.
			c.record(prefix+"Services", b.DefRange)
		}
		out = append(out, c.service(b, fmt.Sprintf("%sServices[%d]", prefix, i), task))
	}
	return out
}

// service converts one `service { ... }` block found at path.
func (c *converter) service(b *hcl.Block, path, task string) *structs.Service {
	s := &structs.Service{TaskName: task}
	c.record(path, b.DefRange)
	content := c.content(b.Body, serviceSchema)
	c.setString(content.Attributes, "name", path+".Name", &s.Name)
	c.setString(content.Attributes, "port", path+".PortLabel", &s.PortLabel)
	c.setStrings(content.Attributes, "tags", path+".Tags", &s.Tags)
	c.setInt(content.Attributes, "published_port", path+".PublishedPort", &s.PublishedPort)
	c.setDuration(content.Attributes, "shutdown_delay", path+".ShutdownDelay", &s.ShutdownDelay)
	for i, cb := range content.Blocks.OfType("check") {
		cpath := fmt.Sprintf("%s.Checks[%d]", path, i)
		if i == 0 {
			c.record(path+".Checks", cb.DefRange)
		}
		ch := &structs.ServiceCheck{}
		c.record(cpath, cb.DefRange)
		attrs := c.content(cb.Body, checkSchema).Attributes
		c.setString(attrs, "name", cpath+".Name", &ch.Name)
		c.setString(attrs, "type", cpath+".Type", &ch.Type)
		c.setString(attrs, "path", cpath+".Path", &ch.Path)
		c.setDuration(attrs, "interval", cpath+".Interval", &ch.Interval)
		c.setDuration(attrs, "timeout", cpath+".Timeout", &ch.Timeout)
		c.setString(attrs, "command", cpath+".Command", &ch.Command)
		c.setStrings(attrs, "args", cpath+".Args", &ch.Args)
		s.Checks = append(s.Checks, ch)
	}
	where := "a service block"
	if vb := c.single(content.Blocks, "vip", where); vb != nil {
		s.VIP = &structs.ServiceVIP{}
		c.record(path+".VIP", vb.DefRange)
		attrs := c.content(vb.Body, vipSchema).Attributes
		c.setInt(attrs, "port", path+".VIP.Port", &s.VIP.Port)
	}
	for i, rb := range content.Blocks.OfType("route") {
		if i == 0 {
			c.record(path+".Routes", rb.DefRange)
		}
		s.Routes = append(s.Routes, c.route(rb, fmt.Sprintf("%s.Routes[%d]", path, i)))
	}
	return s
}

// route converts one `route { ... }` block of a service found at path.
func (c *converter) route(b *hcl.Block, path string) *structs.ServiceRoute {
	r := &structs.ServiceRoute{}
	c.record(path, b.DefRange)
	content := c.content(b.Body, routeSchema)
	attrs := content.Attributes
	c.setString(attrs, "host", path+".Host", &r.Host)
	c.setString(attrs, "path", path+".Path", &r.Path)
	c.setBool(attrs, "strip_prefix", path+".StripPrefix", &r.StripPrefix)
	c.setDuration(attrs, "timeout", path+".Timeout", &r.Timeout)
	c.setInt(attrs, "retries", path+".Retries", &r.Retries)
	c.setBool(attrs, "https_only", path+".HTTPSOnly", &r.HTTPSOnly)
	c.setInt(attrs, "canary_weight", path+".CanaryWeight", &r.CanaryWeight)
	if tb := c.single(content.Blocks, "tls", "a route block"); tb != nil {
		r.TLS = &structs.RouteTLS{}
		c.record(path+".TLS", tb.DefRange)
		tattrs := c.content(tb.Body, routeTLSSchema).Attributes
		c.setString(tattrs, "cert", path+".TLS.CertName", &r.TLS.CertName)
		c.setString(tattrs, "variable", path+".TLS.Variable", &r.TLS.Variable)
	}
	return r
}
