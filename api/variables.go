package api

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
)

// MaxVariableSize bounds the keys and values of one variable (bytes):
// the servers refuse more with a 400.
const MaxVariableSize = 64 << 10

// VariableMetadata is what a variable has besides its items.
type VariableMetadata struct {
	Namespace   string
	Path        string
	CreateIndex uint64
	ModifyIndex uint64
	// CreateTime and ModifyTime are Unix nanoseconds.
	CreateTime int64
	ModifyTime int64
}

// Variable is a variable with its items in the clear.
type Variable struct {
	Namespace   string
	Path        string
	Items       map[string]string
	CreateIndex uint64
	ModifyIndex uint64
	CreateTime  int64
	ModifyTime  int64
}

// RootKeyMeta describes a variables root key (never key material).
type RootKeyMeta struct {
	KeyID      string
	State      string
	KEKID      string
	CreateTime int64
	// Variables counts the variables still sealed with this key.
	Variables   int
	CreateIndex uint64
	ModifyIndex uint64
}

// IsConflict reports whether err is a 409, as a check-and-set that did
// not hold.
func IsConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusConflict
}

// Variables returns the variables endpoints: /v1/vars and /v1/var/<path>
// in the client's namespace (or QueryOptions.Namespace).
func (c *Client) Variables() *Variables { return &Variables{c: c} }

// Variables is /v1/vars and /v1/var/<path>.
type Variables struct{ c *Client }

// List lists the metadata of the variables whose path starts with
// prefix.
func (v *Variables) List(prefix string, q *QueryOptions) ([]*VariableMetadata, *QueryMeta, error) {
	var out []*VariableMetadata
	qq := QueryOptions{}
	if q != nil {
		qq = *q
	}
	qq.Prefix = prefix
	meta, err := v.c.query("/v1/vars", &out, &qq)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Read reads one variable; a missing one is a 404 (IsNotFound).
func (v *Variables) Read(path string, q *QueryOptions) (*Variable, *QueryMeta, error) {
	var out Variable
	meta, err := v.c.query("/v1/var/"+path, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Put writes items at path. With cas non-nil, only if the variable's
// modify index is *cas (0: only if it does not exist); otherwise a 409
// (IsConflict) and nothing changes.
func (v *Variables) Put(path string, items map[string]string, cas *uint64) (*Variable, *WriteMeta, error) {
	params := url.Values{}
	if cas != nil {
		params.Set("cas", strconv.FormatUint(*cas, 10))
	}
	body := &Variable{Path: path, Items: items}
	var out Variable
	meta, err := v.c.write(http.MethodPut, "/v1/var/"+path, params, body, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Delete deletes the variable at path (cas as in Put).
func (v *Variables) Delete(path string, cas *uint64) (*WriteMeta, error) {
	params := url.Values{}
	if cas != nil {
		params.Set("cas", strconv.FormatUint(*cas, 10))
	}
	var out indexBody
	return v.c.write(http.MethodDelete, "/v1/var/"+path, params, nil, &out)
}

// RootKeyring returns the variables keyring endpoints,
// /v1/operator/keyring/keys and /v1/operator/keyring/rotate (the gossip
// keyring is Keyring).
func (c *Client) RootKeyring() *RootKeyring { return &RootKeyring{c: c.WithNamespace("")} }

// RootKeyring is the variables keyring.
type RootKeyring struct{ c *Client }

// List lists the root keys.
func (k *RootKeyring) List(q *QueryOptions) ([]*RootKeyMeta, *QueryMeta, error) {
	var out []*RootKeyMeta
	meta, err := k.c.query("/v1/operator/keyring/keys", &out, noNamespace(q))
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Rotate makes a new root key active; variables are re-encrypted under
// it in the background.
func (k *RootKeyring) Rotate() (*RootKeyMeta, *WriteMeta, error) {
	var out RootKeyMeta
	meta, err := k.c.write(http.MethodPut, "/v1/operator/keyring/rotate", nil, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}
