package fsm

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

func aclToken(secret, typ string, policies ...string) *structs.ACLToken {
	return &structs.ACLToken{AccessorID: structs.GenerateUUID(), SecretHash: structs.HashACLSecret(secret), Name: "t-" + secret,
		Type: typ, Policies: policies, CreateTime: 10}
}

// populateACL fills the ACL tables through the FSM, as the log would.
func populateACL(h *harness) {
	h.mustApply(structs.ACLPolicyUpsertRequestType, &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{
		{Name: "readonly", Description: "read everything", Rules: `namespace "*" { policy = "read" }`},
		{Name: "ci", Rules: `namespace "prod" { policy = "write" }`},
	}})
	h.mustApply(structs.ACLTokenBootstrapRequestType, &structs.ACLBootstrapRequest{Token: aclToken("boot", structs.ACLTokenTypeManagement)})
	h.mustApply(structs.ACLTokenUpsertRequestType, &structs.ACLTokenUpsertRequest{Tokens: []*structs.ACLToken{
		aclToken("ci-secret", structs.ACLTokenTypeClient, "ci"),
		aclToken("ro-secret", structs.ACLTokenTypeClient, "readonly"),
	}})
}

// aclDump reads the ACL tables of a store, for comparison.
func aclDump(t *testing.T, s *state.StateStore) map[string]interface{} {
	t.Helper()
	policies, err := s.ACLPolicies(nil)
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := s.ACLTokens(nil)
	markers, _ := s.ACLBootstrapMarkers()
	return map[string]interface{}{
		state.TableACLPolicies:  policies,
		state.TableACLTokens:    tokens,
		state.TableACLBootstrap: markers,
	}
}

func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return sink.Bytes()
}

func TestFSM_ACLSnapshotRestoreRoundTrip(t *testing.T) {
	h := newHarness(t)
	populateACL(h)
	before := aclDump(t, h.fsm.State())
	data := persist(t, h.fsm)

	restored := New(Config{})
	if err := restored.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	after := aclDump(t, restored.State())
	for _, table := range []string{state.TableACLPolicies, state.TableACLTokens, state.TableACLBootstrap} {
		t.Run(table, func(t *testing.T) {
			if reflect.ValueOf(before[table]).Len() == 0 {
				t.Fatalf("table %s is empty before the snapshot", table)
			}
			if !reflect.DeepEqual(normalize(t, before[table]), normalize(t, after[table])) {
				t.Fatalf("table %s differs after restore:\nbefore %#v\nafter  %#v", table, before[table], after[table])
			}
		})
	}
	// The restored store finds tokens by hash, and still refuses a
	// second bootstrap.
	tok, err := restored.State().ACLTokenBySecretHash(nil, structs.HashACLSecret("ci-secret"))
	if err != nil || tok == nil || tok.Policies[0] != "ci" {
		t.Fatalf("token by hash after restore: %+v, %v", tok, err)
	}
	h2 := &harness{t: t, fsm: restored, rec: h.rec, index: h.index}
	resp := h2.apply(structs.ACLTokenBootstrapRequestType, &structs.ACLBootstrapRequest{Token: aclToken("again", structs.ACLTokenTypeManagement)})
	if ce := structs.ParseCodedError(asError(resp)); ce == nil || ce.Code != structs.CodeConflict {
		t.Fatalf("second bootstrap after restore: %v", resp)
	}
}

