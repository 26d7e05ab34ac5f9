package server

import (
	"fmt"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// ACL is the RPC endpoint for ACL policies and tokens.
//
// Every method answers ErrACLDisabled (400) on a server without ACLs.
// Bootstrap needs no token (it works once per cluster), GetTokenSelf
// and ResolveToken need the token they are about; every other method
// needs a management token, checked by the server that serves the
// request (after forwarding: the token travels with it).
//
// Secrets: the leader generates each token's accessor and secret from
// crypto/rand, writes only the secret's SHA-256 through Raft, and
// returns the secret once, in the ACLTokenSecretResponse of the request
// that created it. Reads return tokens without secret or hash.
type ACL struct {
	srv *Server
}

// Bootstrap makes the cluster's first management token. A second
// bootstrap is refused (409): "ACL bootstrap already done at index N".
func (a *ACL) Bootstrap(args *structs.ACLBootstrapRequest, reply *structs.ACLTokenSecretResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.Bootstrap", args, args, reply); done {
		return err
	}
	// A fast answer for the common case; the FSM decides in log order.
	if idx, err := a.srv.State().ACLBootstrapIndex(nil); err != nil {
		return err
	} else if idx != 0 {
		return structs.NewError(structs.CodeConflict, (&state.ACLBootstrappedError{Index: idx}).Error())
	}
	token, secret := newACLToken(structs.ACLBootstrapTokenName, structs.ACLTokenTypeManagement, nil, time.Now(), 0)
	// A fresh request: nothing the caller sent reaches the log.
	_, index, err := a.srv.raftApply(structs.ACLTokenBootstrapRequestType, &structs.ACLBootstrapRequest{Token: token})
	if err != nil {
		return err
	}
	a.srv.logger.Info("ACLs bootstrapped: made the first management token", "accessor", token.AccessorID, "index", index)
	return a.secretReply(token.AccessorID, secret, index, reply)
}

// newACLToken makes a token with a random accessor and secret; the token
// holds only the secret's hash. Called on the leader.
func newACLToken(name, typ string, policies []string, now time.Time, ttl time.Duration) (*structs.ACLToken, string) {
	secret := structs.GenerateUUID()
	token := &structs.ACLToken{
		AccessorID: structs.GenerateUUID(),
		SecretHash: structs.HashACLSecret(secret),
		Name:       name,
		Type:       typ,
		Policies:   policies,
		CreateTime: now.UnixNano(),
	}
	if ttl > 0 {
		token.ExpirationTime = now.Add(ttl).UnixNano()
	}
	return token, secret
}

// secretReply answers a token creation with the stored token and the
// secret, the one time it is ever returned.
func (a *ACL) secretReply(accessor, secret string, index uint64, reply *structs.ACLTokenSecretResponse) error {
	stored, err := a.srv.State().ACLTokenByAccessorID(nil, accessor)
	if err != nil {
		return err
	}
	if stored == nil {
		return fmt.Errorf("ACL token %s was written at index %d but is not in the state", accessor, index)
	}
	reply.Token = stored.Public()
	reply.SecretID = secret
	reply.Index = index
	return nil
}

// UpsertPolicies creates or replaces policies; their rules must parse.
func (a *ACL) UpsertPolicies(args *structs.ACLPolicyUpsertRequest, reply *structs.GenericResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.UpsertPolicies", args, args, reply); done {
		return err
	}
	if _, err := a.srv.requireManagement(args.AuthToken, "ACL.UpsertPolicies (drover acl policy apply)"); err != nil {
		return err
	}
	if len(args.Policies) == 0 {
		return structs.NewError(structs.CodeInvalid, "no policies to write")
	}
	seen := make(map[string]bool)
	policies := make([]*structs.ACLPolicy, 0, len(args.Policies))
	for i, p := range args.Policies {
		if p == nil {
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("Policies[%d] is null", i))
		}
		if err := CheckACLPolicy(p); err != nil {
			return err
		}
		if seen[p.Name] {
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("policy %q appears twice in the request", p.Name))
		}
		seen[p.Name] = true
		policies = append(policies, &structs.ACLPolicy{Name: p.Name, Description: p.Description, Rules: p.Rules})
	}
	_, index, err := a.srv.raftApply(structs.ACLPolicyUpsertRequestType, &structs.ACLPolicyUpsertRequest{Policies: policies})
	if err != nil {
		return err
	}
	reply.Index = index
	return nil
}

// CheckACLPolicy validates a policy as UpsertPolicies does: its name and
// sizes, and rules that parse (every problem with its line and column,
// in a file named "rules").
func CheckACLPolicy(p *structs.ACLPolicy) error {
	if err := p.ValidateShape(); err != nil {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	if _, err := acl.Parse("rules", p.Rules); err != nil {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("policy %q: the rules do not parse:\n%v", p.Name, err))
	}
	return nil
}

