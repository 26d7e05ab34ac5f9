package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/structs"
)

func aclServer(t *testing.T) *Server {
	t.Helper()
	return testServer(t, func(c *Config) { c.ACLEnabled = true; c.NumSchedulers = 0 })
}

// bootstrapACL bootstraps s and returns the management secret.
func bootstrapACL(t *testing.T, s *Server) string {
	t.Helper()
	var resp structs.ACLTokenSecretResponse
	if err := s.RPC("ACL.Bootstrap", &structs.ACLBootstrapRequest{}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.SecretID
}

func upsertPolicy(t *testing.T, s *Server, mgmt, name, rules string) {
	t.Helper()
	req := &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{{Name: name, Rules: rules}}}
	req.AuthToken = mgmt
	if err := s.RPC("ACL.UpsertPolicies", req, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
}

func createToken(t *testing.T, s *Server, mgmt string, req *structs.ACLTokenCreateRequest) *structs.ACLTokenSecretResponse {
	t.Helper()
	req.AuthToken = mgmt
	var resp structs.ACLTokenSecretResponse
	if err := s.RPC("ACL.CreateToken", req, &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

// wantCoded checks err's code and that its message starts with msg.
func wantCoded(t *testing.T, err error, code, msg string) {
	t.Helper()
	ce := structs.ParseCodedError(err)
	if ce == nil || ce.Code != code || !strings.HasPrefix(ce.Message, msg) {
		t.Fatalf("error %v\nwant %s: %s...", err, code, msg)
	}
}

func TestACLEndpoint_DisabledAnswersEveryMethod(t *testing.T) {
	s := testServer(t, func(c *Config) { c.NumSchedulers = 0 })
	calls := []struct {
		method      string
		args, reply interface{}
	}{
		{"ACL.Bootstrap", &structs.ACLBootstrapRequest{}, &structs.ACLTokenSecretResponse{}},
		{"ACL.UpsertPolicies", &structs.ACLPolicyUpsertRequest{}, &structs.GenericResponse{}},
		{"ACL.DeletePolicies", &structs.ACLPolicyDeleteRequest{}, &structs.GenericResponse{}},
		{"ACL.ListPolicies", &structs.GenericRequest{}, &structs.ACLPolicyListResponse{}},
		{"ACL.GetPolicy", &structs.ACLPolicySpecificRequest{}, &structs.SingleACLPolicyResponse{}},
		{"ACL.CreateToken", &structs.ACLTokenCreateRequest{}, &structs.ACLTokenSecretResponse{}},
		{"ACL.ListTokens", &structs.GenericRequest{}, &structs.ACLTokenListResponse{}},
		{"ACL.GetToken", &structs.ACLTokenSpecificRequest{}, &structs.SingleACLTokenResponse{}},
		{"ACL.GetTokenSelf", &structs.GenericRequest{}, &structs.SingleACLTokenResponse{}},
		{"ACL.DeleteTokens", &structs.ACLTokenDeleteRequest{}, &structs.GenericResponse{}},
		{"ACL.ResolveToken", &structs.ResolveACLTokenRequest{}, &structs.ResolveACLTokenResponse{}},
	}
	for _, c := range calls {
		t.Run(c.method, func(t *testing.T) {
			err := s.RPC(c.method, c.args, c.reply)
			wantCoded(t, err, structs.CodeInvalid, "ACL support disabled")
			if ce := structs.ParseCodedError(err); ce.Status != 400 {
				t.Fatalf("status %d", ce.Status)
			}
		})
	}
	// With ACLs off, every request is allowed everything.
	a, tok, err := s.ResolveToken("anything")
	if err != nil || !a.IsManagement() || tok != nil {
		t.Fatalf("ResolveToken with ACLs off: %v %v %v", a, tok, err)
	}
}

func TestACLEndpoint_BootstrapOnce(t *testing.T) {
	s := aclServer(t)
	var first structs.ACLTokenSecretResponse
	if err := s.RPC("ACL.Bootstrap", &structs.ACLBootstrapRequest{}, &first); err != nil {
		t.Fatal(err)
	}
	if first.SecretID == "" || first.Token == nil || !first.Token.IsManagement() || first.Token.Name != structs.ACLBootstrapTokenName {
		t.Fatalf("bootstrap reply: %+v", first)
	}
	if first.Token.SecretHash != "" {
		t.Fatal("the reply carries the secret's hash")
	}
	a, tok, err := s.ResolveToken(first.SecretID)
	if err != nil || !a.IsManagement() || tok.AccessorID != first.Token.AccessorID {
		t.Fatalf("the bootstrap token does not resolve to management: %v %+v %v", a, tok, err)
	}

	// A caller cannot smuggle its own token into the bootstrap entry.
	forged := &structs.ACLToken{AccessorID: "forged", SecretHash: structs.HashACLSecret("mine"), Type: structs.ACLTokenTypeManagement}
	err = s.RPC("ACL.Bootstrap", &structs.ACLBootstrapRequest{Token: forged}, &structs.ACLTokenSecretResponse{})
	wantCoded(t, err, structs.CodeConflict, "ACL bootstrap already done at index ")
	if ce := structs.ParseCodedError(err); ce.Status != 409 || !strings.HasSuffix(ce.Message, "index "+strconv.FormatUint(first.Token.CreateIndex, 10)) {
		t.Fatalf("second bootstrap: %d %q", ce.Status, ce.Message)
	}
	tokens, _ := s.State().ACLTokens(nil)
	if len(tokens) != 1 {
		t.Fatalf("%d tokens after two bootstraps", len(tokens))
	}
	if _, _, err := s.ResolveToken("mine"); err == nil {
		t.Fatal("the forged token resolves")
	}
}

func TestACLEndpoint_CreateResolveAndRead(t *testing.T) {
	s := aclServer(t)
	mgmt := bootstrapACL(t, s)
	upsertPolicy(t, s, mgmt, "deployer", `namespace "prod" { policy = "read" }
namespace "team-*" { policy = "write" }
node { policy = "read" }`)
	created := createToken(t, s, mgmt, &structs.ACLTokenCreateRequest{Name: "ci-deployer", Policies: []string{"deployer", "deployer"}})
	if created.SecretID == "" || created.Token.Type != structs.ACLTokenTypeClient || len(created.Token.Policies) != 1 {
		t.Fatalf("created: %+v", created.Token)
	}

	a, tok, err := s.ResolveToken(created.SecretID)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Name != "ci-deployer" || a.IsManagement() {
		t.Fatalf("resolved %+v", tok)
	}
	checks := []struct {
		ns, capability string
		want           bool
	}{
		{"prod", acl.CapabilityReadJob, true},
		{"prod", acl.CapabilitySubmitJob, false},
		{"team-a", acl.CapabilitySubmitJob, true},
		{"default", acl.CapabilityListJobs, false},
	}
	for _, c := range checks {
		if got := a.AllowNamespace(c.ns, c.capability); got != c.want {
			t.Errorf("AllowNamespace(%s, %s) = %v", c.ns, c.capability, got)
		}
	}
	if !a.AllowNodeRead() || a.AllowNodeWrite() || a.AllowAgentRead() {
		t.Error("node/agent rules not as the policy says")
	}
	// The denial an endpoint returns has the documented shape.
	if !a.AllowNamespace("prod", acl.CapabilitySubmitJob) {
		wantCoded(t, structs.NewNamespaceDeniedError(tok, acl.CapabilitySubmitJob, "prod"), structs.CodePermission,
			`token "ci-deployer" lacks capability submit-job in namespace "prod"`)
	}

	// Self, get and list never show the secret or its hash.
	self := &structs.GenericRequest{}
	self.AuthToken = created.SecretID
	var selfResp structs.SingleACLTokenResponse
	if err := s.RPC("ACL.GetTokenSelf", self, &selfResp); err != nil {
		t.Fatal(err)
	}
	get := &structs.ACLTokenSpecificRequest{AccessorID: created.Token.AccessorID}
	get.AuthToken = mgmt
	var getResp structs.SingleACLTokenResponse
	if err := s.RPC("ACL.GetToken", get, &getResp); err != nil {
		t.Fatal(err)
	}
	list := &structs.GenericRequest{}
	list.AuthToken = mgmt
	var listResp structs.ACLTokenListResponse
	if err := s.RPC("ACL.ListTokens", list, &listResp); err != nil {
		t.Fatal(err)
	}
	if len(listResp.Tokens) != 2 {
		t.Fatalf("%d tokens listed", len(listResp.Tokens))
	}
	for _, got := range append([]*structs.ACLToken{selfResp.Token, getResp.Token}, listResp.Tokens...) {
		if got == nil || got.SecretHash != "" {
			t.Fatalf("a read returned %+v", got)
		}
	}
	if selfResp.Token.AccessorID != created.Token.AccessorID || getResp.Token.Name != "ci-deployer" {
		t.Fatalf("self %+v, get %+v", selfResp.Token, getResp.Token)
	}

	// ResolveToken, for agents, carries the policies to compile.
	var res structs.ResolveACLTokenResponse
	if err := s.RPC("ACL.ResolveToken", &structs.ResolveACLTokenRequest{SecretID: created.SecretID}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Token.Name != "ci-deployer" || len(res.Policies) != 1 || !CompilePolicies(res.Policies, nil).AllowNamespace("team-x", acl.CapabilityReadLogs) {
		t.Fatalf("resolve: %+v %+v", res.Token, res.Policies)
	}

	// A policy change reaches the token at once (the cache is keyed by
	// the rules).
	upsertPolicy(t, s, mgmt, "deployer", `namespace "prod" { policy = "write" }`)
	if a, _, _ := s.ResolveToken(created.SecretID); !a.AllowNamespace("prod", acl.CapabilitySubmitJob) || a.AllowNamespace("team-a", acl.CapabilityReadJob) {
		t.Fatal("the changed policy did not take effect")
	}

	// A deleted token stops resolving.
	del := &structs.ACLTokenDeleteRequest{AccessorIDs: []string{created.Token.AccessorID}}
	del.AuthToken = mgmt
	if err := s.RPC("ACL.DeleteTokens", del, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.ResolveToken(created.SecretID)
	wantCoded(t, err, structs.CodeTokenNotFound, "ACL token not found")
}

func TestACLEndpoint_ExpiredTokenIsNotFound(t *testing.T) {
	s := aclServer(t)
	mgmt := bootstrapACL(t, s)
	upsertPolicy(t, s, mgmt, "ro", `namespace "*" { policy = "read" }`)
	created := createToken(t, s, mgmt, &structs.ACLTokenCreateRequest{Name: "short", Policies: []string{"ro"}, TTL: time.Hour})
	tok := created.Token
	if tok.ExpirationTime == 0 || tok.ExpirationTime-tok.CreateTime != int64(time.Hour) {
		t.Fatalf("expiration %d for creation %d and a 1h TTL", tok.ExpirationTime, tok.CreateTime)
	}
	if _, _, err := s.resolveTokenAt(s.State(), created.SecretID, time.Unix(0, tok.ExpirationTime-1)); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	_, _, err := s.resolveTokenAt(s.State(), created.SecretID, time.Unix(0, tok.ExpirationTime))
	wantCoded(t, err, structs.CodeTokenNotFound, "ACL token not found")
	if ce := structs.ParseCodedError(err); ce.Status != 403 {
		t.Fatalf("status %d", ce.Status)
	}
	// Unknown secrets alike.
	_, _, err = s.ResolveToken("not-a-token")
	wantCoded(t, err, structs.CodeTokenNotFound, "ACL token not found")
}

// TestACLEndpoint_ManagementOnly: a client token, an unknown token and
// no token are refused by every management method, with an error that
// names the token and what it needed; nothing is written.
func TestACLEndpoint_ManagementOnly(t *testing.T) {
	s := aclServer(t)
	mgmt := bootstrapACL(t, s)
	upsertPolicy(t, s, mgmt, "ro", `namespace "*" { policy = "read" }`)
	client := createToken(t, s, mgmt, &structs.ACLTokenCreateRequest{Name: "ci-deployer", Policies: []string{"ro"}})
	before, _ := s.State().LatestIndex()

	type call struct {
		method      string
		args        func(secret string) interface{}
		reply       interface{}
		description string
	}
	w := func(secret string) structs.WriteRequest { return structs.WriteRequest{AuthToken: secret} }
	q := func(secret string) structs.QueryOptions { return structs.QueryOptions{AuthToken: secret} }
	calls := []call{
		{"ACL.UpsertPolicies", func(s string) interface{} {
			return &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{{Name: "x", Rules: `node { policy = "write" }`}}, WriteRequest: w(s)}
		}, &structs.GenericResponse{}, "ACL.UpsertPolicies (drover acl policy apply)"},
		{"ACL.DeletePolicies", func(s string) interface{} {
			return &structs.ACLPolicyDeleteRequest{Names: []string{"ro"}, WriteRequest: w(s)}
		}, &structs.GenericResponse{}, "ACL.DeletePolicies (drover acl policy delete)"},
		{"ACL.ListPolicies", func(s string) interface{} { return &structs.GenericRequest{QueryOptions: q(s)} },
			&structs.ACLPolicyListResponse{}, "ACL.ListPolicies (drover acl policy list)"},
		{"ACL.GetPolicy", func(s string) interface{} { return &structs.ACLPolicySpecificRequest{Name: "ro", QueryOptions: q(s)} },
			&structs.SingleACLPolicyResponse{}, "ACL.GetPolicy (drover acl policy info)"},
		{"ACL.CreateToken", func(s string) interface{} {
			return &structs.ACLTokenCreateRequest{Type: structs.ACLTokenTypeManagement, WriteRequest: w(s)}
		}, &structs.ACLTokenSecretResponse{}, "ACL.CreateToken (drover acl token create)"},
		{"ACL.ListTokens", func(s string) interface{} { return &structs.GenericRequest{QueryOptions: q(s)} },
			&structs.ACLTokenListResponse{}, "ACL.ListTokens (drover acl token list)"},
		{"ACL.GetToken", func(s string) interface{} {
			return &structs.ACLTokenSpecificRequest{AccessorID: client.Token.AccessorID, QueryOptions: q(s)}
		}, &structs.SingleACLTokenResponse{}, "ACL.GetToken (drover acl token info)"},
		{"ACL.DeleteTokens", func(s string) interface{} {
			return &structs.ACLTokenDeleteRequest{AccessorIDs: []string{client.Token.AccessorID}, WriteRequest: w(s)}
		}, &structs.GenericResponse{}, "ACL.DeleteTokens (drover acl token delete)"},
	}
	for _, c := range calls {
		t.Run(c.method+"/client token", func(t *testing.T) {
			err := s.RPC(c.method, c.args(client.SecretID), c.reply)
			wantCoded(t, err, structs.CodePermission, `token "ci-deployer" is not a management token; `+c.description+" needs one")
		})
		t.Run(c.method+"/no token", func(t *testing.T) {
			err := s.RPC(c.method, c.args(""), c.reply)
			wantCoded(t, err, structs.CodePermission, `token "anonymous" is not a management token; `+c.description+" needs one (no token was sent: pass -token or set DROVER_TOKEN)")
		})
		t.Run(c.method+"/unknown token", func(t *testing.T) {
			err := s.RPC(c.method, c.args(structs.GenerateUUID()), c.reply)
			wantCoded(t, err, structs.CodeTokenNotFound, "ACL token not found")
		})
	}
	if after, _ := s.State().LatestIndex(); after != before {
		t.Fatalf("refused requests wrote to Raft: index %d -> %d", before, after)
	}
	// GetTokenSelf without a token says what to do.
	err := s.RPC("ACL.GetTokenSelf", &structs.GenericRequest{}, &structs.SingleACLTokenResponse{})
	wantCoded(t, err, structs.CodeTokenNotFound, "ACL token not found: no token was sent")
}

// TestACLEndpoint_RefusesMalformedInput: each bad request is a 400 (or
// 404) that says what was wrong, and nothing is written.
func TestACLEndpoint_RefusesMalformedInput(t *testing.T) {
	s := aclServer(t)
	mgmt := bootstrapACL(t, s)
	upsertPolicy(t, s, mgmt, "ro", `namespace "*" { policy = "read" }`)
	before, _ := s.State().LatestIndex()
	policy := func(p *structs.ACLPolicy) *structs.ACLPolicyUpsertRequest {
		return &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{p}, WriteRequest: structs.WriteRequest{AuthToken: mgmt}}
	}
	token := func(r structs.ACLTokenCreateRequest) *structs.ACLTokenCreateRequest {
		r.AuthToken = mgmt
		return &r
	}
	cases := []struct {
		name   string
		method string
		args   interface{}
		reply  interface{}
		code   string
		msg    string
	}{
		{"rules with an unknown capability", "ACL.UpsertPolicies", policy(&structs.ACLPolicy{Name: "ci", Rules: "namespace \"prod\" {\n  capabilities = [\"sbumit-job\"]\n}"}),
			&structs.GenericResponse{}, structs.CodeInvalid, "policy \"ci\": the rules do not parse:\nrules:2:19: unknown capability \"sbumit-job\" in namespace \"prod\"; accepted: deny, list-jobs"},
		{"rules that are not HCL", "ACL.UpsertPolicies", policy(&structs.ACLPolicy{Name: "ci", Rules: "namespace {"}),
			&structs.GenericResponse{}, structs.CodeInvalid, "policy \"ci\": the rules do not parse:\nrules:1:"},
		{"bad policy name", "ACL.UpsertPolicies", policy(&structs.ACLPolicy{Name: "../etc", Rules: `node { policy = "read" }`}),
			&structs.GenericResponse{}, structs.CodeInvalid, `policy name "../etc" is invalid: use 1-128 letters, digits and dashes`},
		{"empty rules", "ACL.UpsertPolicies", policy(&structs.ACLPolicy{Name: "ci"}),
			&structs.GenericResponse{}, structs.CodeInvalid, `policy "ci" has no rules`},
		{"huge rules", "ACL.UpsertPolicies", policy(&structs.ACLPolicy{Name: "ci", Rules: strings.Repeat("#", structs.MaxACLPolicyRulesBytes+1)}),
			&structs.GenericResponse{}, structs.CodeInvalid, `policy "ci": rules are 65537 bytes, more than the limit of 65536`},
		{"null policy", "ACL.UpsertPolicies", &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{nil}, WriteRequest: structs.WriteRequest{AuthToken: mgmt}},
			&structs.GenericResponse{}, structs.CodeInvalid, "Policies[0] is null"},
		{"no policies", "ACL.UpsertPolicies", &structs.ACLPolicyUpsertRequest{WriteRequest: structs.WriteRequest{AuthToken: mgmt}},
			&structs.GenericResponse{}, structs.CodeInvalid, "no policies to write"},
		{"client token without policies", "ACL.CreateToken", token(structs.ACLTokenCreateRequest{Name: "x"}),
			&structs.ACLTokenSecretResponse{}, structs.CodeInvalid, "a client token needs at least one policy"},
		{"unknown policy", "ACL.CreateToken", token(structs.ACLTokenCreateRequest{Policies: []string{"nope"}}),
			&structs.ACLTokenSecretResponse{}, structs.CodeInvalid, `policy "nope" does not exist; create it first with drover acl policy apply nope FILE`},
		{"bad type", "ACL.CreateToken", token(structs.ACLTokenCreateRequest{Type: "root", Policies: []string{"ro"}}),
			&structs.ACLTokenSecretResponse{}, structs.CodeInvalid, `token type "root" is invalid; accepted: client, management`},
		{"management with policies", "ACL.CreateToken", token(structs.ACLTokenCreateRequest{Type: "management", Policies: []string{"ro"}}),
			&structs.ACLTokenSecretResponse{}, structs.CodeInvalid, "a management token takes no policies"},
		{"negative TTL", "ACL.CreateToken", token(structs.ACLTokenCreateRequest{Policies: []string{"ro"}, TTL: -time.Second}),
			&structs.ACLTokenSecretResponse{}, structs.CodeInvalid, "token TTL -1s is negative"},
		{"long name", "ACL.CreateToken", token(structs.ACLTokenCreateRequest{Name: strings.Repeat("n", 300), Policies: []string{"ro"}}),
			&structs.ACLTokenSecretResponse{}, structs.CodeInvalid, "token name is 300 characters"},
		{"delete unknown policy", "ACL.DeletePolicies", &structs.ACLPolicyDeleteRequest{Names: []string{"ro", "nope"}, WriteRequest: structs.WriteRequest{AuthToken: mgmt}},
			&structs.GenericResponse{}, structs.CodeNotFound, `ACL policy "nope": not found`},
		{"delete nothing", "ACL.DeleteTokens", &structs.ACLTokenDeleteRequest{WriteRequest: structs.WriteRequest{AuthToken: mgmt}},
			&structs.GenericResponse{}, structs.CodeInvalid, "no accessor ID given"},
		{"delete unknown token", "ACL.DeleteTokens", &structs.ACLTokenDeleteRequest{AccessorIDs: []string{"nope"}, WriteRequest: structs.WriteRequest{AuthToken: mgmt}},
			&structs.GenericResponse{}, structs.CodeNotFound, `ACL token "nope": not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantCoded(t, s.RPC(tc.method, tc.args, tc.reply), tc.code, tc.msg)
		})
	}
	// A refused delete may use a Raft index (the FSM answered not
	// found), but changes nothing.
	policies, _ := s.State().ACLPolicies(nil)
	tokens, _ := s.State().ACLTokens(nil)
	if len(policies) != 1 || len(tokens) != 1 {
		t.Fatalf("after refused requests: %d policies, %d tokens", len(policies), len(tokens))
	}
	if idx, _ := s.State().Index("acl_policies"); idx > before {
		t.Fatalf("the policies table changed at %d", idx)
	}
	if !s.IsLeader() {
		t.Fatal("the server lost leadership")
	}
}

// TestACLEndpoint_SecretNeverOnDisk: after a token is made and Raft
// snapshots, no file of the data dir holds its secret (nor the
// management secret that made it, nor one sent as AuthToken to an
// endpoint that hands its args to Raft), while the hash is there.
func TestACLEndpoint_SecretNeverOnDisk(t *testing.T) {
	s := aclServer(t)
	mgmt := bootstrapACL(t, s)
	upsertPolicy(t, s, mgmt, "ro", `namespace "*" { policy = "read" }`)
	created := createToken(t, s, mgmt, &structs.ACLTokenCreateRequest{Name: "ci", Policies: []string{"ro"}})
	// An endpoint that writes its args to Raft as they came.
	conf := &structs.SchedulerSetConfigRequest{}
	conf.AuthToken = mgmt
	if err := s.RPC("Operator.SchedulerSetConfiguration", conf, &structs.GenericResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}

	var files []string
	var all []byte
	err := filepath.Walk(s.config.DataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, path)
		for _, secret := range []string{created.SecretID, mgmt} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds a token secret", path)
			}
		}
		all = append(all, b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sawDB, sawSnapshot bool
	for _, f := range files {
		sawDB = sawDB || filepath.Base(f) == "raft.db"
		sawSnapshot = sawSnapshot || filepath.Base(f) == "state.bin"
	}
	if !sawDB || !sawSnapshot {
		t.Fatalf("raft.db or a snapshot is missing from the data dir: %v", files)
	}
	for _, secret := range []string{created.SecretID, mgmt} {
		if !bytes.Contains(all, []byte(structs.HashACLSecret(secret))) {
			t.Errorf("the hash of a secret is nowhere on disk; the test checks nothing")
		}
	}
}

// TestACLEndpoint_FollowerForwardsWithTheToken: a write sent to a
// follower reaches the leader with its token (msgpack keeps it), and the
// new token works on every server.
func TestACLEndpoint_FollowerForwardsWithTheToken(t *testing.T) {
	c := newTestCluster(t, 3)
	for _, s := range c.servers {
		s.config.ACLEnabled = true
	}
	leader := c.waitLeader(c.servers...)
	follower := c.others(leader)[0]

	var boot structs.ACLTokenSecretResponse
	if err := follower.RPC("ACL.Bootstrap", &structs.ACLBootstrapRequest{}, &boot); err != nil {
		t.Fatal(err)
	}
	upsertPolicy(t, follower, boot.SecretID, "ro", `namespace "*" { policy = "read" }`)
	created := createToken(t, follower, boot.SecretID, &structs.ACLTokenCreateRequest{Name: "ci", Policies: []string{"ro"}})
	// A forwarded request without the token would have been refused as
	// anonymous; the consistent read on a follower goes to the leader.
	self := &structs.GenericRequest{}
	self.AuthToken = created.SecretID
	var resp structs.SingleACLTokenResponse
	if err := follower.RPC("ACL.GetTokenSelf", self, &resp); err != nil || resp.Token.Name != "ci" {
		t.Fatalf("self through a follower: %+v, %v", resp.Token, err)
	}
	c.waitSameState(c.servers...)
	for _, s := range c.servers {
		if a, _, err := s.ResolveToken(created.SecretID); err != nil || !a.AllowNamespace("x", acl.CapabilityListJobs) {
			t.Fatalf("%s: %v", c.name(s), err)
		}
	}
}
