package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestServices_ListInfoChecks(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.RequestURI())
		w.Header().Set("X-Drover-Index", "9")
		switch r.URL.Path {
		case "/v1/services":
			w.Write([]byte(`[{"Name":"web","Namespace":"default","Tags":["v1"],"Instances":2,"Passing":1}]`))
		case "/v1/service/web":
			w.Write([]byte(`[{"ID":"a1-web","ServiceName":"web","Namespace":"default","NodeID":"n1","AllocID":"a1","Address":"10.0.0.1","Port":20000,"Status":"passing"}]`))
		case "/v1/allocation/a1/checks":
			w.Write([]byte(`{"web/alive":{"Service":"web","Check":"alive","Status":"critical","Output":"refused"}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"Code":"not_found","Error":"no"}`))
		}
	}))
	defer srv.Close()
	c, err := NewClient(&Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	list, meta, err := c.Services().List(&QueryOptions{Namespace: AllNamespaces})
	if err != nil || len(list) != 1 || list[0].Passing != 1 || meta.LastIndex != 9 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	insts, _, err := c.Services().Info("web", ServiceStatusPassing, &QueryOptions{WaitIndex: 3})
	if err != nil || len(insts) != 1 || insts[0].Port != 20000 || insts[0].Address != "10.0.0.1" {
		t.Fatalf("info: %+v, %v", insts, err)
	}
	checks, _, err := c.Allocations().Checks("a1", nil)
	if err != nil || checks["web/alive"] == nil || checks["web/alive"].Status != "critical" {
		t.Fatalf("checks: %+v, %v", checks, err)
	}
	if _, _, err := c.Allocations().Checks("zz", nil); !IsNotFound(err) {
		t.Fatalf("unknown alloc: %v", err)
	}
	if want := "/v1/service/web?index=3&status=passing"; seen[1] != want {
		t.Fatalf("info asked %s, want %s", seen[1], want)
	}
	if want := "/v1/services?namespace=%2A"; seen[0] != want && seen[0] != "/v1/services?namespace=*" {
		t.Fatalf("list asked %s", seen[0])
	}
}

func TestServices_Routes(t *testing.T) {
	var seen string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.URL.RequestURI()
		w.Header().Set("X-Drover-Index", "12")
		w.Write([]byte(`[{"Namespace":"default","ServiceName":"shop","JobID":"shop","Route":{"Host":"shop.test","Path":"/api","Timeout":30000000000,"TLS":{"CertName":"shop"}},"Passing":2,"Canary":1,"Backends":["10.0.0.1:20000","10.0.0.2:20001"]}]`))
	}))
	defer srv.Close()
	c, err := NewClient(&Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	list, meta, err := c.Services().Routes(&QueryOptions{Namespace: AllNamespaces})
	if err != nil || meta.LastIndex != 12 || len(list) != 1 {
		t.Fatalf("routes: %+v, %v", list, err)
	}
	r := list[0]
	if r.ServiceName != "shop" || r.Route.Host != "shop.test" || r.Route.Timeout.Seconds() != 30 || r.Route.TLS.CertName != "shop" || r.Canary != 1 || len(r.Backends) != 2 {
		t.Fatalf("route %+v %+v", r, r.Route)
	}
	if seen != "/v1/routes?namespace=%2A" && seen != "/v1/routes?namespace=*" {
		t.Fatalf("asked %s", seen)
	}
}