// DeletePolicies deletes policies by name; an unknown name deletes
// nothing (404).
func (a *ACL) DeletePolicies(args *structs.ACLPolicyDeleteRequest, reply *structs.GenericResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.DeletePolicies", args, args, reply); done {
		return err
	}
	if _, err := a.srv.requireManagement(args.AuthToken, "ACL.DeletePolicies (drover acl policy delete)"); err != nil {
		return err
	}
	if err := checkACLNames("policy name", args.Names); err != nil {
		return err
	}
	_, index, err := a.srv.raftApply(structs.ACLPolicyDeleteRequestType, &structs.ACLPolicyDeleteRequest{Names: args.Names})
	if err != nil {
		return err
	}
	reply.Index = index
	return nil
}

// checkACLNames refuses an empty list or an empty name.
func checkACLNames(what string, names []string) error {
	if len(names) == 0 {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf("no %s given", what))
	}
	for _, n := range names {
		if n == "" {
			return structs.NewError(structs.CodeInvalid, fmt.Sprintf("an empty %s", what))
		}
	}
	return nil
}

// ListPolicies lists policies (without rules), by name.
func (a *ACL) ListPolicies(args *structs.GenericRequest, reply *structs.ACLPolicyListResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.ListPolicies", args, args, reply); done {
		return err
	}
	if _, err := a.srv.requireManagement(args.AuthToken, "ACL.ListPolicies (drover acl policy list)"); err != nil {
		return err
	}
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		policies, err := st.ACLPolicies(ws)
		if err != nil {
			return err
		}
		reply.Policies = sortedPolicyStubs(policies)
		if args.Prefix != "" {
			kept := reply.Policies[:0]
			for _, p := range reply.Policies {
				if strings.HasPrefix(p.Name, args.Prefix) {
					kept = append(kept, p)
				}
			}
			reply.Policies = kept
		}
		reply.Index, err = st.Index(state.TableACLPolicies)
		return err
	})
}

// GetPolicy reads one policy; Policy is nil when it does not exist.
func (a *ACL) GetPolicy(args *structs.ACLPolicySpecificRequest, reply *structs.SingleACLPolicyResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.GetPolicy", args, args, reply); done {
		return err
	}
	if _, err := a.srv.requireManagement(args.AuthToken, "ACL.GetPolicy (drover acl policy info)"); err != nil {
		return err
	}
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		p, err := st.ACLPolicyByName(ws, args.Name)
		if err != nil {
			return err
		}
		reply.Policy = p
		if p != nil {
			reply.Index = p.ModifyIndex
			return nil
		}
		reply.Index, err = st.Index(state.TableACLPolicies)
		return err
	})
}

// CreateToken makes a token. The leader generates the accessor and the
// secret and stamps the times; a TTL makes the token expire TTL after
// now. A client token needs policies that exist; a management token
// takes none.
func (a *ACL) CreateToken(args *structs.ACLTokenCreateRequest, reply *structs.ACLTokenSecretResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.CreateToken", args, args, reply); done {
		return err
	}
	if _, err := a.srv.requireManagement(args.AuthToken, "ACL.CreateToken (drover acl token create)"); err != nil {
		return err
	}
	typ := args.Type
	if typ == "" {
		typ = structs.ACLTokenTypeClient
	}
	policies, err := a.checkTokenRequest(args, typ)
	if err != nil {
		return err
	}
	token, secret := newACLToken(args.Name, typ, policies, time.Now(), args.TTL)
	_, index, err := a.srv.raftApply(structs.ACLTokenUpsertRequestType, &structs.ACLTokenUpsertRequest{Tokens: []*structs.ACLToken{token}})
	if err != nil {
		return err
	}
	return a.secretReply(token.AccessorID, secret, index, reply)
}

// checkTokenRequest validates a token creation and returns its policy
// names without duplicates, in the order given.
func (a *ACL) checkTokenRequest(args *structs.ACLTokenCreateRequest, typ string) ([]string, error) {
	invalid := func(format string, v ...interface{}) error {
		return structs.NewError(structs.CodeInvalid, fmt.Sprintf(format, v...))
	}
	if len(args.Name) > structs.MaxACLTokenNameLength {
		return nil, invalid("token name is %d characters, more than the limit of %d", len(args.Name), structs.MaxACLTokenNameLength)
	}
	if args.TTL < 0 {
		return nil, invalid("token TTL %s is negative; give a positive duration like 1h, or none for a token that never expires", args.TTL)
	}
	var policies []string
	seen := make(map[string]bool)
	for _, p := range args.Policies {
		if !seen[p] {
			seen[p] = true
			policies = append(policies, p)
		}
	}
	switch typ {
	case structs.ACLTokenTypeManagement:
		if len(policies) > 0 {
			return nil, invalid("a management token takes no policies (it is allowed everything); drop -policy, or use -type client")
		}
		return nil, nil
	case structs.ACLTokenTypeClient:
	default:
		return nil, invalid("token type %q is invalid; accepted: %s, %s", typ, structs.ACLTokenTypeClient, structs.ACLTokenTypeManagement)
	}
	if len(policies) == 0 {
		return nil, invalid("a client token needs at least one policy (-policy NAME); a token without one could do nothing")
	}
	if len(policies) > structs.MaxACLTokenPolicies {
		return nil, invalid("%d policies, more than the limit of %d", len(policies), structs.MaxACLTokenPolicies)
	}
	for _, name := range policies {
		if err := structs.ValidateACLPolicyName(name); err != nil {
			return nil, invalid("%v", err)
		}
		p, err := a.srv.State().ACLPolicyByName(nil, name)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, invalid("policy %q does not exist; create it first with drover acl policy apply %s FILE", name, name)
		}
	}
	return policies, nil
}

