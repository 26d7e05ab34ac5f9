package gateway

import (
	"testing"

	"github.com/droverhq/drover/structs"
)

func TestTable_Lookup(t *testing.T) {
	inst := &structs.ServiceInstance{Address: "10.0.0.1", Port: 80, Status: structs.ServiceStatusPassing}
	svcs := []*structs.ProxiedService{
		{Namespace: "default", Name: "shop", Instances: []*structs.ServiceInstance{inst}, Routes: []*structs.ServiceRoute{
			{Host: "shop.example.com", Path: "/"},
			{Host: "shop.example.com", Path: "/api"},
			{Host: "Shop.Example.com", Path: "/api/v2/"},
		}},
		{Namespace: "default", Name: "wild", Routes: []*structs.ServiceRoute{{Host: "*.example.com", Path: "/"}, {Host: "*.example.com", Path: "/static"}}},
		{Namespace: "default", Name: "any", Routes: []*structs.ServiceRoute{{Path: "/"}, {Path: "/health"}}},
		{Namespace: "team", Name: "api", Routes: []*structs.ServiceRoute{{Host: "api.example.com", Path: "/v1"}}},
	}
	tab, _, _ := buildTable(svcs, nil, nil)
	for _, tc := range []struct {
		name, host, path     string
		wantService, wantPfx string
	}{
		{"exact root", "shop.example.com", "/", "shop", "/"},
		{"exact case and port", "SHOP.example.COM:8080", "/cart", "shop", "/"},
		{"longest prefix", "shop.example.com", "/api/items", "shop", "/api"},
		{"prefix itself", "shop.example.com", "/api", "shop", "/api"},
		{"segment aware", "shop.example.com", "/apix", "shop", "/"},
		{"trailing slash route", "shop.example.com", "/api/v2/x", "shop", "/api/v2"},
		{"wildcard one label", "blog.example.com", "/", "wild", "/"},
		{"wildcard prefix", "blog.example.com", "/static/a.css", "wild", "/static"},
		{"wildcard not two labels", "a.b.example.com", "/", "any", "/"},
		{"wildcard not apex", "example.com", "/", "any", "/"},
		{"exact host falls through to wildcard", "api.example.com", "/other", "wild", "/"},
		{"exact beats wildcard", "api.example.com", "/v1/x", "api", "/v1"},
		{"any host", "other.org", "/health", "any", "/health"},
		{"any host segment", "other.org", "/healthz", "any", "/"},
		{"ipv6 host", "[::1]:80", "/", "any", "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tab.lookup(tc.host, tc.path)
			if r == nil {
				t.Fatalf("no route for %s%s", tc.host, tc.path)
			}
			if r.service != tc.wantService || r.path != tc.wantPfx {
				t.Fatalf("%s%s: got %s %s, want %s %s", tc.host, tc.path, r.service, r.path, tc.wantService, tc.wantPfx)
			}
		})
	}
	// Without any-host routes, an unknown host has no route.
	tab2, _, _ := buildTable(svcs[:1], nil, nil)
	if r := tab2.lookup("other.org", "/"); r != nil {
		t.Fatalf("other.org: got %s, want no route", r.service)
	}
}

func TestTable_CertFor(t *testing.T) {
	svcs := []*structs.ProxiedService{{Namespace: "default", Name: "s", Routes: []*structs.ServiceRoute{
		{Host: "a.example.com", TLS: &structs.RouteTLS{CertName: "a"}},
		{Host: "*.b.example.com", TLS: &structs.RouteTLS{CertName: "b"}},
	}}}
	tab, _, _ := buildTable(svcs, nil, nil)
	for sni, want := range map[string]string{"a.example.com": "a", "A.EXAMPLE.COM": "a", "x.b.example.com": "b", "b.example.com": "", "z.org": ""} {
		if got := tab.certFor(sni); got != want {
			t.Errorf("certFor(%q) = %q, want %q", sni, got, want)
		}
	}
}

func TestStripPrefix(t *testing.T) {
	for _, tc := range []struct{ prefix, path, want string }{
		{"/api", "/api/items", "/items"},
		{"/api", "/api", "/"},
		{"/api", "/api/", "/"},
		{"/", "/x", "/x"},
		{"/a/b", "/a/b/c/d", "/c/d"},
	} {
		if got := stripPrefix(tc.prefix, tc.path); got != tc.want {
			t.Errorf("stripPrefix(%q, %q) = %q, want %q", tc.prefix, tc.path, got, tc.want)
		}
	}
}

func TestTable_KeepsBackendsAndStatsAcrossUpdates(t *testing.T) {
	inst := &structs.ServiceInstance{Address: "10.0.0.1", Port: 80, Status: structs.ServiceStatusPassing}
	crit := &structs.ServiceInstance{Address: "10.0.0.2", Port: 80, Status: structs.ServiceStatusCritical}
	svcs := []*structs.ProxiedService{{Namespace: "default", Name: "s", Routes: []*structs.ServiceRoute{{Path: "/"}}, Instances: []*structs.ServiceInstance{inst, crit}}}
	t1, b1, s1 := buildTable(svcs, nil, nil)
	if n := len(t1.routes[0].passing); n != 1 {
		t.Fatalf("passing = %d, want 1 (critical left out)", n)
	}
	t1.routes[0].passing[0].active.Add(3)
	t2, _, _ := buildTable(svcs, b1, s1)
	if t2.routes[0].passing[0].active.Load() != 3 || t2.routes[0].stats != t1.routes[0].stats {
		t.Fatal("backends and stats must carry over an update")
	}
}
