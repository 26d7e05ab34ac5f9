package structs

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

const testSecret = "6f1c2a4e-0b1d-4c55-9a8e-3d2f1e0c9b7a"

// TestRPC_AuthTokenSurvivesTheWire: the token is hidden from JSON but
// must reach the server that serves a (forwarded) request, in msgpack.
func TestRPC_AuthTokenSurvivesTheWire(t *testing.T) {
	cases := []struct {
		name string
		in   interface{}
		out  interface{}
		get  func(interface{}) string
	}{
		{"QueryOptions", &JobSpecificRequest{JobID: "j", QueryOptions: QueryOptions{AuthToken: testSecret}}, &JobSpecificRequest{},
			func(v interface{}) string { return v.(*JobSpecificRequest).AuthToken }},
		{"WriteRequest", &JobRegisterRequest{WriteRequest: WriteRequest{AuthToken: testSecret}}, &JobRegisterRequest{},
			func(v interface{}) string { return v.(*JobRegisterRequest).AuthToken }},
		{"ACLTokenCreateRequest", &ACLTokenCreateRequest{Name: "ci", WriteRequest: WriteRequest{AuthToken: testSecret}}, &ACLTokenCreateRequest{},
			func(v interface{}) string { return v.(*ACLTokenCreateRequest).AuthToken }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := codec.NewEncoder(&buf, MsgpackHandle).Encode(tc.in); err != nil {
				t.Fatal(err)
			}
			if err := codec.NewDecoder(&buf, MsgpackHandle).Decode(tc.out); err != nil {
				t.Fatal(err)
			}
			if got := tc.get(tc.out); got != testSecret {
				t.Fatalf("AuthToken after a msgpack round trip: %q", got)
			}
			js, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(js, []byte(testSecret)) {
				t.Fatalf("the token is in the JSON: %s", js)
			}
		})
	}
}

