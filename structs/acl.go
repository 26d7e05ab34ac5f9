package structs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"regexp"
	"time"
)

// ACL token types.
const (
	// ACLTokenTypeClient tokens are allowed what their policies allow.
	ACLTokenTypeClient = "client"
	// ACLTokenTypeManagement tokens are allowed everything, and are the
	// only ones that may manage ACL policies and tokens.
	ACLTokenTypeManagement = "management"
)

// ACL limits, held by the endpoints and (for shape) the FSM.
const (
	// MaxACLPolicyRulesBytes bounds a policy's rules: real policies are a
	// few hundred bytes, and every server compiles them.
	MaxACLPolicyRulesBytes = 64 << 10
	// MaxACLDescriptionLength bounds a policy's description.
	MaxACLDescriptionLength = 256
	// MaxACLTokenNameLength bounds a token's name.
	MaxACLTokenNameLength = 256
	// MaxACLTokenPolicies bounds the policies one token names.
	MaxACLTokenPolicies = 64
)

// ACLAnonymousPolicy is the policy that governs requests without a
// token, when it exists (Nomad's convention); without it they may do
// nothing.
const ACLAnonymousPolicy = "anonymous"

// ACLBootstrapTokenName is the name of the token `acl bootstrap` makes.
const ACLBootstrapTokenName = "Bootstrap Token"

// ACLPolicy is a named set of ACL rules (HCL, parsed by package acl).
type ACLPolicy struct {
	Name        string
	Description string
	Rules       string
	CreateIndex uint64
	ModifyIndex uint64
}

// Stub returns the policy without its rules, for lists.
func (p *ACLPolicy) Stub() *ACLPolicyListStub {
	return &ACLPolicyListStub{Name: p.Name, Description: p.Description, CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex}
}

// ACLPolicyListStub is a policy in a list.
type ACLPolicyListStub struct {
	Name        string
	Description string
	CreateIndex uint64
	ModifyIndex uint64
}

// aclPolicyNameRE is what a policy name may be (Nomad's rule).
var aclPolicyNameRE = regexp.MustCompile(`^[a-zA-Z0-9-]{1,128}$`)

// ValidateACLPolicyName checks a policy name.
func ValidateACLPolicyName(name string) error {
	if !aclPolicyNameRE.MatchString(name) {
		return fmt.Errorf("policy name %q is invalid: use 1-128 letters, digits and dashes", name)
	}
	return nil
}

// ValidateShape checks what can be checked of a policy without parsing
// its rules (package acl parses them; structs cannot import it): the
// name, the sizes, and that there are rules at all.
func (p *ACLPolicy) ValidateShape() error {
	if err := ValidateACLPolicyName(p.Name); err != nil {
		return err
	}
	if len(p.Description) > MaxACLDescriptionLength {
		return fmt.Errorf("policy %q: description is %d characters, more than the limit of %d", p.Name, len(p.Description), MaxACLDescriptionLength)
	}
	if p.Rules == "" {
		return fmt.Errorf("policy %q has no rules", p.Name)
	}
	if len(p.Rules) > MaxACLPolicyRulesBytes {
		return fmt.Errorf("policy %q: rules are %d bytes, more than the limit of %d", p.Name, len(p.Rules), MaxACLPolicyRulesBytes)
	}
	return nil
}

// ACLToken is a token as Drover stores it. The token's secret is never
// stored: SecretHash is the SHA-256 of the secret (HashACLSecret), which
// is all the state store, the Raft log and snapshots hold. The secret
// itself exists only in the response to the request that created the
// token (ACLTokenSecretResponse) and with whoever holds it.
type ACLToken struct {
	// AccessorID names the token publicly (lists, deletes, audit).
	AccessorID string
	// SecretHash is hex SHA-256 of the secret. It is state-only: reads
	// return tokens with it cleared (Public), and it is hidden from
	// JSON.
	SecretHash string `json:"-" codec:"SecretHash"`
	Name       string
	// Type is ACLTokenTypeClient or ACLTokenTypeManagement.
	Type string
	// Policies are policy names (client tokens only).
	Policies []string
	// CreateTime and ExpirationTime are Unix nanoseconds stamped by the
	// leader; ExpirationTime 0 means the token never expires. Expiry is
	// checked against the wall clock when the token is resolved, never
	// in the FSM.
	CreateTime     int64
	ExpirationTime int64
	CreateIndex    uint64
	ModifyIndex    uint64
}

// Copy returns a deep copy.
func (t *ACLToken) Copy() *ACLToken {
	if t == nil {
		return nil
	}
	c := *t
	c.Policies = append([]string(nil), t.Policies...)
	return &c
}

// Public returns a copy without SecretHash: what reads return.
func (t *ACLToken) Public() *ACLToken {
	c := t.Copy()
	if c != nil {
		c.SecretHash = ""
	}
	return c
}

// IsManagement reports whether the token is a management token.
func (t *ACLToken) IsManagement() bool { return t != nil && t.Type == ACLTokenTypeManagement }

