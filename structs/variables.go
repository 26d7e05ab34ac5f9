package structs

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Variables are small maps of strings (configuration and secrets) kept
// by the servers under a path in a namespace: `app/config`,
// `certs/shop`. Raft, snapshots and the state store hold only their
// ciphertext (VariableEncrypted): the leader seals the items with
// AES-256-GCM under the active root key (a data key), and every root key
// is in Raft only wrapped by a key-encryption key that lives on the
// servers' disks (server/keyring). Reads decrypt on the server that
// answers; the API and the clients' templates see VariableDecrypted.

// Variable limits, checked before anything is encrypted or stored.
const (
	// MaxVariablePathLength bounds a path (bytes).
	MaxVariablePathLength = 256
	// MaxVariableItems bounds the number of items of one variable.
	MaxVariableItems = 256
	// MaxVariableKeyLength bounds an item's key.
	MaxVariableKeyLength = 128
	// MaxVariableSize bounds the sum of an item map's keys and values
	// (bytes): as Nomad, 64 KiB.
	MaxVariableSize = 64 << 10
	// MaxVariableListResults bounds one list answer; the caller pages
	// with NextToken.
	MaxVariableListResults = 1000
)

// VariableMetadata is what a variable has besides its items; lists
// return only this.
type VariableMetadata struct {
	Namespace   string
	Path        string
	CreateIndex uint64
	ModifyIndex uint64
	// CreateTime and ModifyTime are Unix nanoseconds, set by the leader.
	CreateTime int64
	ModifyTime int64
}

// VariableDecrypted is a variable in the clear: what the HTTP API and
// templates read and write. Its JSON is
// {"Namespace","Path","Items":{"k":"v"},"CreateIndex","ModifyIndex",...}.
type VariableDecrypted struct {
	VariableMetadata
	Items map[string]string
}

// VariableEncrypted is a variable as Raft and the state store hold it.
type VariableEncrypted struct {
	VariableMetadata
	// KeyID names the root key that sealed Data.
	KeyID string
	// Data is nonce || AES-256-GCM ciphertext of the items (msgpack),
	// with VariableAAD as associated data.
	Data []byte
}

// VariableAAD is the associated data sealed with a variable's items:
// moving the ciphertext to another namespace, path or key ID makes it
// fail to open.
func VariableAAD(namespace, path, keyID string) []byte {
	return []byte("drover-variable\x00" + namespace + "\x00" + path + "\x00" + keyID)
}

// Variable operations carried by VariableApplyRequest.
const (
	// VarOpSet writes the variable unconditionally.
	VarOpSet = "set"
	// VarOpCAS writes it only if its ModifyIndex is CAS (0: only if it
	// does not exist).
	VarOpCAS = "cas"
	// VarOpDelete deletes it (deleting a missing variable is not an
	// error).
	VarOpDelete = "delete"
	// VarOpDeleteCAS deletes it only if its ModifyIndex is CAS.
	VarOpDeleteCAS = "delete-cas"
)

// VariableApplyRequest is the Raft entry of one variable write, built on
// the leader after it sealed the items. A CAS conflict is decided by the
// FSM in log order and answered in VariableApplyResponse.Conflict.
type VariableApplyRequest struct {
	Op  string
	Var *VariableEncrypted
	// CAS is the ModifyIndex a CAS operation expects.
	CAS uint64
	// ReencryptOnly marks a background re-encryption under the active
	// key: applied only if the variable's ModifyIndex is still CAS, and
	// without changing ModifyIndex/ModifyTime (the items are the same).
	ReencryptOnly bool
	WriteRequest
}

// VariableApplyResponse is what the FSM answers a VariableApplyRequest.
type VariableApplyResponse struct {
	// Conflict is set when a CAS operation did not apply: the variable
	// as it is (metadata only; nil when it does not exist).
	Conflict *VariableMetadata
	// Conflicted is true when a CAS operation did not apply (Conflict
	// may then be nil: the variable does not exist).
	Conflicted bool
	// Meta is the variable's metadata after a write (nil after a delete).
	Meta  *VariableMetadata
	Index uint64
}

// VariableUpsertRequest is the Variable.Upsert RPC: write Items at
// Namespace/Path; with CAS set (CheckIndex non-nil), only if the
// variable's ModifyIndex is *CheckIndex (0: only if it does not exist).
type VariableUpsertRequest struct {
	Path       string
	Items      map[string]string
	CheckIndex *uint64
	WriteRequest
}

// VariableDeleteRequest is the Variable.Delete RPC.
type VariableDeleteRequest struct {
	Path       string
	CheckIndex *uint64
	WriteRequest
}

// VariableWriteResponse answers Upsert and Delete. A CAS mismatch is a
// CodeConflict error; Conflict then holds the current metadata too.
type VariableWriteResponse struct {
	Meta     *VariableMetadata
	Conflict *VariableMetadata
	WriteMeta
}

// VariableReadRequest is the Variable.Read RPC. A client agent reading
// for a template sets AllocID (a non-terminal allocation on its node,
// in Namespace) and authenticates with its node ID and secret instead of
// a token; it may then read only that allocation's namespace.
type VariableReadRequest struct {
	Path     string
	AllocID  string
	NodeID   string
	SecretID string `json:"-" codec:"SecretID"`
	QueryOptions
}

