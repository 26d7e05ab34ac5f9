package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/droverhq/drover/structs"
)

// KeySize is the size of KEKs and root keys: AES-256.
const KeySize = 32

// kekSuffix names KEK files in the keyring directory.
const kekSuffix = ".kek"

// MissingKEKError is returned when a root key is wrapped by a KEK this
// server does not have.
type MissingKEKError struct {
	KeyID, KEKID, Dir string
}

func (e *MissingKEKError) Error() string {
	where := "this server's keyring (it keeps its keyring in memory: a dev agent); give it the file with server { keyring_file }"
	if e.Dir != "" {
		where = fmt.Sprintf("%s (as %s%s) from a server of the cluster that wrote it", e.Dir, e.KEKID, kekSuffix)
	}
	return fmt.Sprintf("root key %s is wrapped by key-encryption key %s, which this server does not have: copy that key's file into %s, or name it in server { keyring_file }", e.KeyID, e.KEKID, where)
}

// Keyring is one server's key material. Safe for concurrent use.
type Keyring struct {
	dir       string
	extraFile string

	mu   sync.RWMutex
	keks map[string][]byte
	// data caches unwrapped root keys by key ID.
	data map[string]cipher.AEAD
}

// New loads the KEKs of dir (created 0700 if missing; "" keeps KEKs in
// memory only, for dev agents) and of extraFile (optional).
func New(dir, extraFile string) (*Keyring, error) {
	k := &Keyring{dir: dir, extraFile: extraFile, keks: map[string][]byte{}, data: map[string]cipher.AEAD{}}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("keyring directory: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("keyring directory: %w", err)
		}
	}
	if err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Dir is the keyring directory ("" for an in-memory keyring).
func (k *Keyring) Dir() string { return k.dir }

// Reload reads the KEK files again (an operator may have copied one in).
func (k *Keyring) Reload() error {
	found := map[string][]byte{}
	if k.dir != "" {
		entries, err := os.ReadDir(k.dir)
		if err != nil {
			return fmt.Errorf("read keyring directory: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), kekSuffix) {
				continue
			}
			kek, err := readKEKFile(filepath.Join(k.dir, e.Name()))
			if err != nil {
				return err
			}
			found[KEKID(kek)] = kek
		}
	}
	if k.extraFile != "" {
		kek, err := readKEKFile(k.extraFile)
		if err != nil {
			return err
		}
		found[KEKID(kek)] = kek
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, kek := range found {
		k.keks[id] = kek
	}
	return nil
}

// readKEKFile reads a KEK file: 64 hex digits, optional newline.
func readKEKFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file: %w", err)
	}
	if fi.Size() > 1024 {
		return nil, fmt.Errorf("key-encryption key file %s: %d bytes is not a key (64 hex digits)", path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file: %w", err)
	}
	kek, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(kek) != KeySize {
		return nil, fmt.Errorf("key-encryption key file %s: not a key (64 hex digits)", path)
	}
	return kek, nil
}

// KEKID names a KEK: the first 8 bytes of its SHA-256, hex.
func KEKID(kek []byte) string {
	sum := sha256.Sum256(append([]byte("drover-kek\x00"), kek...))
	return hex.EncodeToString(sum[:8])
}

// HasKEK reports whether this server has KEK id.
func (k *Keyring) HasKEK(id string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.keks[id]
	return ok
}

// KEK returns KEK id, nil when this server lacks it. Only the server-only
// replication RPC hands it out.
func (k *Keyring) KEK(id string) []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if kek, ok := k.keks[id]; ok {
		return bytes.Clone(kek)
	}
	return nil
}

