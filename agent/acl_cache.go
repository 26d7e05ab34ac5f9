package agent

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/structs"
)

// The token cache of an agent without a server.
//
// Such an agent authorizes its own endpoints (logs, metrics, leave...)
// by asking a server what a token may do (ACL.ResolveToken). Asking on
// every request would put one RPC in front of every log read and every
// metrics scrape, so answers are kept for acl { token_ttl } (30s by
// default): a policy or token change reaches such an agent at most that
// late. A server agent resolves in its own state store on every request
// (server.ResolveToken), which is as cheap as a map lookup and always
// current, so it uses no cache.
//
// The cache is bounded on both sides: known tokens (maxCachedTokens)
// and unknown ones (maxCachedUnknown, for a short negativeTokenTTL), so
// that a stream of garbage tokens can neither grow memory nor push the
// real tokens out. Keys are SHA-256 digests of the secrets: the cache
// never holds a secret.

// Cache bounds. A cluster has far fewer live tokens than this; going
// over only costs a resolution RPC.
const (
	maxCachedTokens  = 1024
	maxCachedUnknown = 256
	// negativeTokenTTL bounds how long "this token does not exist" is
	// believed: long enough to absorb a client retrying with a wrong
	// token, short enough that a token created a moment ago (and not yet
	// on the server that answered) works soon.
	negativeTokenTTL = 2 * time.Second
)

// DefaultACLTokenTTL is how long a client-only agent believes a
// resolved token (acl { token_ttl }).
const DefaultACLTokenTTL = 30 * time.Second

// resolvedToken is one cached resolution.
type resolvedToken struct {
	acl   *acl.ACL
	token *structs.ACLToken
	// expires is when the answer must be asked again.
	expires time.Time
}

// tokenCache maps secret digests to resolutions. Safe for concurrent
// use.
type tokenCache struct {
	ttl time.Duration
	now func() time.Time

	// mu guards known and unknown.
	mu sync.Mutex
	// known holds tokens that resolved; unknown the digests of tokens
	// that were not found, with when to forget them.
	known   map[[sha256.Size]byte]resolvedToken
	unknown map[[sha256.Size]byte]time.Time
}

func newTokenCache(ttl time.Duration, now func() time.Time) *tokenCache {
	if now == nil {
		now = time.Now
	}
	return &tokenCache{ttl: ttl, now: now,
		known:   make(map[[sha256.Size]byte]resolvedToken),
		unknown: make(map[[sha256.Size]byte]time.Time)}
}

func tokenKey(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// get returns the cached resolution of secret: found reports whether
// there is a live entry, and err is structs.ErrACLTokenNotFound for a
// token cached as unknown.
func (c *tokenCache) get(secret string) (res resolvedToken, found bool, err error) {
	if c.ttl <= 0 {
		return resolvedToken{}, false, nil
	}
	key := tokenKey(secret)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.unknown[key]; ok {
		if now.Before(until) {
			return resolvedToken{}, true, structs.ErrACLTokenNotFound
		}
		delete(c.unknown, key)
	}
	if r, ok := c.known[key]; ok {
		if now.Before(r.expires) {
			return r, true, nil
		}
		delete(c.known, key)
	}
	return resolvedToken{}, false, nil
}

// put caches a resolution of secret for the TTL. The token's own expiry
// cuts the entry short: an expiring token stops working on time.
func (c *tokenCache) put(secret string, a *acl.ACL, token *structs.ACLToken) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	expires := now.Add(c.ttl)
	if token != nil && token.ExpirationTime > 0 {
		if t := time.Unix(0, token.ExpirationTime); t.Before(expires) {
			expires = t
		}
	}
	key := tokenKey(secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.unknown, key)
	makeRoom(c.known, maxCachedTokens, func(r resolvedToken) bool { return !now.Before(r.expires) })
	c.known[key] = resolvedToken{acl: a, token: token, expires: expires}
}

// putUnknown remembers, briefly, that secret is not a token.
func (c *tokenCache) putUnknown(secret string) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	key := tokenKey(secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.known, key)
	makeRoom(c.unknown, maxCachedUnknown, func(until time.Time) bool { return !now.Before(until) })
	c.unknown[key] = now.Add(min(negativeTokenTTL, c.ttl))
}

// len returns how many entries are cached (known, unknown).
func (c *tokenCache) len() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.known), len(c.unknown)
}

// makeRoom makes m hold fewer than max entries: expired entries go
// first, then arbitrary ones (Go's map order), which is enough for a
// cache whose misses cost one RPC.
func makeRoom[V any](m map[[sha256.Size]byte]V, max int, expired func(V) bool) {
	if len(m) < max {
		return
	}
	for k, v := range m {
		if expired(v) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < max {
			return
		}
		delete(m, k)
	}
}
