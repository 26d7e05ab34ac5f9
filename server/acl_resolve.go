package server

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Token resolution.
//
// A request's token secret is hashed (SHA-256) and looked up by hash in
// this server's state store: the store, the Raft log and snapshots hold
// only hashes. Expiry is checked here against the wall clock, never in
// the FSM (which reads no clock). The token itself is read from the
// state on every request, so a deleted token stops working at once on
// every server that applied the delete; only the compiled rules are
// cached (compiling means parsing HCL). The cache is content-addressed:
// its key is a digest of the rules of the token's policies (which
// exist), so a changed or deleted policy is never served from it, and
// tokens with the same policies share one entry.

// ResolveToken returns what the holder of secret may do, and the token
// (without its hash; structs.ACLAnonymousToken for an empty secret).
// An unknown or expired secret is structs.ErrACLTokenNotFound
// (token_not_found, 403). With ACLs disabled everything is allowed: the
// management ACL and a nil token.
//
// It reads this server's own state (no leader check), as every
// endpoint's authorization does.
func (s *Server) ResolveToken(secret string) (*acl.ACL, *structs.ACLToken, error) {
	if !s.config.ACLEnabled {
		return acl.ManagementACL(), nil, nil
	}
	return s.resolveTokenAt(s.State(), secret, time.Now())
}

// resolveTokenAt resolves secret against st at now (tests pass a clock).
func (s *Server) resolveTokenAt(st *state.StateStore, secret string, now time.Time) (*acl.ACL, *structs.ACLToken, error) {
	token, err := lookupToken(st, secret, now)
	if err != nil {
		return nil, nil, err
	}
	if token.IsManagement() {
		return acl.ManagementACL(), token, nil
	}
	policies, err := tokenPolicies(st, token)
	if err != nil {
		return nil, nil, err
	}
	return s.compileCached(policies), token, nil
}

// lookupToken finds the token of secret (a copy without its hash), or
// the anonymous token for an empty secret.
func lookupToken(st *state.StateStore, secret string, now time.Time) (*structs.ACLToken, error) {
	if secret == "" {
		return structs.ACLAnonymousToken.Copy(), nil
	}
	stored, err := st.ACLTokenBySecretHash(nil, structs.HashACLSecret(secret))
	if err != nil {
		return nil, fmt.Errorf("resolve ACL token: %w", err)
	}
	if stored == nil || stored.ExpiredAt(now) {
		return nil, structs.ErrACLTokenNotFound
	}
	return stored.Public(), nil
}

// tokenPolicies reads the policies a token names; ones that do not
// exist (deleted since) grant nothing and are skipped, as in Nomad.
func tokenPolicies(st *state.StateStore, token *structs.ACLToken) ([]*structs.ACLPolicy, error) {
	var out []*structs.ACLPolicy
	for _, name := range token.Policies {
		p, err := st.ACLPolicyByName(nil, name)
		if err != nil {
			return nil, fmt.Errorf("resolve ACL token: %w", err)
		}
		if p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// compileCached compiles policies, through aclCache.
func (s *Server) compileCached(policies []*structs.ACLPolicy) *acl.ACL {
	h := sha256.New()
	for _, p := range policies {
		// Length-prefixed, so that no two lists of rules give the same
		// stream.
		fmt.Fprintf(h, "%d:%s", len(p.Rules), p.Rules)
	}
	key := string(h.Sum(nil))
	if a := aclCache.get(key); a != nil {
		return a
	}
	a := CompilePolicies(policies, func(p *structs.ACLPolicy, err error) {
		// Only a policy the endpoint never checked (written by another
		// version, or not by a leader) gets here; it grants nothing.
		s.logger.Warn("skipping an ACL policy whose rules do not parse", "policy", p.Name, "error", err)
	})
	aclCache.put(key, a)
	return a
}

// CompilePolicies compiles policies into one ACL. A policy whose rules
// do not parse is skipped (it grants nothing) and reported to bad, which
// may be nil. Agents that resolve tokens through ACL.ResolveToken use
// it on the policies the response carries.
func CompilePolicies(policies []*structs.ACLPolicy, bad func(*structs.ACLPolicy, error)) *acl.ACL {
	parsed := make([]*acl.Policy, 0, len(policies))
	for _, p := range policies {
		pp, err := acl.Parse("rules", p.Rules)
		if err != nil {
			if bad != nil {
				bad(p, err)
			}
			continue
		}
		parsed = append(parsed, pp)
	}
	return acl.Compile(parsed...)
}

// aclCache holds compiled ACLs, shared by the servers of the process:
// an entry depends on nothing but the rules its key digests.
var aclCache = &compiledACLCache{entries: make(map[string]*acl.ACL)}

// maxCompiledACLs bounds aclCache; a real cluster has far fewer
// distinct sets of policies in use, and overflowing it only costs
// recompiles.
const maxCompiledACLs = 4096

type compiledACLCache struct {
	// mu guards entries.
	mu      sync.Mutex
	entries map[string]*acl.ACL
}

func (c *compiledACLCache) get(key string) *acl.ACL {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[key]
}

func (c *compiledACLCache) put(key string, a *acl.ACL) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCompiledACLs {
		// Start over rather than track recency: entries are cheap to
		// rebuild and stale ones (old policy versions) are never read.
		c.entries = make(map[string]*acl.ACL)
	}
	c.entries[key] = a
}

// requireManagement resolves secret and refuses anything but a
// management token, naming what needed one.
func (s *Server) requireManagement(secret, what string) (*structs.ACLToken, error) {
	aclObj, token, err := s.ResolveToken(secret)
	if err != nil {
		return nil, err
	}
	if !aclObj.IsManagement() {
		return nil, structs.NewManagementRequiredError(token, what)
	}
	return token, nil
}

// sortedPolicyStubs lists policies by name.
func sortedPolicyStubs(policies []*structs.ACLPolicy) []*structs.ACLPolicyListStub {
	out := make([]*structs.ACLPolicyListStub, 0, len(policies))
	for _, p := range policies {
		out = append(out, p.Stub())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