// TestEncode_DropsAuthToken: a Raft entry never holds the caller's
// secret, and encoding leaves the caller's request as it was.
func TestEncode_DropsAuthToken(t *testing.T) {
	cases := []struct {
		name string
		msg  interface{}
	}{
		{"write request pointer", &JobRegisterRequest{Job: &Job{ID: "web"}, WriteRequest: WriteRequest{AuthToken: testSecret}}},
		{"write request value", JobStabilityRequest{JobID: "web", WriteRequest: WriteRequest{AuthToken: testSecret}}},
		{"query options", &GenericRequest{QueryOptions: QueryOptions{AuthToken: testSecret}}},
		{"acl token upsert", &ACLTokenUpsertRequest{Tokens: []*ACLToken{{AccessorID: "a", SecretHash: HashACLSecret(testSecret)}},
			WriteRequest: WriteRequest{AuthToken: testSecret}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			buf, err := Encode(ACLTokenUpsertRequestType, tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(buf, []byte(testSecret)) {
				t.Fatal("the Raft entry holds the secret")
			}
			if !bytes.Contains(buf, []byte("AuthToken")) {
				t.Fatal("the entry has no AuthToken field at all; the test checks nothing")
			}
			if h := tc.msg.(authTokenHolder); !h.hasAuthToken() {
				t.Fatal("Encode cleared the caller's token")
			}
		})
	}
	// Requests without a token are encoded as they are.
	req := &GenericRequest{}
	if got := withoutAuthToken(req); got != req {
		t.Fatal("a request without a token was copied")
	}
	if got := withoutAuthToken(nil); got != nil {
		t.Fatal("nil changed")
	}
	var nilReq *GenericRequest
	if got := withoutAuthToken(nilReq); got != nilReq {
		t.Fatal("a nil request changed")
	}
}

func TestACLToken_SecretHashHiddenFromJSONButStored(t *testing.T) {
	tok := &ACLToken{AccessorID: "a", SecretHash: HashACLSecret(testSecret), Name: "ci", Type: ACLTokenTypeClient, Policies: []string{"p"}}
	js, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(js, []byte(tok.SecretHash)) || bytes.Contains(js, []byte("SecretHash")) {
		t.Fatalf("JSON shows the hash: %s", js)
	}
	buf, err := Encode(ACLTokenUpsertRequestType, &ACLTokenUpsertRequest{Tokens: []*ACLToken{tok}})
	if err != nil {
		t.Fatal(err)
	}
	var out ACLTokenUpsertRequest
	if err := Decode(buf[1:], &out); err != nil {
		t.Fatal(err)
	}
	if out.Tokens[0].SecretHash != tok.SecretHash {
		t.Fatal("the hash did not survive msgpack")
	}
	if pub := tok.Public(); pub.SecretHash != "" || tok.SecretHash == "" {
		t.Fatal("Public must clear the copy's hash and only the copy's")
	}
}

func TestHashACLSecret_IsHexSHA256(t *testing.T) {
	h := HashACLSecret("x")
	if h != "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" {
		t.Fatalf("hash %s", h)
	}
}

func TestACLToken_ValidateShape(t *testing.T) {
	good := func() *ACLToken {
		return &ACLToken{AccessorID: "a", SecretHash: HashACLSecret("s"), Name: "ci", Type: ACLTokenTypeClient, Policies: []string{"ci"}}
	}
	cases := []struct {
		name   string
		mutate func(*ACLToken)
		want   string
	}{
		{"valid client", func(*ACLToken) {}, ""},
		{"valid management", func(t *ACLToken) { t.Type, t.Policies = ACLTokenTypeManagement, nil }, ""},
		{"no accessor", func(t *ACLToken) { t.AccessorID = "" }, "no accessor ID"},
		{"secret instead of hash", func(t *ACLToken) { t.SecretHash = testSecret }, "not a hex SHA-256"},
		{"bad type", func(t *ACLToken) { t.Type = "root" }, `type "root" is invalid; accepted: client, management`},
		{"client without policies", func(t *ACLToken) { t.Policies = nil }, "needs at least one policy"},
		{"management with policies", func(t *ACLToken) { t.Type = ACLTokenTypeManagement }, "takes no policies"},
		{"bad policy name", func(t *ACLToken) { t.Policies = []string{"a b"} }, `policy name "a b" is invalid`},
		{"long name", func(t *ACLToken) { t.Name = strings.Repeat("x", MaxACLTokenNameLength+1) }, "more than the limit"},
		{"negative expiry", func(t *ACLToken) { t.ExpirationTime = -1 }, "negative expiration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := good()
			tc.mutate(tok)
			err := tok.ValidateShape()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestACLToken_ExpiredAt(t *testing.T) {
	now := time.Unix(1000, 0)
	cases := []struct {
		name string
		exp  int64
		want bool
	}{
		{"never", 0, false},
		{"future", now.Add(time.Second).UnixNano(), false},
		{"now", now.UnixNano(), true},
		{"past", now.Add(-time.Second).UnixNano(), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&ACLToken{ExpirationTime: tc.exp}).ExpiredAt(now); got != tc.want {
				t.Fatalf("ExpiredAt = %v", got)
			}
		})
	}
}

func TestACLErrors_Shapes(t *testing.T) {
	ci := &ACLToken{AccessorID: "a1", Name: "ci-deployer"}
	cases := []struct {
		name   string
		err    *CodedError
		code   string
		status int
		msg    string
	}{
		{"namespace", NewNamespaceDeniedError(ci, "submit-job", "prod"), CodePermission, 403,
			`token "ci-deployer" lacks capability submit-job in namespace "prod"`},
		{"rule", NewRuleDeniedError(ci, "agent", "read"), CodePermission, 403,
			`token "ci-deployer" lacks agent:read (it needs a policy with agent { policy = "read" })`},
		{"management", NewManagementRequiredError(ci, "ACL.ListTokens"), CodePermission, 403,
			`token "ci-deployer" is not a management token; ACL.ListTokens needs one`},
		{"anonymous", NewNamespaceDeniedError(ACLAnonymousToken, "read-job", "default"), CodePermission, 403,
			`token "anonymous" lacks capability read-job in namespace "default" (no token was sent: pass -token or set DROVER_TOKEN)`},
		{"unnamed", NewNamespaceDeniedError(&ACLToken{AccessorID: "a1"}, "read-job", "default"), CodePermission, 403,
			`token "with accessor a1" lacks capability read-job in namespace "default"`},
		{"not found", ErrACLTokenNotFound, CodeTokenNotFound, 403, "ACL token not found"},
		{"disabled", ErrACLDisabled, CodeInvalid, 400, "ACL support disabled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err.Code != tc.code || tc.err.Status != tc.status || !strings.HasPrefix(tc.err.Message, tc.msg) {
				t.Fatalf("got %s %d %q\nwant %s %d %q", tc.err.Code, tc.err.Status, tc.err.Message, tc.code, tc.status, tc.msg)
			}
			// It survives net/rpc's flattening to a string.
			if back := ParseCodedError(fmtErr(tc.err.Error())); back == nil || back.Code != tc.code || back.Message != tc.err.Message {
				t.Fatalf("ParseCodedError lost it: %v", back)
			}
		})
	}
}

type fmtErr string

func (e fmtErr) Error() string { return string(e) }
