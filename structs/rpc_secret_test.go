package structs

import (
	"bytes"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// TestRPC_NodeSecretsSurviveTheWire guards the requests that carry a
// node's secret: they are hidden from JSON but must travel in msgpack
// (the RPC codec falls back to the json tag when there is no codec tag).
func TestRPC_NodeSecretsSurviveTheWire(t *testing.T) {
	cases := []struct {
		name string
		in   interface{}
		out  interface{}
		get  func(interface{}) string
	}{
		{"AllocUpdateRequest", &AllocUpdateRequest{NodeID: "n", SecretID: "s3cret"}, &AllocUpdateRequest{},
			func(v interface{}) string { return v.(*AllocUpdateRequest).SecretID }},
		{"AllocsGetRequest", &AllocsGetRequest{NodeID: "n", SecretID: "s3cret"}, &AllocsGetRequest{},
			func(v interface{}) string { return v.(*AllocsGetRequest).SecretID }},
		{"NodeSpecificRequest", &NodeSpecificRequest{NodeID: "n", SecretID: "s3cret"}, &NodeSpecificRequest{},
			func(v interface{}) string { return v.(*NodeSpecificRequest).SecretID }},
		{"NodeUpdateStatusRequest", &NodeUpdateStatusRequest{NodeID: "n", SecretID: "s3cret"}, &NodeUpdateStatusRequest{},
			func(v interface{}) string { return v.(*NodeUpdateStatusRequest).SecretID }},
		{"Node", &Node{ID: "n", SecretID: "s3cret"}, &Node{},
			func(v interface{}) string { return v.(*Node).SecretID }},
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
			if got := tc.get(tc.out); got != "s3cret" {
				t.Fatalf("secret after a msgpack round trip: %q", got)
			}
		})
	}
}