// TestFSM_RestoresVersion2Snapshot: a snapshot written before ACLs
// (version 2: same records, no ACL ones) restores, with empty ACL
// tables; version 1 is still refused with its clear error.
// (TestFSM_MigratesPreNamespaceSnapshots restores snapshots in the exact
// version 2 and 3 formats, without namespaces.)
func TestFSM_RestoresVersion2Snapshot(t *testing.T) {
	// A store without ACL data writes what version 2 wrote, apart from
	// the header's version and the namespaces (which restore the same
	// either way).
	h := newHarness(t)
	job := mock.Job()
	h.mustApply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{Node: mock.Node(), UpdatedAt: 1})
	h.mustApply(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job, Eval: mock.Eval(job), SubmitTime: 2})
	data := persist(t, h.fsm)
	latest, err := h.fsm.State().LatestIndex()
	if err != nil {
		t.Fatal(err)
	}
	v3Header := mustEncode(t, 0, &snapshotHeader{Version: snapshotVersion, LastIndex: latest})[1:]
	if !bytes.HasPrefix(data, v3Header) {
		t.Fatal("the snapshot does not start with the header this test rewrites")
	}
	withVersion := func(v int) []byte {
		header := mustEncode(t, 0, &snapshotHeader{Version: v, LastIndex: latest})[1:]
		return append(header, data[len(v3Header):]...)
	}

	f := New(Config{})
	if err := f.Restore(io.NopCloser(bytes.NewReader(withVersion(2)))); err != nil {
		t.Fatalf("restore a version 2 snapshot: %v", err)
	}
	if hashOf(t, f) != hashOf(t, h.fsm) {
		t.Fatal("the version 2 snapshot did not restore the state it was taken from")
	}
	if tokens, _ := f.State().ACLTokens(nil); len(tokens) != 0 {
		t.Fatalf("ACL tokens from a version 2 snapshot: %v", tokens)
	}
	if idx, _ := f.State().ACLBootstrapIndex(nil); idx != 0 {
		t.Fatalf("bootstrap index %d from a version 2 snapshot", idx)
	}

	err = New(Config{}).Restore(io.NopCloser(bytes.NewReader(withVersion(1))))
	if err == nil || !strings.Contains(err.Error(), "unsupported snapshot version 1 (this server reads 2 to 5)") {
		t.Fatalf("version 1: %v", err)
	}
}

func TestFSM_ACLBootstrapOnce(t *testing.T) {
	h := newHarness(t)
	first := aclToken("boot", structs.ACLTokenTypeManagement)
	h.mustApply(structs.ACLTokenBootstrapRequestType, &structs.ACLBootstrapRequest{Token: first})
	bootIndex := h.index
	before := hashOf(t, h.fsm)

	resp := h.apply(structs.ACLTokenBootstrapRequestType, &structs.ACLBootstrapRequest{Token: aclToken("boot2", structs.ACLTokenTypeManagement)})
	ce := structs.ParseCodedError(asError(resp))
	if ce == nil || ce.Code != structs.CodeConflict || ce.Message != "ACL bootstrap already done at index 1" || bootIndex != 1 {
		t.Fatalf("second bootstrap: %v", resp)
	}
	if hashOf(t, h.fsm) != before {
		t.Fatal("a refused bootstrap changed the state")
	}
	tokens, _ := h.fsm.State().ACLTokens(nil)
	if len(tokens) != 1 || tokens[0].AccessorID != first.AccessorID {
		t.Fatalf("tokens after two bootstraps: %v", tokens)
	}
}

func TestFSM_ACLDeletes(t *testing.T) {
	h := newHarness(t)
	populateACL(h)
	tokens, _ := h.fsm.State().ACLTokens(nil)
	h.mustApply(structs.ACLTokenDeleteRequestType, &structs.ACLTokenDeleteRequest{AccessorIDs: []string{tokens[1].AccessorID}})
	if tok, _ := h.fsm.State().ACLTokenByAccessorID(nil, tokens[1].AccessorID); tok != nil {
		t.Fatal("deleted token still there")
	}
	if tok, _ := h.fsm.State().ACLTokenBySecretHash(nil, tokens[1].SecretHash); tok != nil {
		t.Fatal("deleted token still found by hash")
	}
	h.mustApply(structs.ACLPolicyDeleteRequestType, &structs.ACLPolicyDeleteRequest{Names: []string{"ci"}})
	if p, _ := h.fsm.State().ACLPolicyByName(nil, "ci"); p != nil {
		t.Fatal("deleted policy still there")
	}
	// Unknown names: not found, nothing deleted.
	before := hashOf(t, h.fsm)
	resp := h.apply(structs.ACLPolicyDeleteRequestType, &structs.ACLPolicyDeleteRequest{Names: []string{"readonly", "nope"}})
	if err := asError(resp); err == nil || !strings.Contains(err.Error(), `ACL policy "nope": not found`) {
		t.Fatalf("delete of an unknown policy: %v", resp)
	}
	if hashOf(t, h.fsm) != before {
		t.Fatal("a failed delete changed the state")
	}
}

