package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// recordingServer answers every request with an empty list or index and
// records each request's path, ?namespace= and body.
type recordingServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	method, path, namespace string
	hasNamespace            bool
	body                    map[string]interface{}
}

func newRecordingServer(t *testing.T) *recordingServer {
	rs := &recordingServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]interface{}
		_ = json.Unmarshal(raw, &body)
		_, has := r.URL.Query()["namespace"]
		rs.mu.Lock()
		rs.seen = append(rs.seen, seenRequest{r.Method, r.URL.Path, r.URL.Query().Get("namespace"), has, body})
		rs.mu.Unlock()
		if r.Method == http.MethodGet && (r.URL.Path == "/v1/jobs" || r.URL.Path == "/v1/namespaces" || r.URL.Path == "/v1/evaluations") {
			w.Write([]byte(`[]`))
			return
		}
		w.Write([]byte(`{"Index":1}`))
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *recordingServer) last() seenRequest {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.seen[len(rs.seen)-1]
}

// TestClient_SendsTheNamespace: ?namespace= comes from
// Config.Namespace, else DROVER_NAMESPACE, on reads and writes alike;
// QueryOptions.Namespace overrides it for one read; none is sent when
// neither is set.
func TestClient_SendsTheNamespace(t *testing.T) {
	rs := newRecordingServer(t)
	cases := []struct {
		name, config, env, want string
	}{
		{"config", "team-a", "", "team-a"},
		{"environment", "", "team-b", "team-b"},
		{"config wins", "team-a", "team-b", "team-a"},
		{"none", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DROVER_NAMESPACE", tc.env)
			c, err := NewClient(&Config{Address: rs.URL, Namespace: tc.config})
			if err != nil {
				t.Fatal(err)
			}
			if c.Namespace() != tc.want {
				t.Fatalf("Namespace() = %q, want %q", c.Namespace(), tc.want)
			}
			calls := []func() error{
				func() error { _, _, err := c.Jobs().List(nil); return err },
				func() error { _, _, err := c.Jobs().Deregister("web", false); return err },
				func() error { _, _, err := c.Jobs().Register(map[string]string{"ID": "web"}, nil); return err },
				func() error { _, _, err := c.Evaluations().List(nil); return err },
			}
			for i, call := range calls {
				if err := call(); err != nil {
					t.Fatal(err)
				}
				if got := rs.last(); got.namespace != tc.want || got.hasNamespace != (tc.want != "") {
					t.Fatalf("call %d (%s %s): namespace %q (sent %t), want %q", i, got.method, got.path, got.namespace, got.hasNamespace, tc.want)
				}
			}
			if _, _, err := c.Jobs().List(&QueryOptions{Namespace: AllNamespaces}); err != nil {
				t.Fatal(err)
			}
			if got := rs.last(); got.namespace != "*" {
				t.Fatalf("QueryOptions.Namespace did not override: %q", got.namespace)
			}
		})
	}
}

// TestNamespaces_Calls: the namespace endpoints' paths and bodies, and
// that the client's own namespace is not sent with them.
func TestNamespaces_Calls(t *testing.T) {
	rs := newRecordingServer(t)
	c, err := NewClient(&Config{Address: rs.URL, Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespaces()
	if _, _, err := ns.List(&QueryOptions{Namespace: "x"}); err != nil {
		t.Fatal(err)
	}
	if got := rs.last(); got.path != "/v1/namespaces" || got.hasNamespace {
		t.Fatalf("list: %+v", got)
	}
	if _, err := ns.Register(&Namespace{Name: "team-c", Description: "C", Quota: "q", Meta: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	got := rs.last()
	if got.method != http.MethodPut || got.path != "/v1/namespace/team-c" || got.hasNamespace ||
		got.body["Name"] != "team-c" || got.body["Description"] != "C" || got.body["Quota"] != "q" {
		t.Fatalf("register: %+v", got)
	}
	if _, err := ns.Delete("team-c"); err != nil {
		t.Fatal(err)
	}
	if got := rs.last(); got.method != http.MethodDelete || got.path != "/v1/namespace/team-c" {
		t.Fatalf("delete: %+v", got)
	}
	// The client itself still sends its namespace.
	if _, _, err := c.Jobs().List(nil); err != nil {
		t.Fatal(err)
	}
	if got := rs.last(); got.namespace != "team-a" {
		t.Fatalf("jobs list after namespace calls: %q", got.namespace)
	}
}
