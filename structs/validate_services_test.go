package structs

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// serviceJob is validJob with a group service, a task service and a
// second group with a service of its own.
func serviceJob() *Job {
	j := validJob()
	tg := j.TaskGroups[0]
	tg.Services = []*Service{{
		Name:      "web",
		PortLabel: "http",
		Tags:      []string{"v1"},
		Checks: []*ServiceCheck{
			{Name: "web-http", Type: ServiceCheckHTTP, Path: "/", Interval: 10 * time.Second, Timeout: 2 * time.Second},
			{Name: "web-tcp", Type: ServiceCheckTCP, Interval: 10 * time.Second, Timeout: 2 * time.Second},
		},
		VIP:           &ServiceVIP{Port: 80},
		PublishedPort: 8080,
		ShutdownDelay: 5 * time.Second,
	}}
	tg.Tasks[0].Services = []*Service{{Name: "web-admin", PortLabel: "admin", TaskName: "server"}}
	api := tg.Copy()
	api.Name = "api"
	api.Services[0].Name = "api"
	api.Services[0].PublishedPort = 8081
	api.Tasks[0].Services[0].Name = "api-admin"
	j.TaskGroups = append(j.TaskGroups, api)
	return j
}

func TestJob_ValidateServices(t *testing.T) {
	const (
		svc   = "TaskGroups[0].Services[0]"
		check = "TaskGroups[0].Services[0].Checks[0]"
		tsvc  = "TaskGroups[0].Tasks[0].Services[0]"
	)
	gs := func(j *Job) *Service { return j.TaskGroups[0].Services[0] }
	ch := func(j *Job) *ServiceCheck { return j.TaskGroups[0].Services[0].Checks[0] }
	cases := []struct {
		name   string
		mutate func(j *Job)
		path   string
		phrase string // in the problem's message
	}{
		{"valid", func(*Job) {}, "", ""},
		{"name missing", func(j *Job) { gs(j).Name = "" }, svc + ".Name", "must be set to a DNS label"},
		{"name not a DNS label", func(j *Job) { gs(j).Name = "Web_1" }, svc + ".Name", "use 1 to 63 lowercase letters, digits and '-'"},
		{"name ends with a dash", func(j *Job) { gs(j).Name = "web-" }, svc + ".Name", "not a valid service name"},
		{"name too long", func(j *Job) { gs(j).Name = strings.Repeat("a", 64) }, svc + ".Name", "not a valid service name"},
		{"name twice in a group", func(j *Job) { j.TaskGroups[0].Tasks[0].Services[0].Name = "web" }, tsvc + ".Name",
			`service "web" is already declared at TaskGroups[0].Services[0]; service names must be unique in a group and its tasks`},
		{"name twice in the job", func(j *Job) { j.TaskGroups[1].Services[0].Name = "web" }, "TaskGroups[1].Services[0].Name",
			`service "web" is already declared by group "web" at TaskGroups[0].Services[0]; service names must be unique in the job`},
		{"port label missing", func(j *Job) { gs(j).PortLabel = "" }, svc + ".PortLabel", "must be set to the label of one of the group's network ports: admin, http"},
		{"port label unknown", func(j *Job) { gs(j).PortLabel = "x" }, svc + ".PortLabel", `unknown port label "x"; the group's ports are: admin, http`},
		{"group without ports", func(j *Job) {
			j.TaskGroups[0].Networks = nil
			j.TaskGroups[0].Tasks[0].Services = nil
		}, svc + ".PortLabel", "the group has no network ports"},
		{"empty tag", func(j *Job) { gs(j).Tags = []string{"v1", " "} }, svc + ".Tags[1]", "must not be empty"},
		{"duplicate tag", func(j *Job) { gs(j).Tags = []string{"v1", "v1"} }, svc + ".Tags[1]", `tag "v1" is listed twice (also Tags[0])`},
		{"too many tags", func(j *Job) {
			gs(j).Tags = nil
			for i := 0; i <= MaxServiceTags; i++ {
				gs(j).Tags = append(gs(j).Tags, fmt.Sprint("t", i))
			}
		}, svc + ".Tags", fmt.Sprintf("has %d tags; the limit is %d", MaxServiceTags+1, MaxServiceTags)},
		{"too many services", func(j *Job) {
			tg := j.TaskGroups[0]
			for i := len(tg.GroupServices()); i <= MaxServicesPerGroup; i++ {
				tg.Services = append(tg.Services, &Service{Name: fmt.Sprint("s", i), PortLabel: "http"})
			}
		}, "TaskGroups[0].Services", fmt.Sprintf("declare %d services; the limit is %d per group", MaxServicesPerGroup+1, MaxServicesPerGroup)},
		{"too many checks", func(j *Job) {
			s := gs(j)
			for i := len(s.Checks); i <= MaxChecksPerService; i++ {
				c := *s.Checks[1]
				c.Name = fmt.Sprint("c", i)
				s.Checks = append(s.Checks, &c)
			}
		}, svc + ".Checks", fmt.Sprintf("has %d checks; the limit is %d per service", MaxChecksPerService+1, MaxChecksPerService)},
		{"null check", func(j *Job) { gs(j).Checks[0] = nil }, check, "must not be null"},
		{"check type missing", func(j *Job) { ch(j).Type = "" }, check + ".Type", `must be set; accepted: "http", "tcp"`},
		{"check type unknown", func(j *Job) { ch(j).Type = "grpc" }, check + ".Type", `unknown check type "grpc"; accepted: "http", "tcp"`},
		{"http path missing", func(j *Job) { ch(j).Path = "" }, check + ".Path", "must be set for an http check"},
		{"http path relative", func(j *Job) { ch(j).Path = "health" }, check + ".Path", `"health" must start with '/'`},
		{"tcp check with a path", func(j *Job) { gs(j).Checks[1].Path = "/" }, svc + ".Checks[1].Path", "a tcp check has no path"},
		{"check name missing", func(j *Job) { ch(j).Name = "" }, check + ".Name", "must be set"},
		{"check name twice", func(j *Job) { gs(j).Checks[1].Name = "web-http" }, svc + ".Checks[1].Name",
			`check "web-http" is declared twice in service "web" (also Checks[0])`},
		{"interval too short", func(j *Job) { ch(j).Interval = 500 * time.Millisecond; ch(j).Timeout = 200 * time.Millisecond },
			check + ".Interval", "500ms is out of range; accepted: 1s to 1h0m0s"},
		{"interval too long", func(j *Job) { ch(j).Interval = 2 * time.Hour }, check + ".Interval", "out of range; accepted: 1s to 1h0m0s"},
		{"timeout too short", func(j *Job) { ch(j).Timeout = time.Millisecond }, check + ".Timeout", "1ms is too short; use at least 100ms"},
		{"timeout over interval", func(j *Job) { ch(j).Timeout = 11 * time.Second }, check + ".Timeout",
			"11s is longer than the check's interval (10s); use at most the interval"},
		{"vip port zero", func(j *Job) { gs(j).VIP.Port = 0 }, svc + ".VIP.Port", "0 is out of range; accepted: 1 to 65535"},
		{"vip port too big", func(j *Job) { gs(j).VIP.Port = 65536 }, svc + ".VIP.Port", "65536 is out of range"},
		{"published port negative", func(j *Job) { gs(j).PublishedPort = -1 }, svc + ".PublishedPort", "accepted: 1 to 65535, or 0 (unset) for none"},
		{"published port is the agent's", func(j *Job) { gs(j).PublishedPort = 4647 }, svc + ".PublishedPort", "4647 is a port of the Drover agent itself"},
		{"published port is the DNS port", func(j *Job) { gs(j).PublishedPort = 8600 }, svc + ".PublishedPort", "DNS 8600"},
		{"published port twice", func(j *Job) { j.TaskGroups[1].Services[0].PublishedPort = 8080 }, "TaskGroups[1].Services[0].PublishedPort",
			"port 8080 is already published by TaskGroups[0].Services[0]"},
		{"shutdown delay negative", func(j *Job) { gs(j).ShutdownDelay = -time.Second }, svc + ".ShutdownDelay", "out of range; accepted: 0s to 10m0s"},
		{"shutdown delay too long", func(j *Job) { gs(j).ShutdownDelay = time.Hour }, svc + ".ShutdownDelay", "1h0m0s is out of range"},
		{"task name of another task", func(j *Job) { j.TaskGroups[0].Tasks[0].Services[0].TaskName = "other" }, tsvc + ".TaskName",
			`"other" does not match the task the service is declared in ("server")`},
		{"group service of an unknown task", func(j *Job) { gs(j).TaskName = "nope" }, svc + ".TaskName", `unknown task "nope"`},
		{"null service", func(j *Job) { j.TaskGroups[0].Services = append(j.TaskGroups[0].Services, nil) }, "TaskGroups[0].Services[1]", "must not be null"},
		{"script check in a task service", func(j *Job) { addScript(j, "/bin/sh", "-c", "true") }, "", ""},
		{"script check without a command", func(j *Job) { addScript(j, "") }, tsvc + ".Checks[0].Command", "must be set for a script check"},
		{"script check of a group service", func(j *Job) { ch(j).Type, ch(j).Path, ch(j).Command = ServiceCheckScript, "", "true" }, check + ".Type",
			"a script check runs in its service's task, and a group service has none"},
		{"script check with a path", func(j *Job) { addScript(j, "true"); scriptCheck(j).Path = "/" }, tsvc + ".Checks[0].Path", "a script check has no path"},
		{"script check with a NUL", func(j *Job) { addScript(j, "sh", "-c", "a\x00b") }, tsvc + ".Checks[0].Args[1]", "holds a NUL byte"},
		{"script check with too many args", func(j *Job) { addScript(j, "echo", strings.Fields(strings.Repeat("a ", MaxCheckArgs+1))...) },
			tsvc + ".Checks[0].Args", fmt.Sprintf("has %d arguments; the limit is %d", MaxCheckArgs+1, MaxCheckArgs)},
		{"script check too long", func(j *Job) { addScript(j, "echo", strings.Repeat("a", MaxCheckCommandBytes)) },
			tsvc + ".Checks[0].Args", fmt.Sprintf("4100 bytes; the limit is %d", MaxCheckCommandBytes)},
		{"http check with a command", func(j *Job) { ch(j).Command = "true" }, check + ".Command", `only a script check runs a command; use type "script"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := serviceJob()
			tc.mutate(j)
			err := j.Validate()
			if tc.path == "" {
				if err != nil {
					t.Fatalf("valid job refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a problem at %s, got %v", tc.path, err)
			}
			for _, p := range verr.Problems {
				if p.Path == tc.path {
					if !strings.Contains(p.Message, tc.phrase) {
						t.Fatalf("%s: message %q lacks %q", p.Path, p.Message, tc.phrase)
					}
					return
				}
			}
			t.Fatalf("no problem at %s; got %v", tc.path, err)
		})
	}
}

func TestApplyServiceDefaults(t *testing.T) {
	tg := &TaskGroup{
		Services: []*Service{{Name: "web", Checks: []*ServiceCheck{
			{Type: "http"}, {Type: "tcp"}, {Type: "http", Name: "mine"}, {Type: "http", Interval: time.Second},
			{Type: "tcp", Path: "/x", Interval: time.Minute, Timeout: 3 * time.Second},
		}}},
		Tasks: []*Task{{Name: "server", Services: []*Service{{Name: "admin"}, {Name: "other", TaskName: "kept"}}}},
	}
	ApplyServiceDefaults(tg)
	want := []*ServiceCheck{
		{Name: "web-http", Type: "http", Path: "/", Interval: 10 * time.Second, Timeout: 2 * time.Second},
		{Name: "web-tcp", Type: "tcp", Interval: 10 * time.Second, Timeout: 2 * time.Second},
		{Name: "mine", Type: "http", Path: "/", Interval: 10 * time.Second, Timeout: 2 * time.Second},
		{Name: "web-http-2", Type: "http", Path: "/", Interval: time.Second, Timeout: time.Second},
		{Name: "web-tcp-1", Type: "tcp", Path: "/x", Interval: time.Minute, Timeout: 3 * time.Second},
	}
	if got := tg.Services[0].Checks; !reflect.DeepEqual(got, want) {
		for i := range got {
			t.Errorf("check %d: got %+v, want %+v", i, *got[i], *want[i])
		}
	}
	if tn := tg.Tasks[0].Services[0].TaskName; tn != "server" {
		t.Errorf("task service TaskName %q, want %q", tn, "server")
	}
	if tn := tg.Tasks[0].Services[1].TaskName; tn != "kept" {
		t.Errorf("a set TaskName was overwritten: %q", tn)
	}
	ApplyServiceDefaults(nil) // no panic
}

func TestParseServiceVIPRange(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"", "127.99.0.0/16", ""},
		{"127.99.0.0/16", "127.99.0.0/16", ""},
		{"127.5.5.5/28", "127.5.5.0/28", ""},
		{"127.0.0.0/8", "127.0.0.0/8", ""},
		{"127.99.0.0/29", "", "has 8 addresses; it needs at least 16"},
		{"10.0.0.0/16", "", "not inside 127.0.0.0/8"},
		{"0.0.0.0/0", "", "not inside 127.0.0.0/8"},
		{"fd00::/64", "", "not IPv4"},
		{"127.99.0.1", "", "not a CIDR range"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseServiceVIPRange(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "service_vip_range") {
					t.Fatalf("got %v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// routeJob is serviceJob with two routes on the web service.
func routeJob() *Job {
	j := serviceJob()
	j.TaskGroups[0].Services[0].Routes = []*ServiceRoute{
		{Host: "shop.example.com", Path: "/api", StripPrefix: true, Timeout: 30 * time.Second, Retries: 2, CanaryWeight: 10, TLS: &RouteTLS{CertName: "shop"}, HTTPSOnly: true},
		{Host: "*.example.com", Path: "/", Timeout: DefaultRouteTimeout},
	}
	return j
}

func TestJob_ValidateServiceRoutes(t *testing.T) {
	const rt = "TaskGroups[0].Services[0].Routes[1]"
	r := func(j *Job, i int) *ServiceRoute { return j.TaskGroups[0].Services[0].Routes[i] }
	cases := []struct {
		name   string
		mutate func(j *Job)
		path   string
		phrase string
	}{
		{"valid", func(*Job) {}, "", ""},
		{"any host", func(j *Job) { r(j, 1).Host = "" }, "", ""},
		{"single label host", func(j *Job) { r(j, 1).Host = "localhost" }, "", ""},
		{"host upper case", func(j *Job) { r(j, 1).Host = "Shop.example.com" }, rt + ".Host", `"Shop.example.com" is not a valid host`},
		{"host with a port", func(j *Job) { r(j, 1).Host = "shop.test:80" }, rt + ".Host", "lowercase letters, digits, '-' and '.'"},
		{"host empty label", func(j *Job) { r(j, 1).Host = "shop..test" }, rt + ".Host", "not a valid host"},
		{"host label ends with a dash", func(j *Job) { r(j, 1).Host = "shop-.test" }, rt + ".Host", "not a valid host"},
		{"wildcard alone", func(j *Job) { r(j, 1).Host = "*" }, rt + ".Host", "a wildcard of one leading label"},
		{"two wildcard labels", func(j *Job) { r(j, 1).Host = "*.*.example.com" }, rt + ".Host", "not a valid host"},
		{"wildcard inside", func(j *Job) { r(j, 1).Host = "shop.*.com" }, rt + ".Host", "not a valid host"},
		{"path missing", func(j *Job) { r(j, 1).Path = "" }, rt + ".Path", "must be set to a path prefix starting with '/'"},
		{"path relative", func(j *Job) { r(j, 1).Path = "api" }, rt + ".Path", `"api" must start with '/'`},
		{"path with a space", func(j *Job) { r(j, 1).Path = "/my api" }, rt + ".Path", "contains a space"},
		{"path too long", func(j *Job) { r(j, 1).Path = "/" + strings.Repeat("a", MaxRoutePathLen) }, rt + ".Path",
			fmt.Sprintf("is %d bytes; the limit is %d", MaxRoutePathLen+1, MaxRoutePathLen)},
		{"timeout too short", func(j *Job) { r(j, 1).Timeout = 500 * time.Millisecond }, rt + ".Timeout", "500ms is out of range; accepted: 1s to 10m0s"},
		{"timeout too long", func(j *Job) { r(j, 1).Timeout = time.Hour }, rt + ".Timeout", "1h0m0s is out of range"},
		{"retries negative", func(j *Job) { r(j, 1).Retries = -1 }, rt + ".Retries", "-1 is out of range; accepted: 0 to 5"},
		{"retries too many", func(j *Job) { r(j, 1).Retries = MaxRouteRetries + 1 }, rt + ".Retries", "6 is out of range"},
		{"canary weight over 100", func(j *Job) { r(j, 1).CanaryWeight = 101 }, rt + ".CanaryWeight", "101 is out of range; accepted: 0 to 100"},
		{"canary weight negative", func(j *Job) { r(j, 1).CanaryWeight = -1 }, rt + ".CanaryWeight", "-1 is out of range"},
		{"too many routes", func(j *Job) {
			s := j.TaskGroups[0].Services[0]
			for i := len(s.Routes); i <= MaxRoutesPerService; i++ {
				s.Routes = append(s.Routes, &ServiceRoute{Path: fmt.Sprint("/r", i), Timeout: time.Second})
			}
		}, "TaskGroups[0].Services[0].Routes", fmt.Sprintf("has %d routes; the limit is %d per service", MaxRoutesPerService+1, MaxRoutesPerService)},
		{"null route", func(j *Job) { j.TaskGroups[0].Services[0].Routes[1] = nil }, rt, "must not be null"},
		{"same host and path in a service", func(j *Job) { r(j, 1).Host, r(j, 1).Path = "shop.example.com", "/api" }, rt + ".Path",
			"route shop.example.com/api is already declared at TaskGroups[0].Services[0].Routes[0]; every route of the job needs its own host and path"},
		{"same host and path in another group", func(j *Job) {
			j.TaskGroups[1].Services[0].Routes = []*ServiceRoute{{Host: "*.example.com", Path: "/", Timeout: time.Second}}
		}, "TaskGroups[1].Services[0].Routes[0].Path", "route *.example.com/ is already declared at " + rt},
		{"tls cert and variable", func(j *Job) { r(j, 0).TLS.Variable = "certs/shop" }, "TaskGroups[0].Services[0].Routes[0].TLS", "names both a cert and a variable"},
		{"tls variable", func(j *Job) { r(j, 0).TLS = &RouteTLS{Variable: "certs/shop"} }, "TaskGroups[0].Services[0].Routes[0].TLS.Variable",
			`certificates from variables are not supported yet; use cert = "NAME" with a gateway certificate`},
		{"tls empty", func(j *Job) { r(j, 0).TLS = &RouteTLS{} }, "TaskGroups[0].Services[0].Routes[0].TLS.CertName", "must be set to the name of a gateway certificate"},
		{"https only without tls", func(j *Job) { r(j, 1).HTTPSOnly = true }, rt + ".HTTPSOnly", "https_only needs a tls block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := routeJob()
			tc.mutate(j)
			err := j.Validate()
			if tc.path == "" {
				if err != nil {
					t.Fatalf("valid job refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a problem at %s, got %v", tc.path, err)
			}
			for _, p := range verr.Problems {
				if p.Path == tc.path {
					if !strings.Contains(p.Message, tc.phrase) {
						t.Fatalf("%s: message %q lacks %q", p.Path, p.Message, tc.phrase)
					}
					return
				}
			}
			t.Fatalf("no problem at %s; got %v", tc.path, err)
		})
	}
}

func TestApplyServiceDefaults_Routes(t *testing.T) {
	tg := &TaskGroup{Services: []*Service{{Name: "web", Routes: []*ServiceRoute{
		{Host: "shop.test"}, {Path: "/api", Timeout: 5 * time.Second}, nil,
	}}}}
	ApplyServiceDefaults(tg)
	want := []*ServiceRoute{
		{Host: "shop.test", Path: "/", Timeout: DefaultRouteTimeout},
		{Path: "/api", Timeout: 5 * time.Second}, nil,
	}
	if got := tg.Services[0].Routes; !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n got %+v %+v\nwant %+v %+v", *got[0], *got[1], *want[0], *want[1])
	}
}

// addScript gives the job's first task service a script check of
// command and args.
func addScript(j *Job, command string, args ...string) {
	j.TaskGroups[0].Tasks[0].Services[0].Checks = []*ServiceCheck{{
		Name: "admin-script", Type: ServiceCheckScript, Command: command, Args: args,
		Interval: 10 * time.Second, Timeout: 2 * time.Second,
	}}
}

func scriptCheck(j *Job) *ServiceCheck { return j.TaskGroups[0].Tasks[0].Services[0].Checks[0] }
