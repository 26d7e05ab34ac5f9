package jobspec

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/structs"
)

func TestParse_ServiceRoutes(t *testing.T) {
	src := serviceJob(`    network {
      port "http" {}
    }
    service {
      name = "shop"
      port = "http"
      route {
        host          = "shop.example.com"
        path          = "/api"
        strip_prefix  = true
        timeout       = "30s"
        retries       = 2
        https_only    = true
        canary_weight = 10
        tls { cert = "shop" }
      }
      route {
        host = "*.example.com"
      }
    }`)
	job, err := ParseAndValidate("case.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []*structs.ServiceRoute{
		{Host: "shop.example.com", Path: "/api", StripPrefix: true, Timeout: 30 * time.Second, Retries: 2,
			HTTPSOnly: true, CanaryWeight: 10, TLS: &structs.RouteTLS{CertName: "shop"}},
		// Defaults: every path, the default timeout.
		{Host: "*.example.com", Path: "/", Timeout: structs.DefaultRouteTimeout},
	}
	if got := job.TaskGroups[0].Services[0].Routes; !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n got %s\nwant %s", dumpJSON(got), dumpJSON(want))
	}
}

func TestParse_ServiceRouteDiagnostics(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		line, col int
		phrases   []string
	}{
		{
			name: "unknown attribute in route",
			src: `job "j" {
  group "g" {
    service {
      route {
        hots = "shop.test"
      }
    }
  }
}
`,
			line: 5, col: 9,
			phrases: []string{"Unsupported argument", `"hots" is not expected here`, `Did you mean "host"?`},
		},
		{
			name: "unknown attribute in tls",
			src: `job "j" {
  group "g" {
    service {
      route {
        tls { certificate = "shop" }
      }
    }
  }
}
`,
			line: 5, col: 15,
			phrases: []string{"Unsupported argument", `"certificate" is not expected here`},
		},
		{
			name: "second tls block",
			src: `job "j" {
  group "g" {
    service {
      route {
        tls { cert = "a" }
        tls { cert = "b" }
      }
    }
  }
}
`,
			line: 6, col: 9,
			phrases: []string{"Duplicate tls block", "a route block", "case.hcl:5:9"},
		},
		{
			name: "route with a label",
			src: `job "j" {
  group "g" {
    service {
      route "shop" {}
    }
  }
}
`,
			line: 4, col: 13,
			phrases: []string{"Extraneous label"},
		},
		{
			name: "strip_prefix not a bool",
			src: `job "j" {
  group "g" {
    service {
      route { strip_prefix = "yes please" }
    }
  }
}
`,
			line: 4, col: 30,
			phrases: []string{"Incorrect attribute value type", "strip_prefix must be true or false"},
		},
		{
			name: "bad timeout",
			src: `job "j" {
  group "g" {
    service {
      route { timeout = 30 }
    }
  }
}
`,
			line: 4, col: 25,
			phrases: []string{"Invalid duration", `timeout = "15s"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := findDiag(t, parseErr(t, tc.src), tc.line, tc.col)
			for _, p := range tc.phrases {
				if !strings.Contains(d.String(), p) {
					t.Errorf("diagnostic %q lacks %q", d.String(), p)
				}
			}
		})
	}
}

func TestParseAndValidate_ServiceRouteProblems(t *testing.T) {
	cases := []struct {
		name      string
		route     string
		path      string
		line, col int
		summary   string
		phrase    string
	}{
		{
			name:  "bad host",
			route: `host = "Shop.test"`,
			path:  "TaskGroups[0].Services[0].Routes[1].Host", line: 14, col: 16,
			summary: `group "g" service "web" route "Shop.test/": host`,
			phrase:  `"Shop.test" is not a valid host`,
		},
		{
			name:  "relative path",
			route: `path = "api"`,
			path:  "TaskGroups[0].Services[0].Routes[1].Path", line: 14, col: 16,
			summary: `group "g" service "web" route "api": path`,
			phrase:  `"api" must start with '/'`,
		},
		{
			name:  "same host and path twice",
			route: `path = "/api"`,
			path:  "TaskGroups[0].Services[0].Routes[1].Path", line: 14, col: 16,
			summary: `group "g" service "web" route "/api": path`,
			phrase:  "route /api is already declared at TaskGroups[0].Services[0].Routes[0]",
		},
		{
			name:  "tls from a variable",
			route: `tls { variable = "certs/shop" }`,
			path:  "TaskGroups[0].Services[0].Routes[1].TLS.Variable", line: 14, col: 26,
			summary: `group "g" service "web" route "/": tls.variable`,
			phrase:  "certificates from variables are not supported yet",
		},
		{
			name:  "https only without tls",
			route: `https_only = true`,
			path:  "TaskGroups[0].Services[0].Routes[1].HTTPSOnly", line: 14, col: 22,
			summary: `group "g" service "web" route "/": https_only`,
			phrase:  "https_only needs a tls block",
		},
		{
			name:  "timeout too long",
			route: `timeout = "1h"`,
			path:  "TaskGroups[0].Services[0].Routes[1].Timeout", line: 14, col: 19,
			summary: `group "g" service "web" route "/": timeout`,
			phrase:  "1h0m0s is out of range; accepted: 1s to 10m0s",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := serviceJob(`    network {
      port "http" {}
    }
    service {
      name = "web"
      port = "http"
      route {
        path = "/api"
      }
      route {
        ` + tc.route + `
      }
    }`)
			job, err := ParseAndValidate("case.hcl", []byte(src))
			if err == nil {
				t.Fatalf("accepted: %s", dump(job))
			}
			perr, ok := err.(*Error)
			if !ok {
				t.Fatalf("err is %T: %v", err, err)
			}
			for _, d := range perr.Diagnostics {
				if d.Path != tc.path {
					continue
				}
				if d.Line != tc.line || d.Column != tc.col {
					t.Errorf("at %d:%d, want %d:%d: %v", d.Line, d.Column, tc.line, tc.col, d)
				}
				if d.Summary != tc.summary {
					t.Errorf("summary %q, want %q", d.Summary, tc.summary)
				}
				if !strings.Contains(d.Detail, tc.phrase) {
					t.Errorf("detail %q lacks %q", d.Detail, tc.phrase)
				}
				return
			}
			t.Fatalf("no diagnostic for %s; got:\n%v", tc.path, err)
		})
	}
}
