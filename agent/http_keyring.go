package agent

import (
	"errors"
	"net/http"

	"github.com/droverhq/drover/gossip"
	"github.com/droverhq/drover/structs"
)

// The gossip keyring endpoints (Nomad's paths), on every agent:
//
//	GET      /v1/agent/keyring/list
//	PUT|POST /v1/agent/keyring/install   {"Key": "<base64>"}
//	PUT|POST /v1/agent/keyring/use       {"Key": "<base64>"}
//	PUT|POST /v1/agent/keyring/remove    {"Key": "<base64>"}
//
// install, use and remove change every alive member's keyring (the
// change travels as an encrypted gossip message) and answer once every
// alive member advertises it, or after gossip.DefaultKeyringWait with a
// 504 naming the members that did not. Refusals: a malformed body or key
// and encryption being off are 400; removing a primary key, using a key
// some member lacks and a full keyring are 409.

// KeyringRequest is the body of install, use and remove.
type KeyringRequest struct {
	// Key is the base64 of 16, 24 or 32 bytes.
	Key string
}

// KeyringListResponse is GET /v1/agent/keyring/list.
type KeyringListResponse struct {
	// Members is how many gossip members are alive.
	Members int
	// Keys are this agent's keys, primary first, then keys that only
	// other members hold (Key empty, Fingerprint set).
	Keys []gossip.KeyInfo
}

// KeyringResponse answers install, use and remove.
type KeyringResponse struct {
	// Members alive when the change was last checked; Reflected of them
	// advertise it.
	Members   int
	Reflected int
}

func (a *Agent) keyringList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	list, err := a.gossip.ListKeys()
	if err != nil {
		return nil, keyringError(err)
	}
	return KeyringListResponse{Members: list.Members, Keys: list.Keys}, nil
}

func (a *Agent) keyringInstall(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	return a.keyringOp(w, r, a.gossip.InstallKey)
}

func (a *Agent) keyringUse(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	return a.keyringOp(w, r, a.gossip.UseKey)
}

func (a *Agent) keyringRemove(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	return a.keyringOp(w, r, a.gossip.RemoveKey)
}

// keyringOp decodes {"Key": ...} and runs op with it.
func (a *Agent) keyringOp(w http.ResponseWriter, r *http.Request, op func(string) (*gossip.KeyringResult, error)) (interface{}, error) {
	// Said first: with encryption off no body could be right.
	if !a.gossip.Encrypted() {
		return nil, keyringError(gossip.ErrEncryptionDisabled)
	}
	var req KeyringRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return nil, err
	}
	if req.Key == "" {
		return nil, badRequest(`the request names no key: send {"Key": "<base64 of 16, 24 or 32 bytes>"}`)
	}
	res, err := op(req.Key)
	if err != nil {
		return nil, keyringError(err)
	}
	return KeyringResponse{Members: res.Members, Reflected: res.Reflected}, nil
}

// keyringError gives the gossip package's refusals their HTTP status.
func keyringError(err error) error {
	switch {
	case errors.Is(err, gossip.ErrInvalidKey), errors.Is(err, gossip.ErrEncryptionDisabled):
		return structs.NewError(structs.CodeInvalid, err.Error())
	case errors.Is(err, gossip.ErrRemovePrimary), errors.Is(err, gossip.ErrKeyNotInstalled), errors.Is(err, gossip.ErrKeyringFull):
		return structs.NewError(structs.CodeConflict, err.Error())
	case errors.Is(err, gossip.ErrNotPropagated):
		return structs.NewError(structs.CodeTimeout, err.Error())
	}
	return err
}
