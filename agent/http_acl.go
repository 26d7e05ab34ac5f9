package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
)

// ACLConfig is the agent's acl block.
type ACLConfig struct {
	// Enabled turns on ACLs: requests are allowed what their token's
	// policies allow, and the /v1/acl endpoints answer. Every agent of a
	// cluster must agree.
	Enabled bool `hcl:"enabled,optional"`
	// TokenTTL is how long an agent without a server believes what a
	// server said a token may do (acl_cache.go); a duration, default
	// "30s", "0s" to ask on every request. Agents with a server always
	// read their own state and ignore it.
	TokenTTL string `hcl:"token_ttl,optional"`
}

// merge overlays o onto c (either may be nil) and returns the result.
func (c *ACLConfig) merge(o *ACLConfig) *ACLConfig {
	out := &ACLConfig{}
	if c != nil {
		*out = *c
	}
	if o != nil && o.Enabled {
		out.Enabled = true
	}
	if o != nil && o.TokenTTL != "" {
		out.TokenTTL = o.TokenTTL
	}
	return out
}

// validate checks the acl block.
func (c *ACLConfig) validate() error {
	_, err := c.tokenTTL()
	return err
}

// tokenTTL returns the token cache's TTL (DefaultACLTokenTTL unless
// set).
func (c *ACLConfig) tokenTTL() (time.Duration, error) {
	if c == nil || c.TokenTTL == "" {
		return DefaultACLTokenTTL, nil
	}
	d, err := time.ParseDuration(c.TokenTTL)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("acl token_ttl = %q: want a duration like \"30s\" (or \"0s\" to resolve tokens on every request)", c.TokenTTL)
	}
	return d, nil
}

// aclEnabled reports whether this agent has ACLs on.
func (a *Agent) aclEnabled() bool { return a.config.ACL != nil && a.config.ACL.Enabled }

// Token headers, in the order authToken reads them.
const (
	headerDroverToken = "X-Drover-Token"
	headerNomadToken  = "X-Nomad-Token"
)

// authToken returns the ACL token secret a request carries: the
// X-Drover-Token header, else X-Nomad-Token (for Nomad tooling), else
// "Authorization: Bearer SECRET"; "" when there is none. Handlers put it
// in the RPC's AuthToken; it is never logged.
func authToken(r *http.Request) string {
	for _, h := range []string{headerDroverToken, headerNomadToken} {
		if v := strings.TrimSpace(r.Header.Get(h)); v != "" {
			return v
		}
	}
	scheme, value, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(value)
	}
	return ""
}

// resolveToken returns what the holder of secret may do on this agent,
// and the token (structs.ACLAnonymousToken for ""). A server agent
// resolves in its own state; a client agent asks a server
// (ACL.ResolveToken, any server may answer), compiles the policies it
// returns and caches the answer (acl_cache.go). With ACLs off
// everything is allowed (the management ACL, a nil token). Unknown or
// expired tokens are token_not_found (403); a server that cannot be
// asked is unavailable (503), never a 500.
func (a *Agent) resolveToken(secret string) (*acl.ACL, *structs.ACLToken, error) {
	if !a.aclEnabled() {
		return acl.ManagementACL(), nil, nil
	}
	if a.server != nil {
		return a.server.ResolveToken(secret)
	}
	cache := a.tokenCache()
	if res, found, err := cache.get(secret); found {
		return res.acl, res.token, err
	}
	aclObj, token, err := a.resolveRemote(secret, true)
	if ce := structs.ParseCodedError(err); ce != nil && ce.Code == structs.CodeTokenNotFound {
		// A stale server may not have applied a token created a moment
		// ago: ask the leader before calling it unknown.
		aclObj, token, err = a.resolveRemote(secret, false)
	}
	switch ce := structs.ParseCodedError(err); {
	case err == nil:
		cache.put(secret, aclObj, token)
	case ce != nil && ce.Code == structs.CodeTokenNotFound:
		cache.putUnknown(secret)
		return nil, nil, structs.ErrACLTokenNotFound
	case ce != nil:
		return nil, nil, ce
	default:
		return nil, nil, structs.NewError(structs.CodeUnavailable, fmt.Sprintf("cannot check the request's ACL token: no server answered ACL.ResolveToken: %v", err))
	}
	return aclObj, token, nil
}

// resolveRemote asks a server what secret may do.
func (a *Agent) resolveRemote(secret string, stale bool) (*acl.ACL, *structs.ACLToken, error) {
	// The secret is asked about (SecretID) and is also the caller's
	// token (AuthToken): the endpoint reads SecretID first.
	args := &structs.ResolveACLTokenRequest{SecretID: secret, QueryOptions: structs.QueryOptions{AllowStale: stale, AuthToken: secret}}
	var resp structs.ResolveACLTokenResponse
	if err := a.RPC("ACL.ResolveToken", args, &resp); err != nil {
		return nil, nil, err
	}
	if resp.Token == nil {
		return nil, nil, structs.ErrACLTokenNotFound
	}
	if resp.Token.IsManagement() {
		return acl.ManagementACL(), resp.Token, nil
	}
	return server.CompilePolicies(resp.Policies, func(p *structs.ACLPolicy, err error) {
		a.logger.Warn("skipping an ACL policy whose rules do not parse", "policy", p.Name, "error", err)
	}), resp.Token, nil
}

// tokenCache returns the agent's token cache, made on first use with
// the configured TTL.
func (a *Agent) tokenCache() *tokenCache {
	a.tokensOnce.Do(func() {
		if a.tokens != nil {
			return // set by a test, with its clock
		}
		ttl, err := a.config.ACL.tokenTTL()
		if err != nil {
			ttl = DefaultACLTokenTTL // Validate refused it already
		}
		a.tokens = newTokenCache(ttl, nil)
	})
	return a.tokens
}