// TestFSM_MalformedACLEntriesAreRefused: entries a leader never writes
// are refused with a reason, change nothing, and need no recovered
// panic.
func TestFSM_MalformedACLEntriesAreRefused(t *testing.T) {
	management := func(mutate func(*structs.ACLToken)) *structs.ACLToken {
		tok := aclToken("x", structs.ACLTokenTypeManagement)
		mutate(tok)
		return tok
	}
	cases := []struct {
		name string
		typ  structs.MessageType
		msg  interface{}
		want string
	}{
		{"no policies", structs.ACLPolicyUpsertRequestType, &structs.ACLPolicyUpsertRequest{}, "Policies is empty"},
		{"nil policy", structs.ACLPolicyUpsertRequestType, &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{nil}}, "Policies[0] is null"},
		{"bad policy name", structs.ACLPolicyUpsertRequestType, &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{{Name: "a/b", Rules: "x"}}}, `policy name "a/b" is invalid`},
		{"policy without rules", structs.ACLPolicyUpsertRequestType, &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{{Name: "a"}}}, "has no rules"},
		{"no tokens", structs.ACLTokenUpsertRequestType, &structs.ACLTokenUpsertRequest{}, "Tokens is empty"},
		{"nil token", structs.ACLTokenUpsertRequestType, &structs.ACLTokenUpsertRequest{Tokens: []*structs.ACLToken{nil}}, "Tokens[0] is null"},
		{"secret where the hash goes", structs.ACLTokenUpsertRequestType, &structs.ACLTokenUpsertRequest{Tokens: []*structs.ACLToken{
			management(func(t *structs.ACLToken) { t.SecretHash = "6f1c2a4e-0b1d-4c55-9a8e-3d2f1e0c9b7a" })}}, "not a hex SHA-256"},
		{"unknown type", structs.ACLTokenUpsertRequestType, &structs.ACLTokenUpsertRequest{Tokens: []*structs.ACLToken{
			management(func(t *structs.ACLToken) { t.Type = "root" })}}, `type "root" is invalid`},
		{"no accessor", structs.ACLTokenUpsertRequestType, &structs.ACLTokenUpsertRequest{Tokens: []*structs.ACLToken{
			management(func(t *structs.ACLToken) { t.AccessorID = "" })}}, "no accessor ID"},
		{"empty token delete", structs.ACLTokenDeleteRequestType, &structs.ACLTokenDeleteRequest{}, "AccessorIDs is empty"},
		{"empty accessor in delete", structs.ACLTokenDeleteRequestType, &structs.ACLTokenDeleteRequest{AccessorIDs: []string{""}}, "AccessorIDs[0] is empty"},
		{"empty policy delete", structs.ACLPolicyDeleteRequestType, &structs.ACLPolicyDeleteRequest{}, "Names is empty"},
		{"bootstrap without token", structs.ACLTokenBootstrapRequestType, &structs.ACLBootstrapRequest{}, "Token is missing"},
		{"bootstrap with a client token", structs.ACLTokenBootstrapRequestType, &structs.ACLBootstrapRequest{
			Token: aclToken("c", structs.ACLTokenTypeClient, "p")}, "must be a management token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			populateACL(h)
			before := hashOf(t, h.fsm)
			resp := h.apply(tc.typ, tc.msg)
			assertRefused(t, h, resp, before)
			if !strings.Contains(resp.(error).Error(), tc.want) {
				t.Fatalf("refusal %q does not say %q", resp, tc.want)
			}
		})
	}

	// Garbage of each ACL type is refused the same way.
	for _, typ := range []structs.MessageType{structs.ACLPolicyUpsertRequestType, structs.ACLPolicyDeleteRequestType,
		structs.ACLTokenUpsertRequestType, structs.ACLTokenDeleteRequestType, structs.ACLTokenBootstrapRequestType} {
		t.Run("garbage "+typ.String(), func(t *testing.T) {
			h := newHarness(t)
			populateACL(h)
			before := hashOf(t, h.fsm)
			assertRefused(t, h, rawApply(h, []byte{byte(typ), 0xde, 0xad, 0xbe, 0xef}), before)
		})
	}
}

