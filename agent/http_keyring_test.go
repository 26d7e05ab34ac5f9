package agent

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/gossip"
)

// gossipAgent is an agent with only its HTTP routes and a gossip pool
// (encrypted with key when key is not empty) on a free loopback port.
func gossipAgent(t *testing.T, key, keyringFile string) *Agent {
	t.Helper()
	// Gossip binds the port for UDP and TCP: a port free for UDP may be
	// held for TCP by another connection, so a clash picks another.
	var pool *gossip.Pool
	for attempt := 0; ; attempt++ {
		l, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.LocalAddr().(*net.UDPAddr).Port
		l.Close()
		pool, err = gossip.New(gossip.Config{Name: "a1", BindAddr: "127.0.0.1", BindPort: port, Meta: gossip.Meta{Client: true},
			EncryptKey: key, KeyringFile: keyringFile})
		if err == nil {
			break
		}
		if attempt == 4 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = pool.Shutdown() })
	return &Agent{config: DefaultConfig(), logger: hclog.NewNullLogger(), gossip: pool}
}

// doRaw sends a raw body and returns the status and the decoded JSON.
func doRaw(t *testing.T, h http.Handler, method, path, body string, out interface{}) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %d with a body that is not JSON: %s", method, path, rec.Code, rec.Body)
		}
	}
	return rec.Code
}

func newKey(t *testing.T) string {
	t.Helper()
	k, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyringHTTP_RefusesBadRequests(t *testing.T) {
	key1, key2 := newKey(t), newKey(t)
	file := filepath.Join(t.TempDir(), "gossip", "keyring")
	a := gossipAgent(t, key1, file)
	h := a.routes()
	onDisk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	body := func(k string) string { return `{"Key":"` + k + `"}` }

	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		status  int
		code    string
		message string
	}{
		{"not JSON", "PUT", "/v1/agent/keyring/install", `{"Key": `, 400, "invalid_request", "not valid JSON"},
		{"empty body", "PUT", "/v1/agent/keyring/install", ``, 400, "invalid_request", "body is empty"},
		{"unknown field", "POST", "/v1/agent/keyring/install", `{"Kee":"x"}`, 400, "invalid_request", "unknown field"},
		{"wrong type", "PUT", "/v1/agent/keyring/use", `{"Key": 42}`, 400, "invalid_request", "expected string"},
		{"no key", "PUT", "/v1/agent/keyring/install", `{}`, 400, "invalid_request", "names no key"},
		{"not base64", "PUT", "/v1/agent/keyring/install", body("%%%"), 400, "invalid_request", "not valid base64"},
		{"wrong length", "PUT", "/v1/agent/keyring/install", body(base64.StdEncoding.EncodeToString([]byte("twenty bytes of key!"))), 400, "invalid_request", "16, 24 or 32 bytes"},
		{"remove the primary", "PUT", "/v1/agent/keyring/remove", body(key1), 409, "conflict", "use OTHER_KEY"},
		{"use a key nobody has", "POST", "/v1/agent/keyring/use", body(key2), 409, "conflict", "install it first"},
		{"huge body", "PUT", "/v1/agent/keyring/install", `{"Key":"` + strings.Repeat("A", 2<<20) + `"}`, 413, "request_too_large", "larger than the limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out errorBody
			status := doRaw(t, h, tc.method, tc.path, tc.body, &out)
			if status != tc.status || out.Code != tc.code || !strings.Contains(out.Error, tc.message) {
				t.Fatalf("%d %s %q, want %d %s mentioning %q", status, out.Code, out.Error, tc.status, tc.code, tc.message)
			}
		})
	}

	// Nothing was stored: one key, unchanged on disk, and the agent
	// still answers.
	var list KeyringListResponse
	if status := doRaw(t, h, "GET", "/v1/agent/keyring/list", "", &list); status != 200 {
		t.Fatalf("list: %d", status)
	}
	if list.Members != 1 || len(list.Keys) != 1 || list.Keys[0].Key != key1 || !list.Keys[0].Primary || list.Keys[0].Installed != 1 {
		t.Fatalf("list after refusals: %+v", list)
	}
	if now, _ := os.ReadFile(file); string(now) != string(onDisk) {
		t.Fatalf("keyring file changed: %s -> %s", onDisk, now)
	}

	// The good path, for contrast.
	var res KeyringResponse
	if status := doRaw(t, h, "PUT", "/v1/agent/keyring/install", body(key2), &res); status != 200 || res.Members != 1 || res.Reflected != 1 {
		t.Fatalf("install: %d %+v", status, res)
	}
	if status := doRaw(t, h, "POST", "/v1/agent/keyring/use", body(key2), &res); status != 200 {
		t.Fatalf("use: %d", status)
	}
	if status := doRaw(t, h, "PUT", "/v1/agent/keyring/remove", body(key1), &res); status != 200 {
		t.Fatalf("remove: %d", status)
	}
	if status := doRaw(t, h, "GET", "/v1/agent/keyring/list", "", &list); status != 200 || len(list.Keys) != 1 || list.Keys[0].Key != key2 {
		t.Fatalf("list after rotation: %d %+v", status, list)
	}
}

func TestKeyringHTTP_RefusesWhenEncryptionIsOff(t *testing.T) {
	a := gossipAgent(t, "", filepath.Join(t.TempDir(), "keyring"))
	h := a.routes()
	key := newKey(t)
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/v1/agent/keyring/list", ""},
		{"PUT", "/v1/agent/keyring/install", `{"Key":"` + key + `"}`},
		{"POST", "/v1/agent/keyring/use", `{"Key":"` + key + `"}`},
		{"PUT", "/v1/agent/keyring/remove", `{"Key":"` + key + `"}`},
		{"PUT", "/v1/agent/keyring/install", `garbage`},
	} {
		var out errorBody
		status := doRaw(t, h, req.method, req.path, req.body, &out)
		if status != 400 || out.Code != "invalid_request" || !strings.Contains(out.Error, "-encrypt") {
			t.Fatalf("%s %s: %d %s %q", req.method, req.path, status, out.Code, out.Error)
		}
	}
	if a.gossip.Encrypted() {
		t.Fatal("a refused request turned encryption on")
	}
}

func TestConfig_ValidateChecksTheGossipKey(t *testing.T) {
	cases := []struct {
		name string
		key  string
		want string
	}{
		{"not base64", "!!", "not valid base64"},
		{"too short", base64.StdEncoding.EncodeToString([]byte("short")), "16, 24 or 32 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DevConfig()
			c.Encrypt = tc.key
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), "encrypt") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one about encrypt mentioning %q", err, tc.want)
			}
		})
	}
	c := DevConfig()
	c.Encrypt = newKey(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("a good key refused: %v", err)
	}
}