// ExpiredAt reports whether the token has expired at now.
func (t *ACLToken) ExpiredAt(now time.Time) bool {
	return t.ExpirationTime != 0 && now.UnixNano() >= t.ExpirationTime
}

// DisplayName names the token in errors and logs: its name, or its
// accessor ID when it has none. Never the secret.
func (t *ACLToken) DisplayName() string {
	switch {
	case t == nil:
		return "anonymous"
	case t.Name != "":
		return t.Name
	}
	return "with accessor " + t.AccessorID
}

// ACLAnonymousToken stands for requests without a token.
var ACLAnonymousToken = &ACLToken{
	AccessorID: "anonymous",
	Name:       "anonymous",
	Type:       ACLTokenTypeClient,
	Policies:   []string{ACLAnonymousPolicy},
}

// IsAnonymous reports whether t is the stand-in for requests without a
// token.
func (t *ACLToken) IsAnonymous() bool {
	return t == nil || t.AccessorID == ACLAnonymousToken.AccessorID
}

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidateShape checks a token as it is written to Raft: every field
// the FSM depends on, from the token alone.
func (t *ACLToken) ValidateShape() error {
	if t.AccessorID == "" {
		return fmt.Errorf("token has no accessor ID")
	}
	if !sha256HexRE.MatchString(t.SecretHash) {
		return fmt.Errorf("token %s: SecretHash is not a hex SHA-256 (64 lowercase hex digits)", t.AccessorID)
	}
	if len(t.Name) > MaxACLTokenNameLength {
		return fmt.Errorf("token %s: name is %d characters, more than the limit of %d", t.AccessorID, len(t.Name), MaxACLTokenNameLength)
	}
	switch t.Type {
	case ACLTokenTypeClient:
		if len(t.Policies) == 0 {
			return fmt.Errorf("token %s: a client token needs at least one policy", t.AccessorID)
		}
	case ACLTokenTypeManagement:
		if len(t.Policies) > 0 {
			return fmt.Errorf("token %s: a management token takes no policies (it is allowed everything)", t.AccessorID)
		}
	default:
		return fmt.Errorf("token %s: type %q is invalid; accepted: %s, %s", t.AccessorID, t.Type, ACLTokenTypeClient, ACLTokenTypeManagement)
	}
	if len(t.Policies) > MaxACLTokenPolicies {
		return fmt.Errorf("token %s: %d policies, more than the limit of %d", t.AccessorID, len(t.Policies), MaxACLTokenPolicies)
	}
	for _, p := range t.Policies {
		if err := ValidateACLPolicyName(p); err != nil {
			return fmt.Errorf("token %s: %w", t.AccessorID, err)
		}
	}
	if t.ExpirationTime < 0 {
		return fmt.Errorf("token %s: negative expiration time", t.AccessorID)
	}
	return nil
}

// HashACLSecret returns the hex SHA-256 of a token secret: what Raft
// and the state store hold instead of the secret. A secret is a random
// UUID (122 random bits), so an unsalted fast hash is enough: there is
// nothing to guess a dictionary of.
func HashACLSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ACLBootstrapRequest asks for the cluster's first management token. It
// takes no token. Token is stamped by the leader (the secret never is:
// only its hash) and is what the Raft entry carries.
type ACLBootstrapRequest struct {
	Token *ACLToken
	WriteRequest
}

// ACLPolicyUpsertRequest creates or replaces policies.
type ACLPolicyUpsertRequest struct {
	Policies []*ACLPolicy
	WriteRequest
}

// ACLPolicyDeleteRequest deletes policies by name.
type ACLPolicyDeleteRequest struct {
	Names []string
	WriteRequest
}

// ACLPolicySpecificRequest reads one policy.
type ACLPolicySpecificRequest struct {
	Name string
	QueryOptions
}

// SingleACLPolicyResponse carries one policy, nil if unknown.
type SingleACLPolicyResponse struct {
	Policy *ACLPolicy
	QueryMeta
}

// ACLPolicyListResponse carries policy stubs, sorted by name.
type ACLPolicyListResponse struct {
	Policies []*ACLPolicyListStub
	QueryMeta
}

// ACLTokenCreateRequest asks for a new token. The leader generates the
// accessor and the secret and stamps the times; the Raft entry is an
// ACLTokenUpsertRequest carrying only the secret's hash.
type ACLTokenCreateRequest struct {
	Name     string
	Type     string
	Policies []string
	// TTL, when positive, makes the token expire TTL after creation.
	TTL time.Duration
	WriteRequest
}

// ACLTokenUpsertRequest is the Raft entry that stores tokens.
type ACLTokenUpsertRequest struct {
	Tokens []*ACLToken
	WriteRequest
}

// ACLTokenDeleteRequest deletes tokens by accessor ID.
type ACLTokenDeleteRequest struct {
	AccessorIDs []string
	WriteRequest
}