// aclTokenJSON is a token as the HTTP API shows it (Nomad's shape).
// SecretID is set only in the answers to bootstrap and create, the one
// time a secret is ever shown; the secret's hash is never shown.
type aclTokenJSON struct {
	AccessorID     string
	SecretID       string `json:",omitempty"`
	Name           string
	Type           string
	Policies       []string
	CreateTime     int64
	ExpirationTime int64
	CreateIndex    uint64
	ModifyIndex    uint64
}

func tokenJSON(t *structs.ACLToken, secret string) *aclTokenJSON {
	return &aclTokenJSON{
		AccessorID: t.AccessorID, SecretID: secret, Name: t.Name, Type: t.Type, Policies: t.Policies,
		CreateTime: t.CreateTime, ExpirationTime: t.ExpirationTime, CreateIndex: t.CreateIndex, ModifyIndex: t.ModifyIndex,
	}
}

func (a *Agent) aclBootstrap(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var resp structs.ACLTokenSecretResponse
	if err := a.RPC("ACL.Bootstrap", &structs.ACLBootstrapRequest{}, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return tokenJSON(resp.Token, resp.SecretID), nil
}

func (a *Agent) aclPolicyList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.GenericRequest{}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	args.AuthToken = authToken(r)
	var resp structs.ACLPolicyListResponse
	if err := a.RPC("ACL.ListPolicies", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Policies == nil {
		resp.Policies = []*structs.ACLPolicyListStub{}
	}
	return resp.Policies, nil
}

// policyName reads {name} from the path.
func policyName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := structs.ValidateACLPolicyName(name); err != nil {
		return "", badRequest("%v", err)
	}
	return name, nil
}

func (a *Agent) aclPolicyGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	name, err := policyName(r)
	if err != nil {
		return nil, err
	}
	args := structs.ACLPolicySpecificRequest{Name: name}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	args.AuthToken = authToken(r)
	var resp structs.SingleACLPolicyResponse
	if err := a.RPC("ACL.GetPolicy", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Policy == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("ACL policy %q not found", name))
	}
	return resp.Policy, nil
}

// aclPolicyBody is the body of PUT /v1/acl/policy/{name}.
type aclPolicyBody struct {
	// Name, when set, must be the name in the path.
	Name        string
	Description string
	Rules       string
}

func (a *Agent) aclPolicyUpsert(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	name, err := policyName(r)
	if err != nil {
		return nil, err
	}
	var body aclPolicyBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	if body.Name != "" && body.Name != name {
		return nil, badRequest("the body names policy %q but the path names %q; they must agree", body.Name, name)
	}
	args := structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{{Name: name, Description: body.Description, Rules: body.Rules}}}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("ACL.UpsertPolicies", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) aclPolicyDelete(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	name, err := policyName(r)
	if err != nil {
		return nil, err
	}
	args := structs.ACLPolicyDeleteRequest{Names: []string{name}}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("ACL.DeletePolicies", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) aclTokenList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.GenericRequest{}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	args.AuthToken = authToken(r)
	var resp structs.ACLTokenListResponse
	if err := a.RPC("ACL.ListTokens", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	out := make([]*aclTokenJSON, 0, len(resp.Tokens))
	for _, t := range resp.Tokens {
		out = append(out, tokenJSON(t, ""))
	}
	return out, nil
}

// ttlJSON is a token TTL in a request body: a duration string ("1h")
// or, as Nomad's API sends it, nanoseconds.
type ttlJSON time.Duration

func (d *ttlJSON) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("ExpirationTTL %q is not a duration; use e.g. 30m or 24h", s)
		}
		*d = ttlJSON(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("ExpirationTTL must be a duration string like \"24h\" or nanoseconds, not %s", b)
	}
	*d = ttlJSON(n)
	return nil
}

// aclTokenBody is the body of PUT /v1/acl/token.
type aclTokenBody struct {
	Name string
	// Type is client (the default) or management.
	Type     string
	Policies []string
	// ExpirationTTL, when set, makes the token expire that long after
	// its creation.
	ExpirationTTL ttlJSON
}

func (a *Agent) aclTokenCreate(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body aclTokenBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	args := structs.ACLTokenCreateRequest{Name: body.Name, Type: body.Type, Policies: body.Policies, TTL: time.Duration(body.ExpirationTTL)}
	args.AuthToken = authToken(r)
	var resp structs.ACLTokenSecretResponse
	if err := a.RPC("ACL.CreateToken", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return tokenJSON(resp.Token, resp.SecretID), nil
}

func (a *Agent) aclTokenSelf(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.GenericRequest{}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	args.AuthToken = authToken(r)
	var resp structs.SingleACLTokenResponse
	if err := a.RPC("ACL.GetTokenSelf", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Token == nil {
		return nil, structs.ErrACLTokenNotFound
	}
	return tokenJSON(resp.Token, ""), nil
}

func (a *Agent) aclTokenGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.ACLTokenSpecificRequest{AccessorID: r.PathValue("accessor")}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	args.AuthToken = authToken(r)
	var resp structs.SingleACLTokenResponse
	if err := a.RPC("ACL.GetToken", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Token == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("no ACL token with accessor ID %q", args.AccessorID))
	}
	return tokenJSON(resp.Token, ""), nil
}

func (a *Agent) aclTokenDelete(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args := structs.ACLTokenDeleteRequest{AccessorIDs: []string{r.PathValue("accessor")}}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("ACL.DeleteTokens", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}