// KEKIDs lists the KEKs this server has.
func (k *Keyring) KEKIDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]string, 0, len(k.keks))
	for id := range k.keks {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// AddKEK stores a KEK (replicated from a peer, or generated) in the
// keyring directory and returns its ID.
func (k *Keyring) AddKEK(kek []byte) (string, error) {
	if len(kek) != KeySize {
		return "", fmt.Errorf("a key-encryption key is %d bytes, not %d", KeySize, len(kek))
	}
	id := KEKID(kek)
	if k.dir != "" {
		path := filepath.Join(k.dir, id+kekSuffix)
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(hex.EncodeToString(kek)+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write key-encryption key: %w", err)
		}
		if err := syncFile(tmp); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("write key-encryption key: %w", err)
		}
		if d, err := os.Open(k.dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	k.mu.Lock()
	k.keks[id] = bytes.Clone(kek)
	k.mu.Unlock()
	return id, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync key-encryption key: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync key-encryption key: %w", err)
	}
	return nil
}

// pickKEK returns the KEK to wrap a new root key with: prefer, if this
// server has it (the KEK of the current active key), else the configured
// file's, else the only or lowest-named local KEK, else a new one.
func (k *Keyring) pickKEK(prefer string) ([]byte, error) {
	k.mu.RLock()
	if kek, ok := k.keks[prefer]; ok && prefer != "" {
		k.mu.RUnlock()
		return kek, nil
	}
	ids := make([]string, 0, len(k.keks))
	for id := range k.keks {
		ids = append(ids, id)
	}
	k.mu.RUnlock()
	if k.extraFile != "" {
		kek, err := readKEKFile(k.extraFile)
		if err != nil {
			return nil, err
		}
		return kek, nil
	}
	if len(ids) > 0 {
		sort.Strings(ids)
		return k.KEK(ids[0]), nil
	}
	kek := make([]byte, KeySize)
	if _, err := rand.Read(kek); err != nil {
		return nil, fmt.Errorf("generate key-encryption key: %w", err)
	}
	if _, err := k.AddKEK(kek); err != nil {
		return nil, err
	}
	return kek, nil
}

// NewRootKey generates a root key, wrapped by the KEK of preferKEK if
// this server has it, else by a local (or a new) KEK; state is
// structs.RootKeyActive or RootKeyInactive.
func (k *Keyring) NewRootKey(preferKEK, state string, now time.Time) (*structs.RootKey, error) {
	kek, err := k.pickKEK(preferKEK)
	if err != nil {
		return nil, err
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	idBytes := make([]byte, 16)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, fmt.Errorf("generate root key ID: %w", err)
	}
	id := fmt.Sprintf("%x-%x-%x-%x-%x", idBytes[0:4], idBytes[4:6], idBytes[6:8], idBytes[8:10], idBytes[10:])
	kekID := KEKID(kek)
	wrapped, err := seal(kek, key, structs.RootKeyAAD(id, kekID))
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.data[id] = aead
	k.mu.Unlock()
	return &structs.RootKey{KeyID: id, State: state, KEKID: kekID, Wrapped: wrapped, CreateTime: now.UnixNano()}, nil
}

// aead returns the unwrapped root key rk, unwrapping it on first use.
func (k *Keyring) aead(rk *structs.RootKey) (cipher.AEAD, error) {
	k.mu.RLock()
	a, ok := k.data[rk.KeyID]
	kek := k.keks[rk.KEKID]
	k.mu.RUnlock()
	if ok {
		return a, nil
	}
	if kek == nil {
		// An operator may have copied the KEK in since.
		if err := k.Reload(); err == nil {
			kek = k.KEK(rk.KEKID)
		}
	}
	if kek == nil {
		return nil, &MissingKEKError{KeyID: rk.KeyID, KEKID: rk.KEKID, Dir: k.dir}
	}
	key, err := open(kek, rk.Wrapped, structs.RootKeyAAD(rk.KeyID, rk.KEKID))
	if err != nil {
		return nil, fmt.Errorf("unwrap root key %s with key-encryption key %s: %w", rk.KeyID, rk.KEKID, err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("root key %s unwraps to %d bytes", rk.KeyID, len(key))
	}
	a, err = newAEAD(key)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.data[rk.KeyID] = a
	k.mu.Unlock()
	return a, nil
}

// CanOpen reports whether this server can unwrap rk (nil error).
func (k *Keyring) CanOpen(rk *structs.RootKey) error {
	_, err := k.aead(rk)
	return err
}

// Seal encrypts items for namespace/path under root key rk.
func (k *Keyring) Seal(rk *structs.RootKey, namespace, path string, items map[string]string) ([]byte, error) {
	a, err := k.aead(rk)
	if err != nil {
		return nil, err
	}
	var plain []byte
	if err := codec.NewEncoderBytes(&plain, structs.MsgpackHandle).Encode(items); err != nil {
		return nil, fmt.Errorf("encode items: %w", err)
	}
	defer clear(plain)
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return a.Seal(nonce, nonce, plain, structs.VariableAAD(namespace, path, rk.KeyID)), nil
}

// Open decrypts a sealed variable with root key rk (v.KeyID's).
func (k *Keyring) Open(rk *structs.RootKey, v *structs.VariableEncrypted) (map[string]string, error) {
	if rk.KeyID != v.KeyID {
		return nil, fmt.Errorf("variable %s is sealed with root key %s, not %s", v.Path, v.KeyID, rk.KeyID)
	}
	a, err := k.aead(rk)
	if err != nil {
		return nil, err
	}
	if len(v.Data) < a.NonceSize()+a.Overhead() {
		return nil, fmt.Errorf("variable %s: ciphertext too short", v.Path)
	}
	plain, err := a.Open(nil, v.Data[:a.NonceSize()], v.Data[a.NonceSize():], structs.VariableAAD(structs.NamespaceOrDefault(v.Namespace), v.Path, v.KeyID))
	if err != nil {
		return nil, fmt.Errorf("variable %s/%s does not decrypt with root key %s (tampered or moved)", v.Namespace, v.Path, v.KeyID)
	}
	defer clear(plain)
	var items map[string]string
	if err := codec.NewDecoderBytes(plain, structs.MsgpackHandle).Decode(&items); err != nil {
		return nil, fmt.Errorf("variable %s: decode items: %w", v.Path, err)
	}
	return items, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(key, plain, aad []byte) ([]byte, error) {
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, plain, aad), nil
}

func open(key, sealed, aad []byte) ([]byte, error) {
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < a.NonceSize()+a.Overhead() {
		return nil, errors.New("wrapped key too short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], aad)
}