// ACLTokenSpecificRequest reads one token by accessor ID.
type ACLTokenSpecificRequest struct {
	AccessorID string
	QueryOptions
}

// SingleACLTokenResponse carries one token (never its secret, nor its
// hash), nil if unknown.
type SingleACLTokenResponse struct {
	Token *ACLToken
	QueryMeta
}

// ACLTokenListResponse carries tokens (without secrets or hashes),
// sorted by creation.
type ACLTokenListResponse struct {
	Tokens []*ACLToken
	QueryMeta
}

// ACLTokenSecretResponse answers the creation of a token (bootstrap or
// create): the only response that ever carries a secret.
type ACLTokenSecretResponse struct {
	Token    *ACLToken
	SecretID string
	WriteMeta
}

// ResolveACLTokenRequest asks ACL.ResolveToken what the token with
// secret SecretID may do. An empty SecretID resolves the request's own
// AuthToken (so a GenericRequest carrying only AuthToken, which decodes
// into this type, asks about its own token); both empty is the
// anonymous token.
type ResolveACLTokenRequest struct {
	SecretID string `codec:"SecretID" json:"-"`
	QueryOptions
}

// Secret is the secret to resolve: SecretID, else AuthToken.
func (r *ResolveACLTokenRequest) Secret() string {
	if r.SecretID != "" {
		return r.SecretID
	}
	return r.AuthToken
}

// ResolveACLTokenResponse answers ACL.ResolveToken: the token (without
// secret or hash; ACLAnonymousToken for an empty secret) and the
// policies it names that exist (none for a management token), for an
// agent to compile with server.CompilePolicies (package acl).
type ResolveACLTokenResponse struct {
	Token    *ACLToken
	Policies []*ACLPolicy
	QueryMeta
}

// ACLResolveTokenResponse is the earlier name of
// ResolveACLTokenResponse, kept for callers written against it.
type ACLResolveTokenResponse = ResolveACLTokenResponse

// ErrACLTokenNotFound answers a request whose token is unknown or
// expired. It says no more, on purpose: whoever holds a wrong secret
// learns nothing about which tokens exist.
var ErrACLTokenNotFound = NewError(CodeTokenNotFound, "ACL token not found")

// ErrACLDisabled answers the ACL endpoints on a cluster without ACLs.
var ErrACLDisabled = NewError(CodeInvalid, "ACL support disabled: set acl { enabled = true } in every agent's configuration (or -acl-enabled)")

// NewNamespaceDeniedError is the refusal of a namespace operation:
// token "ci-deployer" lacks capability submit-job in namespace "prod".
func NewNamespaceDeniedError(token *ACLToken, capability, namespace string) *CodedError {
	return NewError(CodePermission, fmt.Sprintf("token %q lacks capability %s in namespace %q%s", token.DisplayName(), capability, namespace, anonymousHint(token)))
}

// NewRuleDeniedError is the refusal of a node, agent, operator or quota
// operation: token "ci-deployer" lacks agent:read (it needs a policy
// with agent { policy = "read" }).
func NewRuleDeniedError(token *ACLToken, rule, policy string) *CodedError {
	return NewError(CodePermission, fmt.Sprintf("token %q lacks %s:%s (it needs a policy with %s { policy = %q })%s", token.DisplayName(), rule, policy, rule, policy, anonymousHint(token)))
}

// NewManagementRequiredError is the refusal of an operation only a
// management token may do.
func NewManagementRequiredError(token *ACLToken, what string) *CodedError {
	return NewError(CodePermission, fmt.Sprintf("token %q is not a management token; %s needs one%s", token.DisplayName(), what, anonymousHint(token)))
}

func anonymousHint(token *ACLToken) string {
	if token.IsAnonymous() {
		return " (no token was sent: pass -token or set DROVER_TOKEN)"
	}
	return ""
}

// authTokenHolder is every request: QueryOptions and WriteRequest
// implement it, and requests embed one of them.
type authTokenHolder interface {
	hasAuthToken() bool
}

func (q QueryOptions) hasAuthToken() bool { return q.AuthToken != "" }
func (q *QueryOptions) clearAuthToken()   { q.AuthToken = "" }
func (w WriteRequest) hasAuthToken() bool { return w.AuthToken != "" }
func (w *WriteRequest) clearAuthToken()   { w.AuthToken = "" }

// withoutAuthToken returns msg, or, when it is a request carrying an
// AuthToken, a shallow copy of it without the token. The caller's value
// is left alone (the endpoint may still need the token).
func withoutAuthToken(msg interface{}) interface{} {
	v := reflect.ValueOf(msg)
	if !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return msg
	}
	h, ok := msg.(authTokenHolder)
	if !ok || !h.hasAuthToken() {
		return msg
	}
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	cp := reflect.New(v.Type())
	cp.Elem().Set(v)
	out := cp.Interface()
	out.(interface{ clearAuthToken() }).clearAuthToken()
	return out
}
