package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOperator_SnapshotSaveAndRestore(t *testing.T) {
	archive := bytes.Repeat([]byte("tar!"), 1000)
	var gotBody []byte
	var gotReq *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotReq = r
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/operator/snapshot":
			w.Header().Set("X-Drover-Snapshot-Index", "42")
			w.Header().Set("X-Drover-Snapshot-Cluster-Id", "c1")
			w.Header().Set("Content-Length", "4000")
			w.Write(archive)
		case r.Method == http.MethodPut && r.URL.Path == "/v1/operator/snapshot":
			gotBody, _ = io.ReadAll(r.Body)
			if r.URL.Query().Get("force") == "true" {
				w.WriteHeader(http.StatusConflict)
				w.Write([]byte(`{"Code":"conflict","Error":"the snapshot is of cluster c1"}`))
				return
			}
			w.Write([]byte(`{"Index":99,"ClusterID":"c2","Adopted":true,"Meta":{"Index":42,"ClusterID":"c1"}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := NewClient(&Config{Address: srv.URL, Token: "secret"})
	if err != nil {
		t.Fatal(err)
	}

	d, err := c.Operator().SnapshotSave(&QueryOptions{AllowStale: true})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(d)
	d.Close()
	if !bytes.Equal(body, archive) || d.Size != int64(len(archive)) || d.Index != 42 || d.ClusterID != "c1" {
		t.Fatalf("download: %d bytes, size %d, index %d, cluster %q", len(body), d.Size, d.Index, d.ClusterID)
	}
	if gotReq.URL.Query().Get("stale") != "true" || gotReq.Header.Get("X-Drover-Token") != "secret" {
		t.Fatalf("save request %v", gotReq.URL)
	}

	res, err := c.Operator().SnapshotRestore(bytes.NewReader(archive), int64(len(archive)), false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotBody, archive) || gotReq.Header.Get("Content-Type") != "application/x-tar" || gotReq.ContentLength != int64(len(archive)) {
		t.Fatalf("restore request: %d bytes, %s, length %d", len(gotBody), gotReq.Header.Get("Content-Type"), gotReq.ContentLength)
	}
	if res.Index != 99 || res.ClusterID != "c2" || !res.Adopted || res.Meta.Index != 42 || res.Meta.ClusterID != "c1" {
		t.Fatalf("restore result %+v", res)
	}

	// Unknown length, and a refusal comes back as an *Error.
	_, err = c.Operator().SnapshotRestore(io.MultiReader(bytes.NewReader(archive)), -1, true)
	apiErr, ok := err.(*Error)
	if !ok || apiErr.StatusCode != http.StatusConflict || apiErr.Code != "conflict" || !strings.Contains(apiErr.Message, "cluster c1") {
		t.Fatalf("forced restore: %v", err)
	}
	if !bytes.Equal(gotBody, archive) {
		t.Fatal("the body of unknown length did not arrive whole")
	}
}
