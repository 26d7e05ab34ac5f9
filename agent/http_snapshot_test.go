package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/snapshot"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil"
	"github.com/droverhq/drover/testutil/mock"
)

// snapshotAgent is aclAgent once its server has a cluster ID.
func snapshotAgent(t *testing.T, acls bool) *Agent {
	t.Helper()
	a := aclAgent(t, acls)
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return a.server.ClusterID() != "", nil })
	return a
}

// getSnapshot GETs /v1/operator/snapshot and returns the status, the
// headers and the body.
func getSnapshot(t *testing.T, h http.Handler, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	r := httptest.NewRequest("GET", "/v1/operator/snapshot", nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

// putSnapshot PUTs body to path; length -1 sends it without a
// Content-Length, as a chunked upload would.
func putSnapshot(t *testing.T, h http.Handler, path string, body io.Reader, length int64, headers map[string]string) (int, string) {
	t.Helper()
	r := httptest.NewRequest("PUT", path, body)
	r.ContentLength = length
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("PUT %s: %d with a body that is not JSON: %q", path, rec.Code, rec.Body)
	}
	return rec.Code, rec.Body.String()
}

// stateHash returns the agent's server's index and table hashes.
func stateHash(t *testing.T, a *Agent) (uint64, map[string]string) {
	t.Helper()
	i, tables, err := a.server.State().Hash()
	if err != nil {
		t.Fatal(err)
	}
	return i, tables
}

// untouchable is a body that fails the test if anything reads it.
type untouchable struct{ t *testing.T }

func (u untouchable) Read([]byte) (int, error) {
	u.t.Error("the body of a refused restore was read")
	return 0, io.EOF
}

func TestSnapshotHTTP_SaveAndRestore(t *testing.T) {
	a := snapshotAgent(t, false)
	h := a.routes()
	registerTestNode(t, a)

	code, hdr, archive := getSnapshot(t, h, nil)
	if code != 200 || hdr.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("save: %d %v %q", code, hdr, archive[:min(len(archive), 200)])
	}
	if n, _ := strconv.Atoi(hdr.Get("Content-Length")); n != len(archive) {
		t.Fatalf("Content-Length %s, body %d bytes", hdr.Get("Content-Length"), len(archive))
	}
	d, err := snapshot.Decode(bytes.NewReader(archive), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if d.ClusterID() != a.server.ClusterID() || hdr.Get(HeaderSnapshotClusterID) != d.ClusterID() ||
		hdr.Get(HeaderSnapshotIndex) != strconv.FormatUint(d.Meta.Index, 10) {
		t.Fatalf("headers %v for a snapshot of %s at %d", hdr, d.ClusterID(), d.Meta.Index)
	}

	// Restoring the cluster's own snapshot needs no force.
	code, body := putSnapshot(t, h, "/v1/operator/snapshot", bytes.NewReader(archive), int64(len(archive)), nil)
	if code != 200 {
		t.Fatalf("restore: %d %s", code, body)
	}
	res := decodeAs[snapshotRestoreJSON](t, body)
	if res.ClusterID != a.server.ClusterID() || res.Forced || res.Adopted || res.Meta.Index != d.Meta.Index || res.Index == 0 {
		t.Fatalf("restore answer %s", body)
	}
}

// The refusals of a restore: each is a clear 4xx, the state is
// unchanged, and the agent keeps serving.
func TestSnapshotHTTP_RestoreRefusals(t *testing.T) {
	other := snapshotAgent(t, false)
	registerTestNode(t, other)
	_, _, foreign := getSnapshot(t, other.routes(), nil)

	a := snapshotAgent(t, false)
	a.config.Limits.SnapshotMaxBytes = 512 << 10
	h := a.routes()
	registerTestNode(t, a)
	_, _, own := getSnapshot(t, h, nil)
	if len(own) > 256<<10 {
		t.Fatalf("the test archive is %d bytes", len(own))
	}
	flipped := append([]byte(nil), own...)
	flipped[len(flipped)/2] ^= 0xff
	huge := bytes.Repeat([]byte("x"), 600<<10)

	cases := []struct {
		name   string
		path   string
		body   []byte
		length int64
		status int
		code   string
		msg    string
	}{
		{"empty body", "/v1/operator/snapshot", nil, 0, 400, structs.CodeInvalid, "the request body is empty"},
		{"not an archive", "/v1/operator/snapshot", []byte("GET / HTTP/1.0\r\n\r\n"), -1, 400, structs.CodeInvalid, "invalid snapshot archive"},
		{"a damaged archive", "/v1/operator/snapshot", flipped, int64(len(flipped)), 400, structs.CodeInvalid, "invalid snapshot archive"},
		{"a truncated archive", "/v1/operator/snapshot", own[:len(own)-3000], -1, 400, structs.CodeInvalid, "invalid snapshot archive"},
		{"too big, announced", "/v1/operator/snapshot", huge, int64(len(huge)), 413, structs.CodeTooLarge, "the snapshot is 614400 bytes, larger than the limit of 524288 bytes"},
		{"too big, not announced", "/v1/operator/snapshot", huge, -1, 413, structs.CodeTooLarge, "the snapshot is larger than the limit of 524288 bytes"},
		{"another cluster without force", "/v1/operator/snapshot", foreign, int64(len(foreign)), 409, structs.CodeConflict, "the snapshot is of cluster " + other.server.ClusterID()},
		{"force that is not a bool", "/v1/operator/snapshot?force=yes-please", foreign, int64(len(foreign)), 400, structs.CodeInvalid, `?force="yes-please"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			index, before := stateHash(t, a)
			code, body := putSnapshot(t, h, tc.path, bytes.NewReader(tc.body), tc.length, nil)
			eb := decodeAs[errorBody](t, body)
			if code != tc.status || eb.Code != tc.code || !strings.Contains(eb.Error, tc.msg) {
				t.Fatalf("%d %s\nwant %d %s containing %q", code, body, tc.status, tc.code, tc.msg)
			}
			if i, after := stateHash(t, a); i != index || !reflect.DeepEqual(after, before) {
				t.Fatal("a refused restore changed the state")
			}
			if code, _, _ := getSnapshot(t, h, nil); code != 200 {
				t.Fatalf("a save after the refusal: %d", code)
			}
		})
	}

	// With force, the other cluster's state comes in and the cluster
	// keeps its ID.
	ownID := a.server.ClusterID()
	code, body := putSnapshot(t, h, "/v1/operator/snapshot?force=true", bytes.NewReader(foreign), int64(len(foreign)), nil)
	if res := decodeAs[snapshotRestoreJSON](t, body); code != 200 || !res.Forced || res.ClusterID != ownID {
		t.Fatalf("forced restore: %d %s", code, body)
	}
	_, theirs := stateHash(t, other)
	_, ours := stateHash(t, a)
	if ours["nodes"] != theirs["nodes"] || a.server.ClusterID() != ownID {
		t.Fatalf("after a forced restore: nodes %v vs %v, cluster %s", ours["nodes"], theirs["nodes"], a.server.ClusterID())
	}
}

// Only a management token saves or restores; a refused restore never
// reads its body.
func TestSnapshotHTTP_ManagementOnly(t *testing.T) {
	a := snapshotAgent(t, true)
	h := a.routes()
	_, body := call(t, h, "PUT", "/v1/acl/bootstrap", "", nil)
	mgmt := map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
	if code, body := call(t, h, "PUT", "/v1/acl/policy/ops", `{"Rules":`+jsonString(`operator { policy = "write" }`+"\n"+`namespace "*" { policy = "write" }`)+`}`, mgmt); code != 200 {
		t.Fatalf("policy: %d %s", code, body)
	}
	_, body = call(t, h, "PUT", "/v1/acl/token", `{"Name":"ops","Policies":["ops"]}`, mgmt)
	ops := map[string]string{"X-Drover-Token": decodeAs[aclTokenJSON](t, body).SecretID}
	code, _, archive := getSnapshot(t, h, mgmt)
	if code != 200 {
		t.Fatalf("save with the management token: %d", code)
	}

	for _, tc := range []struct {
		name    string
		headers map[string]string
		code    string
		msg     string
	}{
		{"no token", nil, structs.CodePermission, `token "anonymous" is not a management token`},
		{"operator:write", ops, structs.CodePermission, `token "ops" is not a management token`},
		{"unknown token", map[string]string{"X-Drover-Token": structs.GenerateUUID()}, structs.CodeTokenNotFound, "ACL token not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, raw := getSnapshot(t, h, tc.headers)
			eb := decodeAs[errorBody](t, string(raw))
			if code != 403 || eb.Code != tc.code || !strings.HasPrefix(eb.Error, tc.msg) {
				t.Fatalf("save: %d %s", code, raw)
			}
			index, before := stateHash(t, a)
			code, body := putSnapshot(t, h, "/v1/operator/snapshot?force=true", untouchable{t}, int64(len(archive)), tc.headers)
			eb = decodeAs[errorBody](t, body)
			if code != 403 || eb.Code != tc.code || !strings.HasPrefix(eb.Error, tc.msg) {
				t.Fatalf("restore: %d %s", code, body)
			}
			if i, after := stateHash(t, a); i != index || !reflect.DeepEqual(after, before) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
	if code, body := putSnapshot(t, h, "/v1/operator/snapshot", bytes.NewReader(archive), int64(len(archive)), mgmt); code != 200 {
		t.Fatalf("restore with the management token: %d %s", code, body)
	}
}

// registerTestNode registers a node through a's server, so its cluster
// holds data.
func registerTestNode(t *testing.T, a *Agent) {
	t.Helper()
	var resp structs.NodeUpdateResponse
	if err := a.server.RPC("Node.Register", &structs.NodeRegisterRequest{Node: mock.Node()}, &resp); err != nil {
		t.Fatal(err)
	}
}
