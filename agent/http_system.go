package agent

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/droverhq/drover/structs"
)

// maxSystemGCBody bounds the body of PUT /v1/system/gc: at most
// {"DryRun": true} and some whitespace.
const maxSystemGCBody = 4 << 10

// systemGCBody is what PUT /v1/system/gc takes.
type systemGCBody struct {
	// DryRun only reports what a collection would delete.
	DryRun bool
}

// systemGC forces a garbage collection on the leader (Nomad's path,
// PUT /v1/system/gc): every age threshold at zero, or with
// {"DryRun": true} only the report of what would go. The body is empty
// (Nomad's client sends none) or that object; anything else, or more
// than maxSystemGCBody bytes, is refused before any RPC. The servers
// check operator:write.
func (a *Agent) systemGC(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSystemGCBody))
	if err != nil {
		return nil, err
	}
	var body systemGCBody
	if strings.TrimSpace(string(raw)) != "" {
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if err := a.decodeBody(w, r, &body); err != nil {
			return nil, err
		}
	}
	args := structs.SystemGCRequest{DryRun: body.DryRun}
	args.AuthToken = authToken(r)
	var resp structs.SystemGCResponse
	if err := a.RPC("System.GarbageCollect", &args, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}
