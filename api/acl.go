package api

import (
	"net/http"
	"time"
)

// ACL token types.
const (
	ACLTokenTypeClient     = "client"
	ACLTokenTypeManagement = "management"
)

// ACLPolicy is an ACL policy: named rules in HCL.
type ACLPolicy struct {
	Name        string
	Description string
	Rules       string
	CreateIndex uint64
	ModifyIndex uint64
}

// ACLPolicyListStub is a policy in a list (without its rules).
type ACLPolicyListStub struct {
	Name        string
	Description string
	CreateIndex uint64
	ModifyIndex uint64
}

// ACLToken is an ACL token. SecretID is set only in the answers to
// Bootstrap and TokenCreate: it is shown once, and no read returns it.
type ACLToken struct {
	AccessorID string
	SecretID   string `json:",omitempty"`
	Name       string
	// Type is ACLTokenTypeClient or ACLTokenTypeManagement.
	Type     string
	Policies []string
	// CreateTime and ExpirationTime are Unix nanoseconds; an
	// ExpirationTime of 0 never expires.
	CreateTime     int64
	ExpirationTime int64
	CreateIndex    uint64
	ModifyIndex    uint64
}

// ACLTokenCreateRequest asks for a new token.
type ACLTokenCreateRequest struct {
	Name string
	// Type is ACLTokenTypeClient (the default) or
	// ACLTokenTypeManagement.
	Type     string
	Policies []string
	// TTL, when positive, makes the token expire that long after its
	// creation.
	TTL time.Duration
}

// aclTokenCreateBody is the JSON of PUT /v1/acl/token.
type aclTokenCreateBody struct {
	Name          string
	Type          string
	Policies      []string
	ExpirationTTL string `json:",omitempty"`
}

// aclPolicyBody is the JSON of PUT /v1/acl/policy/{name}.
type aclPolicyBody struct {
	Name        string
	Description string
	Rules       string
}

// indexBody is the answer of ACL writes.
type indexBody struct {
	Index uint64
}

// ACL returns the ACL endpoints: /v1/acl/*. The client's token (Config.Token
// or DROVER_TOKEN) is sent with each call; every call but Bootstrap and
// TokenSelf needs a management token.
func (c *Client) ACL() *ACL { return &ACL{c: c} }

// ACL is the /v1/acl endpoints.
type ACL struct{ c *Client }

// Bootstrap makes the cluster's first management token and returns it
// with its secret. It works once per cluster; later calls fail with a
// 409 naming the index at which it was done.
func (a *ACL) Bootstrap() (*ACLToken, *WriteMeta, error) {
	var out ACLToken
	meta, err := a.c.write(http.MethodPut, "/v1/acl/bootstrap", nil, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Policies lists the policies, by name.
func (a *ACL) Policies(q *QueryOptions) ([]*ACLPolicyListStub, *QueryMeta, error) {
	var out []*ACLPolicyListStub
	meta, err := a.c.query("/v1/acl/policies", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// PolicyInfo reads one policy.
func (a *ACL) PolicyInfo(name string, q *QueryOptions) (*ACLPolicy, *QueryMeta, error) {
	var out ACLPolicy
	meta, err := a.c.query("/v1/acl/policy/"+escape(name), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// PolicyApply creates or replaces a policy.
func (a *ACL) PolicyApply(p *ACLPolicy) (*WriteMeta, error) {
	body := &aclPolicyBody{Name: p.Name, Description: p.Description, Rules: p.Rules}
	var out indexBody
	return a.c.write(http.MethodPut, "/v1/acl/policy/"+escape(p.Name), nil, body, &out)
}

// PolicyDelete deletes a policy.
func (a *ACL) PolicyDelete(name string) (*WriteMeta, error) {
	var out indexBody
	return a.c.write(http.MethodDelete, "/v1/acl/policy/"+escape(name), nil, nil, &out)
}

// Tokens lists the tokens (without secrets), oldest first.
func (a *ACL) Tokens(q *QueryOptions) ([]*ACLToken, *QueryMeta, error) {
	var out []*ACLToken
	meta, err := a.c.query("/v1/acl/tokens", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// TokenCreate makes a token and returns it with its secret, the only
// time the secret is ever returned.
func (a *ACL) TokenCreate(req *ACLTokenCreateRequest) (*ACLToken, *WriteMeta, error) {
	body := &aclTokenCreateBody{Name: req.Name, Type: req.Type, Policies: req.Policies}
	if req.TTL != 0 {
		body.ExpirationTTL = req.TTL.String()
	}
	var out ACLToken
	meta, err := a.c.write(http.MethodPut, "/v1/acl/token", nil, body, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// TokenInfo reads a token by accessor ID (without its secret).
func (a *ACL) TokenInfo(accessorID string, q *QueryOptions) (*ACLToken, *QueryMeta, error) {
	var out ACLToken
	meta, err := a.c.query("/v1/acl/token/"+escape(accessorID), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// TokenSelf reads the client's own token (without its secret).
func (a *ACL) TokenSelf(q *QueryOptions) (*ACLToken, *QueryMeta, error) {
	var out ACLToken
	meta, err := a.c.query("/v1/acl/token/self", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// TokenDelete deletes a token by accessor ID.
func (a *ACL) TokenDelete(accessorID string) (*WriteMeta, error) {
	var out indexBody
	return a.c.write(http.MethodDelete, "/v1/acl/token/"+escape(accessorID), nil, nil, &out)
}
