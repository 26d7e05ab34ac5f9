package command

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// serviceAgent is an HTTP API answering the service endpoints with two
// instances of "web" (one passing, one critical), recording each
// request's URI.
func serviceAgent(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("X-Drover-Index", "5")
		switch {
		case r.URL.Path == "/v1/services":
			w.Write([]byte(`[{"Name":"web","Namespace":"default","Tags":["http","v1"],"Instances":2,"Passing":1}]`))
		case r.URL.Path == "/v1/service/web":
			all := []map[string]interface{}{
				{"ID": "aaaaaaaa-1111-web", "ServiceName": "web", "Namespace": "default", "NodeID": "nnnnnnnn-2222", "AllocID": "aaaaaaaa-1111",
					"Address": "10.0.0.1", "Port": 20000, "Status": "passing", "VIP": "127.99.0.1", "VIPPort": 80, "PublishedPort": 8080,
					"Checks": []map[string]interface{}{{"Service": "web", "Check": "alive", "Status": "passing"}}},
				{"ID": "bbbbbbbb-1111-web", "ServiceName": "web", "Namespace": "default", "NodeID": "nnnnnnnn-2222", "AllocID": "bbbbbbbb-1111",
					"Address": "fd00::1", "Port": 20001, "Status": "critical",
					"Checks": []map[string]interface{}{{"Service": "web", "Check": "alive", "Status": "critical"}}},
			}
			var out []map[string]interface{}
			for _, inst := range all {
				if s := r.URL.Query().Get("status"); s == "" || inst["Status"] == s {
					out = append(out, inst)
				}
			}
			if out == nil {
				out = []map[string]interface{}{}
			}
			json.NewEncoder(w).Encode(out)
		case r.URL.Path == "/v1/routes":
			w.Write([]byte(`[{"Namespace":"default","ServiceName":"web","JobID":"web","Route":{"Path":"/"},"Passing":0,"Canary":0,"Backends":[]},` +
				`{"Namespace":"default","ServiceName":"shop","JobID":"shop","Route":{"Host":"shop.test","Path":"/api","Timeout":30000000000},"Passing":2,"Canary":1,"Backends":["10.0.0.1:20000","10.0.0.2:20001"]}]`))
		case strings.HasPrefix(r.URL.Path, "/v1/service/"):
			w.Write([]byte(`[]`))
		default:
			w.WriteHeader(404)
			w.Write([]byte(`{"Code":"not_found","Error":"no such endpoint"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestServiceCommand_ListAndInfo(t *testing.T) {
	srv, seen := serviceAgent(t)
	cases := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
		uri     string
	}{
		{"list", []string{"service", "list"}, []string{"Name", "Passing/Total", "web", "default", "http,v1", "1/2"}, nil, "/v1/services"},
		{"list every namespace", []string{"-namespace", "*", "service", "list"}, []string{"web"}, nil, "/v1/services?namespace=%2A"},
		{"list json", []string{"service", "list", "-json"}, []string{`"Passing": 1`, `"Instances": 2`}, nil, ""},
		{"info passing by default", []string{"service", "info", "web"}, []string{"aaaaaaaa", "nnnnnnnn", "10.0.0.1:20000", "passing", "1/1 passing"}, []string{"bbbbbbbb"}, "/v1/service/web?status=passing"},
		{"info shows the vip and published port", []string{"service", "info", "web"}, []string{"VIP            = 127.99.0.1:80", "Published port = 8080"}, nil, ""},
		{"info any", []string{"service", "info", "-status", "any", "web"}, []string{"aaaaaaaa", "bbbbbbbb", "[fd00::1]:20001", "0/1 passing (alive: critical)"}, nil, "/v1/service/web"},
		{"info in a namespace", []string{"-namespace", "team-a", "service", "info", "web"}, []string{"aaaaaaaa"}, nil, "/v1/service/web?namespace=team-a&status=passing"},
		{"info json", []string{"service", "info", "-json", "web"}, []string{`"ServiceName": "web"`, `"Port": 20000`}, nil, ""},
		{"unknown service", []string{"service", "info", "nope"}, []string{`No passing instances of service "nope"`}, nil, ""},
		{"routes", []string{"service", "routes"}, []string{"Host", "Path", "Service", "Namespace", "Passing", "Canary", "Backends",
			"shop.test", "/api", "shop", "10.0.0.1:20000,10.0.0.2:20001"}, nil, "/v1/routes"},
		{"routes of every namespace", []string{"-namespace", "*", "service", "routes"}, []string{"shop.test"}, nil, "/v1/routes?namespace=%2A"},
		{"routes json", []string{"service", "routes", "-json"}, []string{`"ServiceName": "shop"`, `"Canary": 1`, `"Host": "shop.test"`}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := aclCLI(append([]string{"-address", srv.URL}, tc.args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Fatalf("output has %q:\n%s", w, out)
				}
			}
			if tc.uri != "" {
				s := seen()
				if got := s[len(s)-1]; got != tc.uri && got != strings.ReplaceAll(tc.uri, "%2A", "*") {
					t.Fatalf("asked %s, want %s", got, tc.uri)
				}
			}
		})
	}
}

func TestServiceCommand_RefusesBeforeCalling(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"info without name", []string{"service", "info"}, "takes one service NAME, got 0"},
		{"info two names", []string{"service", "info", "a", "b"}, "takes one service NAME, got 2"},
		{"bad status", []string{"service", "info", "-status", "healthy", "web"}, `-status "healthy"`},
		{"every namespace", []string{"-namespace", "*", "service", "info", "web"}, "-namespace '*' is for listing"},
		{"list takes no args", []string{"service", "list", "web"}, "unknown command"},
		{"routes takes no args", []string{"service", "routes", "web"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := aclCLI(append([]string{"-address", "http://127.0.0.1:1"}, tc.args...)...)
			if code == ExitOK || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
			}
		})
	}
}

func TestServiceCommand_Help(t *testing.T) {
	for _, args := range [][]string{{"service"}, {"service", "list"}, {"service", "info"}, {"service", "routes"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := aclCLI(append(args, "-help")...)
			if code != ExitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, "-namespace") || !strings.Contains(out, "drover service") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}
