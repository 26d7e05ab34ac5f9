package agent

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/structs"
)

// fakeClock is a settable clock for the token cache.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTokenCache_Expiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	c := newTokenCache(30*time.Second, clock.Now)
	tok := &structs.ACLToken{AccessorID: "a1", Name: "ci"}
	c.put("s1", acl.ManagementACL(), tok)
	if r, found, err := c.get("s1"); !found || err != nil || r.token != tok {
		t.Fatalf("fresh entry: %v %v %v", r, found, err)
	}
	clock.Advance(29 * time.Second)
	if _, found, _ := c.get("s1"); !found {
		t.Fatal("entry gone before its TTL")
	}
	clock.Advance(time.Second)
	if _, found, _ := c.get("s1"); found {
		t.Fatal("entry served after its TTL")
	}

	// Unknown tokens are believed for negativeTokenTTL at most.
	c.putUnknown("bad")
	if _, found, err := c.get("bad"); !found || !errors.Is(err, structs.ErrACLTokenNotFound) {
		t.Fatalf("unknown token: %v %v", found, err)
	}
	clock.Advance(negativeTokenTTL)
	if _, found, _ := c.get("bad"); found {
		t.Fatal("unknown token cached past negativeTokenTTL")
	}

	// A token that expires before the TTL is dropped when it expires.
	exp := &structs.ACLToken{AccessorID: "a2", ExpirationTime: clock.Now().Add(5 * time.Second).UnixNano()}
	c.put("s2", acl.ManagementACL(), exp)
	clock.Advance(5 * time.Second)
	if _, found, _ := c.get("s2"); found {
		t.Fatal("an expired token was served from the cache")
	}

	// A TTL of 0 turns the cache off.
	off := newTokenCache(0, clock.Now)
	off.put("s1", acl.ManagementACL(), tok)
	off.putUnknown("bad")
	if _, found, _ := off.get("s1"); found {
		t.Fatal("token_ttl = 0s cached")
	}
	if k, u := off.len(); k != 0 || u != 0 {
		t.Fatalf("token_ttl = 0s holds %d+%d entries", k, u)
	}
}

// TestTokenCache_Bounded: garbage tokens neither grow the cache past
// its bounds nor push the known tokens out.
func TestTokenCache_Bounded(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	c := newTokenCache(time.Minute, clock.Now)
	c.put("real", acl.ManagementACL(), &structs.ACLToken{Name: "real"})
	for i := 0; i < 10*maxCachedUnknown; i++ {
		c.putUnknown("garbage-" + strconv.Itoa(i))
	}
	if _, u := c.len(); u > maxCachedUnknown {
		t.Fatalf("%d unknown tokens cached, bound %d", u, maxCachedUnknown)
	}
	if r, found, err := c.get("real"); !found || err != nil || r.token.Name != "real" {
		t.Fatal("garbage tokens pushed a real one out")
	}
	for i := 0; i < 3*maxCachedTokens; i++ {
		c.put("tok-"+strconv.Itoa(i), acl.ManagementACL(), &structs.ACLToken{})
	}
	if k, _ := c.len(); k > maxCachedTokens {
		t.Fatalf("%d tokens cached, bound %d", k, maxCachedTokens)
	}
	// The cache never holds a secret: keys are digests.
	for k := range c.known {
		if string(k[:]) == "real" {
			t.Fatal("a secret is a key")
		}
	}
}

// TestAgent_TokenCacheOnClientAgents: an agent without a server keeps
// a resolution for the TTL (a policy change reaches it at most that
// late), then asks again; the known and unknown answers come from
// ACL.ResolveToken.
func TestAgent_TokenCacheOnClientAgents(t *testing.T) {
	a := aclAgent(t, true)
	h := a.routes()
	_, body := call(t, h, "PUT", "/v1/acl/bootstrap", "", nil)
	mgmt := map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
	call(t, h, "PUT", "/v1/acl/policy/ops", `{"Rules":"agent { policy = \"read\" }"}`, mgmt)
	_, body = call(t, h, "PUT", "/v1/acl/token", `{"Name":"ops","Policies":["ops"]}`, mgmt)
	ops := decodeAs[aclTokenJSON](t, body)

	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	remote := &Agent{config: a.config, logger: hclog.NewNullLogger(), rpc: a.server, tokens: newTokenCache(30*time.Second, clock.Now)}
	rh := remote.routes()
	if code, body := rawCall(t, rh, "GET", "/v1/metrics", "", map[string]string{"X-Drover-Token": ops.SecretID}); code != 200 {
		t.Fatalf("metrics with agent:read: %d %s", code, body)
	}
	// The policy loses agent:read; the cached answer holds until the
	// TTL, then the change is seen.
	call(t, h, "PUT", "/v1/acl/policy/ops", `{"Rules":"operator { policy = \"read\" }"}`, mgmt)
	if code, _ := rawCall(t, rh, "GET", "/v1/metrics", "", map[string]string{"X-Drover-Token": ops.SecretID}); code != 200 {
		t.Fatalf("the cached answer was not used: %d", code)
	}
	clock.Advance(30 * time.Second)
	code, body := rawCall(t, rh, "GET", "/v1/metrics", "", map[string]string{"X-Drover-Token": ops.SecretID})
	if code != 403 || body != ruleDenied("ops", "agent", "read", "") {
		t.Fatalf("after the TTL: %d %s", code, body)
	}
	// Unknown tokens: token_not_found, cached briefly.
	code, body = rawCall(t, rh, "GET", "/v1/metrics", "", map[string]string{"X-Drover-Token": "garbage"})
	if code != 403 || body != `{"Code":"token_not_found","Error":"ACL token not found"}`+"\n" {
		t.Fatalf("unknown token: %d %s", code, body)
	}
	if k, u := remote.tokens.len(); k != 1 || u != 1 {
		t.Fatalf("cache holds %d known, %d unknown; want 1, 1", k, u)
	}
	// A server agent reads its own state: the change is seen at once.
	call(t, h, "PUT", "/v1/acl/policy/ops", `{"Rules":"agent { policy = \"read\" }"}`, mgmt)
	if code, body := rawCall(t, h, "GET", "/v1/metrics", "", map[string]string{"X-Drover-Token": ops.SecretID}); code != 200 {
		t.Fatalf("server agent after the policy change: %d %s", code, body)
	}
}

// TestAgent_ResolveTokenUnreachable: a client agent that cannot reach
// a server answers 503 unavailable, not 500.
func TestAgent_ResolveTokenUnreachable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ACL = &ACLConfig{Enabled: true}
	a := &Agent{config: cfg, logger: hclog.NewNullLogger(), rpc: failingRPC{}}
	code, body := rawCall(t, a.routes(), "GET", "/v1/agent/self", "", map[string]string{"X-Drover-Token": "x"})
	if code != 503 || !json.Valid([]byte(body)) || !strings.Contains(body, "cannot check the request's ACL token") {
		t.Fatalf("%d %s", code, body)
	}
	if _, u := a.tokenCache().len(); u != 0 {
		t.Fatal("an unreachable server made the token cached as unknown")
	}
}

type failingRPC struct{}

func (failingRPC) RPC(string, interface{}, interface{}) error {
	return errors.New("dial tcp: connection refused")
}
