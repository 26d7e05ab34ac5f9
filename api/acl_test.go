package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestClient_SendsTheToken: every request carries the token as
// X-Drover-Token, from Config.Token or else DROVER_TOKEN.
func TestClient_SendsTheToken(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("X-Drover-Token"))
		if r.Method == http.MethodDelete {
			w.Write([]byte(`{"Index":1}`))
			return
		}
		w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	cases := []struct {
		name, config, env, want string
	}{
		{"config", "from-config", "", "from-config"},
		{"environment", "", "from-env", "from-env"},
		{"config wins", "from-config", "from-env", "from-config"},
		{"none", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DROVER_TOKEN", tc.env)
			c, err := NewClient(&Config{Address: srv.URL, Token: tc.config})
			if err != nil {
				t.Fatal(err)
			}
			got = nil
			if _, _, err := c.ACL().Policies(nil); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ACL().TokenDelete("x"); err != nil {
				t.Fatal(err)
			}
			for _, h := range got {
				if h != tc.want {
					t.Fatalf("X-Drover-Token %q, want %q", h, tc.want)
				}
			}
			if len(got) != 2 {
				t.Fatalf("%d requests", len(got))
			}
		})
	}
}

func TestACL_TokenCreateSendsTheTTLAsADuration(t *testing.T) {
	var body map[string]interface{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/v1/acl/token" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		w.Write([]byte(`{"AccessorID":"a","SecretID":"s","Type":"client"}`))
	}))
	defer srv.Close()
	c, err := NewClient(&Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := c.ACL().TokenCreate(&ACLTokenCreateRequest{Name: "n", Policies: []string{"p"}, TTL: 90 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if tok.SecretID != "s" || body["ExpirationTTL"] != "1h30m0s" || body["Name"] != "n" {
		t.Fatalf("token %+v, body %v", tok, body)
	}
}