// VariableReadResponse: Data is nil when the variable does not exist.
// Index is the variable's ModifyIndex (or the table's index when it does
// not exist), for blocking queries.
type VariableReadResponse struct {
	Data *VariableDecrypted
	QueryMeta
}

// VariableListRequest is the Variable.List RPC: metadata of the
// variables whose path starts with Prefix (QueryOptions.Prefix), after
// NextToken (a path), at most PerPage (MaxVariableListResults when 0 or
// more).
type VariableListRequest struct {
	NextToken string
	PerPage   int
	QueryOptions
}

// VariableListResponse lists variable metadata by namespace and path.
type VariableListResponse struct {
	Variables []*VariableMetadata
	// NextToken, when set, is the path to continue after.
	NextToken string
	QueryMeta
}

// Root key states.
const (
	// RootKeyActive seals new writes; exactly one key is active once the
	// keyring is initialized.
	RootKeyActive = "active"
	// RootKeyInactive only opens variables sealed before a rotation;
	// the leader re-encrypts them under the active key in the
	// background.
	RootKeyInactive = "inactive"
)

// RootKey is a data key as Raft holds it: only wrapped (AES-256-GCM) by
// a key-encryption key (KEK) that never enters Raft.
type RootKey struct {
	KeyID string
	State string
	// KEKID identifies the key-encryption key that wrapped it (the
	// first 8 bytes of the KEK's SHA-256, hex).
	KEKID string
	// Wrapped is nonce || AES-256-GCM(KEK, key) with RootKeyAAD.
	Wrapped     []byte
	CreateTime  int64
	CreateIndex uint64
	ModifyIndex uint64
}

// RootKeyAAD binds a wrapped data key to its key ID.
func RootKeyAAD(keyID, kekID string) []byte {
	return []byte("drover-root-key\x00" + keyID + "\x00" + kekID)
}

// RootKeyMeta is what the keyring API lists: never key material.
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

// RootKeyUpsertRequest writes root keys (a rotation writes the new
// active key and the old one turned inactive in one entry).
type RootKeyUpsertRequest struct {
	Keys []*RootKey
	WriteRequest
}

// RootKeyDeleteRequest deletes root keys that no variable uses.
type RootKeyDeleteRequest struct {
	KeyIDs []string
	WriteRequest
}

// KeyringListRequest / KeyringListResponse: the Keyring.List RPC.
type KeyringListRequest struct {
	QueryOptions
}

// KeyringListResponse lists root keys by creation.
type KeyringListResponse struct {
	Keys []*RootKeyMeta
	QueryMeta
}

// KeyringRotateRequest is the Keyring.Rotate RPC.
type KeyringRotateRequest struct {
	WriteRequest
}

// KeyringRotateResponse names the new active key.
type KeyringRotateResponse struct {
	Key *RootKeyMeta
	WriteMeta
}

// KEKRequest is the server-only Keyring.KEK RPC: a server that finds a
// root key wrapped by a KEK it lacks asks a peer for it. Only servers may
// call it (a server certificate with mTLS).
type KEKRequest struct {
	KEKID string
	QueryOptions
}

// KEKResponse carries the key-encryption key, or nothing when the peer
// lacks it too.
type KEKResponse struct {
	KEK []byte `json:"-" codec:"KEK"`
	QueryMeta
}

var (
	variablePathRE = regexp.MustCompile(`^[a-zA-Z0-9_.~-]+(/[a-zA-Z0-9_.~-]+)*$`)
	variableKeyRE  = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
)

// ValidateVariablePath checks a variable's path: segments of letters,
// digits and `_ . ~ -` joined by `/`, no empty, `.` or `..` segment.
func ValidateVariablePath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("variable path is empty")
	case len(path) > MaxVariablePathLength:
		return fmt.Errorf("variable path is %d bytes long; the limit is %d", len(path), MaxVariablePathLength)
	case !variablePathRE.MatchString(path):
		return fmt.Errorf("variable path %q is invalid: use segments of letters, digits, '_', '.', '~' and '-' separated by single '/'", path)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("variable path %q is invalid: %q is not a path segment", path, seg)
		}
	}
	return nil
}

// ValidateVariableItems checks a variable's items against the limits.
func ValidateVariableItems(items map[string]string) error {
	if len(items) == 0 {
		return fmt.Errorf("a variable needs at least one item")
	}
	if len(items) > MaxVariableItems {
		return fmt.Errorf("variable has %d items; the limit is %d", len(items), MaxVariableItems)
	}
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	size := 0
	for _, k := range keys {
		if len(k) > MaxVariableKeyLength {
			return fmt.Errorf("item key %.32q... is %d bytes long; the limit is %d", k, len(k), MaxVariableKeyLength)
		}
		if !variableKeyRE.MatchString(k) {
			return fmt.Errorf("item key %q is invalid: use letters, digits, '_', '.' and '-'", k)
		}
		size += len(k) + len(items[k])
	}
	if size > MaxVariableSize {
		return fmt.Errorf("variable items are %d bytes; the limit is %d (64 KiB)", size, MaxVariableSize)
	}
	return nil
}