// ListTokens lists tokens, without secrets, oldest first.
func (a *ACL) ListTokens(args *structs.GenericRequest, reply *structs.ACLTokenListResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.ListTokens", args, args, reply); done {
		return err
	}
	if _, err := a.srv.requireManagement(args.AuthToken, "ACL.ListTokens (drover acl token list)"); err != nil {
		return err
	}
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		tokens, err := st.ACLTokens(ws)
		if err != nil {
			return err
		}
		reply.Tokens = make([]*structs.ACLToken, 0, len(tokens))
		for _, t := range tokens {
			if args.Prefix == "" || strings.HasPrefix(t.AccessorID, args.Prefix) {
				reply.Tokens = append(reply.Tokens, t.Public())
			}
		}
		reply.Index, err = st.Index(state.TableACLTokens)
		return err
	})
}

// GetToken reads one token by accessor ID, without its secret; Token is
// nil when it does not exist.
func (a *ACL) GetToken(args *structs.ACLTokenSpecificRequest, reply *structs.SingleACLTokenResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.GetToken", args, args, reply); done {
		return err
	}
	if _, err := a.srv.requireManagement(args.AuthToken, "ACL.GetToken (drover acl token info)"); err != nil {
		return err
	}
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		t, err := st.ACLTokenByAccessorID(ws, args.AccessorID)
		if err != nil {
			return err
		}
		reply.Token = nil
		if t != nil {
			reply.Token = t.Public()
			reply.Index = t.ModifyIndex
			return nil
		}
		reply.Index, err = st.Index(state.TableACLTokens)
		return err
	})
}

// errACLNoTokenSent answers GetTokenSelf without a token.
var errACLNoTokenSent = structs.NewError(structs.CodeTokenNotFound, "ACL token not found: no token was sent; pass -token or set DROVER_TOKEN")

// GetTokenSelf reads the token the request carries (AuthToken), without
// its secret. Any valid token may; an unknown or expired one is
// token_not_found.
func (a *ACL) GetTokenSelf(args *structs.GenericRequest, reply *structs.SingleACLTokenResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if args.AuthToken == "" {
		return errACLNoTokenSent
	}
	if done, err := a.srv.forward("ACL.GetTokenSelf", args, args, reply); done {
		return err
	}
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		t, err := lookupToken(st, args.AuthToken, time.Now())
		if err != nil {
			return err
		}
		reply.Token = t
		reply.Index = t.ModifyIndex
		return nil
	})
}

// DeleteTokens deletes tokens by accessor ID; an unknown accessor
// deletes nothing (404).
func (a *ACL) DeleteTokens(args *structs.ACLTokenDeleteRequest, reply *structs.GenericResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.DeleteTokens", args, args, reply); done {
		return err
	}
	if _, err := a.srv.requireManagement(args.AuthToken, "ACL.DeleteTokens (drover acl token delete)"); err != nil {
		return err
	}
	if err := checkACLNames("accessor ID", args.AccessorIDs); err != nil {
		return err
	}
	_, index, err := a.srv.raftApply(structs.ACLTokenDeleteRequestType, &structs.ACLTokenDeleteRequest{AccessorIDs: args.AccessorIDs})
	if err != nil {
		return err
	}
	reply.Index = index
	return nil
}

// ResolveToken tells an agent what a token is and which of its
// policies exist, for the agent to authorize its own HTTP endpoints
// (compiling them with CompilePolicies): the token of args.SecretID, or
// of the request's AuthToken when SecretID is empty. An empty secret
// resolves to structs.ACLAnonymousToken and the anonymous policy, if it
// exists; an unknown or expired one is token_not_found. The answer
// holds no secret and no hash. Client certificates may call it
// (clientEndpoints): client-only agents authorize with it.
func (a *ACL) ResolveToken(args *structs.ResolveACLTokenRequest, reply *structs.ResolveACLTokenResponse) error {
	if !a.srv.config.ACLEnabled {
		return structs.ErrACLDisabled
	}
	if done, err := a.srv.forward("ACL.ResolveToken", args, args, reply); done {
		return err
	}
	secret := args.Secret()
	return a.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		token, err := lookupToken(st, secret, time.Now())
		if err != nil {
			reply.Token, reply.Policies = nil, nil
			return err
		}
		reply.Token, reply.Policies = token, nil
		if !token.IsManagement() {
			if reply.Policies, err = tokenPolicies(st, token); err != nil {
				return err
			}
		}
		reply.Index, err = maxIndex(st, state.TableACLTokens, state.TableACLPolicies)
		return err
	})
}