func TestFSM_RestoreRefusesMalformedACLToken(t *testing.T) {
	h := newHarness(t)
	populateACL(h)
	data := persist(t, h.fsm)
	// Rewrite a token's hash into something that is not a hash (as a
	// secret written there would be), keeping the length.
	hash := structs.HashACLSecret("ci-secret")
	bad := bytes.Replace(data, []byte(hash), []byte(strings.Repeat("Z", len(hash))), 1)
	if bytes.Equal(bad, data) {
		t.Fatal("the snapshot does not hold the token's hash")
	}
	err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(bad)))
	if err == nil || !strings.Contains(err.Error(), "not a hex SHA-256") {
		t.Fatalf("restore of a malformed token: %v", err)
	}
}

// TestFSM_ACLEntriesSurviveCorruption flips bytes of valid ACL entries
// one at a time: whatever each decodes to, Apply never panics (not even
// a recovered panic), and a refusal changes nothing.
func TestFSM_ACLEntriesSurviveCorruption(t *testing.T) {
	entries := [][]byte{
		mustEncode(t, structs.ACLPolicyUpsertRequestType, &structs.ACLPolicyUpsertRequest{Policies: []*structs.ACLPolicy{{Name: "p", Rules: `node { policy = "read" }`}}}),
		mustEncode(t, structs.ACLPolicyDeleteRequestType, &structs.ACLPolicyDeleteRequest{Names: []string{"ci"}}),
		mustEncode(t, structs.ACLTokenUpsertRequestType, &structs.ACLTokenUpsertRequest{Tokens: []*structs.ACLToken{aclToken("n", structs.ACLTokenTypeClient, "ci")}}),
		mustEncode(t, structs.ACLTokenDeleteRequestType, &structs.ACLTokenDeleteRequest{AccessorIDs: []string{"a"}}),
		mustEncode(t, structs.ACLTokenBootstrapRequestType, &structs.ACLBootstrapRequest{Token: aclToken("b", structs.ACLTokenTypeManagement)}),
	}
	base := newHarness(t)
	populateACL(base)
	before := hashOf(t, base.fsm)
	snapshot := persist(t, base.fsm)
	fresh := func() *harness {
		f := New(Config{})
		if err := f.Restore(io.NopCloser(bytes.NewReader(snapshot))); err != nil {
			t.Fatal(err)
		}
		return &harness{t: t, fsm: f, rec: &recorder{}, index: base.index}
	}
	for _, entry := range entries {
		for i := 1; i < len(entry); i++ {
			for _, b := range []byte{0x00, 0xc0, 0xff, entry[i] ^ 0x01} {
				data := append([]byte(nil), entry...)
				data[i] = b
				h := fresh()
				resp := rawApply(h, data)
				if n := h.fsm.RecoveredPanics(); n != 0 {
					t.Fatalf("%s with byte %d = %#x: recovered a panic: %v", structs.MessageType(entry[0]), i, b, resp)
				}
				if err, refused := resp.(error); refused && hashOf(t, h.fsm) != before {
					t.Fatalf("%s with byte %d = %#x: refused (%v) but the state changed", structs.MessageType(entry[0]), i, b, err)
				}
			}
		}
	}
}
